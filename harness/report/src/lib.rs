//! Results people read: report.html, the results index, JUnit XML, the terminal summary, serve.
//!
//! Layout:
//! - `run`: the run folder of DESIGN §4 (names, the `latest` link) and loading it (`RunData`,
//!   `RunSummary`).
//! - `model`: a tolerant mirror of test.json, and a run's overall `Verdict`. results.json's
//!   schema, the history reader, the op pairing and the stats are the checker crate's
//!   (`RunResults`, `read_history`, `pair_ops`, `stats`): one pipeline for run and report.
//! - `faults`: when each nemesis fault was in effect.
//! - `html`: report.html, one self-contained file (inline CSS, JS, SVG; no fetches).
//! - `index`: results/index.html (every run newest first, links to each campaign), and the
//!   one page shell of every verdict table (index, campaign summary, night after night).
//! - `junit`: JUnit XML for CI.
//! - `summary`: the terminal table, and progress bars.
//! - `serve`: the HTTP server of `faultline serve`.
//! - `served`: which host served each op of a counterexample, and the faults on it then.
//! - `escape`: escaping for HTML, script-embedded JSON, XML and URLs.
//! - `synth`: seeded synthetic runs for tests, benchmarks and demos.

pub mod escape;
pub mod faults;
pub mod html;
pub mod index;
pub mod junit;
pub mod model;
pub mod run;
pub mod serve;
pub mod served;
pub mod summary;
pub mod synth;
pub mod txn;
mod violations;

pub use faultline_checker::{RunResults, Stats};
pub use html::render_report;
pub use index::update_index;
pub use junit::{junit_xml, write_junit};
pub use model::{TestConfig, Verdict};
pub use run::{create_run_dir, link_latest, run_dir_name, RunData, RunSummary};
pub use summary::{
    check_progress, print_summary, progress_bar, summary_for, summary_for_checked, summary_table,
};

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Writes `report.html` into a run folder from its test.json, history.jsonl and
/// results.json, and returns its path.
pub fn write_report(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let run = RunData::load(run_dir)?;
    write_report_for(&run)
}

/// Writes `report.html` for a run already in memory (e.g. right after checking it).
pub fn write_report_for(run: &RunData) -> anyhow::Result<PathBuf> {
    let html = render_report(run);
    let path = run.dir.join(run::REPORT_HTML);
    let tmp = run.dir.join(".report.html.tmp");
    std::fs::write(&tmp, html).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Re-checks a run from its history.jsonl without re-running it (Jepsen's `analyze`):
/// rewrites results.json through the analysis and writer `faultline run` uses (keeping the
/// run's own `error`, e.g. an interrupt), so an unchanged history gives the same file; then
/// report.html, and the results index when the run sits in a results folder. The model is
/// `options.model`, else test.json's `model` (`test`, as [`run::read_test_json`] read it, so
/// the caller that chose the checks from it and the check see the same file), else guessed
/// from the ops.
pub fn recheck_run(
    run_dir: &Path,
    test: &serde_json::Value,
    options: &faultline_checker::CheckOptions,
    checkers: &[std::sync::Arc<dyn faultline_core::check::Checker>],
) -> anyhow::Result<RunData> {
    let history_path = run_dir.join(run::HISTORY_JSONL);
    anyhow::ensure!(
        history_path.exists(),
        "{} has no {}",
        run_dir.display(),
        run::HISTORY_JSONL
    );
    let earlier = run::read_results(run_dir)?;
    let mut options = options.clone();
    if options.model.is_none() {
        options.model = test
            .get("model")
            .and_then(|m| m.as_str())
            .map(str::to_string);
    }
    let analysis = faultline_core::check::analyze(&history_path, &options, true, checkers)
        .map_err(|e| anyhow::anyhow!("cannot check {}: {e}", run_dir.display()))?;
    for warning in &analysis.results.warnings {
        eprintln!("faultline: warning: {warning}");
    }
    let mut results = analysis.results;
    results.error = earlier.and_then(|r| r.error);
    faultline_core::store::write_json(&run_dir.join(run::RESULTS_JSON), &results)?;
    let run = RunData::load(run_dir)?;
    write_report_for(&run)?;
    if let Some(root) = run_dir.parent().and_then(Path::parent) {
        if root.join("index.html").exists() {
            update_index(root)?;
        }
    }
    Ok(run)
}

/// Everything a finished run needs on the results side: report.html, the `latest` link,
/// results/index.html (the results root is two levels up). Returns the report's path.
pub fn finish_run(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let report = write_report(run_dir)?;
    link_latest(run_dir)?;
    if let Some(root) = run_dir.parent().and_then(Path::parent) {
        update_index(root)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{lock_run, register_run, write_run, LockSpec, RegisterSpec};
    use faultline_checker::verdict::Validity;

    #[test]
    fn recheck_rewrites_results_and_report_from_the_history_alone() {
        let root = tempfile::tempdir().unwrap();
        let cases = [
            (
                "valid",
                register_run(&RegisterSpec {
                    seed: 21,
                    ops: 400,
                    ..Default::default()
                }),
                Verdict::Valid,
            ),
            (
                "invalid",
                register_run(&RegisterSpec {
                    seed: 22,
                    ops: 400,
                    bug: true,
                    ..Default::default()
                }),
                Verdict::Invalid,
            ),
            (
                "lock",
                lock_run(&LockSpec {
                    seed: 23,
                    acquisitions: 80,
                    bug: true,
                    ..Default::default()
                }),
                Verdict::Invalid,
            ),
        ];
        for (name, run, expected) in cases {
            let dir = root.path().join(name).join("20261126T070000Z");
            write_run(&dir, &run).unwrap();
            // Only the history counts: results.json from before is replaced.
            std::fs::write(
                dir.join(run::RESULTS_JSON),
                r#"{"valid": "unknown", "checkers": []}"#,
            )
            .unwrap();
            let test = run::read_test_json(&dir).unwrap();
            let data = recheck_run(
                &dir,
                &test,
                &faultline_checker::CheckOptions::default(),
                &[],
            )
            .unwrap();
            assert_eq!(data.verdict(), expected, "{name}");
            let results = data.results.as_ref().unwrap();
            let stats = results.stats.as_ref().expect("stats written");
            let paired = faultline_checker::history::pair_ops(&data.history);
            assert_eq!(stats.ops as usize, paired.clients.len());
            let report = std::fs::read_to_string(dir.join(run::REPORT_HTML)).unwrap();
            assert!(report.contains(&format!("<header class=\"verdict {}\">", expected.as_str())));
            if name == "invalid" {
                let key = results.checkers[0]
                    .keys()
                    .iter()
                    .find(|k| k.valid == Validity::Invalid)
                    .unwrap();
                let cx = key.counterexample.as_ref().expect("a counterexample");
                assert!(!cx.ops.is_empty());
                assert!(report.contains(&escape::html(&cx.explanation)));
            }
        }
    }
}
