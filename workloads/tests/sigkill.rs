//! A controller killed with SIGKILL mid-run (needs root): its history.jsonl must hold only
//! whole, parseable events that `faultline check` accepts, and the local cluster it left
//! behind must still come up and run the next test.

use faultline_checker::history::Op;
use faultline_control::local_cluster;
use faultline_workloads::binary::{env_or_build, NODE_BINARY};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLUSTER_ID: u8 = 5;
/// How long the killed run may take to get going (cluster up, upload, election).
const START_WAIT: Duration = Duration::from_secs(180);
/// Events the history must hold before the controller is killed.
const EVENTS_BEFORE_KILL: usize = 400;

/// Kills the controller if it still runs and brings the cluster down, however the test ends.
struct Guard {
    child: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(err) = local_cluster::down(CLUSTER_ID) {
            eprintln!("local cluster {CLUSTER_ID} down failed: {err:#}");
        }
    }
}

fn faultline_run(faultline: &Path, node: &Path, results: &Path, time_limit: &str) -> Command {
    let mut command = Command::new(faultline);
    command
        .args(["run", "--db", "raft", "--workload", "register"])
        .args([
            "--local-nodes",
            "3",
            "--local-cluster-id",
            &CLUSTER_ID.to_string(),
        ])
        .args(["--time-limit", time_limit, "--rate", "300", "--seed", "7"])
        .arg("--node-binary")
        .arg(node)
        .arg("--results-dir")
        .arg(results)
        .stdin(Stdio::null());
    command
}

/// The newest history.jsonl under `results`, if any.
fn find_history(results: &Path) -> Option<PathBuf> {
    let test_dir = results.join("raft-register");
    std::fs::read_dir(test_dir)
        .ok()?
        .flatten()
        .map(|e| e.path().join("history.jsonl"))
        .find(|p| p.is_file())
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_sigkilled_controller_leaves_a_checkable_history_and_a_usable_cluster() {
    let faultline =
        env_or_build("FAULTLINE_BINARY", "faultline", "faultline").expect("building faultline");
    let node = env_or_build("FAULTLINE_NODE_BINARY", "faultline-node", NODE_BINARY)
        .expect("building the node");
    local_cluster::down(CLUSTER_ID).expect("clearing the cluster");
    let results = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(results.path().join("controller.log")).unwrap();
    let mut guard = Guard { child: None };
    let child = faultline_run(&faultline, &node, results.path(), "120")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting faultline run");
    guard.child = Some(child);

    let start = Instant::now();
    let history = loop {
        if let Some(history) = find_history(results.path()) {
            if lines(&history) >= EVENTS_BEFORE_KILL {
                break history;
            }
        }
        let child = guard.child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(results.path().join("controller.log")).unwrap();
            panic!("faultline run ended early ({status}):\n{log}");
        }
        assert!(start.elapsed() < START_WAIT, "the run never got going");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut child = guard.child.take().unwrap();
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().unwrap();
    let results_json = history.with_file_name("results.json");
    assert!(
        !results_json.exists(),
        "the controller was killed before it could check"
    );

    // Every line is a whole event, numbered in file order.
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(text.ends_with('\n'), "the history ends with a torn line");
    let events: Vec<Op> = text
        .lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {} does not parse ({e}): {line}", n + 1))
        })
        .collect();
    assert!(events.len() >= EVENTS_BEFORE_KILL);
    for (n, op) in events.iter().enumerate() {
        assert_eq!(op.index, n as u64, "line {}", n + 1);
    }

    // `faultline check` accepts it: a healthy raft cluster's history is valid, with the
    // ops in flight at the kill counted as indeterminate.
    let check = Command::new(&faultline)
        .arg("check")
        .arg(&history)
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "faultline check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // The cluster the killed controller left still comes up, and the next run clears the
    // nodes the killed one left running.
    let up = Command::new(&faultline)
        .args([
            "cluster",
            "up",
            "--nodes",
            "3",
            "--id",
            &CLUSTER_ID.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "cluster up after the kill: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let again = faultline_run(&faultline, &node, results.path(), "5")
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "the next run: {}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
}
