//! The run folder of DESIGN §4: its names, the `latest` link, and loading what a run left.

use crate::model::{key_text, TestConfig, Verdict};
use anyhow::Context;
use faultline_checker::history::{Op, ReadSummary};
use faultline_checker::stats::{self, Stats};
use faultline_checker::RunResults;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

// The run folder's layout is the store's (faultline-core), which creates it: one
// definition of the names, the timestamp and the `latest` link serves both sides.
pub use faultline_core::store::{
    create_run_dir, link_latest, rfc3339, run_dir_name, HISTORY_JSONL, LATEST, LOG_FILE, NODES_DIR,
    RESULTS_JSON, TEST_JSON,
};

pub const REPORT_HTML: &str = "report.html";

/// Everything a run folder holds that the report reads.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    pub test: TestConfig,
    /// test.json exactly as written, for the configuration table.
    pub test_raw: serde_json::Value,
    pub history: Vec<Op>,
    /// What reading history.jsonl found (a torn last line).
    pub read: ReadSummary,
    /// None when results.json is missing (the run crashed before checking).
    pub results: Option<RunResults>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{}: not valid", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The test name for a run whose test.json lacks one: its test folder's name.
fn fallback_name(dir: &Path) -> String {
    dir.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// test.json as written, `null` when the run left none.
pub fn read_test_json(dir: &Path) -> anyhow::Result<serde_json::Value> {
    Ok(read_json(&dir.join(TEST_JSON))?.unwrap_or(serde_json::Value::Null))
}

/// results.json, `None` when the run left none.
pub fn read_results(dir: &Path) -> anyhow::Result<Option<RunResults>> {
    read_json(&dir.join(RESULTS_JSON))
}

impl RunData {
    /// Loads a run folder. test.json and results.json may be missing; history.jsonl too
    /// (a run that crashed at setup), then the history is empty.
    pub fn load(dir: &Path) -> anyhow::Result<RunData> {
        let test_raw = read_test_json(dir)?;
        let mut test: TestConfig = if test_raw.is_object() {
            serde_json::from_value(test_raw.clone())
                .with_context(|| format!("{}: not valid", dir.join(TEST_JSON).display()))?
        } else {
            TestConfig::default()
        };
        if test.name.is_empty() {
            test.name = fallback_name(dir);
        }
        let history_path = dir.join(HISTORY_JSONL);
        let read = if history_path.exists() {
            faultline_checker::read_history(&history_path)?
        } else {
            Default::default()
        };
        let results = read_results(dir)?;
        Ok(RunData {
            dir: dir.to_path_buf(),
            test,
            test_raw,
            history: read.ops,
            read: read.summary,
            results,
        })
    }

    pub fn verdict(&self) -> Verdict {
        Verdict::from_results(self.results.as_ref())
    }

    /// Stats from results.json when it has them, else counted from the history.
    pub fn stats(&self) -> Stats {
        match self.results.as_ref().and_then(|r| r.stats.clone()) {
            Some(s) => s,
            None => stats::compute(&self.history),
        }
    }
}

/// One run as one line of the index, one JUnit test case, one CI message.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub test_name: String,
    /// The run folder's name (its timestamp).
    pub run_id: String,
    pub run_dir: PathBuf,
    pub db: String,
    pub workload: String,
    pub nemesis: Vec<String>,
    pub start_time: String,
    pub verdict: Verdict,
    /// Seconds from the first to the last history event.
    pub duration_s: f64,
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Why the run is not valid, in words a person can follow; empty when valid.
    pub explanation: String,
    pub report: Option<PathBuf>,
}

/// The time of the last event of a history, read from its tail only (cheap for big files).
fn last_event_time(path: &Path) -> Option<u64> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let tail_bytes = len.min(64 * 1024);
    f.seek(SeekFrom::Start(len - tail_bytes)).ok()?;
    let mut buf = Vec::with_capacity(tail_bytes as usize);
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines().rev().find_map(|line| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()?
            .get("time")?
            .as_u64()
    })
}

