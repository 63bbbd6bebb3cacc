//! `faultline run --nemesis …` as a user runs it, on a local cluster (needs root): Ctrl-C in
//! the middle of a partition leaves every host clean (no faultline iptables rule, no stopped
//! process, no clock offset), and netem faults are refused on a kernel without `sch_netem`.
//!
//! Cluster ids 12 and 13, one per test (the nemesis crate's tests use 10, 11 and 14).

mod common;

use common::{find_run_dir, node_binary, text};
use faultline_control::heal::{CHAIN_INPUT, CHAIN_OUTPUT, FAKETIME_FILE};
use faultline_control::local_cluster::{self, ClusterConfig, LocalCluster};
use faultline_control::Control;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the test waits for the schedule to reach the state it wants to interrupt.
const FAULTS_WAIT_MAX: Duration = Duration::from_secs(120);
/// How long the controller may take to heal and exit after SIGINT.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(90);

/// Brings the cluster down when the test ends, however it ends.
struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

fn cluster(id: u8, nodes: usize) -> (LocalCluster, ClusterGuard) {
    // A cluster left by an earlier, killed test run goes first.
    local_cluster::down(id).expect("clearing the cluster");
    let guard = ClusterGuard(id);
    let cluster = local_cluster::up(&ClusterConfig { id, nodes }).expect("cluster up");
    (cluster, guard)
}

