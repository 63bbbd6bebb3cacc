//! The controller's own overhead: ops/s it generates, records and completes against a
//! no-op client, the cost of recording one event in the history, and whole runs against
//! raft on the local cluster (id 9, 3 hosts; needs root) at concurrency 1, 16 and 64.
//!
//! Run: `cargo bench -p faultline-workloads --bench overhead` (a release build). Set
//! `FAULTLINE_BENCH_SECONDS` to change the length of each measurement (default 3), and
//! `FAULTLINE_BENCH_RAFT=0` to leave out the raft part.

use faultline_checker::history::{Key, OpType, Process};
use faultline_control::local_cluster::{self, ClusterConfig};
use faultline_core::client::NoopClient;
use faultline_core::generator::KeyPlan;
use faultline_core::history::{ClientEvent, History};
use faultline_core::run::{run, RunOptions};
use faultline_core::worker::{ClientPool, WorkerConfig};
use faultline_workloads::binary::{env_or_build, NODE_BINARY};
use faultline_workloads::register::RegisterGenerator;
use faultline_workloads::system::{Registry, SystemRequest};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::var("FAULTLINE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = tempfile::tempdir()?;
    println!("faultline controller overhead ({seconds} s per measurement)");
    record_cost(&dir.path().join("record.jsonl"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for concurrency in [1usize, 16, 64] {
        let path = dir.path().join(format!("noop-{concurrency}.jsonl"));
        runtime.block_on(noop_run(
            &path,
            concurrency,
            Duration::from_secs_f64(seconds),
        ))?;
    }
    if std::env::var("FAULTLINE_BENCH_RAFT").as_deref() == Ok("0") {
        println!("raft: left out (FAULTLINE_BENCH_RAFT=0)");
        return Ok(());
    }
    raft_runs(&runtime, dir.path(), seconds)
}

/// Brings the cluster down however the bench ends.
struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

/// Whole runs (generator, HTTP client, history, final reads, check) against raft on 3
/// local hosts, as fast as the clients go.
fn raft_runs(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    seconds: f64,
) -> anyhow::Result<()> {
    const CLUSTER_ID: u8 = 9;
    let node = env_or_build("FAULTLINE_NODE_BINARY", "faultline-node", NODE_BINARY)?;
    local_cluster::down(CLUSTER_ID)?;
    let _guard = ClusterGuard(CLUSTER_ID);
    let cluster = local_cluster::up(&ClusterConfig {
        id: CLUSTER_ID,
        nodes: 3,
    })?;
    for concurrency in [1usize, 16, 64] {
        let options = RunOptions {
            name: format!("bench-raft-{concurrency}"),
            results_dir: dir.to_owned(),
            hosts: cluster.hosts.clone(),
            ssh: cluster.ssh.clone(),
            seed: 1,
            concurrency,
            rate: None,
            time_limit: Duration::from_secs_f64(seconds),
            workers_per_key: 4,
            ops_per_key: 500,
            ..RunOptions::default()
        };
        let request = SystemRequest {
            binary: Some(node.clone()),
            ..SystemRequest::default()
        };
        let test = Registry::stock().build("raft", &request, options)?;
        let outcome = runtime.block_on(run(test, std::future::pending()))?;
        let stats = &outcome.stats;
        let p50 = |f: &str| stats.by_f.get(f).and_then(|s| s.p50_ms).unwrap_or(0.0);
        println!(
            "raft, 3 local hosts, concurrency {concurrency:>2}: {:>7.0} ops/s ({} ops: {} ok, {} fail, {} info; p50 read {:.2} ms, write {:.2} ms, cas {:.2} ms; verdict {:?}{})",
            stats.ops as f64 / seconds,
            stats.ops,
            stats.ok,
            stats.fail,
            stats.info,
            p50("read"),
            p50("write"),
            p50("cas"),
            outcome.valid,
            outcome.error.as_deref().map(|e| format!("; error: {e}")).unwrap_or_default(),
        );
    }
    Ok(())
}

/// The cost of `History::record` alone, and of the writer draining it to disk.
fn record_cost(path: &std::path::Path) -> anyhow::Result<()> {
    const EVENTS: u64 = 1_000_000;
    let (history, writer) = History::create(path, Instant::now())?;
    let start = Instant::now();
    let node: std::sync::Arc<str> = std::sync::Arc::from("n1");
    for i in 0..EVENTS {
        history.record_client(ClientEvent {
            kind: if i % 2 == 0 {
                OpType::Invoke
            } else {
                OpType::Ok
            },
            process: Process::Client(i % 16),
            f: "write",
            key: Some(Key::Int((i % 7) as i64)),
            value: json!(i % 5),
            node: Some(node.clone()),
            error: None,
        });
    }
    let recorded = start.elapsed();
    let written = writer.finish()?;
    let drained = start.elapsed();
    anyhow::ensure!(written == EVENTS, "wrote {written} of {EVENTS} events");
    println!(
        "history: record {:.0} ns/event ({:.0} ns per op of 2 events) on the caller; \
         writer drained {} events to disk in {:.2} s ({:.0} ns/event, {:.0} events/s)",
        recorded.as_nanos() as f64 / EVENTS as f64,
        2.0 * recorded.as_nanos() as f64 / EVENTS as f64,
        EVENTS,
        drained.as_secs_f64(),
        drained.as_nanos() as f64 / EVENTS as f64,
        EVENTS as f64 / drained.as_secs_f64(),
    );
    Ok(())
}

/// The full client path (generator, pacing off, invoke, two records, completion) against
/// a client that answers at once; the ops count only once they are on disk.
async fn noop_run(
    path: &std::path::Path,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let (history, writer) = History::create(path, Instant::now())?;
    let config = WorkerConfig {
        concurrency,
        rate: None,
        seed: 1,
        op_timeout: Duration::from_secs(5),
    };
    let mut pool = ClientPool::open(config, Arc::new(NoopClient), history)?;
    let plan = Arc::new(KeyPlan::new(concurrency, 4, 1000));
    let start = Instant::now();
    let counts = pool
        .run_main(
            Arc::new(RegisterGenerator::default()),
            plan,
            tokio::time::Instant::now() + duration,
            CancellationToken::new(),
        )
        .await;
    drop(pool);
    let events = writer.finish()?;
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        events == 2 * counts.total(),
        "history holds {events} events for {} ops",
        counts.total()
    );
    println!(
        "no-op client, concurrency {concurrency:>2}: {:>9.0} ops/s ({} ops recorded and on disk in {:.2} s)",
        counts.total() as f64 / elapsed,
        counts.total(),
        elapsed
    );
    Ok(())
}
