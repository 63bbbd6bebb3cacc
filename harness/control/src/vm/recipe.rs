//! The VM image recipe: the `mmdebstrap` command line, its package list, the script that
//! makes the tree a faultline host, and the hash that names the cached image.

use sha2::{Digest, Sha256};
use std::path::Path;

/// Bump when anything the recipe does changes in a way the text below does not show (e.g.
/// how the tree becomes a disk), so cached images are rebuilt.
const RECIPE_VERSION: u32 = 1;

/// The Debian release the VMs run; the same as the controller's, so the node binary built
/// here runs there (same glibc).
pub const SUITE: &str = "bookworm";

/// Size of the root file system; sparse, so it costs only what the tree holds (~700 MB).
pub const DISK_SIZE: &str = "3G";

/// Packages on top of `minbase`: a kernel to boot directly, sshd to be reached, the tools the
/// nemesis uses (iptables, tc, kill by PID, libfaketime), what systemd needs to boot,
/// QEMU's guest agent (vagrant-libvirt asks it for a VM's address when there is no DHCP),
/// and the third-party servers faultline starts itself (etcd, ZooKeeper and its Java runtime,
/// Redis and Sentinel: VMs have no network to fetch them; their services are masked or absent).
pub const PACKAGES: [&str; 18] = [
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "kmod",
    "openssh-server",
    "iproute2",
    "iptables",
    "procps",
    "psmisc",
    "libfaketime",
    "faketime",
    "qemu-guest-agent",
    // The third-party systems faultline tests; their own services are masked below.
    "etcd-server",
    "etcd-client",
    "zookeeper",
    "default-jre-headless",
    "redis-server",
    "redis-sentinel",
];

/// Runs in the guest before sshd: sets hostname, address, `/etc/hosts`, root's key and host
/// keys from the kernel command line (`faultline.*` words, see `plan::kernel_cmdline`), so one
/// image serves every VM and every cluster. Values use `,` for spaces (the kernel splits its
/// command line on spaces).
pub const BOOT_SCRIPT: &str = r#"#!/bin/sh
# Written by faultline's VM image recipe; configures this VM from the kernel command line.
set -eu
name=""; ip=""; hosts=""; key=""
for word in $(cat /proc/cmdline); do
    case "$word" in
        faultline.hostname=*) name=${word#*=} ;;
        faultline.ip=*) ip=${word#*=} ;;
        faultline.hosts=*) hosts=${word#*=} ;;
        faultline.key=*) key=${word#*=} ;;
    esac
done
if [ -n "$name" ]; then
    hostname "$name"
    echo "$name" > /etc/hostname
fi
ip link set lo up
if [ -n "$ip" ]; then
    ip addr replace "$ip" dev eth0
    ip link set eth0 up
fi
printf '127.0.0.1 localhost\n' > /etc/hosts
for pair in $(echo "$hosts" | tr ',' ' '); do
    printf '%s %s\n' "${pair#*=}" "${pair%%=*}" >> /etc/hosts
done
install -d -m 700 /root/.ssh
if [ -n "$key" ]; then
    echo "$key" | tr ',' ' ' > /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
fi
# The image ships without host keys, so every VM makes its own on first boot: ed25519 only,
# as an RSA key takes many seconds under software emulation.
key_file=/etc/ssh/ssh_host_ed25519_key
[ -f "$key_file" ] || ssh-keygen -q -t ed25519 -N '' -f "$key_file"
install -d -m 755 /opt/faultline
"#;

/// The systemd unit running [`BOOT_SCRIPT`] before sshd.
pub const BOOT_UNIT: &str = "[Unit]
Description=faultline: hostname, address and SSH key from the kernel command line
DefaultDependencies=no
Wants=sys-subsystem-net-devices-eth0.device
After=local-fs.target systemd-remount-fs.service sys-subsystem-net-devices-eth0.device
Before=ssh.service network.target sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/faultline-boot

[Install]
WantedBy=sysinit.target
";

/// sshd settings faultline needs: root by key, many sessions per connection, no DNS waits.
pub const SSHD_CONFIG: &str = "HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxSessions 100
MaxStartups 100:30:200
UseDNS no
PrintMotd no
";

/// Run by `mmdebstrap --customize-hook` on the controller with the tree as `$1`; the files it
/// writes are [`BOOT_SCRIPT`], [`BOOT_UNIT`] and [`SSHD_CONFIG`] (passed as `$2`…`$4`).
/// Units that would only slow a software-emulated boot (timers, gettys on screens nobody
/// sees), or change the clock behind the nemesis's back, are masked, and so are the
/// services of the packaged servers (faultline starts those itself).
pub const CUSTOMIZE_SCRIPT: &str = r#"set -eu
root=$1
install -m 755 /dev/null "$root/usr/local/sbin/faultline-boot"
printf '%s' "$2" > "$root/usr/local/sbin/faultline-boot"
printf '%s' "$3" > "$root/etc/systemd/system/faultline-boot.service"
mkdir -p "$root/etc/systemd/system/sysinit.target.wants"
ln -sf /etc/systemd/system/faultline-boot.service "$root/etc/systemd/system/sysinit.target.wants/faultline-boot.service"
mkdir -p "$root/etc/ssh/sshd_config.d"
printf '%s' "$4" > "$root/etc/ssh/sshd_config.d/faultline.conf"
rm -f "$root"/etc/ssh/ssh_host_*
printf '/dev/vda / ext4 rw,noatime 0 1\n' > "$root/etc/fstab"
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-timesyncd.service getty-static.service etcd.service redis-server.service redis-sentinel.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
install -d -m 755 "$root/opt/faultline"
"#;

/// Everything the image depends on, in one text: what the hash covers and what is stored
/// beside the image (`recipe.txt`) so a person can see how it was made.
pub fn recipe_text() -> String {
    format!(
        "faultline VM image recipe v{RECIPE_VERSION}\nsuite: {SUITE}\nvariant: minbase\n\
         packages: {}\ndisk: ext4 {DISK_SIZE}, whole /dev/vda\n\
         --- customize ---\n{CUSTOMIZE_SCRIPT}\n--- boot script ---\n{BOOT_SCRIPT}\n\
         --- boot unit ---\n{BOOT_UNIT}\n--- sshd ---\n{SSHD_CONFIG}",
        PACKAGES.join(",")
    )
}

/// The hash naming the cached image: a new one whenever the recipe changes, so a stale image
/// is never reused. 16 hex digits of SHA-256 keep the path short.
pub fn recipe_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `mmdebstrap`'s arguments to build the tree at `tree`. Packages come from the apt sources
/// configured on this machine (mmdebstrap reads them when no mirror is named).
pub fn mmdebstrap_args(tree: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--variant=minbase".into(),
        "--mode=root".into(),
        format!("--include={}", PACKAGES.join(",")),
        // Runs as `sh -c HOOK exec ROOT`; the files are passed as arguments so no text of
        // ours is ever parsed by a shell.
        format!(
            "--customize-hook=sh -c {} customize \"$1\" {} {} {}",
            sh_quote(CUSTOMIZE_SCRIPT),
            sh_quote(BOOT_SCRIPT),
            sh_quote(BOOT_UNIT),
            sh_quote(SSHD_CONFIG)
        ),
        SUITE.into(),
    ];
    args.push(tree.to_string_lossy().into_owned());
    args
}

