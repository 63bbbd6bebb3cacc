//! A ZooKeeper-style lock service on the Raft log: sessions, ephemeral sequential nodes, fencing tokens.
//!
//! # Layout
//! - [`machine`]: the replicated state (sessions, lock queues, grants), pure and deterministic.

pub mod machine;
