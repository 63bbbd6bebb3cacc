//! `faultline report RUN_DIR`: re-checks a run from its history.jsonl without re-running it
//! (like Jepsen's `analyze`) and rewrites results.json and report.html.

use clap::Args;
use faultline_checker::{CheckOptions, Limits};
use faultline_report::{summary_table, write_junit, RunSummary};
use faultline_workloads::system::{Registry, SystemRequest};
use std::path::PathBuf;
use std::sync::Arc;
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

/// The checks of the run's workload, when `registry` has it (a user's own binary has its
/// own workloads): its built-in options (model, mutex, set) and its own checkers, so a
/// re-check judges the run as `run` did.
fn workload_checks(
    test: &serde_json::Value,
    registry: &Registry,
) -> (CheckOptions, Vec<Arc<dyn faultline_core::check::Checker>>) {
    let parts = test
        .get("workload")
        .and_then(|w| w.as_str())
        .and_then(|name| {
            let request = SystemRequest {
                workload: name.to_owned(),
                ..SystemRequest::default()
            };
            registry.workload(name).ok()?.build(&request).ok()
        });
    match parts {
        Some(parts) => (parts.check, parts.checkers),
        None => (CheckOptions::default(), Vec::new()),
    }
}

/// Returns the process exit code (DESIGN §3).
pub fn run(args: ReportArgs, registry: &Registry) -> anyhow::Result<u8> {
    let dir = args.run_dir;
    let run = if args.no_check {
        faultline_report::write_report(&dir)?;
        faultline_report::RunData::load(&dir)?
    } else {
        // Read once, with its errors: a test.json that cannot be read must not quietly
        // re-check the run with other checks than `run` used.
        let test = faultline_report::run::read_test_json(&dir)?;
        let (workload, checkers) = workload_checks(&test, registry);
        let options = CheckOptions {
            model: args.model,
            limits: Limits {
                time_limit: Some(Duration::from_secs(args.time_limit)),
                ..Limits::default()
            },
            mutex: workload.mutex,
            set: workload.set,
            ..CheckOptions::default()
        };
        faultline_report::recheck_run(&dir, &test, &options, &checkers)?
    };
    print!("{}", summary_table(&run));
    if let Some(path) = args.junit {
        write_junit(&[RunSummary::load(&dir)?], &path)?;
    }
    Ok(run.verdict().exit_code())
}
