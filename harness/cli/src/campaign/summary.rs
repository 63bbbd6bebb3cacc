//! A campaign's summary, one type for a whole campaign, one shard of it and a merge of
//! shards: summary.json, summary.html, junit.xml, the terminal tables and the exit code.

use super::file::{Expect, PlannedRun};
use super::rates::{row_stats, FailOn, RowStats, RunPoint};
use super::shard::Shard;
use anyhow::Context;
use faultline_checker::results::CheckerResult;
use faultline_checker::RunResults;
use faultline_report::escape::html;
use faultline_report::index::verdict_page;
use faultline_report::junit::{junit_document, write_xml, CaseOutcome, JunitCase};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use tabled::settings::Style;

pub const SUMMARY_JSON: &str = "summary.json";
pub const SUMMARY_HTML: &str = "summary.html";
pub const JUNIT_XML: &str = "junit.xml";

/// How a run ended, against what was expected.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    #[serde(flatten)]
    pub planned: PlannedRun,
    pub verdict: String,
    pub exit_code: i32,
    pub passed: bool,
    /// The run folder on the machine that ran it.
    pub run_dir: Option<PathBuf>,
    /// The run folder relative to its results folder (`<test>/<timestamp>`), which stays
    /// right when the results folder is moved (a CI artifact).
    #[serde(default)]
    pub run_path: Option<String>,
    pub report: Option<PathBuf>,
    pub ops: u64,
    pub duration_s: f64,
    pub explanation: String,
    /// Seconds into the workload at which the first violation was complete.
    #[serde(default)]
    pub first_violation_s: Option<f64>,
}

/// summary.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignSummary {
    pub campaign: String,
    /// The campaign file as given on the command line.
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub file_sha256: String,
    #[serde(default)]
    pub faultline_version: String,
    /// The campaign's seed, when the file names no seeds of its own.
    #[serde(default)]
    pub seed: Option<u64>,
    /// This summary's shard; None for a whole campaign (run unsharded, or merged).
    #[serde(default)]
    pub shard: Option<Shard>,
    /// For a merged summary: how many shards went into it.
    #[serde(default)]
    pub merged_shards: Option<u32>,
    /// For a merged summary: shards that were not found (their runs count as crashed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u32>,
    #[serde(default)]
    pub fail_on: String,
    /// When it started (the summary folder's name).
    #[serde(default)]
    pub started: String,
    /// Seconds from its start to its last run's end (for a merge: the longest shard's).
    #[serde(default)]
    pub wall_s: f64,
    /// The ids of the runs it was to do (`row#repetition`), done or not.
    #[serde(default)]
    pub planned: Vec<String>,
    pub runs: Vec<RunOutcome>,
    #[serde(default)]
    pub rows: Vec<RowStats>,
    pub passed: usize,
    pub total: usize,
    #[serde(default)]
    pub exit_code: u8,
}

/// Whether a verdict is what the run expected; `fail_on_unknown` decides for `unknown`.
pub fn judge(expect: Expect, verdict: &str, fail_on_unknown: bool) -> bool {
    match verdict {
        "unknown" => !fail_on_unknown,
        "valid" | "invalid" => verdict == expect.as_str(),
        _ => false,
    }
}

/// Whether a run's result is judged by its row's rate rather than by itself: a planted-bug
/// row with its own `detect_at_least`, or any under `--fail-on detect>=X`.
fn rated(o: &RunOutcome, fail_on: FailOn) -> bool {
    o.planned.expect == Expect::Invalid
        && (o.planned.detect_at_least.is_some() || fail_on.detect_min.is_some())
}

/// The campaign's exit code (DESIGN §3): 3 when a run crashed; 1 when a verdict was not
/// the expected one (or, with `detect>=X`, a planted-bug row was caught less often than
/// that); 2 when some were unknown (and `--fail-on unknown`); else 0.
pub fn exit_code(
    outcomes: &[RunOutcome],
    rows: &[RowStats],
    fail_on: FailOn,
    incomplete: bool,
) -> u8 {
    let missed = outcomes
        .iter()
        .any(|o| !o.passed && o.verdict != "unknown" && !rated(o, fail_on));
    let below = rows
        .iter()
        .any(|r| r.threshold(fail_on.detect_min).is_some_and(|x| r.below(x)));
    if incomplete || outcomes.iter().any(|o| o.verdict == "crashed") {
        3
    } else if missed || below {
        1
    } else if fail_on.unknown
        && outcomes
            .iter()
            .any(|o| o.verdict == "unknown" && !rated(o, fail_on))
    {
        2
    } else {
        0
    }
}

