//! The run: db and client traits, the seeded generator, the durable history writer, the
//! nemesis hook.
//!
//! Layout:
//! - `history`: numbers and times events, appends them to `history.jsonl` in batches.
//! - `generator`: seeded choice of the next op, independent keys, rate pacing.
//! - `check`: the `Checker` trait a test's checkers implement (built-in checks, any `Model`).
//! - `client`: the `Client` trait a workload implements per system, and a no-op client.
//! - `worker`: the tokio tasks that drive clients and record their ops.
//! - `db`: the `Db` lifecycle trait and its optional abilities (`Kill`, `Pause`, …).
//! - `nemesis`: the `Nemesis` hook (setup / run beside the clients / idempotent heal).
//! - `store`: the run folder, its file names, JSON written atomically, the `latest` link.
//! - `runlog`: the per-run tracing dispatcher writing `faultline.log`.
//! - `run`: one run end to end, with clean-up on every path.

pub mod check;
pub mod client;
pub mod db;
pub mod generator;
pub mod history;
pub mod nemesis;
pub mod run;
pub mod runlog;
pub mod store;
pub mod worker;
