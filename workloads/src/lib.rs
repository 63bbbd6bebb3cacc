//! Workloads (register, lock) and the clients and db definitions of each system under test.
//!
//! Layout:
//! - `register`: the register workload's generator.

pub mod register;