/// When the first violation of a run was complete: the earliest, over its invalid
/// checkers, of the moment the last op of a violation completed. Seconds since the start.
pub fn first_violation_s(results: &RunResults) -> Option<f64> {
    let mut first: Option<u64> = None;
    let mut note = |t: u64| first = Some(first.map_or(t, |f| f.min(t)));
    for c in &results.checkers {
        match c {
            CheckerResult::Linearizable(r) => {
                for key in &r.keys {
                    let Some(cx) = &key.counterexample else {
                        continue;
                    };
                    let end = cx
                        .ops
                        .iter()
                        .map(|o| o.complete_time.unwrap_or(o.invoke_time))
                        .max();
                    if let Some(t) = end {
                        note(t);
                    }
                }
            }
            CheckerResult::Mutex(r) => {
                for v in r.locks.iter().flat_map(|l| &l.violations) {
                    note(v.holds[0].start.max(v.holds[1].start));
                }
            }
            CheckerResult::Set(r) => {
                for s in r.sets.iter().filter(|s| !s.lost.is_empty()) {
                    if let Some(t) = s.final_read.as_ref().and_then(|o| o.complete_time) {
                        note(t);
                    }
                }
            }
            CheckerResult::Txn(_) | CheckerResult::Other => {}
        }
    }
    first.map(|ns| ns as f64 / 1e9)
}

impl CampaignSummary {
    /// Recomputes the counts, rows and exit code from `runs`.
    pub fn tally(&mut self, fail_on: FailOn) {
        self.runs.sort_by_key(|r| r.planned.index);
        for r in &mut self.runs {
            r.passed = judge(r.planned.expect, &r.verdict, fail_on.unknown);
        }
        self.rows = row_stats(self.runs.iter().map(|r| RunPoint {
            row: &r.planned.name,
            expect: r.planned.expect,
            detect_at_least: r.planned.detect_at_least,
            verdict: &r.verdict,
            duration_s: r.duration_s,
            first_violation_s: r.first_violation_s,
        }));
        self.passed = self.runs.iter().filter(|o| o.passed).count();
        self.total = self.runs.len();
        self.fail_on = fail_on.to_string();
        let incomplete = !self.missing_shards.is_empty() || self.runs.len() < self.planned.len();
        self.exit_code = exit_code(&self.runs, &self.rows, fail_on, incomplete);
    }

    /// The title: the campaign, and which shard or merge this is.
    pub fn title(&self) -> String {
        match (self.shard, self.merged_shards) {
            (Some(s), _) => format!("{} (shard {s})", self.campaign),
            (None, Some(n)) => format!("{} ({n} shards merged)", self.campaign),
            _ => self.campaign.clone(),
        }
    }

    pub fn load(dir: &Path) -> anyhow::Result<CampaignSummary> {
        let path = dir.join(SUMMARY_JSON);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a campaign summary", path.display()))
    }

    /// Writes summary.json, summary.html and junit.xml into `dir`, and the JUnit file to
    /// `junit_copy` too.
    pub fn write(
        &self,
        dir: &Path,
        junit_copy: Option<&Path>,
        fail_on: FailOn,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(&dir.join(SUMMARY_JSON), &json)?;
        write_atomic(&dir.join(SUMMARY_HTML), summary_html(self, dir).as_bytes())?;
        let xml = junit(self, fail_on);
        write_atomic(&dir.join(JUNIT_XML), xml.as_bytes())?;
        if let Some(path) = junit_copy {
            write_xml(&xml, path)?;
        }
        Ok(())
    }
}

