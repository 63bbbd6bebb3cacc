//! JUnit XML for CI, the one writer of it: `faultline run|report --junit` (one test case per
//! run, judged by its verdict) and `faultline campaign` (one per run, judged against what
//! its row expects, plus one per detection-rate threshold).

use crate::escape::xml;
use crate::model::Verdict;
use crate::run::RunSummary;
use anyhow::Context;
use std::fmt::Write;
use std::path::Path;

/// Characters of a failure's `message` attribute; the whole text is its body.
const MESSAGE_CHARS_MAX: usize = 500;

/// How one test case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseOutcome {
    Passed,
    /// Not what was wanted (an invalid run, a planted bug missed): `kind` is the verdict.
    Failure {
        kind: String,
        text: String,
    },
    /// The test could not say (unknown, crashed).
    Error {
        kind: String,
        text: String,
    },
    /// Neither: e.g. a missed detection inside a row whose rate meets its threshold.
    Skipped {
        text: String,
    },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitCase {
    pub classname: String,
    pub name: String,
    pub time_s: f64,
    pub outcome: CaseOutcome,
    pub system_out: String,
}

impl JunitCase {
    /// A run judged by its verdict alone: invalid fails, unknown and crashed are errors.
    pub fn for_run(r: &RunSummary) -> JunitCase {
        let classname = match (r.db.is_empty(), r.workload.is_empty()) {
            (false, false) => format!("faultline.{}.{}", r.db, r.workload),
            _ => "faultline".to_string(),
        };
        let name = if r.run_id.is_empty() {
            r.test_name.clone()
        } else {
            format!("{}/{}", r.test_name, r.run_id)
        };
        let text = if r.explanation.is_empty() {
            format!("the run is {}", r.verdict.as_str())
        } else {
            r.explanation.clone()
        };
        let kind = r.verdict.as_str().to_string();
        let outcome = match r.verdict {
            Verdict::Valid => CaseOutcome::Passed,
            Verdict::Invalid => CaseOutcome::Failure { kind, text },
            Verdict::Unknown | Verdict::Crashed => CaseOutcome::Error { kind, text },
        };
        let mut system_out = format!(
            "ops {} (ok {}, fail {}, info {}); nemesis: {}",
            r.ops,
            r.ok,
            r.fail,
            r.info,
            r.nemesis.join(",")
        );
        if let Some(report) = &r.report {
            let _ = write!(system_out, "\nreport: {}", report.display());
        }
        JunitCase {
            classname,
            name,
            time_s: r.duration_s,
            outcome,
            system_out,
        }
    }
}

/// The first line of a text, at most `max` characters: a failure's `message` attribute.
fn headline(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    } else {
        line.to_string()
    }
}

/// The JUnit XML document: one `testsuite` named `suite` holding `cases`.
pub fn junit_document(suite: &str, cases: &[JunitCase]) -> String {
    let count = |f: fn(&CaseOutcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let failures = count(|o| matches!(o, CaseOutcome::Failure { .. }));
    let errors = count(|o| matches!(o, CaseOutcome::Error { .. }));
    let skipped = count(|o| matches!(o, CaseOutcome::Skipped { .. }));
    let time: f64 = cases.iter().map(|c| c.time_s).sum();
    let tests = cases.len();
    let suite = xml(suite);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"faultline\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\">"
    );
    for c in cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
            xml(&c.classname),
            xml(&c.name),
            c.time_s
        );
        let element = match &c.outcome {
            CaseOutcome::Passed => None,
            CaseOutcome::Failure { kind, text } => Some(("failure", Some(kind), text)),
            CaseOutcome::Error { kind, text } => Some(("error", Some(kind), text)),
            CaseOutcome::Skipped { text } => Some(("skipped", None, text)),
        };
        if let Some((element, kind, text)) = element {
            let kind = kind.map_or(String::new(), |k| format!(" type=\"{}\"", xml(k)));
            let _ = write!(
                out,
                "\n      <{element}{kind} message=\"{}\">{}</{element}>",
                xml(&headline(text, MESSAGE_CHARS_MAX)),
                xml(text)
            );
        }
        let _ = writeln!(
            out,
            "\n      <system-out>{}</system-out>\n    </testcase>",
            xml(&c.system_out)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// The JUnit XML document for a set of runs, each judged by its verdict.
pub fn junit_xml(runs: &[RunSummary]) -> String {
    let cases: Vec<JunitCase> = runs.iter().map(JunitCase::for_run).collect();
    junit_document("faultline", &cases)
}

/// Writes `xml` to `path`, creating its folder.
pub fn write_xml(xml: &str, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes [`junit_xml`] to `path`.
pub fn write_junit(runs: &[RunSummary], path: &Path) -> anyhow::Result<()> {
    write_xml(&junit_xml(runs), path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn run(name: &str, verdict: Verdict, explanation: &str) -> RunSummary {
        RunSummary {
            test_name: name.into(),
            run_id: "20261126T070000Z".into(),
            run_dir: PathBuf::from("results").join(name),
            db: "raft".into(),
            workload: "register".into(),
            nemesis: vec!["partition".into()],
            start_time: String::new(),
            verdict,
            duration_s: 1.5,
            ops: 10,
            ok: 8,
            fail: 1,
            info: 1,
            explanation: explanation.into(),
            report: Some(PathBuf::from("results/x/report.html")),
        }
    }

    #[test]
    fn the_file_reads_back_with_one_case_per_run() {
        let runs = vec![
            run("ok-run", Verdict::Valid, ""),
            run(
                "bad<run>",
                Verdict::Invalid,
                "key k0: read 3 \u{1}after \"write 4\" & ]]>\nmore",
            ),
            run("slow", Verdict::Unknown, "time limit reached"),
            run("broken", Verdict::Crashed, "ssh n1: connection refused"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ci/junit.xml");
        write_junit(&runs, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let suite = root
            .children()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        assert_eq!(suite.attribute("tests"), Some("4"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("errors"), Some("2"));
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 4);
        assert_eq!(
            cases[1].attribute("name"),
            Some("bad<run>/20261126T070000Z")
        );
        assert_eq!(
            cases[1].attribute("classname"),
            Some("faultline.raft.register")
        );
        assert!(cases[0]
            .children()
            .all(|c| !c.has_tag_name("failure") && !c.has_tag_name("error")));
        let failure = cases[1]
            .children()
            .find(|c| c.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("key k0: read 3 after \"write 4\" & ]]>")
        );
        assert_eq!(
            failure.text(),
            Some("key k0: read 3 after \"write 4\" & ]]>\nmore")
        );
        let error = cases[3]
            .children()
            .find(|c| c.has_tag_name("error"))
            .unwrap();
        assert_eq!(error.attribute("type"), Some("crashed"));
        assert!(error.text().unwrap().contains("connection refused"));
        let out = cases[0]
            .children()
            .find(|c| c.has_tag_name("system-out"))
            .unwrap();
        assert!(out
            .text()
            .unwrap()
            .contains("report: results/x/report.html"));
    }
}
