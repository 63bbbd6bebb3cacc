//! The example system end to end, as its user runs it: `faultline-counter run` on local
//! clusters 190 and 191 (3 hosts each). The durable counter stays valid while its server
//! is killed and paused; with `--bug lost-update` the run is invalid, the verdict coming
//! from the example's own model (a checker the workload put in the test).

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn run(
    results: &Path,
    cluster: &str,
    extra: &[&str],
) -> (i32, Value, String, String, std::path::PathBuf) {
    let mut args = vec![
        "run",
        "--db",
        "counter",
        "--workload",
        "counter",
        "--time-limit",
        "12",
        "--local-nodes",
        "3",
        "--local-cluster-id",
        cluster,
        "--seed",
        "7",
        "--name",
        "counter",
        "--results-dir",
    ];
    let dir = results.display().to_string();
    args.push(&dir);
    args.extend(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_faultline-counter"))
        .args(&args)
        .output()
        .expect("run faultline-counter");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = std::fs::read_dir(results.join("counter"))
        .unwrap_or_else(|e| panic!("no results: {e}\n{log}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir() && !p.ends_with("latest"))
        .unwrap_or_else(|| panic!("no run folder\n{log}"));
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("results.json")).expect("results.json"),
    )
    .expect("results.json parses");
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).expect("history.jsonl");
    (
        out.status.code().unwrap_or(-1),
        results,
        log,
        history,
        run_dir,
    )
}

/// The hosts each completed nemesis op of kind `f` hit.
fn faulted(history: &str, f: &str) -> Vec<Value> {
    history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|op| op["process"] == "nemesis" && op["f"] == f && op["type"] == "info")
        .map(|op| op["value"].clone())
        .collect()
}

fn checker_names(results: &Value) -> Vec<String> {
    results["checkers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["model"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_durable_counter_is_valid_while_killed_and_paused() {
    let results = tempfile::tempdir().unwrap();
    let (code, verdict, log, history, _) = run(
        results.path(),
        "190",
        &[
            "--nemesis",
            "kill,pause",
            "--nemesis-interval",
            "2",
            "--process-targets",
            "all",
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert_eq!(verdict["valid"], true, "{log}");
    assert!(
        checker_names(&verdict).contains(&"counter".to_owned()),
        "{verdict}"
    );
    // The server (n1) was really killed and paused, not only the idle hosts.
    for f in ["kill", "pause"] {
        let hits = faulted(&history, f);
        assert!(
            hits.iter().any(|v| v.to_string().contains("\"n1\"")),
            "no {f} hit n1: {hits:?}"
        );
    }
}

#[test]
fn a_lost_update_is_caught_by_the_example_model() {
    let results = tempfile::tempdir().unwrap();
    let (code, verdict, log, _, dir) = run(results.path(), "191", &["--bug", "lost-update"]);
    assert_eq!(code, 1, "{log}");
    assert_eq!(verdict["valid"], false, "{log}");
    assert!(
        checker_names(&verdict).contains(&"counter".to_owned()),
        "{verdict}"
    );
    // Re-checked from the history (Jepsen's analyze), the verdict is the example model's
    // again: `report` takes the workload's checkers from the binary's registry.
    std::fs::remove_file(dir.join("results.json")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline-counter"))
        .arg("report")
        .arg(&dir)
        .output()
        .expect("run faultline-counter report");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(again["valid"], false, "{again}");
    assert!(
        checker_names(&again).contains(&"counter".to_owned()),
        "{again}"
    );
}
