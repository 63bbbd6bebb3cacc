//! The VM cluster: Debian VMs under QEMU on this machine, each with its own kernel and
//! clock, reached over real SSH like any host (`faultline cluster up --vm`). Unlike the
//! namespace cluster, system-clock faults and netem packet faults work inside them.
//!
//! Cluster `id` keeps its state under `/var/lib/faultline/vm-{id}/`: `id_ed25519` (the
//! controller's key, kept across `down`), `cluster.json`, `nodes` (the `--nodes-file` of the
//! cluster, marked as VMs) and `hosts/n{i}/` (`overlay.qcow2`, `qemu.pid`, `console.log`;
//! removed by `down`). The image is shared by every cluster (see [`image`]); the network
//! plan is in [`plan`]. QEMU processes are found by PID file and signalled by PID only.

pub mod image;
pub mod kvm;
mod net;
pub mod plan;
pub mod qemu;
pub mod recipe;

use crate::control::SshConfig;
use crate::hosts::HostSpec;
use crate::local_cluster::sshd;
use crate::local_cluster::sys::{self, run, FileLock};
use anyhow::{bail, Context};
use image::Image;
use plan::VmPlan;
use qemu::{Accel, QemuSpec};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// First line of a nodes file whose hosts are VMs; `faultline run` then changes clocks with
/// the system strategy unless told otherwise.
pub const VM_MARKER: &str = "# faultline: hosts are VMs";

/// Where every VM cluster keeps its state (beside the namespace clusters').
pub const STATE_ROOT: &str = "/var/lib/faultline";

/// Most VMs one cluster may have; each takes ~1 GB of host memory and a share of the CPUs.
pub const NODES_MAX: usize = 16;

/// Guest memory, MiB: the node binary and systemd need far less.
pub const MEMORY_MIB: u32 = 768;

/// How long VMs may take to answer SSH: ~26 s for one under software emulation, ~57 s for
/// three at once on 2 cores, more on a busy machine.
const BOOT_WAIT_MAX: Duration = Duration::from_secs(600);
const BOOT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long `down` waits for QEMU to exit after TERM, and again after KILL.
const PROCESS_EXIT_WAIT: Duration = Duration::from_secs(5);

/// Tools the VM cluster runs, the Debian package of each, and whether only building the
/// image needs it.
const REQUIRED_TOOLS: [(&str, &str, bool); 7] = [
    ("qemu-system-x86_64", "qemu-system-x86", false),
    ("qemu-img", "qemu-utils", false),
    ("ip", "iproute2", false),
    ("iptables", "iptables", false),
    ("ssh-keygen", "openssh-client", false),
    ("mmdebstrap", "mmdebstrap", true),
    ("mkfs.ext4", "e2fsprogs", true),
];

/// Which VM cluster to bring up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub id: u8,
    pub nodes: usize,
    /// An image directory of the user's (see [`image`]); default: the recipe's, built once.
    pub image: Option<PathBuf>,
}

/// A running VM cluster: its hosts and how to log in to them.
#[derive(Debug, Clone)]
pub struct VmCluster {
    pub id: u8,
    pub hosts: Vec<HostSpec>,
    pub ssh: SshConfig,
    pub accel: Accel,
    pub image_dir: PathBuf,
    pub state_dir: PathBuf,
    /// The nodes file `faultline run --nodes-file` takes.
    pub nodes_file: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    id: u8,
    nodes: usize,
    image_dir: PathBuf,
    accel: Accel,
}

/// `/var/lib/faultline/vm-{id}`.
pub fn state_dir(id: u8) -> PathBuf {
    Path::new(STATE_ROOT).join(format!("vm-{id}"))
}

fn host_dir(id: u8, name: &str) -> PathBuf {
    state_dir(id).join("hosts").join(name)
}

/// True when the nodes file at `path` was written for VMs (its first line is
/// [`VM_MARKER`]). Unreadable files are not VMs; reading them is the run's job.
pub fn nodes_file_is_vm(path: &Path) -> bool {
    fs::read_to_string(path)
        .map(|text| text.lines().next().map(str::trim) == Some(VM_MARKER))
        .unwrap_or(false)
}

/// The Debian packages whose tools the VM cluster needs and that are missing; `build_image`
/// adds those only building the image needs.
pub fn missing_packages(build_image: bool) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for (tool, package, for_build) in REQUIRED_TOOLS {
        if (build_image || !for_build)
            && sys::find_tool(tool).is_none()
            && !missing.iter().any(|m| m == package)
        {
            missing.push(package.to_string());
        }
    }
    missing
}

fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the VM cluster needs root (bridge, taps, image build); run as root or with sudo");
    }
    Ok(())
}

