//! A Redis-style lock server: a RESP subset, TTLs by the server's clock, async replication and failover.
//!
//! # Layout
//! Bytes → [`resp::Frame`] → [`cmd::Command`] → [`db::Db`], as in mini-redis:
//! - [`resp`]: RESP2 frames, a cheap completeness check before the allocating parse, size caps.
//! - [`cmd`]: typed commands; the unlock/extend Lua scripts are recognised textually.
//! - [`db`]: the keyspace, pure, applied with an explicit `now` from a [`clock::Clock`].
//! - [`server`]: sockets, pipelining, the asynchronous replication stream, `REPLICAOF`.
//! - [`client`] and [`redlock`]: the lock client the harness uses against this server and
//!   real Redis alike, and the Redlock algorithm over independent servers.
//! - [`node`]: `faultline-node redis-lock` (command line, PID file, log file, SIGTERM).
//!
//! The wire contract is in `nodes/LOCKS.md`.

pub mod client;
pub mod clock;
pub mod cmd;
pub mod connection;
pub mod db;
pub mod node;
pub mod redlock;
pub mod resp;
pub mod server;

pub use client::{ClientError, RedisLockClient};
pub use redlock::{Redlock, RedlockGrant};
