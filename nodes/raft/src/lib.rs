//! Raft: a pure consensus core and the key-value server around it.
//!
//! Layout, from the inside out:
//! - [`message`]: entries, durable state, snapshots and peer messages.
//! - [`log`]: the in-memory log behind a snapshot point.
//! - [`core`]: the consensus state machine, no I/O: `step`/`tick`/`propose`/`read_index` in,
//!   a [`core::Ready`] out. Tests in `sim` drive it over a simulated network.
//! - [`storage`]: the write-ahead log and snapshot file, with group commit.
//! - [`state_machine`]: the trait a replicated state machine implements, so other services
//!   (the lock service) reuse the log and server.
//! - [`kv`]: the key-value state machine with exactly-once request ids.
//! - [`server`]: the node's event loop thread: peers, ticks, disk, applying, client waits.
//! - [`http`]: the HTTP/JSON client API of `nodes/API.md` for the key-value store.

pub mod core;
pub mod http;
pub mod kv;
pub mod log;
pub mod message;
pub mod server;
pub mod state_machine;
pub mod storage;

#[cfg(test)]
mod sim;