/// Written beside and renamed, so a reader (`serve`, a merge) never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The JUnit document: one test case per run, judged against what its row expects; with
/// `detect>=X`, one more per planted-bug row for its rate, and a missed run in a row that
/// meets the threshold is `skipped`, not failed.
pub fn junit(summary: &CampaignSummary, fail_on: FailOn) -> String {
    let mut cases = Vec::new();
    for o in &summary.runs {
        let p = &o.planned;
        let text = format!(
            "expected {}, got {}: {}",
            p.expect.as_str(),
            o.verdict,
            o.explanation
        );
        let row_ok = summary
            .rows
            .iter()
            .find(|r| r.row == p.name)
            .and_then(|r| r.threshold(fail_on.detect_min).map(|x| (!r.below(x), x)));
        let outcome = if o.passed {
            CaseOutcome::Passed
        } else if o.verdict == "crashed" {
            CaseOutcome::Error {
                kind: o.verdict.clone(),
                text,
            }
        } else if let Some((true, x)) = row_ok.filter(|_| rated(o, fail_on)) {
            CaseOutcome::Skipped {
                text: format!(
                    "not caught in this run; its row's detection rate meets its threshold (>= {x}): {text}"
                ),
            }
        } else {
            CaseOutcome::Failure {
                kind: o.verdict.clone(),
                text,
            }
        };
        let mut system_out = format!("seed {}; ops {}", p.seed, o.ops);
        if let Some(report) = &o.report {
            let _ = write!(system_out, "\nreport: {}", report.display());
        }
        cases.push(JunitCase {
            classname: format!("faultline.{}.{}", p.db, p.workload),
            name: format!("{} seed {}", p.name, p.seed),
            time_s: o.duration_s,
            outcome,
            system_out,
        });
    }
    for r in &summary.rows {
        if let Some(x) = r.threshold(fail_on.detect_min) {
            let text = format!("detection rate {} (want >= {x})", r.rate_text());
            cases.push(JunitCase {
                classname: "faultline.campaign.detection".into(),
                name: r.row.clone(),
                time_s: 0.0,
                outcome: if r.below(x) {
                    CaseOutcome::Failure {
                        kind: "detection-rate".into(),
                        text: text.clone(),
                    }
                } else {
                    CaseOutcome::Passed
                },
                system_out: text,
            });
        }
    }
    junit_document(&summary.campaign, &cases)
}

fn seconds(s: Option<f64>) -> String {
    s.map_or("—".into(), |s| format!("{s:.1}"))
}

/// The per-row numbers as HTML table rows.
fn rows_html(rows: &[RowStats]) -> String {
    let mut out = String::new();
    for r in rows {
        let good = r.decided > 0
            && r.crashed == 0
            && match r.threshold(None) {
                Some(x) => !r.below(x),
                None => r.hits == r.decided,
            };
        let _ = writeln!(
            out,
            "<tr class=\"{cls}\"><td>{row}</td><td>{expect}</td><td class=\"num\">{runs}</td><td class=\"num\">{valid}</td><td class=\"num\">{invalid}</td><td class=\"num\">{unknown}</td><td class=\"num\">{crashed}</td><td class=\"num\">{rate}</td><td class=\"num\">{ttfv}</td><td class=\"num\">{dur}</td></tr>",
            cls = if good { "valid" } else { "invalid" },
            row = html(&r.row),
            expect = html(&r.expect_text()),
            runs = r.runs,
            valid = r.valid,
            invalid = r.invalid,
            unknown = r.unknown,
            crashed = r.crashed,
            rate = html(&r.rate_text()),
            ttfv = seconds(r.median_first_violation_s),
            dur = seconds(r.median_duration_s),
        );
    }
    out
}

/// Characters of a run's explanation shown in its row; the whole text is its tooltip.
const WHY_CHARS_MAX: usize = 160;

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

pub const ROW_COLUMNS: [&str; 10] = [
    "row",
    "expected",
    "runs",
    "valid",
    "invalid",
    "unknown",
    "crashed",
    "rate [95% Wilson]",
    "median s to 1st violation",
    "median s per run",
];

