//! The client pause end to end through `faultline run --workload lock-set` on local clusters
//! (needs root; run under `flock /tmp/faultline-e2e.lock`): a Redlock client paused past
//! its lock's validity must lose an acknowledged add (invalid), and zk-lock under the same
//! pause with `--fencing` must keep every one (valid). Clusters 202 and 203, brought down
//! through a Drop guard.

use faultline_control::local_cluster;
use faultline_workloads::binary::{env_or_build, NODE_BINARY};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

struct Finished {
    code: i32,
    test: Value,
    results: Value,
    history: Vec<faultline_checker::Op>,
    _dir: tempfile::TempDir,
}

fn run_dir(results: &Path) -> Option<PathBuf> {
    std::fs::read_dir(results)
        .ok()?
        .flatten()
        .filter_map(|test| std::fs::read_dir(test.path()).ok())
        .flat_map(|runs| runs.flatten().map(|e| e.path()))
        .find(|p| p.join("test.json").is_file())
}

/// A 12 s lock-set run on 5 hosts of local cluster `id`; every add has a 0.3 chance of a
/// 1500 ms pause between its last validity check and its write.
fn run_paused(id: u8, args: &[&str]) -> Finished {
    let faultline =
        env_or_build("FAULTLINE_BINARY", "faultline", "faultline").expect("building faultline");
    let node = env_or_build("FAULTLINE_NODE_BINARY", "faultline-node", NODE_BINARY)
        .expect("building faultline-node");
    local_cluster::down(id).expect("clearing the cluster");
    let _guard = ClusterGuard(id);
    let results = tempfile::tempdir().unwrap();
    let output = Command::new(&faultline)
        .args(["run", "--workload", "lock-set", "--time-limit", "12"])
        .args(["--local-nodes", "5", "--local-cluster-id", &id.to_string()])
        .args([
            "--concurrency",
            "6",
            "--workers-per-key",
            "3",
            "--rate",
            "30",
        ])
        .args([
            "--client-pause-ms",
            "1500",
            "--client-pause-probability",
            "0.3",
        ])
        .args(["--seed", "7"])
        .args(args)
        .arg("--node-binary")
        .arg(&node)
        .arg("--results-dir")
        .arg(results.path())
        .output()
        .expect("running faultline");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let dir = run_dir(results.path()).unwrap_or_else(|| panic!("no run folder; stderr:\n{stderr}"));
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; stderr:\n{stderr}"));
        serde_json::from_str(&text).unwrap()
    };
    Finished {
        code: output.status.code().unwrap_or(-1),
        test: read("test.json"),
        results: read("results.json"),
        history: faultline_checker::read_jsonl(dir.join("history.jsonl")).unwrap(),
        _dir: results,
    }
}

fn set_result(f: &Finished) -> Value {
    let checkers = f.results["checkers"].as_array().expect("checkers");
    let set = checkers
        .iter()
        .find(|c| c["name"] == "set")
        .unwrap_or_else(|| panic!("no set checker in {}", f.results));
    assert_eq!(set["valid"], f.results["valid"], "{}", f.results);
    set.clone()
}

/// The pauses the history records (start ops of the nemesis process).
fn pauses(f: &Finished) -> usize {
    f.history
        .iter()
        .filter(|o| {
            o.f == "client-pause"
                && o.kind == faultline_checker::OpType::Info
                && matches!(o.process, faultline_checker::Process::Nemesis)
        })
        .count()
}

#[test]
fn a_paused_redlock_client_loses_an_add_and_a_fenced_zk_lock_client_does_not() {
    let redlock = run_paused(202, &["--db", "redis-lock", "--lock-mode", "redlock"]);
    let set = set_result(&redlock);
    assert_eq!(redlock.results["valid"], false, "{}", redlock.results);
    assert_ne!(redlock.code, 0);
    assert!(
        pauses(&redlock) >= 2,
        "too few pauses: {}",
        pauses(&redlock)
    );
    assert_eq!(redlock.test["client_pause_ms"], 1500);
    let lost: usize = set["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["lost"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(lost > 0, "{set}");
    let why = set["explanation"].as_str().unwrap_or_default();
    assert!(
        why.contains("was paused 1500 ms") && why.contains("was lost"),
        "{why}"
    );

    // The control: a fencing token the store checks, under the same pause (past zk-lock's
    // 1000 ms session timeout).
    let zk = run_paused(
        203,
        &["--db", "zk-lock", "--fencing", "--lock-ttl-ms", "1000"],
    );
    set_result(&zk);
    assert_eq!(zk.results["valid"], true, "{}", zk.results);
    assert_eq!(zk.code, 0);
    assert!(pauses(&zk) >= 2, "too few pauses: {}", pauses(&zk));
    // Some paused write was refused by the fence: the pause really outlived the session.
    let refused = zk
        .history
        .iter()
        .filter(|o| o.f == "add" && o.kind == faultline_checker::OpType::Fail)
        .filter(|o| o.error.as_deref().is_some_and(|e| e.contains("fenced")))
        .count();
    assert!(refused > 0, "no fenced write was refused");
}
