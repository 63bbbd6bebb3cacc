//! The controller's own overhead: ops/s it generates, records and completes against a
//! no-op client, and the cost of recording one event in the history.
//!
//! Run: `cargo bench -p faultline-workloads --bench overhead` (a release build). Set
//! `FAULTLINE_BENCH_SECONDS` to change the length of each measurement (default 3).

use faultline_checker::history::{Key, OpType, Process};
use faultline_core::client::NoopClient;
use faultline_core::generator::KeyPlan;
use faultline_core::history::{Event, History};
use faultline_core::worker::{ClientPool, WorkerConfig};
use faultline_workloads::register::RegisterGenerator;
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
    Ok(())
}

/// The cost of `History::record` alone, and of the writer draining it to disk.
fn record_cost(path: &std::path::Path) -> anyhow::Result<()> {
    const EVENTS: u64 = 1_000_000;
    let (history, writer) = History::create(path, Instant::now())?;
    let start = Instant::now();
    for i in 0..EVENTS {
        history.record(Event {
            kind: if i % 2 == 0 {
                OpType::Invoke
            } else {
                OpType::Ok
            },
            process: Process::Client(i % 16),
            f: "write".to_owned(),
            key: Some(Key::Int((i % 7) as i64)),
            value: json!(i % 5),
            node: Some("n1".to_owned()),
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
            Arc::new(RegisterGenerator),
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
