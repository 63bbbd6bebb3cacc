//! A three-node zk-lock cluster in one process, driven over its real HTTP API.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_nodes_testkit::{wait_until, Kind, MemberSpec};
use faultline_raft::server::{LeaseMode, LinkFilter, ServerConfig};
use faultline_zk_lock::client::{ZkError, ZkLockClient};
use faultline_zk_lock::http::HttpConfig;
use faultline_zk_lock::service::{self, NodeConfig, Running};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const TICK_MS: u64 = 20;

/// zk-lock members with planted bugs.
struct ZkLock {
    bugs: Vec<String>,
    /// Each member's simulated wall-clock offset (read only under `wall-clock-expiry`); kept
    /// across restarts.
    skews: Vec<Arc<AtomicI64>>,
}

impl Kind for ZkLock {
    type Member = Running;

    async fn start(&self, spec: MemberSpec) -> anyhow::Result<Running> {
        let cfg = NodeConfig {
            server: ServerConfig {
                id: spec.id.clone(),
                peers: spec.peers,
                data_dir: spec.data_dir,
                tick: Duration::from_millis(TICK_MS),
                // 400-800 ms: long enough that a loaded test machine does not see spurious elections.
                election_ticks: 20,
                heartbeat_ticks: 2,
                lease: LeaseMode::Off,
                // Small, so the tests also cross log compaction and snapshot restore.
                snapshot_entries: 8,
                no_fsync: false,
                link_filter: Some(LinkFilter(spec.link_filter)),
                seed: 1000 + spec.index as u64,
            },
            http: HttpConfig {
                id: spec.id,
                client_peers: spec.client_peers,
                request_timeout: Duration::from_millis(2000),
                bugs: self.bugs.clone(),
            },
            expiry_check: Duration::from_millis(TICK_MS),
            wall_skew_ms: Arc::clone(&self.skews[spec.index]),
        };
        service::start(cfg, spec.peer_listener, spec.client_listener).await
    }

    async fn stop(&self, member: Running) -> anyhow::Result<()> {
        member.stop().await
    }

    /// Lock acquires wait up to 10 s on the server.
    fn http_timeout(&self) -> Duration {
        Duration::from_secs(15)
    }
}

type Cluster = faultline_nodes_testkit::Cluster<ZkLock>;

async fn start(n: usize) -> Cluster {
    start_with_bugs(n, &[]).await
}

async fn start_with_bugs(n: usize, bugs: &[&str]) -> Cluster {
    let kind = ZkLock {
        bugs: bugs.iter().map(|b| b.to_string()).collect(),
        skews: (0..n).map(|_| Arc::new(AtomicI64::new(0))).collect(),
    };
    Cluster::start(n, kind).await
}

/// The lock API as these tests use it: a request that gets no JSON answer fails the test.
trait Locks {
    async fn call(&self, node: usize, path: &str, body: Value) -> (u16, Value);
    async fn open(&self, node: usize, timeout_ms: u64) -> u64;
    async fn acquire(&self, node: usize, session: u64, lock: &str, timeout_ms: u64)
        -> (u16, Value);
}

impl Locks for Cluster {
    async fn call(&self, node: usize, path: &str, body: Value) -> (u16, Value) {
        self.post(node, path, &body).await.unwrap()
    }

    async fn open(&self, node: usize, timeout_ms: u64) -> u64 {
        let (code, body) = self
            .call(node, "/session/open", json!({ "timeout_ms": timeout_ms }))
            .await;
        assert_eq!(code, 200, "{body}");
        body["session"].as_u64().unwrap()
    }

    async fn acquire(
        &self,
        node: usize,
        session: u64,
        lock: &str,
        timeout_ms: u64,
    ) -> (u16, Value) {
        self.call(
            node,
            "/lock/acquire",
            json!({ "session": session, "lock": lock, "timeout_ms": timeout_ms }),
        )
        .await
    }
}

