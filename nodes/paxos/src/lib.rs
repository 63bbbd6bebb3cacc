//! CASPaxos: a pure acceptor/proposer core and the register server around it.
//!
//! Layout:
//! - [`core`]: ballots, registers, the acceptor's rules and the proposer's round (no I/O).
//! - [`storage`]: the acceptor's durable state and the proposer's ballot counter.
//! - [`server`]: the node (acceptor thread, async proposers, peer transport, HTTP API).

pub mod core;
pub mod server;
pub mod storage;
