//! The terminal side: the summary table printed at the end of `run` and `check`, and
//! progress bars for long runs and checks.

use crate::model::{key_text, Verdict};
use crate::run::{explain, RunData};
use faultline_checker::history::{pair_ops, Key, Op, Operation as Pair};
use faultline_checker::stats::{self, Stats};
use faultline_checker::verdict::Validity;
use faultline_checker::RunResults;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tabled::builder::Builder;
use tabled::settings::Style;

/// Valid keys listed per checker before the rest are folded into one line.
const VALID_ROWS_MAX: usize = 10;

fn ms_text(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

fn verdict_text(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    }
}

/// A row's numbers: the run's stats rules (`faultline_checker::stats`) over some ops.
struct Counts {
    stats: Stats,
    p50: Option<f64>,
    p99: Option<f64>,
}

fn counts(ops: &[Op], pairs: &[&Pair]) -> Counts {
    let q = stats::latency_quantiles(ops, pairs.iter().copied(), &[0.5, 0.99]);
    Counts {
        stats: stats::of(ops, pairs.iter().copied()),
        p50: q[0],
        p99: q[1],
    }
}

fn row(b: &mut Builder, checker: &str, key: &str, verdict: &str, c: &Counts) {
    let s = &c.stats;
    b.push_record([
        checker.to_string(),
        key.to_string(),
        verdict.to_string(),
        s.ops.to_string(),
        s.ok.to_string(),
        s.fail.to_string(),
        s.info.to_string(),
        s.pending.to_string(),
        ms_text(c.p50),
        ms_text(c.p99),
    ]);
}

/// How to look at a report in a browser: `faultline serve` on its results folder (the run
/// folder's grandparent), and the report's address there.
fn open_hint(report: &Path) -> Option<String> {
    let run = report.parent()?;
    let test = run.parent()?;
    let root = test.parent()?;
    let root_text = if root.as_os_str().is_empty() {
        ".".into()
    } else {
        root.display().to_string()
    };
    Some(format!(
        "open it: faultline serve {root_text}   then http://127.0.0.1:8080/{}/{}/{}",
        test.file_name()?.to_string_lossy(),
        run.file_name()?.to_string_lossy(),
        report.file_name()?.to_string_lossy()
    ))
}

