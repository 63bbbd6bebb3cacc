//! The smoke campaign end to end on a local cluster (summary, JUnit, exit code), and a
//! replayed run that repeats its original's fault schedule. Needs root. Local cluster ids
//! 20 and 21, one per test, since tests in this binary run in parallel.

mod common;

use common::{faultline, node_binary, repo_root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Brings the cluster down when the test ends, also when it fails.
struct Down(&'static str);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = faultline(&["cluster", "down", "--id", self.0]);
    }
}

#[test]
fn smoke_campaign_summarises_every_run_and_exits_zero() {
    let node = node_binary();
    let _down = Down("20");
    let results = tempfile::tempdir().unwrap();
    let junit = results.path().join("junit-copy.xml");
    let campaign = repo_root().join("workloads/campaigns/smoke.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["campaign", campaign.to_str().unwrap(), "--local-nodes", "3"])
        .args(["--local-cluster-id", "20", "--results-dir"])
        .arg(results.path())
        .arg("--junit")
        .arg(&junit)
        .env("FAULTLINE_NODE_BINARY", &node)
        .output()
        .expect("running the campaign");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "campaign failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("5 of 5 runs as expected"), "{stdout}");

    let dirs: Vec<PathBuf> = std::fs::read_dir(results.path().join("campaigns/smoke"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one summary folder: {dirs:?}");
    assert!(
        results
            .path()
            .join("campaigns/smoke/history.html")
            .is_file(),
        "the night-after-night page beside it"
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dirs[0].join("summary.json")).unwrap()).unwrap();
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    for run in runs {
        assert_eq!(run["passed"], true, "{run}");
        let expected = if run["expect"] == "invalid" {
            "invalid"
        } else {
            "valid"
        };
        assert_eq!(run["verdict"], expected, "{run}");
        let report = run["report"].as_str().expect("each run has a report");
        assert!(Path::new(report).is_file(), "{report}");
        assert!(run["ops"].as_u64().unwrap() > 100, "{run}");
    }
    let html = std::fs::read_to_string(dirs[0].join("summary.html")).unwrap();
    assert!(html.contains("5 of 5 runs got the verdict they expected"));
    assert_eq!(html.matches("href=").count(), 5, "a link to every report");

    let xml = std::fs::read_to_string(dirs[0].join("junit.xml")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&junit).unwrap(),
        xml,
        "--junit copy"
    );
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses as XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(suite.attribute("tests"), Some("5"));
    assert_eq!(suite.attribute("failures"), Some("0"));
    assert_eq!(
        suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        5
    );
}

/// Nemesis invokes of a run: (seconds since the workload started, f).
fn nemesis_invokes(run_dir: &Path) -> Vec<(f64, String)> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["process"] == "nemesis" && o["type"] == "invoke")
        .map(|o| {
            (
                o["time"].as_f64().unwrap() / 1e9,
                o["f"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn replay_repeats_the_fault_schedule() {
    let node = node_binary();
    let _down = Down("21");
    let results = tempfile::tempdir().unwrap();
    let dir = results.path().to_str().unwrap();
    let common = [
        "--local-nodes",
        "3",
        "--local-cluster-id",
        "21",
        "--results-dir",
        dir,
    ];
    let first = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--db",
            "raft",
            "--time-limit",
            "12",
            "--nemesis",
            "partition,kill,pause",
        ])
        .args([
            "--nemesis-interval",
            "1.5",
            "--node-binary",
            node.to_str().unwrap(),
        ])
        .args(common)
        .arg("--junit")
        .arg(results.path().join("run.xml"))
        .output()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // `run --junit`: one test case, passed.
    let xml = std::fs::read_to_string(results.path().join("run.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses as XML");
    let cases = doc.descendants().filter(|n| n.has_tag_name("testcase"));
    assert_eq!(cases.count(), 1, "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
    let original = std::fs::canonicalize(results.path().join("raft-register/latest")).unwrap();

    let second = faultline(&[
        "run",
        "--replay",
        original.to_str().unwrap(),
        "--results-dir",
        dir,
    ]);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let replayed = std::fs::canonicalize(results.path().join("raft-register/latest")).unwrap();
    assert_ne!(original, replayed);

    let test: Value =
        serde_json::from_slice(&std::fs::read(replayed.join("test.json")).unwrap()).unwrap();
    let first_test: Value =
        serde_json::from_slice(&std::fs::read(original.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["replay_of"], original.to_str().unwrap());
    assert_eq!(test["seed"], first_test["seed"]);
    assert_eq!(test["nemesis_schedule"], first_test["nemesis_schedule"]);

    let a = nemesis_invokes(&original);
    let b = nemesis_invokes(&replayed);
    assert!(a.len() >= 4, "the original injected faults: {a:?}");
    assert_eq!(
        a.iter().map(|(_, f)| f).collect::<Vec<_>>(),
        b.iter().map(|(_, f)| f).collect::<Vec<_>>(),
        "same faults in the same order"
    );
    for ((ta, f), (tb, _)) in a.iter().zip(&b) {
        // Each fault waits for the previous one to be applied over SSH, so offsets drift
        // by that latency; a second is far below the 0.75–2.25 s spacing of the schedule.
        assert!((ta - tb).abs() < 1.0, "{f} at {ta:.2} s and {tb:.2} s");
    }
}
