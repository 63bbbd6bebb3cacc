//! `faultline check FILE`: check a history offline.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct CheckArgs {
    /// The history file to check.
    pub file: PathBuf,
}

/// Returns the process exit code (DESIGN §3).
pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    anyhow::bail!("checking {} is not built yet", args.file.display())
}
