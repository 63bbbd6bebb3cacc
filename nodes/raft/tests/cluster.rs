//! Loopback tests of whole Raft nodes (core, WAL, peer TCP, HTTP API) in one process:
//! 3- and 5-node clusters, leader crash, restarts catching up from the log and from a
//! snapshot, a minority partition, and one test per planted bug. Partitions use the
//! server's link filter (messages dropped before the socket).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_raft::http::{self, HttpConfig};
use faultline_raft::kv::{Command, KvStore, Request};
use faultline_raft::server::{self, Handle, LeaseMode, LinkFilter, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Clone, Default)]
struct Opts {
    stale_read: bool,
    ack_before_commit: bool,
    txn_early_reads: bool,
    lease: Option<LeaseMode>,
    snapshot_entries: Option<u64>,
}

struct Node {
    id: String,
    peer_addr: String,
    client_addr: String,
    handle: Option<Handle<KvStore>>,
    tasks: Vec<JoinHandle<()>>,
}

struct Cluster {
    nodes: Vec<Node>,
    cut: Arc<Mutex<HashSet<(String, String)>>>,
    dir: tempfile::TempDir,
    opts: Opts,
    http: reqwest::Client,
}

async fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

impl Cluster {
    async fn start(n: usize, opts: Opts) -> Self {
        let mut nodes = Vec::new();
        for i in 1..=n {
            nodes.push(Node {
                id: format!("n{i}"),
                peer_addr: free_addr().await,
                client_addr: free_addr().await,
                handle: None,
                tasks: Vec::new(),
            });
        }
        let mut c = Self {
            nodes,
            cut: Arc::default(),
            dir: tempfile::tempdir().unwrap(),
            opts,
            http: reqwest::Client::new(),
        };
        for i in 0..n {
            c.start_node(i).await;
        }
        c
    }

