//! The planted bugs are caught and the correct configuration passes, as `faultline run`
//! runs them (needs root): a seeded 30 s run of each bug must be invalid (lease-unsafe: one of
//! two seeds, see its test), and raft with the correct lease under every fault family at once
//! must be valid. The settings are those of `workloads/campaigns/bugs.toml`, and each seed is
//! one the campaign caught (docs/performance.md, "Planted bugs caught"). Cluster ids 16–18, one per test.

mod common;

use common::{json_file, lease_unsafe_row, node_binary, run_dir};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// Brings the run's cluster down when the test ends, however it ends (the run brings the
/// cluster up itself and down again, unless it dies first).
struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = faultline_control::local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

/// A campaign row: the `faultline run` options and the exit code it must end with.
struct Case<'a> {
    cluster_id: u8,
    seed: u64,
    args: &'a [&'a str],
    /// 0 valid, 1 invalid (DESIGN §3).
    exit_code: i32,
}

/// `bugs.toml`'s stale-read row: followers answer reads locally, one host cut off at a time.
const STALE_READ: &[&str] = &[
    "--db",
    "raft",
    "--bug",
    "stale-read",
    "--nemesis",
    "partition",
    "--partition",
    "one,halves",
    "--nemesis-interval",
    "3",
];

/// `bugs.toml`'s correct lease row under every fault family at once.
const LEASE_ALL_FAULTS: &[&str] = &[
    "--db",
    "raft",
    "--read-mode",
    "lease",
    "--nemesis",
    "partition,clock,kill,pause,packet",
    "--nemesis-overlap",
    "--nemesis-interval",
    "3",
    "--register-values",
    "100",
];

fn run_case(case: &Case) {
    let verdict = run_once(case);
    assert_verdict(case, &verdict);
}

/// Runs `case` once and returns its results.json; asserts the exit code matches the verdict.
fn run_once(case: &Case) -> Value {
    let node = node_binary();
    let _guard = ClusterGuard(case.cluster_id);
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .args(case.args)
        .args(["--workload", "register", "--time-limit", "30"])
        .args(["--seed", &case.seed.to_string(), "--local-nodes", "3"])
        .args(["--local-cluster-id", &case.cluster_id.to_string()])
        .arg("--node-binary")
        .arg(&node)
        .arg("--results-dir")
        .arg(results.path())
        .stdin(Stdio::null())
        .output()
        .expect("running faultline");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = results_json(results.path());
    assert!(
        verdict.get("error").is_none_or(Value::is_null),
        "the run itself failed: {verdict}\n{output}"
    );
    let code_for_verdict = if verdict["valid"] == Value::Bool(true) {
        0
    } else {
        1
    };
    assert_eq!(
        out.status.code(),
        Some(code_for_verdict),
        "seed {}: the exit code must follow results.json {verdict}\n{output}",
        case.seed
    );
    verdict
}

fn assert_verdict(case: &Case, verdict: &Value) {
    let want = case.exit_code == 0;
    assert_eq!(verdict["valid"], Value::Bool(want), "{verdict}");
    if !want {
        // An invalid verdict comes with a counterexample a person can follow.
        let text = verdict.to_string();
        assert!(text.contains("counterexample"), "{verdict}");
    }
}

/// results.json of the one run under `dir`.
fn results_json(dir: &Path) -> Value {
    json_file(&run_dir(dir, "raft-register").join("results.json"))
}

#[test]
fn stale_read_is_caught_under_partitions() {
    run_case(&Case {
        cluster_id: 16,
        seed: 1,
        args: STALE_READ,
        exit_code: 1,
    });
}

/// The campaign catches lease-unsafe in 9 of 10 seeded runs (docs/performance.md, "Planted bugs caught"), so
/// one seeded run alone would fail about one CI run in ten for no fault of the code: a
/// second seed runs only when the first stays valid, and one of the two must be invalid.
/// bugs.toml's timing: faults every 2 s, clients that give up after 300 ms, 15 of them.
#[test]
fn lease_unsafe_is_caught_under_clock_faults_and_partitions() {
    let lease_unsafe = lease_unsafe_row("2", "300", "15");
    let mut valid_seeds = Vec::new();
    for seed in [1, 2] {
        let case = Case {
            cluster_id: 17,
            seed,
            args: &lease_unsafe,
            exit_code: 1,
        };
        let verdict = run_once(&case);
        if verdict["valid"] == Value::Bool(false) {
            assert_verdict(&case, &verdict);
            return;
        }
        valid_seeds.push(seed);
    }
    panic!("lease-unsafe stayed valid in seeds {valid_seeds:?}");
}

#[test]
fn correct_lease_stays_valid_under_every_fault() {
    run_case(&Case {
        cluster_id: 18,
        seed: 1,
        args: LEASE_ALL_FAULTS,
        exit_code: 0,
    });
}
