//! The QEMU command line of one VM: direct kernel boot, a qcow2 overlay on the shared base
//! image, one tap on the cluster's bridge with a fixed MAC, daemonized with a PID file.

use std::path::PathBuf;

/// How QEMU runs the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation (`/dev/kvm`), when a probe showed it boots the kernel.
    Kvm,
    /// Software emulation: slower (~26 s to SSH), but boots anywhere.
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// TCG's translation cache, in MiB. QEMU's default (1 GiB) is most of a VM's host memory;
/// a small guest runs as fast with a quarter of it.
pub const TCG_TB_SIZE_MIB: u32 = 256;

/// Everything that differs between VMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuSpec {
    pub name: String,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub overlay: PathBuf,
    pub tap: String,
    pub mac: String,
    pub pid_file: PathBuf,
    pub console_log: PathBuf,
}

/// The arguments after `qemu-system-x86_64`.
pub fn qemu_args(spec: &QemuSpec) -> Vec<String> {
    let p = |path: &PathBuf| path.to_string_lossy().into_owned();
    let (accel, cpu) = match spec.accel {
        Accel::Kvm => ("kvm".to_string(), "host"),
        Accel::Tcg => (format!("tcg,tb-size={TCG_TB_SIZE_MIB}"), "qemu64"),
    };
    let mut args: Vec<String> = Vec::new();
    let mut push = |words: &[&str]| args.extend(words.iter().map(|w| w.to_string()));
    push(&["-name", &spec.name]);
    push(&["-machine", "pc", "-accel", &accel, "-cpu", cpu]);
    push(&["-m", &spec.memory_mib.to_string()]);
    push(&["-smp", &spec.cpus.to_string()]);
    push(&["-kernel", &p(&spec.kernel), "-initrd", &p(&spec.initrd)]);
    push(&["-append", &spec.append]);
    push(&[
        "-drive",
        &format!(
            "file={},format=qcow2,if=virtio",
            qemu_path(&p(&spec.overlay))
        ),
    ]);
    push(&[
        "-netdev",
        &format!("tap,id=net0,ifname={},script=no,downscript=no", spec.tap),
    ]);
    push(&[
        "-device",
        &format!("virtio-net-pci,netdev=net0,mac={}", spec.mac),
    ]);
    // The guest's clock starts from the host's; nothing syncs it afterwards, so clock faults
    // set inside the guest hold.
    push(&["-rtc", "base=utc"]);
    push(&["-display", "none", "-monitor", "none"]);
    push(&["-serial", &format!("file:{}", p(&spec.console_log))]);
    // A guest panic (panic=-1 reboots) ends QEMU instead of looping.
    push(&["-no-reboot"]);
    push(&["-daemonize", "-pidfile", &p(&spec.pid_file)]);
    args
}

/// QEMU option values are comma-separated; a comma in a path is written twice.
fn qemu_path(path: &str) -> String {
    path.replace(',', ",,")
}

/// `qemu-img` arguments making `overlay` a copy-on-write layer over the raw `base`.
pub fn overlay_args(base: &str, overlay: &str) -> Vec<String> {
    [
        "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(accel: Accel) -> QemuSpec {
        QemuSpec {
            name: "n1".into(),
            accel,
            memory_mib: 768,
            cpus: 1,
            kernel: "/c/vmlinuz".into(),
            initrd: "/c/initrd.img".into(),
            append: "root=/dev/vda rw faultline.hostname=n1".into(),
            overlay: "/s/a,b/overlay.qcow2".into(),
            tap: "flvm0t1".into(),
            mac: "52:54:00:78:00:0b".into(),
            pid_file: "/s/qemu.pid".into(),
            console_log: "/s/console.log".into(),
        }
    }

    /// The value after the first occurrence of `flag`.
    fn value<'a>(args: &'a [String], flag: &str) -> &'a str {
        let i = args.iter().position(|a| a == flag).unwrap();
        &args[i + 1]
    }

    #[test]
    fn tcg_line_boots_the_kernel_directly_on_the_overlay_and_tap() {
        let args = qemu_args(&spec(Accel::Tcg));
        assert_eq!(value(&args, "-accel"), "tcg,tb-size=256");
        assert_eq!(value(&args, "-cpu"), "qemu64");
        assert_eq!(value(&args, "-m"), "768");
        assert_eq!(value(&args, "-kernel"), "/c/vmlinuz");
        assert_eq!(value(&args, "-initrd"), "/c/initrd.img");
        // The whole command line is one argument, spaces and all.
        assert_eq!(
            value(&args, "-append"),
            "root=/dev/vda rw faultline.hostname=n1"
        );
        assert_eq!(
            value(&args, "-drive"),
            "file=/s/a,,b/overlay.qcow2,format=qcow2,if=virtio"
        );
        assert_eq!(
            value(&args, "-netdev"),
            "tap,id=net0,ifname=flvm0t1,script=no,downscript=no"
        );
        assert_eq!(
            value(&args, "-device"),
            "virtio-net-pci,netdev=net0,mac=52:54:00:78:00:0b"
        );
        assert_eq!(value(&args, "-pidfile"), "/s/qemu.pid");
        assert_eq!(value(&args, "-serial"), "file:/s/console.log");
        assert!(args.iter().any(|a| a == "-daemonize"));
        assert!(args.iter().any(|a| a == "-no-reboot"));
    }

    #[test]
    fn kvm_line_uses_the_host_cpu() {
        let args = qemu_args(&spec(Accel::Kvm));
        assert_eq!(value(&args, "-accel"), "kvm");
        assert_eq!(value(&args, "-cpu"), "host");
    }

    #[test]
    fn overlay_is_qcow2_backed_by_the_raw_base() {
        assert_eq!(
            overlay_args("/cache/rootfs.img", "/s/n1.qcow2"),
            [
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                "/cache/rootfs.img",
                "/s/n1.qcow2"
            ]
        );
    }
}
