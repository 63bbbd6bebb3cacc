//! `--db redis` end to end on local clusters 170–179 (needs root; redis-server and
//! redis-sentinel are installed with apt by the run itself where missing): Debian's default
//! `appendonly no` loses acknowledged writes when the server is killed, one server without
//! faults stays valid, and no redis-server or Sentinel outlives a run, a failed run or
//! Ctrl-C.

mod common;

use common::{faultline, json_file, run_dir, text};
use faultline_control::local_cluster::{self, ClusterConfig};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Brings the cluster down however the test ends.
struct Cluster(u8);

impl Cluster {
    fn up(id: u8, nodes: usize) -> Cluster {
        local_cluster::up(&ClusterConfig { id, nodes }).expect("local cluster up");
        Cluster(id)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(err) = local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

/// Redis processes serving cluster `id`'s addresses: Redis puts its bind address in its
/// process title (`redis-server 10.77.170.11:6379`, `redis-sentinel … [sentinel]`), so the
/// other clusters' and anyone else's Redis are told apart without touching them.
fn redis_processes(id: u8) -> Vec<String> {
    let prefix = format!("10.77.{id}.");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if (cmdline.starts_with("redis-server ") || cmdline.starts_with("redis-sentinel "))
            && cmdline.contains(&prefix)
            && !zombie
        {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

fn run_args<'a>(id: &'a str, nodes: &'a str, results: &'a Path, name: &'a str) -> Vec<String> {
    [
        "run",
        "--db",
        "redis",
        "--local-cluster-id",
        id,
        "--local-nodes",
        nodes,
        "--name",
        name,
        "--results-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([results.display().to_string()])
    .collect()
}

fn history_fs(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .expect("history.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a history line is JSON"))
        .collect()
}

#[test]
fn one_server_without_faults_is_valid_and_names_its_version() {
    let cluster = Cluster::up(170, 1);
    let results = tempfile::tempdir().unwrap();
    let mut args = run_args("170", "1", results.path(), "redis-single");
    args.extend(["--workload", "register", "--time-limit", "8", "--seed", "1"].map(str::to_owned));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = faultline(&argv);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = run_dir(results.path(), "redis-single");
    let test = json_file(&dir.join("test.json"));
    assert_eq!(test["db"], "redis");
    assert_eq!(test["appendonly"], "no", "Debian's default");
    assert!(
        test["deployment"]
            .as_str()
            .is_some_and(|d| d.contains("redis single: one server on n1")),
        "{test}"
    );
    let history = history_fs(&dir);
    let deployment = history
        .iter()
        .find(|op| op["f"] == "deployment" && op["type"] == "info")
        .expect("a deployment op");
    assert!(
        deployment["value"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("7.")),
        "{deployment}"
    );
    let reads_ok = history
        .iter()
        .filter(|op| op["f"] == "read" && op["type"] == "ok")
        .count();
    assert!(reads_ok > 100, "only {reads_ok} reads answered");
    assert_eq!(redis_processes(170), Vec::<String>::new());
    drop(cluster);
}

#[test]
fn killed_server_without_aof_loses_acknowledged_writes() {
    let cluster = Cluster::up(171, 1);
    let results = tempfile::tempdir().unwrap();
    let mut args = run_args("171", "1", results.path(), "redis-kill");
    args.extend(
        [
            "--workload",
            "register",
            "--nemesis",
            "kill",
            "--process-targets",
            "primaries",
            "--nemesis-interval",
            "2",
            "--time-limit",
            "15",
            "--seed",
            "3",
        ]
        .map(str::to_owned),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = faultline(&argv);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let dir = run_dir(results.path(), "redis-kill");
    let results_json = json_file(&dir.join("results.json"));
    assert_eq!(results_json["valid"], false);
    let history = history_fs(&dir);
    assert!(
        history
            .iter()
            .any(|op| op["f"] == "restart" && op["process"] == "nemesis"),
        "the server was never restarted"
    );
    // The explanation names ops: a read after the restart that cannot follow an
    // acknowledged write.
    let report = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert!(report.contains("counterexample"), "{report}");
    assert_eq!(redis_processes(171), Vec::<String>::new());
    drop(cluster);
}

#[test]
fn nothing_of_redis_outlives_ctrl_c_or_a_failed_setup() {
    let cluster = Cluster::up(172, 3);
    let results = tempfile::tempdir().unwrap();
    let mut args = run_args("172", "3", results.path(), "redis-interrupted");
    args.extend(
        [
            "--workload",
            "register",
            "--redis-mode",
            "sentinel",
            "--time-limit",
            "60",
        ]
        .map(str::to_owned),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start faultline");
    // Interrupt once the Sentinels and servers all run and the workload has started.
    let started = Instant::now();
    let history = loop {
        let found = common::find_run_dir(results.path(), "redis-interrupted")
            .map(|d| d.join("history.jsonl"))
            .filter(|h| std::fs::read_to_string(h).is_ok_and(|t| t.lines().count() > 50));
        if let Some(history) = found {
            break history;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the run never got going"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(redis_processes(172).len(), 6, "3 servers + 3 Sentinels");
    // Ctrl-C, to the run we started, by its PID.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(3), "an interrupted run is a harness stop");
    assert!(history.exists());
    assert_eq!(redis_processes(172), Vec::<String>::new());

    // A setup that fails on one host (a Sentinel that cannot start because its port is
    // taken) must stop what it started on the others.
    // The blocker is a redis-server of the test's own on the Sentinel's port (the runs
    // above installed it), told apart from the run's by its PID.
    let blocker = Command::new("ip")
        .args(["netns", "exec", &local_cluster::netns_name(172, 3)])
        .args([
            "redis-server",
            "--port",
            "26379",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--bind", &local_cluster::host_address(172, 3)])
        .args(["--dir", &results.path().display().to_string()])
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the port blocker");
    let blocker_pid = blocker.id().to_string();
    let mut blocker = KillOnDrop(blocker);
    std::thread::sleep(Duration::from_millis(500));
    let mut args = run_args("172", "3", results.path(), "redis-failed");
    args.extend(
        [
            "--workload",
            "register",
            "--redis-mode",
            "sentinel",
            "--time-limit",
            "5",
        ]
        .map(str::to_owned),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = faultline(&argv);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("redis-sentinel on n3"),
        "{}",
        text(&out)
    );
    let left: Vec<String> = redis_processes(172)
        .into_iter()
        .filter(|p| !p.starts_with(&format!("{blocker_pid}:")))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    blocker.stop();
    drop(cluster);
}

/// The port blocker, ended by its PID however the test ends.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}
