//! Workloads (register, lock) and the clients and db definitions of each system under test.
//!
//! Layout:
//! - `register`: the register workload's generator (read / write / cas on independent keys).
//! - `http`: the HTTP/JSON client of our nodes, mapping answers to ok / fail / info.
//! - `node_db`: the `raft`, `paxos` and `zk-lock` systems' lifecycle on the hosts
//!   (`faultline-node`).
//! - `lock`: the lock workload's generator and the zk-lock and redis-lock clients.
//! - `lock_set`: the lock-set workload (a lock-guarded read-modify-write of a set),
//!   generic over lock services through its `GuardedSet` trait.
//! - `lock_db`: the `redis-lock` system (single, replica, Redlock) and its failover fault.
//! - `binary`: finding or building the `faultline-node` binary to upload.
//! - `system`: the `System` and `Workload` traits and the `Registry` of both.
//! - `systems`: the stock systems (raft, paxos, zk-lock, redis-lock) and workloads.
//! - `external`: a system described by a TOML file, its client a program speaking NDJSON.
//! - `txn`: the `append` and `wr` transactional workloads and a txn's mapping to `POST /txn`.

pub mod binary;
pub mod external;
pub mod http;
pub mod lock;
pub mod lock_db;
pub mod lock_set;
pub mod lock_set_nodes;
pub mod node_db;
pub mod register;
pub mod system;
pub mod systems;
pub mod txn;
