//! The `faultline-node` binary as the harness runs it: real processes on loopback ports,
//! PID files, log files, SIGKILL of the leader, restart from the data directory, clean
//! SIGTERM shutdown, and startup errors for unknown bugs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_faultline-node");

/// A child process killed by PID when dropped (also when a test fails).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    kind: &'static str,
    dir: tempfile::TempDir,
    ports: Vec<(u16, u16)>,
    procs: Vec<Option<Proc>>,
    http: reqwest::Client,
}

impl Cluster {
    fn new(kind: &'static str) -> Self {
        let ports = (0..3).map(|_| (free_port(), free_port())).collect();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self {
            kind,
            dir: tempfile::tempdir().unwrap(),
            ports,
            procs: vec![None, None, None],
            http,
        }
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{}", i + 1))
    }

    fn command(&self, i: usize, extra: &[&str]) -> Command {
        let list = |f: fn(&(u16, u16)) -> u16| {
            self.ports
                .iter()
                .enumerate()
                .map(|(j, p)| format!("n{}=127.0.0.1:{}", j + 1, f(p)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let d = self.node_dir(i);
        let mut c = Command::new(BIN);
        c.arg(self.kind)
            .args([
                "--id",
                &format!("n{}", i + 1),
                "--peers",
                &list(|p| p.0),
                "--client-peers",
                &list(|p| p.1),
            ])
            .args(["--listen-peer", &format!("127.0.0.1:{}", self.ports[i].0)])
            .args(["--listen-client", &format!("127.0.0.1:{}", self.ports[i].1)])
            .arg("--data-dir")
            .arg(d.join("data"))
            .arg("--pid-file")
            .arg(d.join("node.pid"))
            .arg("--log-file")
            .arg(d.join("node.log"))
            .args(["--tick-ms", "20"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn start(&mut self, i: usize) {
        let child = self.command(i, &[]).spawn().unwrap();
        let pid = child.id();
        self.procs[i] = Some(Proc(child));
        let pid_file = self.node_dir(i).join("node.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while read_pid(&pid_file) != Some(pid) {
            assert!(Instant::now() < deadline, "n{} wrote no PID file", i + 1);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sigkill(&mut self, i: usize) {
        self.procs[i] = None;
    }

    /// SIGTERM by PID; returns the exit code.
    fn sigterm(&mut self, i: usize) -> Option<i32> {
        let mut p = self.procs[i].take().unwrap();
        let pid = p.0.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = p.0.wait().unwrap();
        status.code()
    }

    async fn post(&self, i: usize, path: &str, body: Value) -> Option<(u16, Value)> {
        let url = format!("http://127.0.0.1:{}{}", self.ports[i].1, path);
        let r = self
            .http
            .post(url)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        Some((r.status().as_u16(), r.json().await.ok()?))
    }

    /// Retries a request on `nodes` until one answers 200 (elections take a moment).
    async fn until_ok(&self, nodes: &[usize], path: &str, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for &i in nodes {
                if let Some((200, v)) = self.post(i, path, body.clone()).await {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no node of {nodes:?} answered {path} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = format!("http://127.0.0.1:{}/status", self.ports[0].1);
            if let Ok(r) = self.http.get(url).send().await {
                let s: Value = r.json().await.unwrap();
                if let Some(l) = s["leader"].as_str() {
                    return l[1..].parse::<usize>().unwrap() - 1;
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_processes_survive_sigkill_of_the_leader_and_stop_cleanly_on_sigterm() {
    let mut c = Cluster::new("raft");
    for i in 0..3 {
        c.start(i);
    }
    c.until_ok(
        &[0, 1, 2],
        "/write",
        json!({"key": "k", "value": "before", "request_id": "w1"}),
    )
    .await;
    let l = c.leader().await;
    c.sigkill(l);
    let rest: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let v = c.until_ok(&rest, "/read", json!({"key": "k"})).await;
    assert_eq!(
        v,
        json!({"value": "before"}),
        "acknowledged write survives the leader's SIGKILL"
    );
    c.until_ok(
        &rest,
        "/write",
        json!({"key": "k", "value": "after", "request_id": "w2"}),
    )
    .await;
    c.start(l);
    let v = c.until_ok(&[l], "/read", json!({"key": "k"})).await;
    assert_eq!(v, json!({"value": "after"}));
    let log = std::fs::read_to_string(c.node_dir(l).join("node.log")).unwrap();
    assert!(
        log.contains("recovered from disk"),
        "structured log written under the data dir"
    );
    for i in 0..3 {
        assert_eq!(c.sigterm(i), Some(0), "clean exit on SIGTERM");
        assert!(
            !c.node_dir(i).join("node.pid").exists(),
            "PID file removed on shutdown"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paxos_processes_serve_the_same_api_and_keep_state_across_restarts() {
    let mut c = Cluster::new("paxos");
    for i in 0..3 {
        c.start(i);
    }
    c.until_ok(&[0], "/write", json!({"key": "k", "value": [1]}))
        .await;
    let v = c
        .until_ok(
            &[1],
            "/cas",
            json!({"key": "k", "expected": [1], "new": [2]}),
        )
        .await;
    assert_eq!(v, json!({"ok": true}));
    for i in 0..3 {
        c.sigkill(i);
    }
    for i in 0..3 {
        c.start(i);
    }
    assert_eq!(
        c.until_ok(&[2], "/read", json!({"key": "k"})).await,
        json!({"value": [2]})
    );
    for i in 0..3 {
        assert_eq!(c.sigterm(i), Some(0));
    }
}

#[test]
fn unknown_bugs_and_bad_flags_are_startup_errors() {
    let c = Cluster::new("raft");
    for (kind, extra) in [
        ("raft", vec!["--bug", "skip-prepare"]),
        ("paxos", vec!["--bug", "stale-read"]),
        ("paxos", vec!["--read-mode", "lease"]),
        ("raft", vec!["--read-mode", "sometimes"]),
    ] {
        let mut cmd = c.command(0, &extra);
        // Swap the subcommand in place: the first argument is the system.
        let args: Vec<String> = cmd
            .get_args()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        cmd = Command::new(BIN);
        let out = cmd
            .arg(kind)
            .args(&args)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{kind} {extra:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
        assert!(
            !c.node_dir(0).join("node.pid").exists(),
            "no PID file for a node that did not start"
        );
    }
}
