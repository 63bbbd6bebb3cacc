//! The quick start as a new user runs it: `bash harness/scripts/quickstart.sh` runs raft
//! under partitions, kills, pauses and clock faults, ends valid, and its summary says where
//! the report is and how to open it; the report, in headless Chromium, shows the verdict and
//! shaded fault periods. Needs root: local cluster id 113.

mod common;

#[path = "../../report/tests/chromium/mod.rs"]
mod chromium;

use common::{json_file, repo_root, run_dir, text};
use std::process::{Command, Stdio};

struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = faultline_control::local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

#[test]
fn the_quick_start_shows_faults_and_a_valid_verdict() {
    let node = common::node_binary();
    let _guard = ClusterGuard(113);
    let results = tempfile::tempdir().unwrap();
    // The script's own faultline, with the node binary the tests use beside it.
    let bin = tempfile::tempdir().unwrap();
    let faultline = bin.path().join("faultline");
    std::fs::copy(env!("CARGO_BIN_EXE_faultline"), &faultline).unwrap();
    std::fs::copy(&node, bin.path().join("faultline-node")).unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("harness/scripts/quickstart.sh"))
        .args(["--local-cluster-id", "113", "--results-dir"])
        .arg(results.path())
        .env("FAULTLINE_BIN", &faultline)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = run_dir(results.path(), "raft-register");
    let report = dir.join("report.html");
    assert!(
        stdout.contains(&format!("quickstart: report: {}", report.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("faultline serve {}", results.path().display())),
        "{stdout}"
    );
    assert!(stdout.contains("verdict: VALID"), "{stdout}");

    // Every fault family of the quick start was played.
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    for f in ["start-partition", "kill", "pause"] {
        assert!(
            history.contains(&format!("\"f\":\"{f}\"")),
            "no {f} in the history"
        );
    }
    assert!(history.contains("clock"), "no clock fault in the history");
    assert_eq!(json_file(&dir.join("results.json"))["valid"], true);

    let trap = chromium::NetworkTrap::start();
    let png = chromium::artifacts_dir().join("quickstart.png");
    let page = chromium::open(&report, &png, &trap);
    assert!(
        page.dom.contains("<header class=\"verdict valid\">"),
        "no valid verdict header"
    );
    assert!(
        page.check["verdict"]
            .as_str()
            .unwrap_or("")
            .starts_with("VALID"),
        "{}",
        page.check
    );
    assert!(page.dom.contains("fault periods (shaded):"));
    assert!(
        page.check["faults"].as_u64().unwrap_or(0) >= 4,
        "{}",
        page.check
    );
    assert!(
        page.check["shadedFaults"].as_u64().unwrap_or(0) >= 1,
        "no fault period is shaded on the throughput chart: {}",
        page.check
    );
    assert!(png.exists());
}
