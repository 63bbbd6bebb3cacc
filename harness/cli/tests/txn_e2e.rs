//! Transactions end to end, as `faultline run` runs them (needs root): the Raft store's
//! `POST /txn` under partitions, kills and pauses stays strict-serializable, and the
//! `txn-early-reads` bug is caught, with its anomalies drawn in report.html and printed by
//! `faultline check`. The rows of `workloads/campaigns/txn.toml`, 20 s each; cluster ids
//! 150 and 152, one per test, so the two run at once.

mod common;

use common::{faultline, json_file, node_binary, run_dir, text};
use serde_json::Value;

/// Brings the run's cluster down when the test ends, however it ends.
struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = faultline_control::local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

/// Runs the append workload on raft with `args`; the run folder's results.json and the
/// folder (kept while the returned dir lives). Asserts the exit code follows the verdict.
fn run_append(
    cluster_id: u8,
    seed: u64,
    args: &[&str],
) -> (Value, std::path::PathBuf, tempfile::TempDir) {
    let node = node_binary();
    let _guard = ClusterGuard(cluster_id);
    let results = tempfile::tempdir().unwrap();
    let (id, seed) = (cluster_id.to_string(), seed.to_string());
    let mut all = vec![
        "run",
        "--db",
        "raft",
        "--workload",
        "append",
        "--time-limit",
        "20",
        "--seed",
        &seed,
        "--local-nodes",
        "3",
        "--local-cluster-id",
        &id,
    ];
    all.extend_from_slice(args);
    let (node, dir) = (
        node.display().to_string(),
        results.path().display().to_string(),
    );
    all.extend_from_slice(&["--node-binary", &node, "--results-dir", &dir]);
    let out = faultline(&all);
    let run = run_dir(results.path(), "raft-append");
    let verdict = json_file(&run.join("results.json"));
    assert!(
        verdict.get("error").is_none_or(Value::is_null),
        "the run itself failed: {verdict}\n{}",
        text(&out)
    );
    let want = if verdict["valid"] == Value::Bool(true) {
        0
    } else {
        1
    };
    assert_eq!(out.status.code(), Some(want), "{}", text(&out));
    (verdict, run, results)
}

fn txn_checker(verdict: &Value) -> &Value {
    verdict["checkers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "txn"))
        .unwrap_or_else(|| panic!("no txn checker in {verdict}"))
}

#[test]
fn the_raft_txn_store_stays_strict_serializable_under_partitions_kills_and_pauses() {
    let (verdict, run, _results) = run_append(
        150,
        1,
        &[
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-overlap",
            "--nemesis-interval",
            "3",
        ],
    );
    let txn = txn_checker(&verdict);
    assert_eq!(txn["valid"], Value::Bool(true), "{txn}");
    assert_eq!(txn["consistency_model"], "strict-serializable");
    assert!(txn["ok"].as_u64().unwrap() > 200, "{txn}");
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    for fault in ["\"kill\"", "\"pause\"", "\"start-partition\""] {
        assert!(history.contains(fault), "no {fault} in the run's history");
    }
}

#[test]
fn the_early_reads_bug_is_caught_and_explained() {
    let (verdict, run, _results) = run_append(152, 1, &["--bug", "txn-early-reads"]);
    let txn = txn_checker(&verdict);
    assert_eq!(txn["valid"], Value::Bool(false), "{txn}");
    let types: Vec<&str> = txn["forbidden"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        types
            .iter()
            .any(|t| t.starts_with("G-single") || t.starts_with("G2")),
        "reads from a stale state make read/write cycles: {types:?}"
    );
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        report.contains("<svg class=\"cycle\""),
        "a witness cycle is drawn"
    );
    // `check` says the same offline, edge by edge.
    let history = run.join("history.jsonl").display().to_string();
    let out = faultline(&["check", &history]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains(" -rw-> T"), "{printed}");
}