    async fn start_node(&mut self, i: usize) {
        let peers: Vec<(String, String)> = self
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.peer_addr.clone()))
            .collect();
        let client_peers: HashMap<String, String> = self
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.client_addr.clone()))
            .collect();
        let cut = self.cut.clone();
        let id = self.nodes[i].id.clone();
        let cfg = ServerConfig {
            id: id.clone(),
            peers,
            data_dir: self.dir.path().join(&id),
            tick: Duration::from_millis(20),
            election_ticks: 15,
            heartbeat_ticks: 2,
            lease: self.opts.lease.unwrap_or(LeaseMode::Off),
            snapshot_entries: self.opts.snapshot_entries.unwrap_or(10_000),
            no_fsync: false,
            seed: i as u64,
            link_filter: Some(LinkFilter(Arc::new(move |a: &str, b: &str| {
                !cut.lock()
                    .unwrap()
                    .contains(&(a.to_string(), b.to_string()))
            }))),
        };
        let http_cfg = HttpConfig {
            id: id.clone(),
            client_peers,
            request_timeout: Duration::from_millis(1500),
            stale_read: self.opts.stale_read,
            ack_before_commit: self.opts.ack_before_commit,
            txn_early_reads: self.opts.txn_early_reads,
            read_mode: "readindex".into(),
            bugs: vec![],
        };
        let node = &mut self.nodes[i];
        let peer_l = TcpListener::bind(&node.peer_addr).await.unwrap();
        let client_l = TcpListener::bind(&node.client_addr).await.unwrap();
        let (handle, _thread) =
            server::start(cfg, KvStore::default(), &tokio::runtime::Handle::current()).unwrap();
        let h = handle.clone();
        node.tasks
            .push(tokio::spawn(async move { h.serve_peers(peer_l).await }));
        let app = http::router(handle.clone(), http_cfg);
        node.tasks.push(tokio::spawn(async move {
            axum::serve(client_l, app).await.unwrap();
        }));
        node.handle = Some(handle);
    }

    /// Stops a node (its loop, listeners and connections), keeping its data directory.
    async fn stop_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(h) = node.handle.take() {
            h.shutdown().await;
        }
        for t in node.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }

    fn isolate(&self, i: usize) {
        let id = &self.nodes[i].id;
        let mut cut = self.cut.lock().unwrap();
        for n in &self.nodes {
            cut.insert((id.clone(), n.id.clone()));
            cut.insert((n.id.clone(), id.clone()));
        }
    }

    fn partition(&self, a: &[usize], b: &[usize]) {
        let mut cut = self.cut.lock().unwrap();
        for &x in a {
            for &y in b {
                cut.insert((self.nodes[x].id.clone(), self.nodes[y].id.clone()));
                cut.insert((self.nodes[y].id.clone(), self.nodes[x].id.clone()));
            }
        }
    }

    fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }

    async fn status(&self, i: usize) -> Option<Value> {
        let url = format!("http://{}/status", self.nodes[i].client_addr);
        let r = self
            .http
            .get(url)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Waits for exactly one leader among `among`, agreed on by all of them.
    async fn leader_of(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let mut leaders = HashSet::new();
            let mut agreed = true;
            for &i in among {
                match self.status(i).await {
                    Some(s) if s["leader"].is_string() => {
                        leaders.insert(s["leader"].as_str().unwrap().to_string());
                    }
                    _ => agreed = false,
                }
            }
            if agreed && leaders.len() == 1 {
                let l = leaders.into_iter().next().unwrap();
                if let Some(i) = among.iter().copied().find(|&i| self.nodes[i].id == l) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no agreed leader among {among:?}");
    }

    async fn leader(&self) -> usize {
        let all: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].handle.is_some())
            .collect();
        self.leader_of(&all).await
    }

    async fn post(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        let url = format!("http://{}{}", self.nodes[i].client_addr, path);
        let r = self
            .http
            .post(url)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn write(&self, i: usize, key: &str, value: Value) -> (u16, Value) {
        self.post(
            i,
            "/write",
            json!({"key": key, "value": value, "request_id": format!("w-{key}-{value}")}),
        )
        .await
    }

    async fn read(&self, i: usize, key: &str) -> (u16, Value) {
        self.post(i, "/read", json!({"key": key})).await
    }

    /// Waits until node `i` has applied at least `index`.
    async fn wait_applied(&self, i: usize, index: u64) {
        self.wait_applied_within(i, index, Duration::from_secs(15))
            .await
    }

    async fn wait_applied_within(&self, i: usize, index: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self
                .status(i)
                .await
                .is_some_and(|s| s["applied_index"].as_u64().unwrap_or(0) >= index)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("node {i} did not apply {index}");
    }

    async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_and_five_nodes_elect_replicate_and_forward() {
    for n in [3, 5] {
        let c = Cluster::start(n, Opts::default()).await;
        let l = c.leader().await;
        let follower = (l + 1) % n;
        // A write sent to a follower is forwarded to the leader.
        assert_eq!(c.write(follower, "k", json!(1)).await, (200, json!({})));
        assert_eq!(c.read(l, "k").await, (200, json!({"value": 1})));
        assert_eq!(c.read(follower, "k").await, (200, json!({"value": 1})));
        let cas = json!({"key": "k", "expected": 1, "new": [2], "request_id": "c1"});
        assert_eq!(
            c.post(follower, "/cas", cas.clone()).await,
            (200, json!({"ok": true}))
        );
        // The same request id again: answered with the first outcome, not applied twice.
        assert_eq!(c.post(l, "/cas", cas).await, (200, json!({"ok": true})));
        let cas2 = json!({"key": "k", "expected": 1, "new": 3, "request_id": "c2"});
        assert_eq!(
            c.post(l, "/cas", cas2).await,
            (200, json!({"ok": false, "current": [2]}))
        );
        let commit = c.status(l).await.unwrap()["commit_index"].as_u64().unwrap();
        for i in 0..n {
            c.wait_applied(i, commit).await;
        }
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_re_election_and_restart_catching_up_from_the_log() {
    let mut c = Cluster::start(3, Opts::default()).await;
    let l = c.leader().await;
    assert_eq!(c.write(l, "a", json!("x")).await.0, 200);
    c.stop_node(l).await;
    let rest: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let l2 = c.leader_of(&rest).await;
    assert_ne!(l2, l);
    assert_eq!(c.read(l2, "a").await, (200, json!({"value": "x"})));
    for v in 0..20 {
        assert_eq!(c.write(l2, "b", json!(v)).await.0, 200);
    }
    // The old leader restarts from its WAL and catches up from the new leader's log.
    c.start_node(l).await;
    let commit = c.status(l2).await.unwrap()["commit_index"]
        .as_u64()
        .unwrap();
    c.wait_applied(l, commit).await;
    assert_eq!(
        c.leader().await,
        l2,
        "the restarted node does not disrupt the leader (PreVote)"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_restarts_and_catches_up_from_a_snapshot() {
    let mut c = Cluster::start(
        3,
        Opts {
            snapshot_entries: Some(20),
            ..Opts::default()
        },
    )
    .await;
    let l = c.leader().await;
    let f = (l + 1) % 3;
    c.stop_node(f).await;
    for v in 0..60 {
        assert_eq!(c.write(l, &format!("k{}", v % 7), json!(v)).await.0, 200);
    }
    let snap_file = c.dir.path().join(&c.nodes[l].id).join("snapshot.bin");
    assert!(snap_file.exists(), "the leader compacted its log");
    c.start_node(f).await;
    let commit = c.status(l).await.unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(f, commit).await;
    assert!(
        c.dir
            .path()
            .join(&c.nodes[f].id)
            .join("snapshot.bin")
            .exists(),
        "installed from a snapshot"
    );
    // Read the follower's state directly (stale read of its own state is the point here).
    let h = c.nodes[f].handle.clone().unwrap();
    for k in 0..7 {
        let key = format!("k{k}");
        let v = h.read(true, move |sm| sm.get(&key).cloned()).await.unwrap();
        let want = (0..60).filter(|v| v % 7 == k).max().unwrap();
        assert_eq!(v, Some(want.to_string()));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_partition_cannot_commit_while_the_majority_can() {
    let c = Cluster::start(5, Opts::default()).await;
    let l = c.leader().await;
    let minority = vec![l, (l + 1) % 5];
    let majority: Vec<usize> = (0..5).filter(|i| !minority.contains(i)).collect();
    c.partition(&minority, &majority);
    let (status, body) = c.write(l, "m", json!("lost")).await;
    assert!(
        status == 504 || status == 503,
        "minority write must not succeed: {status} {body}"
    );
    assert_eq!(body["definite"], json!(status == 503), "{body}");
    let l2 = c.leader_of(&majority).await;
    assert_eq!(c.write(l2, "m", json!("kept")).await, (200, json!({})));
    c.heal();
    let l3 = c.leader().await;
    assert_eq!(c.read(l3, "m").await, (200, json!({"value": "kept"})));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_definite_400s_and_do_not_hurt_the_node() {
    let c = Cluster::start(3, Opts::default()).await;
    let l = c.leader().await;
    let url = format!("http://{}/write", c.nodes[l].client_addr);
    let r = c.http.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["definite"], json!(true));
    let long_key = "k".repeat(300);
    assert_eq!(c.write(l, &long_key, json!(1)).await.0, 400);
    assert_eq!(c.write(l, "k", json!("v".repeat(70_000))).await.0, 400);
    assert_eq!(
        c.read(l, "never-written").await,
        (200, json!({"value": null}))
    );
    // Garbage on the peer port is dropped without crashing the node.
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(&c.nodes[l].peer_addr)
        .await
        .unwrap();
    s.write_all(b"FLTNODE1\x10\x00\x00\x00garbage-garbage!")
        .await
        .unwrap();
    drop(s);
    assert_eq!(c.write(l, "k", json!(2)).await, (200, json!({})));
    assert_eq!(c.read(l, "k").await, (200, json!({"value": 2})));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_stale_read_lets_a_cut_off_follower_return_an_old_value() {
    for bug in [false, true] {
        let c = Cluster::start(
            3,
            Opts {
                stale_read: bug,
                ..Opts::default()
            },
        )
        .await;
        let l = c.leader().await;
        assert_eq!(c.write(l, "k", json!("old")).await.0, 200);
        let f = (l + 1) % 3;
        let commit = c.status(l).await.unwrap()["commit_index"].as_u64().unwrap();
        c.wait_applied(f, commit).await;
        c.isolate(f);
        assert_eq!(c.write(l, "k", json!("new")).await.0, 200);
        let (status, body) = c.read(f, "k").await;
        if bug {
            assert_eq!(
                (status, body),
                (200, json!({"value": "old"})),
                "stale-read serves the old value"
            );
        } else {
            // Correct: the follower forwards to the leader over HTTP and reads the new value.
            assert_eq!((status, body), (200, json!({"value": "new"})));
        }
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_ack_before_commit_acknowledges_a_write_that_is_then_lost() {
    for bug in [false, true] {
        let c = Cluster::start(
            3,
            Opts {
                ack_before_commit: bug,
                ..Opts::default()
            },
        )
        .await;
        let l = c.leader().await;
        assert_eq!(c.write(l, "k", json!("committed")).await.0, 200);
        c.isolate(l);
        let (status, _) = c.write(l, "k", json!("acked")).await;
        if bug {
            assert_eq!(status, 200, "the isolated leader acknowledges at once");
        } else {
            assert_eq!(status, 504, "without a majority the write times out");
        }
        let rest: Vec<usize> = (0..3).filter(|&i| i != l).collect();
        let l2 = c.leader_of(&rest).await;
        assert_eq!(c.write(l2, "other", json!(1)).await.0, 200);
        c.heal();
        let l3 = c.leader().await;
        // The acknowledged write is gone: the new leader's log never had it.
        assert_eq!(c.read(l3, "k").await, (200, json!({"value": "committed"})));
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_snapshot_larger_than_a_frame_catches_up() {
    use faultline_nodes_common::transport::FRAME_BYTES_MAX;
    let mut c = Cluster::start(
        3,
        Opts {
            snapshot_entries: Some(20),
            ..Opts::default()
        },
    )
    .await;
    let l = c.leader().await;
    let f = (l + 1) % 3;
    c.stop_node(f).await;
    // 90 keys of 1 MB each (proposed directly: the HTTP API caps values at 64 KB): the
    // state, hence the snapshot, is over the 64 MiB frame limit.
    let keys = 90;
    let big = "x".repeat(1024 * 1024);
    let leader = c.nodes[l].handle.clone().unwrap();
    for k in 0..keys {
        let request = Request {
            request_id: None,
            command: Command::Put {
                key: format!("big{k}"),
                value: serde_json::to_string(&format!("{k}{big}")).unwrap(),
            },
        };
        let data = faultline_nodes_common::codec::encode(&request);
        assert!(
            leader.propose(data, false).await.is_ok(),
            "the leader applies the write"
        );
    }
    let snap_file = c.dir.path().join(&c.nodes[l].id).join("snapshot.bin");
    let snap_bytes = std::fs::metadata(&snap_file).unwrap().len() as usize;
    assert!(
        snap_bytes > FRAME_BYTES_MAX,
        "snapshot of {snap_bytes} bytes"
    );
    c.start_node(f).await;
    let commit = c.status(l).await.unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied_within(f, commit, Duration::from_secs(40))
        .await;
    let h = c.nodes[f].handle.clone().unwrap();
    for k in [0, keys - 1] {
        let key = format!("big{k}");
        let v = h.read(true, move |sm| sm.get(&key).cloned()).await.unwrap();
        let v: String = serde_json::from_str(&v.expect("the key reached the follower")).unwrap();
        assert_eq!(v, format!("{k}{big}"));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_data_dir_was_wiped_is_caught_up_by_the_same_leader() {
    let mut c = Cluster::start(3, Opts::default()).await;
    let l = c.leader().await;
    let f = (l + 1) % 3;
    for v in 0..30 {
        assert_eq!(c.write(l, &format!("k{}", v % 5), json!(v)).await.0, 200);
    }
    let term = c.status(l).await.unwrap()["term"].as_u64().unwrap();
    c.stop_node(f).await;
    std::fs::remove_dir_all(c.dir.path().join(&c.nodes[f].id)).unwrap();
    c.start_node(f).await;
    assert_eq!(c.write(l, "after", json!(1)).await.0, 200);
    let commit = c.status(l).await.unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(f, commit).await;
    let s = c.status(l).await.unwrap();
    assert_eq!(
        s["term"].as_u64(),
        Some(term),
        "the same leader caught it up"
    );
    assert_eq!(s["role"], "leader");
    let h = c.nodes[f].handle.clone().unwrap();
    let v = h.read(true, |sm| sm.get("k4").cloned()).await.unwrap();
    assert_eq!(v.as_deref(), Some("29"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_decode_is_refused_before_anything_is_persisted() {
    use faultline_nodes_common::{codec, transport::Outbox};
    use faultline_raft::message::{Body, Message, Snapshot};
    let mut c = Cluster::start(3, Opts::default()).await;
    let l = c.leader().await;
    assert_eq!(c.write(l, "k", json!(1)).await.0, 200);
    let victim = (l + 1) % 3;
    let liar = (l + 2) % 3;
    let outbox = Outbox::start(
        &tokio::runtime::Handle::current(),
        &[("victim".into(), c.nodes[victim].peer_addr.clone())],
    );
    // Well framed, from a member, in a higher term, but its state does not decode (or is
    // another version's): it must not replace the victim's log.
    for data in [b"not a snapshot".to_vec(), vec![0xff; 64]] {
        let m = Message {
            from: c.nodes[liar].id.clone(),
            to: c.nodes[victim].id.clone(),
            term: 1_000,
            body: Body::Snapshot {
                snapshot: Snapshot {
                    index: 1_000_000,
                    term: 1_000,
                    data,
                },
                read_seq: 0,
            },
        };
        assert!(outbox.send("victim", codec::encode(&m)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let h = c.nodes[victim].handle.clone().unwrap();
    let v = h.read(true, |sm| sm.get("k").cloned()).await;
    assert_eq!(v, Ok(Some("1".to_string())), "the victim's loop still runs");
    let s = c.status(victim).await.unwrap();
    assert!(s["term"].as_u64().unwrap() < 1_000, "{s}");
    // It restarts from its data directory and keeps replicating.
    c.stop_node(victim).await;
    c.start_node(victim).await;
    let l = c.leader().await;
    assert_eq!(c.write(l, "k", json!(2)).await.0, 200);
    let commit = c.status(l).await.unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(victim, commit).await;
    c.shutdown().await;
}

/// Fires `n` concurrent `[r x, append x i]` txns at `node`; answers (read, appended).
async fn concurrent_read_appends(c: &Cluster, node: usize, n: i64) -> Vec<(Vec<i64>, i64)> {
    let url = format!("http://{}/txn", c.nodes[node].client_addr);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, url) = (c.http.clone(), url.clone());
        tasks.spawn(async move {
            let body = json!({"txn": [["r", "x", null], ["append", "x", i]], "request_id": format!("t{i}")});
            let r = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["txn"][1], json!(["append", "x", i]));
            let read: Vec<i64> = match &body["txn"][0][2] {
                Value::Null => vec![],
                v => serde_json::from_value(v.clone()).unwrap(),
            };
            (read, i)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_is_one_atomic_step_and_the_early_reads_bug_breaks_that() {
    for bug in [false, true] {
        let c = Cluster::start(
            3,
            Opts {
                txn_early_reads: bug,
                ..Opts::default()
            },
        )
        .await;
        let l = c.leader().await;
        let follower = (l + 1) % 3;
        // Read-your-writes inside one txn, through a follower (forwarded), and a register.
        let (status, body) = c
            .post(
                follower,
                "/txn",
                json!({"txn": [["append", "y", 1], ["w", "r", "a"], ["r", "y", null], ["r", "r", null]]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"txn": [["append", "y", 1], ["w", "r", "a"], ["r", "y", [1]], ["r", "r", "a"]]})
        );
        // An append to a register aborts the whole txn, definitely.
        let (status, body) = c
            .post(
                l,
                "/txn",
                json!({"txn": [["append", "y", 2], ["append", "r", 3]]}),
            )
            .await;
        assert_eq!(
            (status, body["definite"].clone()),
            (409, json!(true)),
            "{body}"
        );
        assert_eq!(
            c.post(l, "/txn", json!({"txn": [["r", "y", null]]}))
                .await
                .1,
            json!({"txn": [["r", "y", [1]]]})
        );
        let (status, _) = c.post(l, "/txn", json!({"txn": [["cas", "y", 1]]})).await;
        assert_eq!(status, 400);

        let answers = concurrent_read_appends(&c, l, 24).await;
        let (_, last) = c.post(l, "/txn", json!({"txn": [["r", "x", null]]})).await;
        let list: Vec<i64> = serde_json::from_value(last["txn"][0][2].clone()).unwrap();
        let mut lens: Vec<usize> = answers.iter().map(|(r, _)| r.len()).collect();
        lens.sort_unstable();
        lens.dedup();
        if bug {
            // Txns that arrived before the first of them committed read the same list.
            assert!(
                lens.len() < answers.len(),
                "every early read was distinct: {answers:?}"
            );
        } else {
            // Serial: each read is the list right before its own append.
            assert_eq!(lens.len(), answers.len(), "{answers:?}");
            for (read, i) in &answers {
                assert_eq!(&list[..read.len()], &read[..]);
                assert_eq!(list[read.len()], *i, "{answers:?} {list:?}");
            }
        }
        c.shutdown().await;
    }
}
