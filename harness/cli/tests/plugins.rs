//! Systems as plug-ins, through the `faultline` binary: the systems table, refusals before
//! anything starts (under a second, naming what would work), and an external system (our
//! raft node from examples/external-raft, a Python client) on local cluster 101: valid
//! under partitions and kills, and `--bug stale-read` passed through is caught.

mod common;

use common::{faultline, json_file, node_binary, repo_root, run_dir, text};
use std::time::{Duration, Instant};

const CLUSTER_ID: &str = "101";

#[test]
fn the_systems_table_lists_every_stock_system() {
    let out = faultline(&["systems"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = text(&out);
    for row in [
        ["raft", "register", "stale-read"],
        ["paxos", "register", "skip-prepare"],
        ["zk-lock", "lock", "wall-clock-expiry"],
        ["redis-lock", "lock", "failover"],
    ] {
        let line = table
            .lines()
            .find(|l| l.contains(&format!(" {} ", row[0])))
            .unwrap_or_else(|| panic!("no row for {}:\n{table}", row[0]));
        for cell in &row[1..] {
            assert!(line.contains(cell), "{}: no {cell}: {line}", row[0]);
        }
        assert!(
            line.contains("partition, packet, kill, pause, clock"),
            "{line}"
        );
    }
    // Debian's servers: libfaketime reaches ZooKeeper's JVM, not etcd (Go) or Redis
    // (jemalloc deadlocks), whose clock faults need VMs.
    for (db, workloads, clock) in [
        (
            "etcd",
            "register, lock, lock-set",
            "clock (system strategy: VMs)",
        ),
        ("redis", "register, lock", "clock (system strategy: VMs)"),
        (
            "zookeeper",
            "register, lock",
            "kill, pause, clock, (has primaries)",
        ),
    ] {
        let line = table
            .lines()
            .find(|l| l.contains(&format!(" {db} ")))
            .unwrap_or_else(|| panic!("no row for {db}:\n{table}"));
        assert!(line.contains(workloads) && line.contains(clock), "{line}");
    }
    let help = faultline(&["run", "--db", "help"]);
    assert_eq!(text(&help), table);
}

#[test]
fn unsupported_combinations_fail_at_once_naming_what_works() {
    let dir = tempfile::tempdir().unwrap();
    // An external system whose clock libfaketime cannot reach, as a Go program's.
    let toml = dir.path().join("go.toml");
    std::fs::write(
        &toml,
        r#"name = "go-thing"
workloads = ["register"]
start = ["/opt/go-thing/bin/server"]
[client]
command = ["true"]
[capabilities]
faketime = "Go reads the kernel clock directly"
pause = false
"#,
    )
    .unwrap();
    let db = format!("external:{}", toml.display());
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["--db", &db, "--nemesis", "clock"],
            &[
                "go-thing",
                "clock",
                "Go reads the kernel clock",
                "--clock-strategy system",
            ],
        ),
        (
            &["--db", &db, "--nemesis", "pause"],
            &["go-thing", "pause", "cannot be paused"],
        ),
        (
            &[
                "--db",
                "redis-lock",
                "--workload",
                "lock",
                "--nemesis",
                "failover",
            ],
            &["failover", "--lock-mode replica"],
        ),
        (
            &["--db", "raft", "--workload", "lock"],
            &["zk-lock, redis-lock"],
        ),
        (
            &["--db", "paxos", "--db-opt", "read-mode=lease"],
            &["paxos", "readindex"],
        ),
        (
            &["--db", "etcd9"],
            &["unknown --db", "raft, paxos, zk-lock, redis-lock"],
        ),
    ];
    for (args, wants) in cases {
        let mut argv = vec![
            "run",
            "--local-cluster-id",
            CLUSTER_ID,
            "--local-nodes",
            "3",
        ];
        argv.extend_from_slice(args);
        let started = Instant::now();
        let out = faultline(&argv);
        let took = started.elapsed();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {said}");
        assert!(took < Duration::from_secs(1), "{args:?} took {took:?}");
        for want in wants {
            assert!(said.contains(want), "{args:?}: no {want:?} in {said}");
        }
        assert!(
            !said.contains("bringing local cluster"),
            "{args:?} touched hosts: {said}"
        );
    }
}

fn external_run(results: &std::path::Path, name: &str, extra: &[&str]) -> (Option<i32>, String) {
    let toml = repo_root().join("examples/external-raft/system.toml");
    let db = format!("external:{}", toml.display());
    let results_arg = results.display().to_string();
    let mut argv = vec![
        "run",
        "--db",
        &db,
        "--name",
        name,
        "--results-dir",
        &results_arg,
        "--local-cluster-id",
        CLUSTER_ID,
        "--local-nodes",
        "3",
        "--time-limit",
        "12",
        "--nemesis-interval",
        "3",
        "--seed",
        "1",
    ];
    argv.extend_from_slice(extra);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(&argv)
        .env("FAULTLINE_NODE_BINARY", node_binary())
        .output()
        .expect("run faultline");
    (out.status.code(), text(&out))
}

#[test]
fn an_external_system_is_valid_under_faults_and_its_planted_bug_is_caught() {
    let results = tempfile::tempdir().unwrap();
    let (code, said) = external_run(
        results.path(),
        "ext-valid",
        &["--nemesis", "partition,kill"],
    );
    assert_eq!(code, Some(0), "{said}");
    let dir = run_dir(results.path(), "ext-valid");
    let test = json_file(&dir.join("test.json"));
    assert_eq!(test["db"], "raft-external");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(history.contains("\"f\":\"kill\""), "kills happened");
    assert!(
        history.contains("\"f\":\"start-partition\""),
        "partitions happened"
    );
    assert!(
        dir.join("nodes/n1/raft-external.log").is_file(),
        "logs downloaded"
    );

    let (code, said) = external_run(
        results.path(),
        "ext-stale",
        &[
            "--bug",
            "stale-read",
            "--nemesis",
            "partition",
            "--partition",
            "one,halves",
        ],
    );
    assert_eq!(code, Some(1), "stale reads are caught: {said}");
    let results_json = json_file(&run_dir(results.path(), "ext-stale").join("results.json"));
    assert_eq!(results_json["valid"], false);
}
