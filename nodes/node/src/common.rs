//! The command line of the `raft` and `paxos` subcommands: the member options every node
//! shares (`faultline_nodes_common::process`) and the read path and bugs of these two.

use clap::Args;
use faultline_nodes_common::process::{self, MemberArgs};

/// The command line shared by `raft` and `paxos` (see `nodes/API.md`).
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub member: MemberArgs,
    /// readindex or lease.
    #[arg(long, default_value = "readindex")]
    pub read_mode: String,
    /// Safety margin subtracted from the leader lease, in ms.
    #[arg(long, default_value_t = 50)]
    pub clock_drift_ms: u64,
    /// Plant a known bug (repeatable).
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
}

impl NodeArgs {
    /// Refuses bugs `subcommand` does not know.
    pub fn check_bugs(&self, subcommand: &str, known: &[&str]) -> anyhow::Result<()> {
        process::check_bugs(subcommand, &self.bugs, known)
    }

    pub fn has_bug(&self, name: &str) -> bool {
        self.bugs.iter().any(|b| b == name)
    }
}
