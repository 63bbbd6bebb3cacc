//! The data store beside the locks (`/data/get`, `/data/put`): reads and writes through any
//! node, and a fenced put refused once the grant's token no longer holds the lock — the
//! check the lock-set workload's `--fencing` relies on.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use faultline_raft::server::{LeaseMode, ServerConfig};
use faultline_zk_lock::client::{ZkError, ZkLockClient};
use faultline_zk_lock::http::HttpConfig;
use faultline_zk_lock::service::{self, NodeConfig, Running};
use tokio::net::TcpListener;

/// Three nodes on loopback; their client addresses.
async fn start(dirs: &[tempfile::TempDir]) -> (Vec<Running>, Vec<String>) {
    let mut peer_l = Vec::new();
    let mut client_l = Vec::new();
    for _ in dirs {
        peer_l.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        client_l.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let id = |i: usize| format!("n{}", i + 1);
    let peers: Vec<(String, String)> = peer_l
        .iter()
        .enumerate()
        .map(|(i, l)| (id(i), l.local_addr().unwrap().to_string()))
        .collect();
    let clients: Vec<String> = client_l
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let client_peers: HashMap<String, String> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (id(i), c.clone()))
        .collect();
    let mut nodes = Vec::new();
    for (i, (p, c)) in peer_l.into_iter().zip(client_l).enumerate() {
        let cfg = NodeConfig {
            server: ServerConfig {
                id: id(i),
                peers: peers.clone(),
                data_dir: dirs[i].path().to_path_buf(),
                tick: Duration::from_millis(20),
                election_ticks: 20,
                heartbeat_ticks: 2,
                lease: LeaseMode::Off,
                snapshot_entries: 8,
                no_fsync: false,
                link_filter: None,
                seed: 2000 + i as u64,
            },
            http: HttpConfig {
                id: id(i),
                client_peers: client_peers.clone(),
                request_timeout: Duration::from_millis(2000),
                bugs: Vec::new(),
            },
            expiry_check: Duration::from_millis(20),
            wall_skew_ms: Arc::new(AtomicI64::new(0)),
        };
        nodes.push(service::start(cfg, p, c).await.unwrap());
    }
    (nodes, clients)
}

/// Retries `open_session` until a leader is elected (a few hundred ms).
async fn session(client: &ZkLockClient, timeout_ms: u64) -> u64 {
    for _ in 0..100 {
        if let Ok(id) = client.open_session(timeout_ms).await {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no session could be opened: no leader elected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_put_is_refused_once_the_token_lost_its_lock_and_data_reads_from_any_node() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (nodes, clients) = start(&dirs).await;
    let one = |i: usize| ZkLockClient::new(vec![clients[i].clone()], Duration::from_secs(3));
    let a = one(0);
    let stale = session(&a, 300).await;
    let first = a.acquire(stale, "l", 1000).await.unwrap();
    a.put("set-0", "[1]", Some(("l", first))).await.unwrap();
    // Read back through every node: followers forward to the leader.
    for i in 0..3 {
        assert_eq!(one(i).get("set-0").await.unwrap().as_deref(), Some("[1]"));
    }
    assert_eq!(a.get("absent").await.unwrap(), None);
    // No keepalives: the leader expires the session and the waiting session gets the lock.
    let b = one(1);
    let fresh = session(&b, 3000).await;
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
    for node in nodes {
        node.stop().await.unwrap();
    }
}
