//! Real etcd (Debian's etcd-server 3.4) end to end through `faultline run` on local clusters
//! (needs root; installs etcd-server with apt when it is missing): linearizable reads under
//! partitions, kills and pauses stay valid; serializable reads under partitions are caught
//! stale, and the report names the member that served the stale read; and nothing of etcd
//! is left running or listening after a run, a run that failed, or a Ctrl-C.
//!
//! Each test owns one local cluster id (122–124), brought up by the test (so that it can be
//! inspected after the run) and down again through a Drop guard.

use faultline_control::local_cluster::{self, host_address, netns_name, ClusterConfig};
use faultline_workloads::binary::env_or_build;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOSTS: usize = 3;

/// Brings the cluster down when the test ends, however it ends.
struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

fn cluster(id: u8) -> ClusterGuard {
    local_cluster::down(id).expect("clearing the cluster");
    let guard = ClusterGuard(id);
    local_cluster::up(&ClusterConfig { id, nodes: HOSTS }).expect("bringing the cluster up");
    guard
}

fn faultline(id: u8, results: &Path, time_limit_s: u32, args: &[&str]) -> Command {
    let bin =
        env_or_build("FAULTLINE_BINARY", "faultline", "faultline").expect("building faultline");
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--db", "etcd", "--concurrency", "6"])
        .args(["--time-limit", &time_limit_s.to_string()])
        .args(["--workers-per-key", "3", "--rate", "200"])
        .args(["--local-nodes", &HOSTS.to_string()])
        .args(["--local-cluster-id", &id.to_string()])
        .args(args)
        .arg("--results-dir")
        .arg(results);
    cmd
}

/// The one run folder under `results/<name>/`.
fn run_dir(results: &Path) -> Option<PathBuf> {
    std::fs::read_dir(results)
        .ok()?
        .flatten()
        .filter_map(|test| std::fs::read_dir(test.path()).ok())
        .flat_map(|runs| runs.flatten().map(|e| e.path()))
        .find(|p| p.join("test.json").is_file())
}

fn read_json(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// What of etcd is still there for cluster `id`: processes started for its addresses, and
/// sockets listening on etcd's ports inside its hosts' namespaces.
fn etcd_leftovers(id: u8) -> Vec<String> {
    let mut left = Vec::new();
    let ours = format!("http://10.77.{id}.");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'));
        if !zombie
            && words.first().is_some_and(|w| w.ends_with("/etcd"))
            && words.iter().any(|w| w.starts_with(&ours))
        {
            left.push(format!(
                "process {}: {}",
                entry.file_name().to_string_lossy(),
                words.join(" ")
            ));
        }
    }
    for i in 1..=HOSTS {
        let out = Command::new("ip")
            .args(["netns", "exec", &netns_name(id, i), "ss", "-Hltn"])
            .output()
            .expect("running ss in the host's namespace");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.contains(":2379") || line.contains(":2380") {
                left.push(format!("n{i} listens: {line}"));
            }
        }
    }
    left
}

fn op_count(history: &[faultline_checker::Op], f: &str) -> usize {
    history.iter().filter(|o| o.f == f).count()
}