fn lock() -> anyhow::Result<FileLock> {
    fs::create_dir_all(STATE_ROOT).with_context(|| format!("cannot create {STATE_ROOT}"))?;
    // Its own lock: a VM cluster takes minutes to come up, and namespace clusters must not
    // wait for it.
    FileLock::acquire(&Path::new(STATE_ROOT).join("vm.lock"))
}

fn cluster_value(id: u8, state: &StateFile) -> VmCluster {
    let dir = state_dir(id);
    VmCluster {
        id,
        hosts: plan::plan(id, state.nodes)
            .into_iter()
            .map(|vm| HostSpec {
                name: vm.name,
                address: vm.address,
                port: 22,
            })
            .collect(),
        ssh: SshConfig {
            private_key: Some(dir.join("id_ed25519")),
            ..SshConfig::default()
        },
        accel: state.accel,
        image_dir: state.image_dir.clone(),
        nodes_file: dir.join("nodes"),
        state_dir: dir,
    }
}

/// Brings VM cluster `cfg.id` up with `cfg.nodes` VMs: builds the image when needed, probes
/// KVM, makes the bridge and taps, boots the VMs and waits until each one accepts the
/// controller's key over SSH. A cluster already up with that size and image is returned as
/// is; anything else of that id (another size, a crash's remains) is torn down first.
/// Blocking, minutes under software emulation. `progress` gets one line per step.
pub fn up(cfg: &VmConfig, progress: &dyn Fn(&str)) -> anyhow::Result<VmCluster> {
    require_root()?;
    plan::check_size(cfg.nodes, NODES_MAX)?;
    let build = cfg.image.is_none() && !image::is_cached();
    let missing = missing_packages(build);
    if !missing.is_empty() {
        bail!(
            "the VM cluster needs Debian packages that are missing: {m}; install them with \
             `apt-get install {m}` (if apt refuses because a newer qemu-utils is installed, \
             e.g. from backports, install qemu-system-x86's own version of qemu-utils: \
             `bash harness/scripts/install-vm-deps.sh` in faultline's repository does)",
            m = missing.join(" ")
        );
    }
    let image = match &cfg.image {
        Some(dir) => {
            let image = Image::in_dir(dir);
            image.check()?;
            image
        }
        None => image::ensure_built(progress)?,
    };
    let _lock = lock()?;
    if let Some(running) = healthy(cfg.id) {
        if running.hosts.len() == cfg.nodes && running.image_dir == image.dir {
            return Ok(running);
        }
    }
    teardown(cfg.id)?;
    match create(cfg, &image, progress) {
        Ok(cluster) => Ok(cluster),
        Err(err) => {
            // Never leave half a cluster behind; the consoles stay for a look until `down`.
            if let Err(e) = teardown_keep_logs(cfg.id) {
                tracing::warn!(error = %e, "cleaning up after a failed VM cluster up");
            }
            Err(err.context(format!("cannot bring VM cluster {} up", cfg.id)))
        }
    }
}

fn create(cfg: &VmConfig, image: &Image, progress: &dyn Fn(&str)) -> anyhow::Result<VmCluster> {
    let (id, dir) = (cfg.id, state_dir(cfg.id));
    fs::create_dir_all(&dir)?;
    let key = dir.join("id_ed25519");
    sshd::ensure_key(&key, "faultline-controller")?;
    let key_word = plan::key_word_of_file(&key.with_extension("pub"))?;

    let qemu = sys::tool("qemu-system-x86_64")?;
    let (accel, why) = kvm::decide(&kvm::probe(&qemu, &image.kernel, &dir));
    progress(&format!("accelerator {}: {why}", accel.name()));

    net::create(id, cfg.nodes)?;
    let vms = plan::plan(id, cfg.nodes);
    let base = image.rootfs.to_string_lossy().into_owned();
    for vm in &vms {
        let hdir = host_dir(id, &vm.name);
        fs::create_dir_all(&hdir)?;
        let spec = qemu_spec(id, vm, &vms, image, accel, &key_word);
        let _ = fs::remove_file(&spec.overlay);
        run(
            "qemu-img",
            &qemu::overlay_args(&base, &spec.overlay.to_string_lossy()),
        )?;
        // With -daemonize QEMU returns once the VM runs (or fails to start, e.g. a busy tap).
        run("qemu-system-x86_64", &qemu::qemu_args(&spec))
            .with_context(|| format!("{}: QEMU did not start", vm.name))?;
    }
    progress(&format!(
        "{} VM(s) booting ({}); waiting for SSH",
        vms.len(),
        accel.name()
    ));
    wait_for_ssh(id, &vms)?;
    login_check(id, &vms, &key)?;

    let state = StateFile {
        id,
        nodes: cfg.nodes,
        image_dir: image.dir.clone(),
        accel,
    };
    fs::write(
        dir.join("cluster.json"),
        serde_json::to_string_pretty(&state)?,
    )?;
    fs::write(dir.join("nodes"), plan::nodes_file(id, &vms))?;
    Ok(cluster_value(id, &state))
}

