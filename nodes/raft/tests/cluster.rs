//! Loopback tests of whole Raft nodes (core, WAL, peer TCP, HTTP API) in one process:
//! 3- and 5-node clusters, leader crash, restarts catching up from the log and from a
//! snapshot, a minority partition, and one test per planted bug. Partitions use the
//! server's link filter (messages dropped before the socket).

use std::time::Duration;

use faultline_nodes_testkit::{Kind, MemberSpec, Tasks};
use faultline_raft::http::{self, HttpConfig};
use faultline_raft::kv::{Command, KvStore, Request};
use faultline_raft::server::{self, Handle, LeaseMode, LinkFilter, ServerConfig};
use serde_json::{json, Value};

/// Raft members with the HTTP key-value API; the fields plant bugs or change settings.
#[derive(Clone, Default)]
struct Raft {
    stale_read: bool,
    ack_before_commit: bool,
    txn_early_reads: bool,
    lease: Option<LeaseMode>,
    snapshot_entries: Option<u64>,
}

struct Member {
    handle: Handle<KvStore>,
    tasks: Tasks,
}

impl Kind for Raft {
    type Member = Member;

    async fn start(&self, spec: MemberSpec) -> anyhow::Result<Member> {
        let cfg = ServerConfig {
            id: spec.id.clone(),
            peers: spec.peers,
            data_dir: spec.data_dir,
            tick: Duration::from_millis(20),
            election_ticks: 15,
            heartbeat_ticks: 2,
            lease: self.lease.unwrap_or(LeaseMode::Off),
            snapshot_entries: self.snapshot_entries.unwrap_or(10_000),
            no_fsync: false,
            seed: spec.index as u64,
            link_filter: Some(LinkFilter(spec.link_filter)),
        };
        let http_cfg = HttpConfig {
            id: spec.id,
            client_peers: spec.client_peers,
            request_timeout: Duration::from_millis(1500),
            stale_read: self.stale_read,
            ack_before_commit: self.ack_before_commit,
            txn_early_reads: self.txn_early_reads,
            read_mode: "readindex".into(),
            bugs: vec![],
        };
        let (handle, _thread) =
            server::start(cfg, KvStore::default(), &tokio::runtime::Handle::current())?;
        let mut tasks = Tasks::default();
        let h = handle.clone();
        let peer_l = spec.peer_listener;
        tasks.spawn(async move { h.serve_peers(peer_l).await });
        tasks.serve_http(spec.client_listener, http::router(handle.clone(), http_cfg));
        Ok(Member { handle, tasks })
    }

    async fn stop(&self, m: Member) -> anyhow::Result<()> {
        m.handle.shutdown().await;
        m.tasks.stop().await;
        Ok(())
    }
}

type Cluster = faultline_nodes_testkit::Cluster<Raft>;

/// How long a member may take to apply up to another's commit index.
const CATCH_UP: Duration = Duration::from_secs(15);

/// The key-value API as these tests use it: a request that gets no JSON answer fails the test.
trait Kv {
    async fn call(&self, i: usize, path: &str, body: Value) -> (u16, Value);
    async fn write(&self, i: usize, key: &str, value: Value) -> (u16, Value);
    async fn read(&self, i: usize, key: &str) -> (u16, Value);
    async fn commit_index(&self, i: usize) -> u64;
    /// Waits until member `i` has applied everything member `leader` has committed.
    async fn catch_up(&self, i: usize, leader: usize, limit: Duration);
    /// Member `i`'s own state for `key`, read on its loop (no ReadIndex: the point is what
    /// this member holds).
    async fn local_get(&self, i: usize, key: &str) -> Option<String>;
}

impl Kv for Cluster {
    async fn call(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        self.post(i, path, &body).await.unwrap()
    }

    async fn write(&self, i: usize, key: &str, value: Value) -> (u16, Value) {
        let id = format!("w-{key}-{value}");
        self.call(
            i,
            "/write",
            json!({"key": key, "value": value, "request_id": id}),
        )
        .await
    }