/// Why a run is not valid: the checkers' explanations, one paragraph each.
pub fn explain(results: Option<&RunResults>) -> String {
    let Some(r) = results else {
        return "the run left no results.json: it failed before checking".into();
    };
    let mut parts = Vec::new();
    if let Some(e) = &r.error {
        parts.push(format!("the run failed: {e}"));
    }
    for c in &r.checkers {
        if c.valid() == faultline_checker::verdict::Validity::Valid {
            continue;
        }
        let verdict = Verdict::from(c.valid()).as_str();
        let before = parts.len();
        for k in c.keys() {
            let text = match (&k.counterexample, &k.reason) {
                (Some(cx), _) if !cx.explanation.is_empty() => cx.explanation.clone(),
                (_, Some(reason)) => reason.clone(),
                _ => continue,
            };
            if k.valid != faultline_checker::verdict::Validity::Valid {
                parts.push(format!("{} key {}: {text}", c.name(), key_text(&k.key)));
            }
        }
        for l in c.locks() {
            for v in &l.violations {
                parts.push(format!(
                    "{} lock {} ({}): {}",
                    c.name(),
                    key_text(&l.key),
                    v.kind.as_str(),
                    v.explanation
                ));
            }
        }
        if parts.len() == before {
            let why = c.error().unwrap_or("no explanation given");
            parts.push(format!("{} is {verdict}: {why}", c.name()));
        }
    }
    parts.join("\n")
}

impl RunSummary {
    /// Summarises a run folder without reading its whole history.
    pub fn load(run_dir: &Path) -> anyhow::Result<RunSummary> {
        let test_raw: Option<serde_json::Value> = read_json(&run_dir.join(TEST_JSON))?;
        let test: TestConfig = match test_raw {
            Some(v) if v.is_object() => serde_json::from_value(v)
                .with_context(|| format!("{}: not valid", run_dir.join(TEST_JSON).display()))?,
            _ => TestConfig::default(),
        };
        let results = read_results(run_dir)?;
        let stats = results.as_ref().and_then(|r| r.stats.clone());
        let history_path = run_dir.join(HISTORY_JSONL);
        let stats = match stats {
            Some(s) => s,
            None if history_path.exists() => {
                stats::compute(&faultline_checker::read_history(&history_path)?.ops)
            }
            None => Stats::default(),
        };
        let verdict = Verdict::from_results(results.as_ref());
        let report = run_dir.join(REPORT_HTML);
        Ok(RunSummary {
            test_name: if test.name.is_empty() {
                fallback_name(run_dir)
            } else {
                test.name.clone()
            },
            run_id: run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            run_dir: run_dir.to_path_buf(),
            db: test.db.clone().unwrap_or_default(),
            workload: test.workload.clone().unwrap_or_default(),
            nemesis: test.nemesis.clone(),
            start_time: test.start_time.clone().unwrap_or_default(),
            verdict,
            duration_s: last_event_time(&history_path).unwrap_or(0) as f64 / 1e9,
            ops: stats.ops,
            ok: stats.ok,
            fail: stats.fail,
            info: stats.info,
            explanation: if verdict == Verdict::Valid {
                String::new()
            } else {
                explain(results.as_ref())
            },
            report: report.exists().then_some(report),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn run_folder_names_are_utc_timestamps() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_676_400); // 2026-11-26T07:00:00Z
        assert_eq!(run_dir_name(t), "20261126T070000Z");
        assert_eq!(rfc3339(t), "2026-11-26T07:00:00Z");
        assert_eq!(run_dir_name(UNIX_EPOCH), "19700101T000000Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399);
        assert_eq!(run_dir_name(leap), "20000229T235959Z");
    }

    #[test]
    fn run_dirs_are_never_reused_and_latest_follows() {
        let root = tempfile::tempdir().unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_795_676_400);
        let a = create_run_dir(root.path(), "raft-register", t).unwrap();
        let b = create_run_dir(root.path(), "raft-register", t).unwrap();
        assert_eq!(a.file_name().unwrap(), "20261126T070000Z");
        assert_eq!(b.file_name().unwrap(), "20261126T070000Z-1");
        assert!(a.join(NODES_DIR).is_dir());
        let link = link_latest(&a).unwrap();
        link_latest(&b).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("20261126T070000Z-1")
        );
        assert!(create_run_dir(root.path(), "../evil", t).is_err());
    }
}
