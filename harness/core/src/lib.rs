//! The run: db and client traits, the seeded generator, the durable history writer, the
//! nemesis hook.
//!
//! Layout:
//! - `history`: numbers and times events, appends them to `history.jsonl` in batches.
//! - `generator`: seeded choice of the next op, independent keys, rate pacing.
//! - `client`: the `Client` trait a workload implements per system, and a no-op client.
//! - `worker`: the tokio tasks that drive clients and record their ops.
//! - `stats`: counts and latencies of a history (results.json `stats`).

pub mod client;
pub mod generator;
pub mod history;
pub mod stats;
pub mod worker;
