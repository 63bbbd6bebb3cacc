//! The VM path proven on real VMs (issue 9). Opt-in: every test returns at once with a notice
//! unless `FAULTLINE_VM_TESTS=1`; `harness/scripts/vm-tests.sh` installs the Debian packages
//! and runs this file (needs root, ~1 GB of memory per VM, minutes under software
//! emulation). Tests take one lock, so at most 3 VMs run at a time.
//!
//! - `vm_cluster_*`: `faultline cluster up --vm` (VM cluster 7, subnet 10.78.7.0/24), then
//!   raft under system-clock bumps and netem delay, duplication and reordering (valid), the
//!   `lease-unsafe` bug under system-clock faults (invalid within six runs) and the same
//!   faults on the correct lease (valid), then `down` leaves nothing behind.
//! - `vagrant_*`: a libvirt box built from the same image, `vagrant up` of 3 VMs, and the smoke
//!   campaign against them through `faultline vagrant-nodes`.

mod common;

use common::{faultline, json_file, lease_unsafe_row, node_binary, repo_root, run_dir, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Instant;

const ID: &str = "7";
const STATE: &str = "/var/lib/faultline/vm-7";

/// Held by every test: never more than one set of VMs at a time on a small machine.
static VMS: Mutex<()> = Mutex::new(());

fn enabled(test: &str) -> bool {
    if std::env::var("FAULTLINE_VM_TESTS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "{test}: not run; VM tests are opt-in (FAULTLINE_VM_TESTS=1, or \
         harness/scripts/vm-tests.sh)"
    );
    false
}

/// Takes the VM cluster down however the test ends.
struct VmDown;
impl Drop for VmDown {
    fn drop(&mut self) {
        let out = faultline(&["cluster", "down", "--vm", "--id", ID]);
        if !out.status.success() {
            eprintln!("cluster down --vm failed: {}", text(&out));
        }
    }
}

/// Runs a command on a VM as root with the cluster's key.
fn ssh(address: &str, command: &str) -> Output {
    Command::new("ssh")
        .args(["-i", &format!("{STATE}/id_ed25519")])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"])
        .arg(format!("root@{address}"))
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh")
}

fn seconds_on(address: &str) -> i64 {
    let out = ssh(address, "date +%s");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn host_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One `faultline run` on the VM cluster; returns the exit code and its run folder.
fn run_on_vms(name: &str, seed: u64, args: &[&str], results: &Path) -> (Option<i32>, PathBuf) {
    let started = Instant::now();
    let nodes = format!("{STATE}/nodes");
    let key = format!("{STATE}/id_ed25519");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .args(["--nodes-file", &nodes, "--ssh-private-key", &key])
        .args(["--name", name, "--seed", &seed.to_string()])
        .args(args)
        .arg("--node-binary")
        .arg(node_binary())
        .arg("--results-dir")
        .arg(results)
        .stdin(Stdio::null())
        .output()
        .expect("running faultline");
    let dir = run_dir(results, name);
    let verdict = json_file(&dir.join("results.json"));
    eprintln!(
        "{name} seed {seed}: exit {:?}, valid {}, {:.0} s",
        out.status.code(),
        verdict["valid"],
        started.elapsed().as_secs_f64()
    );
    assert!(
        verdict.get("error").is_none_or(Value::is_null),
        "{name}: the run itself failed: {verdict}\n{}",
        text(&out)
    );
    (out.status.code(), dir)
}

/// History ops of one `f` that completed as `info` (applied faults).
fn applied(dir: &Path, f: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|op| op["f"] == f && op["type"] == "info" && op.get("error").is_none())
        .collect()
}

/// `bugs.toml`'s lease-unsafe row (as in `planted_bugs.rs`) with its timing set for
/// software-emulated VMs, where every SSH command of the nemesis takes seconds (a partition
/// needs 1-7 s to be in place) and the VMs' CPUs are saturated: faults every 3 s on average
/// instead of 2, a client timeout of 1000 ms (300 ms times out 55-90% of writes: caught 0 of
/// 4), and 9 clients instead of 15 (less load, faster faults).
fn lease_unsafe_on_vms() -> Vec<&'static str> {
    let mut args = lease_unsafe_row("3", "1000", "9");
    args.extend(["--workload", "register", "--time-limit", "30"]);
    args
}

