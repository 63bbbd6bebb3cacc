//! A small campaign run whole and as three shards in separate result folders (as three CI
//! jobs would), merged: the merge has the same runs, verdicts and exit code as the whole
//! run, and a shard of another campaign file is refused. Needs root. Local cluster ids
//! 160 (the whole run) and 161-163 (one per shard), all running at once.

mod common;

use common::{faultline, json_file, node_binary};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// Brings the clusters down when the test ends, also when it fails.
struct Down(Vec<&'static str>);

impl Drop for Down {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = faultline(&["cluster", "down", "--id", id]);
        }
    }
}

/// Three 5 s runs whose verdicts do not hang on timing: the correct Raft and Paxos with no
/// faults (valid), and Paxos with skip-prepare under contention (caught in every trial).
const CAMPAIGN: &str = r#"
name = "shards"
time_limit_s = 5
seeds = [11]
run_args = ["--concurrency", "10", "--rate", "200", "--register-values", "100"]

[[matrix]]
db = ["raft", "paxos"]
workload = ["register"]

[[matrix]]
name = "skip-prepare"
db = ["paxos"]
workload = ["register"]
bug = ["skip-prepare"]
expect = "invalid"
"#;

fn campaign(file: &Path, results: &Path, cluster: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("campaign")
        .arg(file)
        .args(["--local-nodes", "3", "--local-cluster-id", cluster])
        .arg("--results-dir")
        .arg(results)
        .args(extra)
        .env("FAULTLINE_NODE_BINARY", node_binary())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting faultline campaign")
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("waiting for the campaign")
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The one summary folder below `results/campaigns/shards/` whose name ends so.
fn summary_dir(results: &Path, suffix: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(results.join("campaigns/shards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(dirs.len(), 1, "one summary ending {suffix}: {dirs:?}");
    dirs[0].clone()
}

/// What must agree: each run's id, seed and verdict, the rows' counts, the exit code.
fn essence(summary: &Value) -> (Vec<(String, u64, String)>, Vec<Value>, Value) {
    let mut runs: Vec<(String, u64, String)> = summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!("{}#{}", r["name"].as_str().unwrap(), r["rep"]),
                r["seed"].as_u64().unwrap(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    runs.sort();
    let rows = summary["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::json!([
                r["row"],
                r["runs"],
                r["valid"],
                r["invalid"],
                r["unknown"],
                r["crashed"],
                r["rate"]
            ])
        })
        .collect();
    (runs, rows, summary["exit_code"].clone())
}

#[test]
fn three_shards_merge_into_the_unsharded_summary_and_foreign_shards_are_refused() {
    let _down = Down(vec!["160", "161", "162", "163"]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("shards.toml");
    std::fs::write(&file, CAMPAIGN).unwrap();

    let plan = faultline(&[
        "campaign",
        "plan",
        file.to_str().unwrap(),
        "--shards",
        "3",
        "--json",
    ]);
    assert!(plan.status.success(), "{}", show(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["runs"], 3);
    assert_eq!(plan["matrix"]["include"].as_array().unwrap().len(), 3);
    for s in plan["shards"].as_array().unwrap() {
        assert_eq!(s["runs"].as_array().unwrap().len(), 1, "balanced: {s}");
    }

    let whole_dir = tmp.path().join("whole");
    let whole = campaign(&file, &whole_dir, "160", &[]);
    let shards: Vec<(PathBuf, Child)> = (1..=3)
        .map(|i| {
            let dir = tmp.path().join(format!("artifact-{i}"));
            let shard = format!("{i}/3");
            let child = campaign(&file, &dir, &format!("16{i}"), &["--shard", &shard]);
            (dir, child)
        })
        .collect();
    let whole = finish(whole);
    assert_eq!(whole.status.code(), Some(0), "{}", show(&whole));
    let mut artifacts = Vec::new();
    for (dir, child) in shards {
        let out = finish(child);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        artifacts.push(dir);
    }

    let merged_root = tmp.path().join("merged");
    let junit = tmp.path().join("junit.xml");
    let mut merge = Command::new(env!("CARGO_BIN_EXE_faultline"));
    merge
        .args(["campaign", "merge"])
        .args(&artifacts)
        .arg("--results-dir")
        .arg(&merged_root)
        .arg("--junit")
        .arg(&junit);
    let out = merge.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 shards merged"),
        "{}",
        show(&out)
    );

    let whole_summary = json_file(&summary_dir(&whole_dir, "Z").join("summary.json"));
    let merged_dir = summary_dir(&merged_root, "-merged");
    let merged_summary = json_file(&merged_dir.join("summary.json"));
    let (runs, rows, code) = essence(&merged_summary);
    assert_eq!((runs.clone(), rows, code), essence(&whole_summary));
    assert_eq!(
        runs.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
        ["valid", "valid", "invalid"],
        "{runs:?}"
    );
    assert_eq!(merged_summary["merged_shards"], 3);
    // Runs back in plan order, each linking to its report in the unpacked artifact.
    let html = std::fs::read_to_string(merged_dir.join("summary.html")).unwrap();
    assert_eq!(html.matches(">report</a>").count(), 3, "{html}");
    assert!(
        html.contains("artifact-1/shards-"),
        "links into the artifacts"
    );
    let doc = std::fs::read_to_string(&junit).unwrap();
    let parsed = roxmltree::Document::parse(&doc).unwrap();
    assert_eq!(
        parsed
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        3
    );
    assert!(merged_root.join("campaigns/shards/history.html").is_file());

    // A shard of another version of the file (another seed): shard 4 of 4 of three runs
    // is empty, so it is quick, but it is still not of this campaign.
    let other = tmp.path().join("other.toml");
    std::fs::write(&other, CAMPAIGN.replace("seeds = [11]", "seeds = [12]")).unwrap();
    let foreign_dir = tmp.path().join("foreign");
    let foreign = finish(campaign(&other, &foreign_dir, "163", &["--shard", "4/4"]));
    assert_eq!(foreign.status.code(), Some(0), "{}", show(&foreign));
    let refused = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["campaign", "merge"])
        .args(&artifacts[..2])
        .arg(&foreign_dir)
        .arg("--results-dir")
        .arg(tmp.path().join("refused"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{}", show(&refused));
    assert!(
        err.contains("refusing to merge") && err.contains("campaign files"),
        "{err}"
    );
    assert!(!tmp.path().join("refused/campaigns").exists());
}
