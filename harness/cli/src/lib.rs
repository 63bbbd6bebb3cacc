//! faultline as a library, Jepsen-style: a program of its own adds systems, workloads or
//! checkers to the registry and keeps every verb of the stock `faultline` binary.
//!
//! ```no_run
//! use faultline::Registry;
//! fn main() -> std::process::ExitCode {
//!     faultline::cli::main_with(Registry::stock() /* .with(MySystem) */)
//! }
//! ```
//!
//! The crates underneath are re-exported so that such a program depends on `faultline`
//! alone: [`core`] (db, client, generator, run), [`control`] (hosts, SSH, daemons),
//! [`checker`] (histories, models, checkers), [`workloads`] (stock systems, registry).

pub mod cli;

mod campaign;
mod check;
mod check_txn;
mod cluster;
mod nemesis_args;
mod report;
mod run;
mod serve;
mod systems;
mod vagrant;

/// The campaign file format (`faultline campaign FILE.toml`): parse and plan, for tools
/// and the fuzz target.
pub use campaign::file as campaign_file;

pub use faultline_checker as checker;
pub use faultline_control as control;
pub use faultline_core as core;
pub use faultline_workloads as workloads;
pub use faultline_workloads::system::{
    Capabilities, ClockReach, Named, Registry, System, SystemRequest, Workload, WorkloadParts,
};