fn token(body: &Value) -> u64 {
    body["token"]
        .as_u64()
        .unwrap_or_else(|| panic!("no token in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_queue_grants_in_order_and_a_timed_out_wait_leaves_it() {
    let c = start(3).await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    let a = c.open(leader, 10_000).await;
    let b = c.open(follower, 10_000).await;
    let (code, got) = c.acquire(follower, a, "l", 1_000).await;
    assert_eq!(code, 200, "{got}");
    let ta = token(&got);
    // A retried acquire by the holder answers the same grant.
    assert_eq!(token(&c.acquire(leader, a, "l", 1_000).await.1), ta);
    // B waits, gives up, and its node is gone from the queue.
    let (code, body) = c.acquire(leader, b, "l", 200).await;
    assert_eq!(
        (code, body["definite"].as_bool()),
        (408, Some(true)),
        "{body}"
    );
    let (code, body) = c
        .call(
            leader,
            "/lock/release",
            json!({ "session": b, "lock": "l" }),
        )
        .await;
    assert_eq!(code, 412, "{body}");
    // B waits again; A's release passes the lock to B with a larger token.
    let waiter = {
        let (addr, http) = (c.client_addr(follower).to_string(), c.http().clone());
        tokio::spawn(async move {
            let body = json!({ "session": b, "lock": "l", "timeout_ms": 5_000 });
            http.post(&addr, "/lock/acquire", &body).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, body) = c
        .call(
            follower,
            "/lock/release",
            json!({ "session": a, "lock": "l" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, got) = waiter.await.unwrap();
    assert_eq!(code, 200, "{got}");
    assert!(token(&got) > ta);
    let (code, body) = c
        .call(leader, "/session/close", json!({ "session": b }))
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = c
        .call(leader, "/session/keepalive", json!({ "session": b }))
        .await;
    assert_eq!(
        (code, body["definite"].as_bool()),
        (409, Some(true)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_releases_the_lock() {
    let c = start(3).await;
    let leader = c.leader().await;
    let a = c.open(leader, 300).await;
    let ta = token(&c.acquire(leader, a, "l", 1_000).await.1);
    // B blocks on the lock; A falls silent (no keepalives) and its session must expire.
    let b = c.open(leader, 10_000).await;
    let started = Instant::now();
    let (code, got) = c.acquire((leader + 2) % 3, b, "l", 10_000).await;
    assert_eq!(code, 200, "{got}");
    let tb = token(&got);
    assert!(tb > ta, "tokens increase: {ta} then {tb}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "granted only after A's timeout"
    );
    let (code, _) = c
        .call(leader, "/session/keepalive", json!({ "session": a }))
        .await;
    assert_eq!(code, 409, "the expired session is gone");
    let (code, _) = c
        .call(
            leader,
            "/lock/release",
            json!({ "session": a, "lock": "l" }),
        )
        .await;
    assert_eq!(code, 409, "an expired session cannot release B's lock");
    let status = c.status(leader).await.unwrap();
    assert_eq!(status["sessions"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_keeps_its_lock_across_a_leader_change_and_tokens_keep_increasing() {
    let mut c = start(3).await;
    let old = c.leader().await;
    let a = c.open(old, 1_000).await;
    let ta = token(&c.acquire(old, a, "l", 1_000).await.1);

    // A's client library keeps its session alive, moving to another node when one dies.
    let client = ZkLockClient::new(c.client_addrs(), Duration::from_millis(300));
    let keeper = client.keep_alive(a, 1_000);
    c.stop(old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    // Several session timeouts pass under the new leader.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let b = c.open(new, 10_000).await;
    let (code, body) = c.acquire(new, b, "l", 300).await;
    assert_eq!(
        code, 408,
        "A still holds the lock after the leader change: {body}"
    );
    assert!(keeper.is_alive());
    drop(keeper);

    let (code, body) = c
        .call(new, "/lock/release", json!({ "session": a, "lock": "l" }))
        .await;
    assert_eq!(code, 200, "A's session survived: {body}");
    let (code, got) = c.acquire(new, b, "l", 1_000).await;
    assert_eq!(code, 200, "{got}");
    let tb = token(&got);
    assert!(
        tb > ta,
        "fencing tokens increase across the leader change: {ta} then {tb}"
    );
    let term_now = c.status(new).await.unwrap()["term"].as_u64().unwrap();
    assert!(term_now >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_classifies_errors_and_tracks_its_session() {
    let c = start(3).await;
    c.leader().await;
    let client = ZkLockClient::new(c.client_addrs(), Duration::from_millis(1_000));
    let a = client.open_session(500).await.unwrap();
    let b = client.open_session(5_000).await.unwrap();
    let keeper = client.keep_alive(a, 500);
    let ta = client.acquire(a, "l", 1_000).await.unwrap();
    let err = client.acquire(b, "l", 100).await.unwrap_err();
    assert_eq!(
        (err.is_definite(), err.status()),
        (true, Some(408)),
        "{err}"
    );
    let err = client.acquire(12345, "l", 100).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    let err = client.release(b, "l").await.unwrap_err();
    assert_eq!(err.status(), Some(412), "{err}");
    assert!(keeper.is_alive());
    client.close_session(a).await.unwrap();
    let tb = client.acquire(b, "l", 1_000).await.unwrap();
    assert!(tb > ta);
    // The keeper learns that its session is gone.
    wait_until(
        "the keeper to learn its session is closed",
        Duration::from_secs(2),
        || async { (!keeper.is_alive()).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_crash_a_node() {
    use rand::{Rng, SeedableRng};
    let c = start(1).await;
    c.leader().await;
    let paths = [
        "/session/open",
        "/session/keepalive",
        "/session/close",
        "/lock/acquire",
        "/lock/release",
    ];
    let table: Vec<(&str, Vec<u8>)> = vec![
        ("/session/open", b"{".to_vec()),
        ("/session/open", br#"{"timeout_ms": -1}"#.to_vec()),
        ("/session/open", br#"{"timeout_ms": 1}"#.to_vec()),
        (
            "/session/open",
            br#"{"timeout_ms": 18446744073709551615}"#.to_vec(),
        ),
        (
            "/session/open",
            br#"{"timeout_ms": 1000, "extra": 1}"#.to_vec(),
        ),
        ("/lock/acquire", br#"{"session": 1, "lock": ""}"#.to_vec()),
        (
            "/lock/acquire",
            format!(r#"{{"session": 1, "lock": "{}"}}"#, "x".repeat(300)).into_bytes(),
        ),
        (
            "/lock/acquire",
            br#"{"session": 1, "lock": "l", "timeout_ms": 99999999}"#.to_vec(),
        ),
        (
            "/lock/acquire",
            br#"{"session": "one", "lock": "l"}"#.to_vec(),
        ),
        ("/lock/release", b"null".to_vec()),
        ("/session/keepalive", vec![b'['; 100_000]),
        ("/nowhere", b"{}".to_vec()),
    ];
    for (path, body) in &table {
        let (code, _) = c.post_bytes(0, path, body.clone()).await.unwrap();
        assert!(
            (400..500).contains(&code),
            "{path} {:?}: {code}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for _ in 0..200 {
        let path = paths[rng.random_range(0..paths.len())];
        let len = rng.random_range(0..64);
        let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let (code, _) = c.post_bytes(0, path, body).await.unwrap();
        assert!((400..500).contains(&code), "{path}: {code}");
    }
    // Garbage on raw sockets: the HTTP port and the peer port.
    for addr in [c.client_addr(0), c.peer_addr(0)] {
        for garbage in [
            &b"GET / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"[..],
            b"\x00\xff\xfe garbage\r\n\r\n",
            b"FLTNODE1\xff\xff\xff\xff",
        ] {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                let _ = s.write_all(garbage).await;
            }
        }
    }
    let status = c.status(0).await.expect("the node still answers");
    assert_eq!(status["role"], "leader");
    let s = c.open(0, 1_000).await;
    assert_eq!(c.acquire(0, s, "l", 100).await.0, 200);
}

/// Every node's wall clock jumps a minute ahead (as a libfaketime `bump-clock` would). With the
/// monotonic session clock nothing happens; with the planted `wall-clock-expiry` bug the leader
/// expires a session whose keepalives are fine and grants its lock to another client while the
/// first still rightly believes it holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_jump_expires_live_sessions_only_with_the_planted_bug() {
    const TIMEOUT_MS: u64 = 3_000;
    for bug in [false, true] {
        let c = start_with_bugs(3, if bug { &["wall-clock-expiry"] } else { &[] }).await;
        let leader = c.leader().await;
        let a = c.open(leader, TIMEOUT_MS).await;
        let ta = token(&c.acquire(leader, a, "l", 1_000).await.1);
        let (code, _) = c
            .call(leader, "/session/keepalive", json!({ "session": a }))
            .await;
        assert_eq!(code, 200);
        let last_keepalive = Instant::now();
        for skew in &c.kind().skews {
            skew.store(60_000, Ordering::SeqCst);
        }
        // Give the leader's expiry check several rounds to act on the jump.
        tokio::time::sleep(Duration::from_millis(10 * TICK_MS)).await;
        let b = c.open(leader, TIMEOUT_MS).await;
        let (code, body) = c.acquire(leader, b, "l", 1_500).await;
        if bug {
            assert_eq!(code, 200, "{body}");
            assert!(token(&body) > ta);
            assert!(
                last_keepalive.elapsed() < Duration::from_millis(TIMEOUT_MS),
                "A's last keepalive succeeded less than one timeout ago, so A still holds the lock \
                 in its own view while B holds it too"
            );
        } else {
            assert_eq!(code, 408, "A's live session kept the lock: {body}");
            let (code, _) = c
                .call(leader, "/session/keepalive", json!({ "session": a }))
                .await;
            assert_eq!(code, 200);
        }
    }
}

/// Every node restarted from its disk (log and snapshot) keeps sessions, queues and grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_sessions_survive_restarts_from_disk() {
    let mut c = start(3).await;
    let leader = c.leader().await;
    let client = ZkLockClient::new(c.client_addrs(), Duration::from_millis(1_000));
    let a = client.open_session(5_000).await.unwrap();
    let b = client.open_session(5_000).await.unwrap();
    let _ka = client.keep_alive(a, 5_000);
    let _kb = client.keep_alive(b, 5_000);
    let mut last = 0;
    // Enough entries to compact the log into snapshots (snapshot_entries is 8).
    for i in 0..6 {
        let lock = format!("l{i}");
        let t = client.acquire(a, &lock, 1_000).await.unwrap();
        assert!(t > last);
        last = t;
        client.release(a, &lock).await.unwrap();
    }
    let ta = client.acquire(a, "held", 1_000).await.unwrap();
    // Restart every node, one at a time, each from its own data directory.
    for i in (0..3).map(|k| (leader + k) % 3) {
        c.stop(i).await;
        c.restart(i).await;
        c.leader().await;
    }
    let err = client.acquire(b, "held", 300).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(408),
        "A still holds the lock after the restarts: {err}"
    );
    client.release(a, "held").await.unwrap();
    let tb = client.acquire(b, "held", 1_000).await.unwrap();
    assert!(tb > ta && ta > last, "tokens {last}, {ta}, {tb}");
}

/// The leader is cut off from its peers while a client holds a lock. The client's keepalives
/// fail on the old leader (it cannot confirm a ReadIndex) and reach the new leader through the
/// other nodes, so the session and the lock survive; nobody else is granted the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_neither_loses_nor_duplicates_a_live_lock() {
    let c = start(3).await;
    let old = c.leader().await;
    let a_client = ZkLockClient::new(c.client_addrs(), Duration::from_millis(300));
    let a = a_client.open_session(1_500).await.unwrap();
    let ta = a_client.acquire(a, "l", 1_000).await.unwrap();
    let keeper = a_client.keep_alive(a, 1_500);
    c.isolate(old);
    // The majority elects a leader of its own; B waits there for several session timeouts.
    let others: Vec<String> = (0..3)
        .filter(|&i| i != old)
        .map(|i| c.client_addr(i).to_string())
        .collect();
    let b_client = ZkLockClient::new(others, Duration::from_millis(1_000));
    // Until the majority notices, its nodes forward to the cut-off leader and time out.
    let mut b = None;
    for _ in 0..20 {
        if let Ok(id) = b_client.open_session(10_000).await {
            b = Some(id);
            break;
        }
    }
    let b = b.expect("the majority side opens a session");
    let majority: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    assert_ne!(
        c.leader_of(&majority).await,
        old,
        "the cut took effect: the majority follows a leader of its own"
    );
    let err = b_client.acquire(b, "l", 4_000).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(408),
        "B must not get A's live lock: {err}"
    );
    assert!(keeper.is_alive(), "A's keepalives reached the majority");
    c.heal_all();
    a_client.release(a, "l").await.unwrap();
    let tb = b_client.acquire(b, "l", 2_000).await.unwrap();
    assert!(tb > ta);
}

/// The data store beside the locks (`/data/get`, `/data/put`): reads and writes through any
/// node, and a fenced put refused once the grant's token no longer holds the lock — the
/// check the lock-set workload's `--fencing` relies on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_put_is_refused_once_the_token_lost_its_lock_and_data_reads_from_any_node() {
    let c = start(3).await;
    c.leader().await;
    let one =
        |i: usize| ZkLockClient::new(vec![c.client_addr(i).to_string()], Duration::from_secs(3));
    let a = one(0);
    let stale = a.open_session(300).await.unwrap();
    let first = a.acquire(stale, "l", 1000).await.unwrap();
    a.put("set-0", "[1]", Some(("l", first))).await.unwrap();
    // Read back through every node: followers forward to the leader.
    for i in 0..3 {
        assert_eq!(one(i).get("set-0").await.unwrap().as_deref(), Some("[1]"));
    }
    assert_eq!(a.get("absent").await.unwrap(), None);
    // No keepalives: the leader expires the session and the waiting session gets the lock.
    let b = one(1);
    let fresh = b.open_session(3000).await.unwrap();
    let second = b.acquire(fresh, "l", 3000).await.unwrap();
    assert!(second > first, "token {second} after {first}");
    let refused = a.put("set-0", "[2]", Some(("l", first))).await.unwrap_err();
    assert!(
        matches!(refused, ZkError::Definite { status: 412, .. }),
        "{refused:?}"
    );
    assert_eq!(a.get("set-0").await.unwrap().as_deref(), Some("[1]"));
    // Unfenced, the stale holder's write lands: the hazard the fence exists for.
    a.put("set-0", "[3]", None).await.unwrap();
    b.put("set-0", "[3,4]", Some(("l", second))).await.unwrap();
    assert_eq!(b.get("set-0").await.unwrap().as_deref(), Some("[3,4]"));
    let bad = b.put("", "x", None).await.unwrap_err();
    assert!(
        matches!(bad, ZkError::Definite { status: 400, .. }),
        "{bad:?}"
    );
}