/// Seeds tried for lease-unsafe, until one is caught. Timing, not the seed, decides whether
/// a run is caught (the same seed is caught in one run and not in the next): measured here,
/// 2026-11-26, about 3 runs in 5 are (docs/performance.md, "VMs"), so six misses in a row happen
/// about once in 200 suites.
const LEASE_UNSAFE_SEEDS: [u64; 6] = [1, 2, 3, 4, 5, 6];

/// One run of `args` on the VM cluster (up): the lease-unsafe row, or the same without the
/// bug as a control; whether it was found invalid. The run must end with a verdict, its
/// clock faults must have set the VMs' system clocks, and a partition must have been applied.
fn lease_run(results: &Path, name: &str, seed: u64, args: &[&str]) -> bool {
    let (code, dir) = run_on_vms(name, seed, args, results);
    assert!(
        matches!(code, Some(0..=2)),
        "{name}: exit {code:?}, {}",
        dir.display()
    );
    assert_eq!(
        json_file(&dir.join("test.json"))["clock_strategy"],
        "system"
    );
    let clock_faults = applied(&dir, "bump-clock").len();
    assert!(clock_faults > 0, "{name}: no clock fault applied");
    let partitions = applied(&dir, "start-partition").len();
    assert!(partitions > 0, "{name}: no partition applied");
    code == Some(1)
}

