//! `faultline report RUN_DIR`: re-checks a run from its history.jsonl without re-running it
//! (like Jepsen's `analyze`) and rewrites results.json and report.html.

use clap::Args;
use faultline_checker::{CheckOptions, Limits};
use faultline_report::{summary_table, write_junit, RunSummary};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct ReportArgs {
    /// The run folder (results/<test>/<timestamp>, or results/<test>/latest).
    pub run_dir: PathBuf,
    /// Only redraw report.html from the existing results.json; do not re-check.
    #[arg(long)]
    pub no_check: bool,
    /// The model to check against (default: test.json's `model`, else guessed from the ops).
    #[arg(long)]
    pub model: Option<String>,
    /// Wall-time limit of the check, in seconds; keys not decided by then are unknown.
    #[arg(long, default_value_t = 60)]
    pub time_limit: u64,
    /// Also write a JUnit XML report (one test case for this run) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Returns the process exit code (DESIGN §3).
pub fn run(args: ReportArgs) -> anyhow::Result<u8> {
    let dir = args.run_dir;
    let run = if args.no_check {
        faultline_report::write_report(&dir)?;
        faultline_report::RunData::load(&dir)?
    } else {
        let options = CheckOptions {
            model: args.model,
            limits: Limits {
                time_limit: Some(Duration::from_secs(args.time_limit)),
                ..Limits::default()
            },
            ..CheckOptions::default()
        };
        faultline_report::recheck_run(&dir, &options)?
    };
    print!("{}", summary_table(&run));
    if let Some(path) = args.junit {
        write_junit(&[RunSummary::load(&dir)?], &path)?;
    }
    Ok(run.verdict().exit_code())
}