/// Kills the controller (by its PID) if the test ends before it exited.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The nemesis ops of the history so far, as (type, f) pairs; a half-written last line is
/// skipped (the writer appends while we read).
fn nemesis_ops(history: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(history) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|op| op["process"] == "nemesis")
        .map(|op| {
            (
                op["type"].as_str().unwrap_or_default().to_string(),
                op["f"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Which fault families are in effect after `ops`: a start applied (its `info`) and not
/// stopped since.
fn active_faults(ops: &[(String, String)]) -> BTreeMap<&'static str, bool> {
    let mut active = BTreeMap::new();
    for (kind, f) in ops {
        if kind != "info" {
            continue;
        }
        let (family, on) = match f.as_str() {
            "start-partition" => ("partition", true),
            "stop-partition" => ("partition", false),
            "bump-clock" | "strobe-clock" | "skew-clock" => ("clock", true),
            "reset-clock" => ("clock", false),
            "pause" => ("pause", true),
            "resume" => ("pause", false),
            _ => continue,
        };
        active.insert(family, on);
    }
    active
}

/// What a host shows of faultline's faults: rules in its chains, stopped processes inside
/// its network namespace, and its clock file.
const INSPECT_SCRIPT: &str = r#"for chain in "$1" "$2"; do
  n=$(iptables -w -S "$chain" 2>/dev/null | grep -c '^-A')
  echo "rules $chain ${n:-0}"
done
me=$(readlink /proc/self/ns/net)
for d in /proc/[0-9]*; do
  [ "$(readlink "$d/ns/net" 2>/dev/null)" = "$me" ] || continue
  st=$(sed 's/.*) //' "$d/stat" 2>/dev/null | cut -c1)
  case $st in T|t) echo "stopped ${d#/proc/} $(tr '\0' ' ' < "$d/cmdline")";; esac
done
if [ -e "$3" ]; then echo "clock $(cat "$3")"; else echo "clock absent"; fi
for f in /opt/faultline/run/*.pid; do [ -f "$f" ] && echo "pidfile $f"; done
exit 0"#;

#[test]
fn sigint_during_a_partition_leaves_no_fault_on_any_host() {
    let node = node_binary();
    let (cluster, _guard) = cluster(12, 3);
    let results = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(results.path().join("controller.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--db", "raft", "--workload", "register"])
        .args(["--nemesis", "partition,clock,pause", "--nemesis-overlap"])
        .args(["--nemesis-interval", "1.5", "--time-limit", "300"])
        .args([
            "--seed",
            "11",
            "--local-nodes",
            "3",
            "--local-cluster-id",
            "12",
        ])
        .arg("--node-binary")
        .arg(&node)
        .arg("--results-dir")
        .arg(results.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting faultline run");
    let mut child = ChildGuard(Some(child));
    let pid = child.0.as_ref().unwrap().id();

    // Interrupt when a partition, a clock fault and a pause are all in effect, as the
    // history (written as it happens) shows.
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let controller = child.0.as_mut().unwrap();
        if let Some(status) = controller.try_wait().unwrap() {
            panic!(
                "faultline run exited early with {status}: {}",
                std::fs::read_to_string(results.path().join("controller.log")).unwrap()
            );
        }
        if let Some(dir) = find_run_dir(results.path(), "raft-register") {
            seen = nemesis_ops(&dir.join("history.jsonl"));
            let active = active_faults(&seen);
            if ["partition", "clock", "pause"]
                .iter()
                .all(|f| active.get(f) == Some(&true))
            {
                break;
            }
        }
        assert!(
            started.elapsed() < FAULTS_WAIT_MAX,
            "no moment with partition, clock and pause all in effect: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sigint = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .output()
        .unwrap();
    assert!(sigint.status.success(), "{}", text(&sigint));

    let deadline = Instant::now() + EXIT_WAIT_MAX;
    let status = loop {
        if let Some(status) = child.0.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "faultline run still running {} s after SIGINT",
            EXIT_WAIT_MAX.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(results.path().join("controller.log")).unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "an interrupted run exits 3: {output}"
    );

    // The run folder says it was interrupted, and its history records the heal.
    let dir = find_run_dir(results.path(), "raft-register").expect("run folder");
    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let error = verdict["error"].as_str().unwrap_or_default();
    assert!(error.contains("interrupted"), "results.json: {verdict}");
    let ops = nemesis_ops(&dir.join("history.jsonl"));
    let after = active_faults(&ops);
    assert!(
        after.values().all(|on| !on),
        "the history shows every fault undone: {after:?} in {ops:?}"
    );

    // And the hosts agree.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reports = runtime.block_on(async {
        let control = Control::connect(&cluster.hosts, &cluster.ssh)
            .await
            .expect("connect");
        let mut reports = Vec::new();
        for remote in control.remotes() {
            let out = remote
                .exec(&[
                    "sh",
                    "-c",
                    INSPECT_SCRIPT,
                    "sh",
                    CHAIN_INPUT,
                    CHAIN_OUTPUT,
                    FAKETIME_FILE,
                ])
                .await
                .expect("inspecting the host");
            reports.push((remote.name().to_string(), out.stdout));
        }
        control.close().await;
        reports
    });
    assert_eq!(reports.len(), 3);
    for (host, report) in &reports {
        for chain in [CHAIN_INPUT, CHAIN_OUTPUT] {
            assert!(
                report.contains(&format!("rules {chain} 0\n")),
                "{host}: rules left in {chain}:\n{report}"
            );
        }
        assert!(
            !report.contains("stopped "),
            "{host}: a stopped process:\n{report}"
        );
        assert!(
            report.contains("clock +0\n") || report.contains("clock absent\n"),
            "{host}: clock offset left:\n{report}"
        );
        assert!(
            !report.contains("pidfile "),
            "{host}: the node was not torn down:\n{report}"
        );
    }
}

#[test]
fn netem_faults_are_refused_on_a_kernel_without_sch_netem() {
    let kernel_has_netem = Path::new("/sys/module/sch_netem").exists()
        || Command::new("modprobe")
            .args(["-n", "sch_netem"])
            .status()
            .is_ok_and(|s| s.success());
    let node = node_binary();
    let (_cluster, _guard) = cluster(13, 2);
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--db", "raft", "--workload", "register"])
        .args(["--nemesis", "packet", "--packet", "delay:50"])
        .args(["--nemesis-interval", "1", "--time-limit", "3"])
        .args([
            "--seed",
            "1",
            "--local-nodes",
            "2",
            "--local-cluster-id",
            "13",
        ])
        .arg("--node-binary")
        .arg(&node)
        .arg("--results-dir")
        .arg(results.path())
        .stdin(Stdio::null())
        .output()
        .expect("running faultline");
    let output = text(&out);
    if kernel_has_netem {
        // Here delay is possible: the run goes ahead and the faults are recorded.
        assert_ne!(out.status.code(), Some(3), "{output}");
        return;
    }
    assert_eq!(out.status.code(), Some(3), "{output}");
    assert!(
        output.contains("sch_netem") && output.contains("delay"),
        "the refusal names the missing qdisc and the refused fault: {output}"
    );
    // Refused before any client op: the history holds no client operation.
    if let Some(dir) = find_run_dir(results.path(), "raft-register") {
        let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap_or_default();
        assert!(
            !history.contains("\"invoke\""),
            "no op was invoked: {history}"
        );
    }
}
