//! A ZooKeeper-style lock service on the Raft log: sessions, ephemeral sequential nodes, fencing tokens.
//!
//! # Layout
//! - [`machine`]: the replicated state (sessions, lock queues, grants), pure and deterministic.
//! - [`replicated`]: that machine as a `faultline_raft` state machine (JSON log entries).
//! - [`liveness`]: the leader's session timers, pure; expiry goes through the log.
//! - [`http`]: the HTTP/JSON API, long-polling acquire, forwarding, the expiry task.
//! - [`service`]: one node: Raft server + API + expiry task, started on bound listeners.
//! - [`client`]: the harness's HTTP client, with a keepalive task and classified errors.
//! - [`node`]: `faultline-node zk-lock` (command line, PID file, log file, SIGTERM).
//!
//! The wire contract is in `nodes/LOCKS.md`.

pub mod client;
pub mod http;
pub mod liveness;
pub mod machine;
pub mod node;
pub mod replicated;
pub mod service;
