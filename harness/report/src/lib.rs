//! Results people read: report.html, the results index, JUnit XML, the terminal summary, serve.
//!
//! Layout:
//! - `run`: the run folder of DESIGN §4 (names, the `latest` link) and loading it (`RunData`,
//!   `RunSummary`).
//! - `model`: serde mirrors of results.json and test.json (docs/contracts.md).
//! - `history`: reading history.jsonl, pairing invokes with completions, op stats.
//! - `faults`: when each nemesis fault was in effect.
//! - `html`: report.html, one self-contained file (inline CSS, JS, SVG; no fetches).
//! - `index`: results/index.html, every run newest first.
//! - `junit`: JUnit XML for CI.
//! - `summary`: the terminal table, and progress bars.
//! - `serve`: the HTTP server of `faultline serve`.
//! - `escape`: escaping for HTML, script-embedded JSON, XML and URLs.
//! - `synth`: seeded synthetic runs for tests, benchmarks and demos.

pub mod escape;
pub mod faults;
pub mod history;
pub mod html;
pub mod index;
pub mod junit;
pub mod model;
pub mod run;
pub mod serve;
pub mod summary;
pub mod synth;

pub use html::render_report;
pub use index::update_index;
pub use junit::{junit_xml, write_junit};
pub use model::{Results, Stats, TestConfig, Verdict};
pub use run::{create_run_dir, link_latest, run_dir_name, RunData, RunSummary};
pub use summary::{check_progress, print_summary, progress_bar, summary_table};

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
