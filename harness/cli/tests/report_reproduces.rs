//! `faultline report RUN_DIR` re-analyses a run through the same reader, pairing, statistics
//! and results.json writer as `faultline run`: on a valid, an invalid and an interrupted run
//! it rewrites results.json byte for byte (checker timings aside). And a crash's torn last
//! line does not make `report` or `check` refuse the run. Needs root: local cluster ids 110
//! (valid), 111 (invalid) and 112 (interrupted), one per test since they run in parallel.

mod common;

use common::{faultline, json_file, node_binary, run_dir, text};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long an interrupted run may take to heal, check and exit after SIGINT.
const INTERRUPT_EXIT_S: u64 = 60;

struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = faultline_control::local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

fn run_command(cluster: u8, results: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faultline"));
    cmd.args(["run", "--db", "raft", "--workload", "register"])
        .args([
            "--local-nodes",
            "3",
            "--local-cluster-id",
            &cluster.to_string(),
        ])
        .args(["--seed", "1", "--results-dir"])
        .arg(results)
        .arg("--node-binary")
        .arg(node_binary())
        .args(extra)
        .stdin(Stdio::null());
    cmd
}

/// results.json with the checkers' own timings (`duration_ms`, wall-clock measurements of
/// the search) replaced: everything else must be the same bytes.
fn without_timings(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once("\"duration_ms\": ") {
            Some((head, tail)) => {
                let comma = if tail.ends_with(',') { "," } else { "" };
                format!("{head}\"duration_ms\": T{comma}")
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Re-runs `faultline report` on the run under `results` and checks that results.json is
/// what `faultline run` wrote. Returns the run folder and `report`'s exit code.
fn assert_report_reproduces(results: &Path) -> (std::path::PathBuf, Option<i32>) {
    let dir = run_dir(results, "raft-register");
    let written = std::fs::read_to_string(dir.join("results.json")).unwrap();
    let report = faultline(&["report", dir.to_str().unwrap()]);
    let rewritten = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert_eq!(
        without_timings(&rewritten),
        without_timings(&written),
        "report rewrote results.json differently\n{}",
        text(&report)
    );
    assert!(dir.join("report.html").exists());
    (dir, report.status.code())
}

#[test]
fn report_reproduces_a_valid_run_and_reads_past_a_torn_tail() {
    let _guard = ClusterGuard(110);
    let results = tempfile::tempdir().unwrap();
    let out = run_command(110, results.path(), &["--time-limit", "8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (dir, code) = assert_report_reproduces(results.path());
    assert_eq!(code, Some(0));
    let before = json_file(&dir.join("results.json"));
    assert!(before["stats"]["ops"].as_u64().unwrap() > 10, "{before}");

    // A controller that died mid-write leaves a torn last line.
    let history = dir.join("history.jsonl");
    let lines = std::fs::read_to_string(&history).unwrap().lines().count();
    let mut bytes = std::fs::read(&history).unwrap();
    bytes.extend_from_slice(b"{\"index\":999999,\"time\":1,\"type\":\"in");
    std::fs::write(&history, bytes).unwrap();
    let report = faultline(&["report", dir.to_str().unwrap()]);
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    let stderr = String::from_utf8_lossy(&report.stderr);
    let torn = format!("history.jsonl:{}: the last line is torn", lines + 1);
    assert_eq!(stderr.matches(&torn).count(), 1, "{stderr}");
    let after = json_file(&dir.join("results.json"));
    assert_eq!(after["valid"], before["valid"]);
    assert_eq!(after["stats"], before["stats"]);
    let warnings = after["warnings"].to_string();
    assert!(warnings.contains(&torn), "{after}");
    let check = faultline(&["check", history.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(text(&check).contains(&torn), "{}", text(&check));
}

#[test]
fn report_reproduces_an_invalid_run() {
    let _guard = ClusterGuard(111);
    let results = tempfile::tempdir().unwrap();
    // Every node answers reads from its own state, and one at a time is cut off: its
    // clients read values the majority has long overwritten.
    let out = run_command(
        111,
        results.path(),
        &[
            "--time-limit",
            "15",
            "--bug",
            "stale-read",
            "--nemesis",
            "partition",
            "--partition",
            "one",
            "--nemesis-interval",
            "2",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (dir, code) = assert_report_reproduces(results.path());
    assert_eq!(code, Some(1));
    let results = json_file(&dir.join("results.json"));
    assert_eq!(results["valid"], false);
    assert!(results.to_string().contains("counterexample"), "{results}");
}

#[test]
fn report_reproduces_an_interrupted_run() {
    let _guard = ClusterGuard(112);
    let results = tempfile::tempdir().unwrap();
    let mut child = run_command(112, results.path(), &["--time-limit", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the workload has recorded a few hundred events.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let events = common::find_run_dir(results.path(), "raft-register")
            .and_then(|d| std::fs::read_to_string(d.join("history.jsonl")).ok())
            .map_or(0, |h| h.lines().count());
        if events > 300 {
            break;
        }
        assert!(Instant::now() < deadline, "the workload never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    let sigint = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sigint.success());
    let deadline = Instant::now() + Duration::from_secs(INTERRUPT_EXIT_S);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("faultline run still running {INTERRUPT_EXIT_S} s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(3));
    let (dir, code) = assert_report_reproduces(results.path());
    // The run's own failure is kept: re-checking does not make an interrupted run valid.
    assert_eq!(code, Some(3));
    let results = json_file(&dir.join("results.json"));
    assert!(
        results["error"]
            .as_str()
            .unwrap_or("")
            .contains("interrupted"),
        "{results}"
    );
    assert!(results["stats"]["ops"].as_u64().unwrap() > 0, "{results}");
}