    async fn read(&self, i: usize, key: &str) -> (u16, Value) {
        self.call(i, "/read", json!({"key": key})).await
    }

    async fn commit_index(&self, i: usize) -> u64 {
        let s = self.status(i).await.expect("the member answers /status");
        s["commit_index"].as_u64().unwrap()
    }

    async fn catch_up(&self, i: usize, leader: usize, limit: Duration) {
        let index = self.commit_index(leader).await;
        let what = format!("{} to apply {index}", self.id(i));
        faultline_nodes_testkit::wait_until(&what, limit, || async {
            let applied = self.status(i).await?["applied_index"].as_u64()?;
            (applied >= index).then_some(())
        })
        .await
    }

    async fn local_get(&self, i: usize, key: &str) -> Option<String> {
        let key = key.to_string();
        let h = &self.member(i).handle;
        h.read(true, move |sm| sm.get(&key).cloned()).await.unwrap()
    }
}

/// A 3-node cluster compacting every 20 entries, its leader, and a follower already stopped.
async fn a_snapshotting_cluster_with_a_follower_down() -> (Cluster, usize, usize) {
    let opts = Raft {
        snapshot_entries: Some(20),
        ..Raft::default()
    };
    let mut c = Cluster::start(3, opts).await;
    let l = c.leader().await;
    let f = (l + 1) % 3;
    c.stop(f).await;
    (c, l, f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_and_five_nodes_elect_replicate_and_forward() {
    for n in [3, 5] {
        let c = Cluster::start(n, Raft::default()).await;
        let l = c.leader().await;
        let follower = (l + 1) % n;
        // A write sent to a follower is forwarded to the leader.
        assert_eq!(c.write(follower, "k", json!(1)).await, (200, json!({})));
        assert_eq!(c.read(l, "k").await, (200, json!({"value": 1})));
        assert_eq!(c.read(follower, "k").await, (200, json!({"value": 1})));
        let cas = json!({"key": "k", "expected": 1, "new": [2], "request_id": "c1"});
        assert_eq!(
            c.call(follower, "/cas", cas.clone()).await,
            (200, json!({"ok": true}))
        );
        // The same request id again: answered with the first outcome, not applied twice.
        assert_eq!(c.call(l, "/cas", cas).await, (200, json!({"ok": true})));
        let cas2 = json!({"key": "k", "expected": 1, "new": 3, "request_id": "c2"});
        assert_eq!(
            c.call(l, "/cas", cas2).await,
            (200, json!({"ok": false, "current": [2]}))
        );
        for i in 0..n {
            c.catch_up(i, l, CATCH_UP).await;
        }
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_re_election_and_restart_catching_up_from_the_log() {
    let mut c = Cluster::start(3, Raft::default()).await;
    let l = c.leader().await;
    assert_eq!(c.write(l, "a", json!("x")).await.0, 200);
    c.stop(l).await;
    let err = c.post(l, "/read", &json!({"key": "a"})).await.unwrap_err();
    assert!(err.is_no_answer(), "a stopped node does not answer: {err}");
    let rest: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let l2 = c.leader_of(&rest).await;
    assert_ne!(l2, l);
    assert_eq!(c.read(l2, "a").await, (200, json!({"value": "x"})));
    for v in 0..20 {
        assert_eq!(c.write(l2, "b", json!(v)).await.0, 200);
    }
    // The old leader restarts from its WAL and catches up from the new leader's log.
    c.restart(l).await;
    c.catch_up(l, l2, CATCH_UP).await;
    assert_eq!(
        c.leader().await,
        l2,
        "the restarted node does not disrupt the leader (PreVote)"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_restarts_and_catches_up_from_a_snapshot() {
    let (mut c, l, f) = a_snapshotting_cluster_with_a_follower_down().await;
    for v in 0..60 {
        assert_eq!(c.write(l, &format!("k{}", v % 7), json!(v)).await.0, 200);
    }
    assert!(
        c.data_dir(l).join("snapshot.bin").exists(),
        "the leader compacted its log"
    );
    c.restart(f).await;
    c.catch_up(f, l, CATCH_UP).await;
    assert!(
        c.data_dir(f).join("snapshot.bin").exists(),
        "installed from a snapshot"
    );
    // Read the follower's state directly (stale read of its own state is the point here).
    for k in 0..7 {
        let want = (0..60).filter(|v| v % 7 == k).max().unwrap();
        assert_eq!(
            c.local_get(f, &format!("k{k}")).await,
            Some(want.to_string())
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_partition_cannot_commit_while_the_majority_can() {
    let c = Cluster::start(5, Raft::default()).await;
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
    c.heal_all();
    let l3 = c.leader().await;
    assert_eq!(c.read(l3, "m").await, (200, json!({"value": "kept"})));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_definite_400s_and_do_not_hurt_the_node() {
    let c = Cluster::start(3, Raft::default()).await;
    let l = c.leader().await;
    let (status, text) = c.post_bytes(l, "/write", "{not json").await.unwrap();
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&text).unwrap();
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
    let mut s = tokio::net::TcpStream::connect(c.peer_addr(l))
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
        let opts = Raft {
            stale_read: bug,
            ..Raft::default()
        };
        let c = Cluster::start(3, opts).await;
        let l = c.leader().await;
        assert_eq!(c.write(l, "k", json!("old")).await.0, 200);
        let f = (l + 1) % 3;
        c.catch_up(f, l, CATCH_UP).await;
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
        let opts = Raft {
            ack_before_commit: bug,
            ..Raft::default()
        };
        let c = Cluster::start(3, opts).await;
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
        c.heal_all();
        let l3 = c.leader().await;
        // The acknowledged write is gone: the new leader's log never had it.
        assert_eq!(c.read(l3, "k").await, (200, json!({"value": "committed"})));
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_snapshot_larger_than_a_frame_catches_up() {
    use faultline_nodes_common::transport::FRAME_BYTES_MAX;
    let (mut c, _, f) = a_snapshotting_cluster_with_a_follower_down().await;
    // 90 keys of 1 MB each (proposed directly: the HTTP API caps values at 64 KB): the
    // state, hence the snapshot, is over the 64 MiB frame limit.
    let keys = 90;
    let big = "x".repeat(1024 * 1024);
    let elections = std::cell::Cell::new(0);
    for k in 0..keys {
        let request = Request {
            request_id: None,
            command: Command::Put {
                key: format!("big{k}"),
                value: serde_json::to_string(&format!("{k}{big}")).unwrap(),
            },
        };
        let data = faultline_nodes_common::codec::encode(&request);
        // The leader writes each snapshot (up to 90 MB) on its loop, sending no heartbeats
        // meanwhile; on a loaded machine the other follower may time out and win an election
        // (seen in one of three runs at load 5: the propose failed). The Put is then proposed to
        // whoever leads now (putting the same value twice is harmless); the follower's
        // catch-up below is what this test checks.
        let what = format!("a leader to apply big{k}");
        faultline_nodes_testkit::wait_until(&what, CATCH_UP, || async {
            let leader = c.leader().await;
            let applied = c.member(leader).handle.propose(data.clone(), false).await;
            elections.set(elections.get() + usize::from(applied.is_err()));
            applied.ok()
        })
        .await;
    }
    if elections.get() > 0 {
        eprintln!(
            "{} proposals failed over a leader change and were proposed again",
            elections.get()
        );
    }
    let l = c.leader().await;
    let snap_file = c.data_dir(l).join("snapshot.bin");
    let snap_bytes = std::fs::metadata(&snap_file).unwrap().len() as usize;
    assert!(
        snap_bytes > FRAME_BYTES_MAX,
        "snapshot of {snap_bytes} bytes"
    );
    c.restart(f).await;
    c.catch_up(f, l, Duration::from_secs(40)).await;
    for k in [0, keys - 1] {
        let v = c.local_get(f, &format!("big{k}")).await;
        let v: String = serde_json::from_str(&v.expect("the key reached the follower")).unwrap();
        assert_eq!(v, format!("{k}{big}"));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_data_dir_was_wiped_is_caught_up_by_the_same_leader() {
    let mut c = Cluster::start(3, Raft::default()).await;
    let l = c.leader().await;
    let f = (l + 1) % 3;
    for v in 0..30 {
        assert_eq!(c.write(l, &format!("k{}", v % 5), json!(v)).await.0, 200);
    }
    let term = c.status(l).await.unwrap()["term"].as_u64().unwrap();
    c.stop(f).await;
    c.wipe(f);
    c.restart(f).await;
    assert_eq!(c.write(l, "after", json!(1)).await.0, 200);
    c.catch_up(f, l, CATCH_UP).await;
    let s = c.status(l).await.unwrap();
    assert_eq!(
        s["term"].as_u64(),
        Some(term),
        "the same leader caught it up"
    );
    assert_eq!(s["role"], "leader");
    assert_eq!(c.local_get(f, "k4").await.as_deref(), Some("29"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_decode_is_refused_before_anything_is_persisted() {
    use faultline_nodes_common::{codec, transport::Outbox};
    use faultline_raft::message::{Body, Message, Snapshot};
    let mut c = Cluster::start(3, Raft::default()).await;
    let l = c.leader().await;
    assert_eq!(c.write(l, "k", json!(1)).await.0, 200);
    let victim = (l + 1) % 3;
    let liar = (l + 2) % 3;
    let outbox = Outbox::start(
        &tokio::runtime::Handle::current(),
        &[("victim".into(), c.peer_addr(victim).to_string())],
    );
    // Well framed, from a member, in a higher term, but its state does not decode (or is
    // another version's): it must not replace the victim's log.
    for data in [b"not a snapshot".to_vec(), vec![0xff; 64]] {
        let m = Message {
            from: c.id(liar).to_string(),
            to: c.id(victim).to_string(),
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
    let h = c.member(victim).handle.clone();
    let v = h.read(true, |sm| sm.get("k").cloned()).await;
    assert_eq!(v, Ok(Some("1".to_string())), "the victim's loop still runs");
    let s = c.status(victim).await.unwrap();
    assert!(s["term"].as_u64().unwrap() < 1_000, "{s}");
    // It restarts from its data directory and keeps replicating.
    c.stop(victim).await;
    c.restart(victim).await;
    let l = c.leader().await;
    assert_eq!(c.write(l, "k", json!(2)).await.0, 200);
    c.catch_up(victim, l, CATCH_UP).await;
    c.shutdown().await;
}

/// Fires `n` concurrent `[r x, append x i]` txns at `node`; answers (read, appended).
async fn concurrent_read_appends(c: &Cluster, node: usize, n: i64) -> Vec<(Vec<i64>, i64)> {
    let addr = c.client_addr(node).to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, addr) = (c.http().clone(), addr.clone());
        tasks.spawn(async move {
            let body = json!({"txn": [["r", "x", null], ["append", "x", i]], "request_id": format!("t{i}")});
            let (status, body) = http.post(&addr, "/txn", &body).await.unwrap();
            assert_eq!(status, 200);
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
        let opts = Raft {
            txn_early_reads: bug,
            ..Raft::default()
        };
        let c = Cluster::start(3, opts).await;
        let l = c.leader().await;
        let follower = (l + 1) % 3;
        // Read-your-writes inside one txn, through a follower (forwarded), and a register.
        let (status, body) = c
            .call(
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
            .call(
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
            c.call(l, "/txn", json!({"txn": [["r", "y", null]]}))
                .await
                .1,
            json!({"txn": [["r", "y", [1]]]})
        );
        let (status, _) = c.call(l, "/txn", json!({"txn": [["cas", "y", 1]]})).await;
        assert_eq!(status, 400);

        let answers = concurrent_read_appends(&c, l, 24).await;
        let (_, last) = c.call(l, "/txn", json!({"txn": [["r", "x", null]]})).await;
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