#[test]
fn vm_cluster_has_own_clocks_and_netem_and_catches_what_it_should() {
    if !enabled("vm_cluster_has_own_clocks_and_netem_and_catches_what_it_should") {
        return;
    }
    let _vms = VMS.lock().unwrap_or_else(|e| e.into_inner());
    let _down = VmDown;
    let started = Instant::now();
    let up = faultline(&["cluster", "up", "--vm", "--id", ID, "--nodes", "3"]);
    assert!(up.status.success(), "{}", text(&up));
    eprintln!(
        "cluster up --vm: 3 VMs in {:.0} s\n{}",
        started.elapsed().as_secs_f64(),
        text(&up)
    );
    let status = faultline(&["cluster", "status", "--vm", "--id", ID]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    // `up` again on a healthy cluster returns it as is.
    let again = Instant::now();
    let up = faultline(&["cluster", "up", "--vm", "--id", ID, "--nodes", "3"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(again.elapsed().as_secs() < 20, "second up rebooted the VMs");

    // Each VM has its own clock: setting n1's leaves n2's and the controller's alone.
    let (n1, n2) = ("10.78.7.11", "10.78.7.12");
    let out = ssh(n1, "date -s @$(( $(date +%s) + 3600 )) >/dev/null");
    assert!(out.status.success(), "{}", text(&out));
    let (t1, t2, host) = (seconds_on(n1), seconds_on(n2), host_seconds());
    assert!((t1 - host - 3600).abs() < 30, "n1 {t1}, host {host}");
    assert!((t2 - host).abs() < 30, "n2 {t2}, host {host}");
    // `cluster heal --vm` sets it back, as after a controller killed mid-run.
    let heal = faultline(&["cluster", "heal", "--vm", "--id", ID]);
    assert!(heal.status.success(), "{}", text(&heal));
    assert!(
        text(&heal).contains("n1: system clock set to the controller's (it was off by 3"),
        "{}",
        text(&heal)
    );
    let (t1, host) = (seconds_on(n1), host_seconds());
    assert!((t1 - host).abs() < 30, "n1 {t1}, host {host} after heal");
    // Their kernels have netem, which the controller's may lack.
    let out = ssh(
        n2,
        "tc qdisc add dev lo root netem delay 1ms && tc qdisc del dev lo root",
    );
    assert!(out.status.success(), "netem on a VM: {}", text(&out));

    let results = tempfile::tempdir().unwrap();
    // Raft under system-clock bumps and netem delay, reordering and duplication: valid. No
    // --clock-strategy: the nodes file marks the hosts as VMs, so the system clock is
    // changed. Seed 8's schedule starts each of the three packet faults (at 3, 11 and 19 s).
    let (code, dir) = run_on_vms(
        "raft-vm",
        8,
        &[
            "--db",
            "raft",
            "--workload",
            "register",
            "--nemesis",
            "clock,packet",
            "--nemesis-overlap",
            "--clock-faults",
            "bump",
            "--clock-delta-ms-max",
            "5000",
            "--packet",
            "delay:100:20,duplicate:0.05,reorder:0.25:50",
            "--nemesis-interval",
            "4",
            "--time-limit",
            "30",
        ],
        results.path(),
    );
    assert_eq!(
        code,
        Some(0),
        "raft on VMs must be valid: {}",
        dir.display()
    );
    let test = json_file(&dir.join("test.json"));
    assert_eq!(test["clock_strategy"], "system", "{test}");
    let bumps = applied(&dir, "bump-clock");
    assert!(!bumps.is_empty(), "no clock bump was applied");
    let packets = applied(&dir, "start-packet");
    for kind in ["delay", "duplicate", "reorder"] {
        assert!(
            packets
                .iter()
                .any(|op| op["value"]["packet"]["kind"] == kind),
            "no netem {kind} was applied: {packets:?}"
        );
    }

    // lease-unsafe under system-clock faults is found invalid within a few runs.
    let started = Instant::now();
    let lease_unsafe = lease_unsafe_on_vms();
    let caught = LEASE_UNSAFE_SEEDS.iter().position(|&seed| {
        lease_run(
            results.path(),
            &format!("lease-unsafe-{seed}"),
            seed,
            &lease_unsafe,
        )
    });
    eprintln!(
        "lease-unsafe on VMs (system clock): caught in run {} of at most {}, {:.0} s",
        caught.map_or("none".to_string(), |i| (i + 1).to_string()),
        LEASE_UNSAFE_SEEDS.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        caught.is_some(),
        "lease-unsafe was not caught in {} runs on VMs (seeds {LEASE_UNSAFE_SEEDS:?})",
        LEASE_UNSAFE_SEEDS.len()
    );
    // The same faults with the correct (monotonic) lease: valid, so the catch is the bug's.
    let correct: Vec<&str> = lease_unsafe
        .iter()
        .copied()
        .filter(|&a| a != "--bug" && a != "lease-unsafe")
        .collect();
    assert!(
        !lease_run(results.path(), "lease-correct", 1, &correct),
        "the correct lease was found invalid on VMs"
    );

    // A VM that dies (its QEMU killed, as a crash would) makes the cluster not up, and
    // status lists what is left for down to remove.
    let pid: i32 = std::fs::read_to_string(format!("{STATE}/hosts/n3/qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let kill = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(std::time::Duration::from_secs(1));
    let status = faultline(&["cluster", "status", "--vm", "--id", ID]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    let left = text(&status);
    for item in ["QEMU of n1", "tap flvm7t3", "bridge flvm7br"] {
        assert!(left.contains(item), "{item} not listed: {left}");
    }
    assert!(!left.contains("QEMU of n3"), "{left}");
    // up after the crash removes the remains and boots the cluster again.
    let started = Instant::now();
    let up = faultline(&["cluster", "up", "--vm", "--id", ID, "--nodes", "3"]);
    assert!(up.status.success(), "up after a crash: {}", text(&up));
    eprintln!(
        "cluster up --vm after a crash: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(seconds_on("10.78.7.13") > 0);

    // down leaves nothing: no QEMU, tap, bridge or FORWARD rule.
    let down = faultline(&["cluster", "down", "--vm", "--id", ID]);
    assert!(down.status.success(), "{}", text(&down));
    let status = faultline(&["cluster", "status", "--vm", "--id", ID]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(!text(&status).contains("left over"), "{}", text(&status));
    // Idempotent.
    let down = faultline(&["cluster", "down", "--vm", "--id", ID]);
    assert!(down.status.success(), "{}", text(&down));
}

fn libvirt_local(verb: &str) -> Output {
    Command::new(repo_root().join("vagrant/libvirt-local.sh"))
        .arg(verb)
        .stdin(Stdio::null())
        .output()
        .expect("run vagrant/libvirt-local.sh")
}

/// Stops the libvirt daemons the test started and removes their host iptables chains.
struct LibvirtStop;
impl Drop for LibvirtStop {
    fn drop(&mut self) {
        let out = libvirt_local("stop");
        eprintln!("libvirt-local.sh stop: {}", text(&out));
    }
}

/// `vagrant` in the test's copy of the Vagrant folder, with the local box's settings.
fn vagrant(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new("vagrant")
        .args(args)
        .current_dir(dir)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_HOME", home)
        .env("VAGRANT_DEFAULT_PROVIDER", "libvirt")
        .env("FAULTLINE_BOX", "faultline-local")
        .env("FAULTLINE_NODES", "3")
        .env("FAULTLINE_SUBNET", VAGRANT_SUBNET)
        .env("FAULTLINE_MEMORY", "768")
        .stdin(Stdio::null())
        .output()
        .expect("run vagrant (Debian packages vagrant, vagrant-libvirt)")
}

/// The private network of the Vagrant VMs (libvirt's bridge holds `.1`).
const VAGRANT_SUBNET: &str = "10.79.0";

/// Destroys the Vagrant VMs however the test ends.
struct VagrantDestroy<'a>(&'a Path, &'a Path);
impl Drop for VagrantDestroy<'_> {
    fn drop(&mut self) {
        let out = vagrant(self.0, self.1, &["destroy", "-f"]);
        eprintln!("vagrant destroy: {}", text(&out));
    }
}

#[test]
fn vagrant_libvirt_box_from_the_image_passes_the_smoke_campaign() {
    if !enabled("vagrant_libvirt_box_from_the_image_passes_the_smoke_campaign") {
        return;
    }
    let _vms = VMS.lock().unwrap_or_else(|e| e.into_inner());
    let image = faultline_control::vm::image::ensure_built(&|line| eprintln!("{line}"))
        .expect("building the VM image");
    let work = tempfile::tempdir().unwrap();
    let (dir, home) = (
        work.path().join("vagrant"),
        work.path().join("vagrant-home"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["Vagrantfile", "provision.sh"] {
        std::fs::copy(repo_root().join("vagrant").join(file), dir.join(file)).unwrap();
    }

    let started = Instant::now();
    let box_file = work.path().join("faultline-local.box");
    let out = Command::new(repo_root().join("vagrant/make-box.sh"))
        .arg(&image.dir)
        .arg(&box_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "make-box.sh: {}", text(&out));
    eprintln!("box built in {:.0} s", started.elapsed().as_secs_f64());

    let _libvirt = LibvirtStop;
    let out = libvirt_local("start");
    assert!(
        out.status.success(),
        "libvirt-local.sh start: {}",
        text(&out)
    );
    let box_path = box_file.to_string_lossy().into_owned();
    let out = vagrant(
        &dir,
        &home,
        &["box", "add", "--name", "faultline-local", &box_path],
    );
    assert!(out.status.success(), "vagrant box add: {}", text(&out));

    let _destroy = VagrantDestroy(&dir, &home);
    let started = Instant::now();
    let up = vagrant(&dir, &home, &["up", "--provider=libvirt"]);
    assert!(up.status.success(), "vagrant up: {}", text(&up));
    eprintln!(
        "vagrant up: 3 VMs in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let nodes = dir.join("nodes");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["vagrant-nodes", "--subnet", VAGRANT_SUBNET])
        .arg("--dir")
        .arg(&dir)
        .arg("--out")
        .arg(&nodes)
        .env("VAGRANT_HOME", &home)
        .env("FAULTLINE_BOX", "faultline-local")
        .env("FAULTLINE_NODES", "3")
        .env("FAULTLINE_SUBNET", VAGRANT_SUBNET)
        .output()
        .unwrap();
    assert!(out.status.success(), "vagrant-nodes: {}", text(&out));
    let listed = std::fs::read_to_string(&nodes).unwrap();
    assert!(
        listed.contains(&format!("n3 {VAGRANT_SUBNET}.13")),
        "{listed}"
    );
    // Marked as VMs: the campaign's runs change system clocks without --clock-strategy.
    assert!(faultline_control::vm::nodes_file_is_vm(&nodes), "{listed}");

    let results = work.path().join("results");
    let started = Instant::now();
    let campaign = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("campaign")
        .arg(repo_root().join("workloads/campaigns/smoke.toml"))
        .arg("--nodes-file")
        .arg(&nodes)
        .arg("--ssh-private-key")
        .arg(dir.join(".faultline/id_ed25519"))
        .arg("--results-dir")
        .arg(&results)
        .env("FAULTLINE_NODE_BINARY", node_binary())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "smoke campaign on the Vagrant VMs in {:.0} s:\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&campaign.stdout)
    );
    assert_eq!(
        campaign.status.code(),
        Some(0),
        "every run of the smoke campaign must end as expected: {}",
        text(&campaign)
    );
}