fn qemu_spec(
    id: u8,
    vm: &VmPlan,
    all: &[VmPlan],
    image: &Image,
    accel: Accel,
    key_word: &str,
) -> QemuSpec {
    let hdir = host_dir(id, &vm.name);
    QemuSpec {
        name: format!("faultline-vm{id}-{}", vm.name),
        accel,
        memory_mib: MEMORY_MIB,
        cpus: 1,
        kernel: image.kernel.clone(),
        initrd: image.initrd.clone(),
        append: plan::kernel_cmdline(id, vm, all, key_word),
        overlay: hdir.join("overlay.qcow2"),
        tap: vm.tap.clone(),
        mac: vm.mac.clone(),
        pid_file: hdir.join("qemu.pid"),
        console_log: hdir.join("console.log"),
    }
}

/// The PID in VM `name`'s PID file, if that process is still our QEMU on its overlay.
fn qemu_pid(hdir: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(hdir.join("qemu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmd = sys::cmdline(pid)?;
    let overlay = hdir.join("overlay.qcow2");
    (sys::alive(pid) && cmd.contains("qemu-system") && cmd.contains(&*overlay.to_string_lossy()))
        .then_some(pid)
}

fn console_tail(hdir: &Path) -> String {
    let text = fs::read_to_string(hdir.join("console.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn wait_for_ssh(id: u8, vms: &[VmPlan]) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pending: Vec<&VmPlan> = vms.iter().collect();
    loop {
        for vm in &pending {
            let hdir = host_dir(id, &vm.name);
            if qemu_pid(&hdir).is_none() {
                bail!(
                    "{}: QEMU exited while booting; the end of its console ({}):\n{}",
                    vm.name,
                    hdir.join("console.log").display(),
                    console_tail(&hdir)
                );
            }
        }
        pending.retain(|vm| !sshd::answers(&vm.address));
        if pending.is_empty() {
            return Ok(());
        }
        if started.elapsed() > BOOT_WAIT_MAX {
            let vm = pending[0];
            let hdir = host_dir(id, &vm.name);
            bail!(
                "{} ({}) not answering SSH after {BOOT_WAIT_MAX:?}; the end of its console ({}):\n{}",
                vm.name,
                vm.address,
                hdir.join("console.log").display(),
                console_tail(&hdir)
            );
        }
        std::thread::sleep(BOOT_POLL_INTERVAL);
    }
}

/// Logs in once to every VM with the controller's key: sshd answering does not yet prove the
/// key reached the VM.
fn login_check(id: u8, vms: &[VmPlan], key: &Path) -> anyhow::Result<()> {
    for vm in vms {
        let key = key.to_string_lossy();
        let target = format!("root@{}", vm.address);
        run(
            "ssh",
            &[
                "-i",
                &key,
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=30",
                &target,
                "test",
                "-d",
                "/opt/faultline",
            ],
        )
        .with_context(|| {
            format!(
                "{}: sshd answers but root cannot log in with {key}; console: {}",
                vm.name,
                host_dir(id, &vm.name).join("console.log").display()
            )
        })?;
    }
    Ok(())
}

/// Tears VM cluster `id` down: stops its QEMUs (by PID file), removes taps, bridge, FORWARD
/// rule, overlays and the nodes file. Safe to call when nothing (or only part) of it exists.
pub fn down(id: u8) -> anyhow::Result<()> {
    require_root()?;
    let _lock = lock()?;
    teardown(id)
}

fn teardown(id: u8) -> anyhow::Result<()> {
    teardown_keep_logs(id)?;
    let hosts = state_dir(id).join("hosts");
    if hosts.exists() {
        fs::remove_dir_all(&hosts).with_context(|| format!("cannot remove {}", hosts.display()))?;
    }
    Ok(())
}

/// Like [`teardown`], but keeps the VMs' console logs (overlays go).
fn teardown_keep_logs(id: u8) -> anyhow::Result<()> {
    let dirs = host_dirs(id);
    let hosts = state_dir(id).join("hosts");
    // The PID files' QEMUs, and any other QEMU on this cluster's overlays (a PID file lost
    // to a crash, a second `up` racing the first): `down` returns only once all have exited.
    let mut pids: Vec<i32> = dirs.iter().filter_map(|d| qemu_pid(d)).collect();
    pids.extend(qemus_under(&hosts));
    let mut left = sys::terminate(&pids, PROCESS_EXIT_WAIT);
    let deadline = Instant::now() + PROCESS_EXIT_WAIT;
    loop {
        left.extend(qemus_under(&hosts));
        left.sort_unstable();
        left.dedup();
        left.retain(|&p| sys::alive(p));
        if left.is_empty() || Instant::now() > deadline {
            break;
        }
        left = sys::terminate(&left, PROCESS_EXIT_WAIT);
    }
    if !left.is_empty() {
        bail!("QEMU processes of VM cluster {id} survived SIGKILL: {left:?}");
    }
    net::remove(id);
    for dir in &dirs {
        let _ = fs::remove_file(dir.join("overlay.qcow2"));
        let _ = fs::remove_file(dir.join("qemu.pid"));
    }
    let _ = fs::remove_file(state_dir(id).join("cluster.json"));
    let _ = fs::remove_file(state_dir(id).join("nodes"));
    Ok(())
}

/// Live `qemu-system` processes whose command line names a file under `dir` (this cluster's
/// hosts folder: every QEMU it starts boots an overlay there).
fn qemus_under(dir: &Path) -> Vec<i32> {
    let dir = format!("{}/", dir.display());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            sys::cmdline(pid).is_some_and(|cmd| cmd.contains("qemu-system") && cmd.contains(&dir))
                && sys::alive(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn host_dirs(id: u8) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(state_dir(id).join("hosts"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// The cluster if it is up and every VM's QEMU runs and its sshd answers; `None` otherwise.
pub fn status(id: u8) -> anyhow::Result<Option<VmCluster>> {
    Ok(healthy(id))
}

fn healthy(id: u8) -> Option<VmCluster> {
    let text = fs::read_to_string(state_dir(id).join("cluster.json")).ok()?;
    let state: StateFile = serde_json::from_str(&text).ok()?;
    if state.id != id || plan::check_size(state.nodes, NODES_MAX).is_err() {
        return None;
    }
    if !net::link_exists(&plan::bridge_name(id)) {
        return None;
    }
    let all_up = plan::plan(id, state.nodes)
        .iter()
        .all(|vm| qemu_pid(&host_dir(id, &vm.name)).is_some() && sshd::answers(&vm.address));
    all_up.then(|| cluster_value(id, &state))
}

/// What of VM cluster `id` exists now, for `cluster status --vm` when it is not (fully) up.
pub fn leftovers(id: u8) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for dir in host_dirs(id) {
        if let Some(pid) = qemu_pid(&dir) {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            out.push(format!("QEMU of {name} (PID {pid})"));
        }
    }
    out.extend(
        net::existing_taps(id)
            .into_iter()
            .map(|i| format!("tap {}", plan::tap_name(id, i))),
    );
    if net::link_exists(&plan::bridge_name(id)) {
        out.push(format!("bridge {}", plan::bridge_name(id)));
    }
    if net::forward_rule_present(id) {
        out.push(format!(
            "iptables FORWARD rule for {}",
            plan::bridge_name(id)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QEMU whose PID file is gone is still found by its overlay path, and only one of
    /// this cluster's: a stand-in process named like QEMU, started by this test.
    #[test]
    fn qemus_are_found_by_their_overlays_without_a_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        let overlay = hosts.join("n1/overlay.qcow2");
        let mut child = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec -a 'qemu-system-x86_64 -drive file={}' sleep 30",
                overlay.display()
            ))
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !qemus_under(&hosts).contains(&pid) {
            assert!(
                Instant::now() < deadline,
                "the stand-in QEMU was never found"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(qemus_under(&dir.path().join("other")).is_empty());
        assert!(sys::terminate(&qemus_under(&hosts), Duration::from_secs(2)).is_empty());
        let _ = child.wait();
        assert!(qemus_under(&hosts).is_empty());
    }

    #[test]
    fn nodes_files_are_vms_only_with_the_marker_first() {
        let dir = tempfile::tempdir().unwrap();
        let vm = dir.path().join("vm");
        fs::write(&vm, plan::nodes_file(0, &plan::plan(0, 2))).unwrap();
        assert!(nodes_file_is_vm(&vm));
        let plain = dir.path().join("plain");
        fs::write(&plain, format!("n1 10.0.0.1\n{VM_MARKER}\n")).unwrap();
        assert!(!nodes_file_is_vm(&plain));
        assert!(!nodes_file_is_vm(&dir.path().join("missing")));
    }

    #[test]
    fn build_only_tools_are_asked_for_only_when_building() {
        let without: Vec<String> = missing_packages(false);
        assert!(!without
            .iter()
            .any(|p| p == "mmdebstrap" || p == "e2fsprogs"));
        assert!(missing_packages(true).len() >= without.len());
    }
}