/// summary.html: the rows' rates, then every run with its verdict, linking to its report.
pub fn summary_html(s: &CampaignSummary, summary_dir: &Path) -> String {
    let mut runs = String::new();
    for o in &s.runs {
        let link = o.report.as_ref().map(|r| relative_link(summary_dir, r));
        let report = match link {
            Some(href) => format!("<a href=\"{}\">report</a>", html(&href)),
            None => "—".into(),
        };
        let p = &o.planned;
        let _ = writeln!(
            runs,
            "<tr class=\"{cls}\"><td>{name}</td><td>{db}</td><td>{workload}</td><td>{nemesis}</td><td>{bugs}</td><td class=\"num\">{seed}</td><td>{expect}</td><td><span class=\"badge {v}\">{verdict}</span>{mark}</td><td class=\"num\">{ops}</td><td class=\"num\">{dur:.1}</td><td class=\"num\">{ttfv}</td><td>{report}</td><td class=\"why\" title=\"{full}\">{expl}</td></tr>",
            // The row's colour says whether the run went as expected; the badge says its verdict.
            cls = match (o.passed, o.verdict.as_str()) {
                (true, _) => "valid",
                (false, v @ ("unknown" | "crashed")) => v,
                (false, _) => "invalid",
            },
            full = html(&o.explanation),
            v = match o.verdict.as_str() {
                v @ ("valid" | "invalid" | "unknown") => v,
                _ => "crashed",
            },
            name = html(&p.name),
            db = html(&p.db),
            workload = html(&p.workload),
            nemesis = html(&p.nemesis),
            bugs = html(&p.bugs.join(", ")),
            seed = p.seed,
            expect = p.expect.as_str(),
            verdict = html(&o.verdict),
            mark = if o.passed { "" } else { " ✗" },
            ops = o.ops,
            dur = o.duration_s,
            ttfv = seconds(o.first_violation_s),
            expl = html(&first_line(&o.explanation, WHY_CHARS_MAX)),
        );
    }
    let head: String = ROW_COLUMNS
        .iter()
        .map(|c| format!("<th>{}</th>", html(c)))
        .collect();
    let mut missing = match s.planned.len().saturating_sub(s.runs.len()) {
        0 => String::new(),
        n => format!(" {n} planned runs have no result."),
    };
    if !s.missing_shards.is_empty() {
        let list: Vec<String> = s.missing_shards.iter().map(u32::to_string).collect();
        let _ = write!(missing, " Shards not found: {}.", list.join(", "));
    }
    let intro = format!(
        "<p>{passed} of {total} runs got the verdict they expected.{missing} Exit code {code} (--fail-on {fail_on}). faultline {version}, campaign file {file} (sha256 {sha}).</p>\n\
         <h2>Rows</h2>\n<table class=\"rows\"><thead><tr>{head}</tr></thead><tbody>\n{rows}</tbody></table>\n<h2>Runs</h2>\n",
        passed = s.passed,
        total = s.total,
        missing = html(&missing),
        code = s.exit_code,
        fail_on = html(&s.fail_on),
        version = html(&s.faultline_version),
        file = html(&s.file),
        sha = html(s.file_sha256.get(..12).unwrap_or("")),
        rows = rows_html(&s.rows),
    );
    verdict_page(
        &format!("Campaign {}", s.title()),
        &intro,
        &[
            "run",
            "db",
            "workload",
            "nemesis",
            "bugs",
            "seed",
            "expected",
            "verdict",
            "ops",
            "seconds",
            "s to 1st violation",
            "report",
            "why",
        ],
        &runs,
        "",
    )
}