#[test]
fn linearizable_reads_under_partitions_kills_and_pauses_are_valid_and_nothing_is_left() {
    let id = 122;
    let _guard = cluster(id);
    let results = tempfile::tempdir().unwrap();
    let out = faultline(
        id,
        results.path(),
        12,
        &[
            "--workload",
            "register",
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "2",
            "--seed",
            "7",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir = run_dir(results.path()).unwrap_or_else(|| panic!("no run folder:\n{stderr}"));
    let results_json = read_json(&dir, "results.json");
    assert_eq!(out.status.code(), Some(0), "{results_json}\n{stderr}");
    let test = read_json(&dir, "test.json");
    assert!(
        test["db_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("etcd 3.4")),
        "{test}"
    );
    assert_eq!(test["read_consistency"], "linearizable");
    let history = faultline_checker::read_jsonl(dir.join("history.jsonl")).unwrap();
    let faults: Vec<&str> = history
        .iter()
        .filter(|o| o.process == faultline_checker::Process::Nemesis)
        .map(|o| o.f.as_str())
        .collect();
    assert!(faults.contains(&"start-partition"), "{faults:?}");
    assert!(
        faults.contains(&"kill") || faults.contains(&"pause"),
        "{faults:?}"
    );
    let client_ops: Vec<_> = history
        .iter()
        .filter(|o| matches!(o.process, faultline_checker::Process::Client(_)))
        .collect();
    assert!(op_count(&history, "read") > 50 && op_count(&history, "write") > 50);
    assert!(
        client_ops.iter().all(|o| o.node.is_some()),
        "every op names its member"
    );
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        report.contains("etcd 3.4"),
        "the report names etcd's version"
    );
    assert!(
        dir.join("nodes/n1/etcd.log").is_file(),
        "etcd's log was downloaded"
    );
    assert_eq!(etcd_leftovers(id), Vec::<String>::new());
}

#[test]
fn serializable_reads_under_partitions_are_stale_and_the_report_names_the_member() {
    let id = 123;
    let _guard = cluster(id);
    let results = tempfile::tempdir().unwrap();
    let out = faultline(
        id,
        results.path(),
        20,
        &[
            "--workload",
            "register",
            "--read-consistency",
            "serializable",
            "--nemesis",
            "partition",
            "--partition",
            "one,halves",
            "--nemesis-interval",
            "2",
            "--register-values",
            "100",
            "--seed",
            "3",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir = run_dir(results.path()).unwrap_or_else(|| panic!("no run folder:\n{stderr}"));
    let results_json = read_json(&dir, "results.json");
    assert_eq!(out.status.code(), Some(1), "{results_json}\n{stderr}");
    assert_eq!(results_json["valid"], false);
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        report.contains("was served by n"),
        "the report names the serving member"
    );
    assert!(
        report.contains("serializable read from the member"),
        "and says how it serves"
    );
    assert_eq!(etcd_leftovers(id), Vec::<String>::new());
}

/// Sends SIGINT (as Ctrl-C does) once the workload has started.
fn interrupt_when_running(child: &mut Child, results: &Path) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let started = run_dir(results)
            .and_then(|d| std::fs::metadata(d.join("history.jsonl")).ok())
            .is_some_and(|m| m.len() > 0);
        if started || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id() as i32;
    // SAFETY: signalling the child this test spawned, by its PID.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

#[test]
fn a_failed_run_and_a_ctrl_c_leave_no_etcd_running_or_listening() {
    let id = 124;
    let _guard = cluster(id);
    // A failed run: n1's client port is taken, so its member cannot start and the cluster
    // never becomes ready; the members that did start must still be stopped.
    let squatter = Command::new("ip")
        .args(["netns", "exec", &netns_name(id, 1), "perl", "-MIO::Socket::INET", "-e"])
        .arg(format!(
            "my $s = IO::Socket::INET->new(LocalAddr => '{}:2379', Listen => 1, ReuseAddr => 1) or die $!; sleep 120",
            host_address(id, 1)
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("taking n1's client port");
    struct Reap(Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut squatter = Reap(squatter);
    std::thread::sleep(Duration::from_millis(300));
    let results = tempfile::tempdir().unwrap();
    let out = faultline(id, results.path(), 5, &["--workload", "register"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("etcd had no leader") || stderr.contains("not answer"),
        "{stderr}"
    );
    squatter.0.kill().unwrap();
    squatter.0.wait().unwrap();
    assert_eq!(
        etcd_leftovers(id),
        Vec::<String>::new(),
        "after the failed run"
    );

    // Ctrl-C in the middle of the workload.
    let results = tempfile::tempdir().unwrap();
    let mut child = faultline(
        id,
        results.path(),
        30,
        &[
            "--workload",
            "lock-set",
            "--nemesis",
            "pause",
            "--nemesis-interval",
            "2",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    interrupt_when_running(&mut child, results.path());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(etcd_leftovers(id), Vec::<String>::new(), "after Ctrl-C");
}
