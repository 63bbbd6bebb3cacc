//! zk-lock throughput and latency on a three-node cluster in one process over loopback HTTP:
//! `cargo bench -p faultline-zk-lock`. Prints numbers, asserts nothing about speed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_raft::server::{LeaseMode, ServerConfig};
use faultline_zk_lock::client::ZkLockClient;
use faultline_zk_lock::http::HttpConfig;
use faultline_zk_lock::service::{self, NodeConfig, Running};
use tokio::net::TcpListener;

const CLIENTS: usize = 8;
const PAIRS_PER_CLIENT: usize = 200;

async fn cluster(dirs: &[tempfile::TempDir]) -> (Vec<Running>, Vec<String>) {
    let n = dirs.len();
    let mut peer_l = Vec::new();
    let mut client_l = Vec::new();
    for _ in 0..n {
        peer_l.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        client_l.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let id = |i: usize| format!("n{}", i + 1);
    let addr = |l: &TcpListener| l.local_addr().expect("addr").to_string();
    let peers: Vec<(String, String)> = (0..n).map(|i| (id(i), addr(&peer_l[i]))).collect();
    let clients: Vec<String> = client_l.iter().map(addr).collect();
    let client_peers: HashMap<String, String> =
        (0..n).map(|i| (id(i), clients[i].clone())).collect();
    let mut nodes = Vec::new();
    for (i, (p, c)) in peer_l.into_iter().zip(client_l).enumerate() {
        let cfg = NodeConfig {
            server: ServerConfig {
                id: id(i),
                peers: peers.clone(),
                data_dir: dirs[i].path().to_path_buf(),
                tick: Duration::from_millis(50),
                election_ticks: 10,
                heartbeat_ticks: 2,
                lease: LeaseMode::Off,
                snapshot_entries: 10_000,
                no_fsync: false,
                link_filter: None,
                seed: i as u64,
            },
            http: HttpConfig {
                id: id(i),
                client_peers: client_peers.clone(),
                request_timeout: Duration::from_millis(2_000),
                bugs: Vec::new(),
            },
            expiry_check: Duration::from_millis(50),
            wall_skew_ms: Default::default(),
        };
        nodes.push(service::start(cfg, p, c).await.expect("node starts"));
    }
    (nodes, clients)
}

fn report(what: &str, mut lat: Vec<Duration>, elapsed: Duration) {
    lat.sort();
    let ms = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{what}: {} ops in {:.2} s = {:.0} ops/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        ms(1.0)
    );
}

#[tokio::main]
async fn main() {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let (_nodes, clients) = cluster(&dirs).await;
    let client = ZkLockClient::new(clients, Duration::from_millis(2_000));
    // Wait for a leader: the first session open that succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.open_session(10_000).await.is_err() {
        assert!(Instant::now() < deadline, "no leader within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (what, shared_lock) in [("distinct locks", false), ("one contended lock", true)] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let session = client.open_session(10_000).await.expect("open");
                let lock = if shared_lock {
                    "shared".to_string()
                } else {
                    format!("lock-{c}")
                };
                let mut lat = Vec::with_capacity(PAIRS_PER_CLIENT);
                for _ in 0..PAIRS_PER_CLIENT {
                    let t = Instant::now();
                    client
                        .acquire(session, &lock, 10_000)
                        .await
                        .expect("acquire");
                    client.release(session, &lock).await.expect("release");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.expect("client task"));
        }
        report(
            &format!("acquire+release pairs, {CLIENTS} clients, {what}, 3 nodes (fsync on)"),
            lat,
            started.elapsed(),
        );
    }
}