/// A link from the summary folder to a report, relative when both are under one root so the
/// results folder can be moved or served as a whole.
pub fn relative_link(from_dir: &Path, to: &Path) -> String {
    let (Ok(from), Ok(to)) = (std::fs::canonicalize(from_dir), std::fs::canonicalize(to)) else {
        return to.display().to_string();
    };
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.components().count() - common;
    let mut parts: Vec<String> = vec!["..".into(); ups];
    parts.extend(
        to.components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// The terminal tables: every run, then the rows' rates.
pub fn tables(s: &CampaignSummary) -> String {
    #[derive(tabled::Tabled)]
    struct Run {
        run: String,
        nemesis: String,
        seed: u64,
        expected: &'static str,
        verdict: String,
        ops: u64,
        seconds: String,
        report: String,
    }
    #[derive(tabled::Tabled)]
    struct Row {
        row: String,
        expected: String,
        runs: u64,
        valid: u64,
        invalid: u64,
        unknown: u64,
        crashed: u64,
        #[tabled(rename = "rate [95% Wilson]")]
        rate: String,
        #[tabled(rename = "median s to 1st violation")]
        ttfv: String,
    }
    let runs: Vec<Run> = s
        .runs
        .iter()
        .map(|o| Run {
            run: o.planned.name.clone(),
            nemesis: o.planned.nemesis.clone(),
            seed: o.planned.seed,
            expected: o.planned.expect.as_str(),
            verdict: if o.passed {
                o.verdict.clone()
            } else {
                format!("{} ✗", o.verdict)
            },
            ops: o.ops,
            seconds: format!("{:.1}", o.duration_s),
            report: o
                .report
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        })
        .collect();
    let rows: Vec<Row> = s
        .rows
        .iter()
        .map(|r| Row {
            row: r.row.clone(),
            expected: r.expect_text(),
            runs: r.runs,
            valid: r.valid,
            invalid: r.invalid,
            unknown: r.unknown,
            crashed: r.crashed,
            rate: r.rate_text(),
            ttfv: seconds(r.median_first_violation_s),
        })
        .collect();
    format!(
        "{}\n{}",
        tabled::Table::new(runs).with(Style::sharp()),
        tabled::Table::new(rows).with(Style::sharp())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_report::Verdict;

    pub(crate) fn outcome(expect: Expect, verdict: Verdict, fail_on_unknown: bool) -> RunOutcome {
        RunOutcome {
            planned: PlannedRun::sample(0, "t", expect, 45.0),
            verdict: verdict.as_str().into(),
            exit_code: 0,
            passed: judge(expect, verdict.as_str(), fail_on_unknown),
            run_dir: None,
            run_path: None,
            report: None,
            ops: 10,
            duration_s: 1.0,
            explanation: "two holders <n1> & <n2>".into(),
            first_violation_s: None,
        }
    }

    fn summary(runs: Vec<RunOutcome>, fail_on: FailOn) -> CampaignSummary {
        let mut s = CampaignSummary {
            campaign: "mini".into(),
            file: "mini.toml".into(),
            file_sha256: "ab".repeat(32),
            faultline_version: "0.1.0".into(),
            seed: None,
            shard: None,
            merged_shards: None,
            missing_shards: vec![],
            fail_on: String::new(),
            started: String::new(),
            wall_s: 0.0,
            planned: runs.iter().map(|r| r.planned.id()).collect(),
            runs,
            rows: vec![],
            passed: 0,
            total: 0,
            exit_code: 0,
        };
        s.tally(fail_on);
        s
    }

    fn codes(runs: &[RunOutcome], fail_on: FailOn) -> u8 {
        summary(runs.to_vec(), fail_on).exit_code
    }

    #[test]
    fn exit_codes_follow_design_with_expectations() {
        let strict = FailOn::default();
        let valid = outcome(Expect::Valid, Verdict::Valid, true);
        let caught = outcome(Expect::Invalid, Verdict::Invalid, true);
        let missed = outcome(Expect::Invalid, Verdict::Valid, true);
        let unknown = outcome(Expect::Valid, Verdict::Unknown, true);
        let crashed = outcome(Expect::Valid, Verdict::Crashed, true);
        assert_eq!(codes(&[valid.clone(), caught.clone()], strict), 0);
        assert_eq!(codes(&[valid.clone(), missed.clone()], strict), 1);
        assert_eq!(codes(&[valid.clone(), unknown.clone()], strict), 2);
        let lenient: FailOn = "invalid".parse().unwrap();
        let tolerated = outcome(Expect::Valid, Verdict::Unknown, false);
        assert_eq!(codes(&[valid.clone(), tolerated], lenient), 0);
        assert_eq!(codes(&[missed, unknown, crashed], strict), 3);
    }

    fn bug_row(caught: usize, of: usize) -> Vec<RunOutcome> {
        (0..of)
            .map(|i| {
                let verdict = if i < caught {
                    Verdict::Invalid
                } else {
                    Verdict::Valid
                };
                let mut o = outcome(Expect::Invalid, verdict, true);
                o.planned.index = i;
                o.planned.rep = i as u32;
                o
            })
            .collect()
    }

    #[test]
    fn a_detection_threshold_judges_planted_bug_rows_by_their_rate() {
        let threshold: FailOn = "detect>=0.9".parse().unwrap();
        assert_eq!(codes(&bug_row(9, 10), threshold), 0);
        assert_eq!(
            codes(&bug_row(9, 10), FailOn::default()),
            1,
            "without it every run counts"
        );
        assert_eq!(codes(&bug_row(8, 10), threshold), 1);
        // Controls are still judged run by run.
        let mut runs = bug_row(10, 10);
        let mut control = outcome(Expect::Valid, Verdict::Invalid, true);
        control.planned.name = "control".into();
        runs.push(control);
        assert_eq!(codes(&runs, threshold), 1);

        let s = summary(bug_row(9, 10), threshold);
        let doc = junit(&s, threshold);
        let parsed = roxmltree::Document::parse(&doc).unwrap();
        let suite = parsed
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        assert_eq!(suite.attribute("tests"), Some("11"), "10 runs and 1 rate");
        assert_eq!(suite.attribute("failures"), Some("0"));
        assert_eq!(suite.attribute("skipped"), Some("1"));
        let rate = parsed
            .descendants()
            .find(|n| n.attribute("classname") == Some("faultline.campaign.detection"))
            .unwrap();
        assert!(rate.descendants().any(|n| n
            .text()
            .is_some_and(|t| t.contains("9/10 = 0.90 [0.60, 0.98]"))));
        let low = summary(bug_row(7, 10), threshold);
        assert!(junit(&low, threshold).contains("type=\"detection-rate\""));
    }

    #[test]
    fn a_rows_own_detect_at_least_judges_it_by_its_rate_without_fail_on() {
        let row = |caught, of| {
            let mut runs = bug_row(caught, of);
            for r in &mut runs {
                r.planned.detect_at_least = Some(0.2);
            }
            runs
        };
        let strict = FailOn::default();
        assert_eq!(codes(&row(2, 10), strict), 0, "2/10 meets 0.2");
        assert_eq!(codes(&row(1, 10), strict), 1, "1/10 does not");
        // A stricter --fail-on does not override the row's own threshold.
        let threshold: FailOn = "detect>=0.9".parse().unwrap();
        assert_eq!(codes(&row(3, 10), threshold), 0);
        // Other rows are judged as before: an invalid control still fails the campaign.
        let mut runs = row(10, 10);
        let mut control = outcome(Expect::Valid, Verdict::Invalid, true);
        control.planned.name = "control".into();
        runs.push(control);
        assert_eq!(codes(&runs, strict), 1);

        let s = summary(row(2, 10), strict);
        let doc = junit(&s, strict);
        assert_eq!(doc.matches("<skipped").count(), 8, "{doc}");
        assert!(doc.contains("meets its threshold (&gt;= 0.2)"), "{doc}");
        assert!(doc.contains("detection rate 2/10 = 0.20"), "{doc}");
        assert_eq!(doc.matches("<failure ").count(), 0, "{doc}");
        let low = summary(row(1, 10), strict);
        assert!(junit(&low, strict).contains("type=\"detection-rate\""));
    }

    #[test]
    fn junit_has_one_case_per_run_and_escapes_explanations() {
        let runs = vec![
            outcome(Expect::Valid, Verdict::Valid, true),
            outcome(Expect::Valid, Verdict::Invalid, true),
        ];
        let doc = junit(&summary(runs, FailOn::default()), FailOn::default());
        assert_eq!(doc.matches("<testcase ").count(), 2);
        assert_eq!(doc.matches("<failure ").count(), 1);
        assert!(doc.contains("tests=\"2\" failures=\"1\" errors=\"0\""));
        assert!(doc.contains("&lt;n1&gt; &amp; &lt;n2&gt;"));
        assert!(!doc.contains("<n1>"));
    }

    #[test]
    fn the_summary_page_shows_rows_and_escapes_everything() {
        let mut runs = bug_row(9, 10);
        runs[0].first_violation_s = Some(3.25);
        runs[0].explanation = "<script>x</script>".into();
        let s = summary(runs, FailOn::default());
        let page = summary_html(&s, Path::new("/nonexistent"));
        assert!(page.contains("9/10 = 0.90 [0.60, 0.98]"));
        assert!(page.contains("9 of 10 runs got the verdict they expected"));
        assert!(
            page.contains(">3.2<") || page.contains(">3.3<"),
            "time to violation"
        );
        assert!(!page.contains("<script>"));
    }
}
