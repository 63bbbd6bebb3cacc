//! Lock throughput and latency of redis-lock over loopback: `cargo bench -p faultline-redis-lock`.
//!
//! Prints numbers, asserts nothing about speed: acquire+release pairs from concurrent
//! clients on distinct keys, then Redlock acquire+release over three servers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_redis_lock::clock::SystemClock;
use faultline_redis_lock::server::{Config, Server};
use faultline_redis_lock::{RedisLockClient, Redlock};

const CLIENTS: usize = 8;
const PAIRS_PER_CLIENT: usize = 5_000;
const REDLOCK_ROUNDS: usize = 2_000;

async fn start() -> (String, tokio::sync::oneshot::Sender<()>) {
    let config = Config::new("127.0.0.1:0".parse().expect("address"));
    let server = Server::bind(config, Arc::new(SystemClock))
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn report(what: &str, mut lat: Vec<Duration>, elapsed: Duration) {
    lat.sort();
    println!(
        "{what}: {} ops in {:.2} s = {:.0} ops/s; latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
}

#[tokio::main]
async fn main() {
    let (addr, _stop) = start().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = RedisLockClient::connect(&addr).await.expect("connect");
            let mut lat = Vec::with_capacity(PAIRS_PER_CLIENT);
            let key = format!("lock-{c}");
            for i in 0..PAIRS_PER_CLIENT {
                let token = format!("{c}-{i}");
                let t = Instant::now();
                assert!(client.acquire(&key, &token, 10_000).await.expect("acquire"));
                assert!(client.release(&key, &token).await.expect("release"));
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
        &format!("acquire+release pairs, {CLIENTS} clients, one server"),
        lat,
        started.elapsed(),
    );

    let mut stops = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let (a, s) = start().await;
        addrs.push(a);
        stops.push(s);
    }
    let mut redlock = Redlock::new(addrs, Duration::from_millis(50));
    let mut lat = Vec::with_capacity(REDLOCK_ROUNDS);
    let started = Instant::now();
    for i in 0..REDLOCK_ROUNDS {
        let token = format!("r-{i}");
        let t = Instant::now();
        redlock
            .acquire("res", &token, 10_000)
            .await
            .expect("redlock grant");
        assert_eq!(redlock.release("res", &token).await, 3);
        lat.push(t.elapsed());
    }
    report(
        "Redlock acquire+release, 3 servers, sequential",
        lat,
        started.elapsed(),
    );
}