/// The summary of a checked history: per checker and per key, the verdict, op counts
/// (ok/fail/info/pending) and latency p50/p99 (ms, over answered ops), then the overall
/// verdict, the explanation of anything not valid, and the report's path and how to open it.
pub fn summary_for(history: &[Op], results: Option<&RunResults>, report: Option<&Path>) -> String {
    let pairs = pair_ops(history).clients;
    let mut by_key: BTreeMap<Option<Key>, Vec<&Pair>> = BTreeMap::new();
    for p in &pairs {
        by_key
            .entry(history[p.invoke].key.clone())
            .or_default()
            .push(p);
    }
    let all: Vec<&Pair> = pairs.iter().collect();
    let mut b = Builder::default();
    b.push_record([
        "checker", "key", "verdict", "ops", "ok", "fail", "info", "pending", "p50 ms", "p99 ms",
    ]);
    let empty = Vec::new();
    let key_counts = |k: &Option<Key>| counts(history, by_key.get(k).unwrap_or(&empty));
    match results {
        Some(r) => {
            for c in &r.checkers {
                let mut keyed: Vec<(Option<Key>, Validity)> =
                    c.keys().iter().map(|k| (k.key.clone(), k.valid)).collect();
                keyed.extend(c.locks().iter().map(|l| (l.key.clone(), l.valid)));
                if keyed.is_empty() {
                    row(
                        &mut b,
                        c.name(),
                        "(all)",
                        verdict_text(c.valid()),
                        &counts(history, &all),
                    );
                    continue;
                }
                let mut valid_shown = 0;
                let mut valid_folded: Vec<&Pair> = Vec::new();
                let mut folded_keys = 0;
                for (key, valid) in &keyed {
                    if *valid == Validity::Valid && valid_shown >= VALID_ROWS_MAX {
                        folded_keys += 1;
                        valid_folded.extend(by_key.get(key).unwrap_or(&empty));
                        continue;
                    }
                    valid_shown += usize::from(*valid == Validity::Valid);
                    row(
                        &mut b,
                        c.name(),
                        &key_text(key),
                        verdict_text(*valid),
                        &key_counts(key),
                    );
                }
                if folded_keys > 0 {
                    let label = format!("+{folded_keys} more keys");
                    row(
                        &mut b,
                        c.name(),
                        &label,
                        "valid",
                        &counts(history, &valid_folded),
                    );
                }
            }
            if r.checkers.is_empty() {
                row(
                    &mut b,
                    "(none)",
                    "(all)",
                    verdict_text(r.valid),
                    &counts(history, &all),
                );
            }
        }
        None => row(
            &mut b,
            "(not checked)",
            "(all)",
            "-",
            &counts(history, &all),
        ),
    }
    let verdict = Verdict::from_results(results);
    let mut out = b.build().with(Style::rounded()).to_string();
    out.push_str(&format!("\nverdict: {}", verdict.as_str().to_uppercase()));
    if verdict != Verdict::Valid {
        for line in explain(results).lines() {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    if let Some(p) = report {
        out.push_str(&format!("\nreport:  {}", p.display()));
        if let Some(hint) = open_hint(p) {
            out.push_str("\n  ");
            out.push_str(&hint);
        }
    }
    out.push('\n');
    // Keys and explanations come from the history: they must not drive the terminal.
    crate::escape::terminal(&out)
}

/// [`summary_for`] with the checker crate's own results (what `faultline check` holds).
pub fn summary_for_checked(
    history: &[Op],
    checked: &faultline_checker::Results,
    report: Option<&Path>,
) -> String {
    let results = RunResults {
        valid: checked.valid,
        checkers: checked.checkers.clone(),
        stats: None,
        error: None,
        warnings: Vec::new(),
    };
    summary_for(history, Some(&results), report)
}

/// The summary of a loaded run folder (see [`summary_for`]).
pub fn summary_table(run: &RunData) -> String {
    let report = run.dir.join(crate::run::REPORT_HTML);
    let report = report.exists().then_some(report);
    summary_for(&run.history, run.results.as_ref(), report.as_deref())
}

/// Prints the summary of a run folder to stdout and returns its verdict.
pub fn print_summary(run_dir: &Path) -> anyhow::Result<Verdict> {
    let run = RunData::load(run_dir)?;
    print!("{}", summary_table(&run));
    Ok(run.verdict())
}

/// A progress bar for a run of `total` (time-limited): set its position in elapsed whole
/// seconds. Draws on stderr, and nothing when stderr is not a terminal.
pub fn progress_bar(total: Duration, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(total.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} s  {prefix}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A progress bar for a check over `total` units (keys or ops): increment it as they finish.
pub fn check_progress(total: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    #[test]
    fn summary_names_every_key_its_counts_and_the_explanation() {
        let run = synth::register_run(&synth::RegisterSpec {
            seed: 7,
            ops: 400,
            bug: true,
            ..Default::default()
        });
        let results: RunResults = serde_json::from_value(run.results.clone()).unwrap();
        let text = summary_for(
            &run.history,
            Some(&results),
            Some(Path::new("results/reg/20261126T070000Z/report.html")),
        );
        assert!(text.contains("linearizable"), "{text}");
        assert!(text.contains("INVALID"), "{text}");
        assert!(
            text.contains("report:  results/reg/20261126T070000Z/report.html"),
            "{text}"
        );
        assert!(
            text.contains("faultline serve results   then http://127.0.0.1:8080/reg/20261126T070000Z/report.html"),
            "{text}"
        );
        let pairs = pair_ops(&run.history).clients;
        let k0: Vec<&Pair> = pairs
            .iter()
            .filter(|p| run.history[p.invoke].key == Some(Key::Str("k0".into())))
            .collect();
        let c = counts(&run.history, &k0);
        let k0_row = text
            .lines()
            .find(|l| l.contains(" k0 "))
            .expect("a row for k0");
        let s = &c.stats;
        for n in [s.ops, s.ok, s.fail, s.info, s.pending] {
            assert!(k0_row.contains(&format!(" {n} ")), "{k0_row} lacks {n}");
        }
        assert!(text.contains("cannot be linearized"), "{text}");
    }

    #[test]
    fn the_checker_crates_results_summarise_too() {
        let run = synth::register_run(&synth::RegisterSpec {
            seed: 31,
            ops: 300,
            bug: true,
            ..Default::default()
        });
        let checked = faultline_checker::check_history(&run.history, &Default::default()).unwrap();
        let text = summary_for_checked(&run.history, &checked, None);
        assert!(text.contains("verdict: INVALID"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains(" k0 ") && l.contains("INVALID")),
            "{text}"
        );
    }

    #[test]
    fn progress_bars_count_seconds_and_units() {
        assert_eq!(
            progress_bar(Duration::from_secs(30), "run").length(),
            Some(30)
        );
        assert_eq!(check_progress(7, "check").length(), Some(7));
    }

    #[test]
    fn an_unchecked_history_says_so() {
        let run = synth::register_run(&synth::RegisterSpec {
            seed: 1,
            ops: 50,
            ..Default::default()
        });
        let text = summary_for(&run.history, None, None);
        assert!(
            text.contains("(not checked)") && text.contains("CRASHED"),
            "{text}"
        );
    }
}