/// `mkfs.ext4`'s arguments to turn `tree` into the disk `image`.
pub fn mkfs_args(tree: &Path, image: &Path) -> Vec<String> {
    vec![
        "-q".into(),
        "-F".into(),
        "-L".into(),
        "faultline-root".into(),
        "-d".into(),
        tree.to_string_lossy().into_owned(),
        image.to_string_lossy().into_owned(),
        DISK_SIZE.into(),
    ]
}

/// Single-quotes a word for `sh`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r#"'\''"#))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn hash_is_stable_short_and_changes_with_the_recipe() {
        let text = recipe_text();
        assert_eq!(recipe_hash(&text), recipe_hash(&text));
        assert_eq!(recipe_hash(&text).len(), 16);
        assert!(recipe_hash(&text).bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(
            recipe_hash(&text),
            recipe_hash(&text.replace("iptables", "nftables"))
        );
        // Known vector: SHA-256("abc") starts ba7816bf8f01cfea.
        assert_eq!(recipe_hash("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn recipe_names_every_package_and_file_it_depends_on() {
        let text = recipe_text();
        for package in PACKAGES {
            assert!(text.contains(package), "{package}");
        }
        for part in [BOOT_SCRIPT, BOOT_UNIT, SSHD_CONFIG, CUSTOMIZE_SCRIPT] {
            assert!(text.contains(part));
        }
    }

    #[test]
    fn mmdebstrap_line_builds_a_minbase_tree_with_the_packages() {
        let args = mmdebstrap_args(Path::new("/cache/tree"));
        assert_eq!(args[0], "--variant=minbase");
        assert!(args.contains(&format!("--include={}", PACKAGES.join(","))));
        assert_eq!(&args[args.len() - 2..], ["bookworm", "/cache/tree"]);
        // No mirror on the line: apt's configured sources are used.
        assert!(!args.iter().any(|a| a.contains("http")));
        let mkfs = mkfs_args(Path::new("/t"), Path::new("/i.img"));
        assert_eq!(&mkfs[mkfs.len() - 4..], ["-d", "/t", "/i.img", "3G"]);
    }

    /// The hook is what mmdebstrap runs through `sh -c`: run it the same way on a scratch
    /// tree and look at the files it leaves.
    #[test]
    fn customize_hook_writes_the_boot_files_into_the_tree() {
        let tree = tempfile::tempdir().unwrap();
        let root = tree.path();
        for dir in ["usr/local/sbin", "etc/systemd/system", "etc/ssh"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("etc/ssh/ssh_host_ed25519_key"), "old").unwrap();
        let args = mmdebstrap_args(Path::new("/unused"));
        let hook = args
            .iter()
            .find_map(|a| a.strip_prefix("--customize-hook="))
            .unwrap();
        let status = Command::new("sh")
            .args(["-c", hook, "exec"])
            .arg(root)
            .status()
            .unwrap();
        assert!(status.success());
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("usr/local/sbin/faultline-boot"), BOOT_SCRIPT);
        assert_eq!(read("etc/systemd/system/faultline-boot.service"), BOOT_UNIT);
        assert_eq!(read("etc/ssh/sshd_config.d/faultline.conf"), SSHD_CONFIG);
        assert!(!root.join("etc/ssh/ssh_host_ed25519_key").exists());
        let link = std::fs::read_link(root.join("etc/systemd/system/systemd-timesyncd.service"));
        assert_eq!(link.unwrap(), Path::new("/dev/null"));
        assert!(root.join("opt/faultline").is_dir());
    }
}
