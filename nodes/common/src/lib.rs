//! Shared by faultline's nodes: the client API (types, limits, errors), the peer transport
//! (length-prefixed frames over TCP with a size cap) and checksummed record files.
//!
//! Layout:
//! - [`api`]: the HTTP/JSON request and answer types of `nodes/API.md`, input validation, and
//!   the error type that says whether an operation certainly did not happen.
//! - [`codec`]: bincode with a size limit, so that hostile bytes cannot make us allocate.
//! - [`transport`]: one outgoing connection per peer (reconnecting, dropping on overload) and
//!   an accept loop that rejects garbage.
//! - [`records`]: an append-only file of CRC-checked records that survives torn writes.
//! - [`fsutil`]: atomic file replacement with the fsyncs it needs.
//! - [`relay`]: a follower relays a client request to its leader (raft, zk-lock).
//! - [`process`]: a node's command line (member options), log file, ports, PID file and
//!   SIGTERM.

pub mod api;
pub mod codec;
pub mod fsutil;
pub mod process;
pub mod records;
pub mod relay;
pub mod transport;
