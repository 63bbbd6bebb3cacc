//! `faultline campaign FILE.toml`: runs a matrix of tests (dbs × workloads × nemeses ×
//! repetitions) against one cluster, then writes one summary (terminal table, summary.json,
//! summary.html, JUnit) and exits as DESIGN §3 says.
//!
//! Each run is a child `faultline run` process: a run that crashes or hangs cannot take the
//! campaign down with it, and every run folder is exactly what a single run writes.

use anyhow::{bail, Context};
use clap::Args;
use faultline_control::local_cluster::{self, ClusterConfig};
use faultline_control::SshArgs;
use faultline_report::escape::{html, xml};
use faultline_report::{RunSummary, Verdict};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use tabled::settings::Style;

#[derive(Args)]
pub struct CampaignArgs {
    /// The campaign file (TOML; see workloads/campaigns/).
    pub file: PathBuf,
    /// Where run folders and the campaign summary go.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results_dir: PathBuf,
    /// Also write the JUnit report here (it is always written into the summary folder).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// What fails the campaign: `invalid` (unknown verdicts pass) or `unknown` (they fail too).
    #[arg(long, default_value = "unknown", value_parser = ["invalid", "unknown"])]
    pub fail_on: String,
    /// Print the planned runs and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Hosts of the local cluster when neither --nodes nor --nodes-file is given.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub local_nodes: u16,
    /// Which local cluster (its namespaces, subnet 10.77.<id>.0/24) to use.
    #[arg(long, default_value_t = 0)]
    pub local_cluster_id: u8,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// The campaign file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    pub name: String,
    /// Seconds of workload per run.
    #[serde(default = "default_time_limit")]
    pub time_limit_s: f64,
    #[serde(default = "default_repetitions")]
    pub repetitions: u32,
    /// Seed of repetition i is `seeds[i % len]`; random (and recorded) when empty.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Further `faultline run` options for every run, e.g. `["--concurrency", "10"]`.
    #[serde(default)]
    pub run_args: Vec<String>,
    #[serde(default)]
    pub matrix: Vec<Matrix>,
}

fn default_time_limit() -> f64 {
    30.0
}

fn default_repetitions() -> u32 {
    1
}

/// A cross product of runs. `nemesis` entries are `--nemesis` values (`partition,kill`)
/// or `none`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub db: Vec<String>,
    pub workload: Vec<String>,
    #[serde(default = "no_nemesis")]
    pub nemesis: Vec<String>,
    /// Planted bugs for every run of this matrix.
    #[serde(default)]
    pub bug: Vec<String>,
    /// The verdict these runs should get: `valid` (default) or `invalid` (a planted bug the
    /// harness must catch).
    #[serde(default)]
    pub expect: Expect,
    /// Further `faultline run` options for these runs only.
    #[serde(default)]
    pub run_args: Vec<String>,
}

fn no_nemesis() -> Vec<String> {
    vec!["none".into()]
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Valid,
    Invalid,
}

/// One planned run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRun {
    pub name: String,
    pub db: String,
    pub workload: String,
    pub nemesis: String,
    pub bugs: Vec<String>,
    pub seed: u64,
    pub expect: Expect,
    pub args: Vec<String>,
}

/// How a run ended, against what was expected.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    #[serde(flatten)]
    pub planned: PlannedRun,
    pub verdict: String,
    pub exit_code: i32,
    pub passed: bool,
    pub run_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub ops: u64,
    pub duration_s: f64,
    pub explanation: String,
}

/// A test name made of safe characters, since it becomes a folder.
fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Expands the matrices into runs, in file order; `random_seed` supplies seeds when the file
/// names none.
pub fn plan(
    campaign: &CampaignFile,
    mut random_seed: impl FnMut() -> u64,
) -> anyhow::Result<Vec<PlannedRun>> {
    if campaign.matrix.is_empty() {
        bail!("campaign {:?} has no [[matrix]]", campaign.name);
    }
    if !(campaign.time_limit_s.is_finite() && campaign.time_limit_s > 0.0) {
        bail!("time_limit_s must be a positive number of seconds");
    }
    let mut runs = Vec::new();
    for rep in 0..campaign.repetitions {
        let seed = match campaign.seeds.is_empty() {
            true => random_seed(),
            false => campaign.seeds[rep as usize % campaign.seeds.len()],
        };
        for m in &campaign.matrix {
            for db in &m.db {
                for workload in &m.workload {
                    for nemesis in &m.nemesis {
                        let mut label = format!("{}-{db}-{workload}-{nemesis}", campaign.name);
                        for bug in &m.bug {
                            label.push_str(&format!("-{bug}"));
                        }
                        let mut args = vec![
                            "--db".to_string(),
                            db.clone(),
                            "--workload".into(),
                            workload.clone(),
                            "--time-limit".into(),
                            campaign.time_limit_s.to_string(),
                            "--seed".into(),
                            seed.to_string(),
                            "--name".into(),
                            slug(&label),
                        ];
                        if nemesis != "none" {
                            args.extend(["--nemesis".into(), nemesis.clone()]);
                        }
                        for bug in &m.bug {
                            args.extend(["--bug".into(), bug.clone()]);
                        }
                        args.extend(campaign.run_args.iter().cloned());
                        args.extend(m.run_args.iter().cloned());
                        runs.push(PlannedRun {
                            name: slug(&label),
                            db: db.clone(),
                            workload: workload.clone(),
                            nemesis: nemesis.clone(),
                            bugs: m.bug.clone(),
                            seed,
                            expect: m.expect,
                            args,
                        });
                    }
                }
            }
        }
    }
    Ok(runs)
}

/// The SSH options, as `faultline run` arguments, so every run reaches the same hosts.
fn ssh_run_args(ssh: &SshArgs) -> Vec<String> {
    let mut args = Vec::new();
    if !ssh.nodes.is_empty() {
        args.extend(["--nodes".into(), ssh.nodes.join(",")]);
    }
    if let Some(file) = &ssh.nodes_file {
        args.extend(["--nodes-file".into(), file.display().to_string()]);
    }
    args.extend(["--username".into(), ssh.username.clone()]);
    if let Some(key) = &ssh.ssh_private_key {
        args.extend(["--ssh-private-key".into(), key.display().to_string()]);
    }
    args.extend(["--ssh-port".into(), ssh.ssh_port.to_string()]);
    if ssh.strict_host_key_checking {
        args.push("--strict-host-key-checking".into());
    }
    args.extend([
        "--ssh-connect-timeout".into(),
        ssh.ssh_connect_timeout.to_string(),
    ]);
    args
}

/// Whether a verdict is what the run expected; `fail_on_unknown` decides for `unknown`.
fn judge(expect: Expect, verdict: Verdict, fail_on_unknown: bool) -> bool {
    match (expect, verdict) {
        (_, Verdict::Crashed) => false,
        (_, Verdict::Unknown) => !fail_on_unknown,
        (Expect::Valid, Verdict::Valid) | (Expect::Invalid, Verdict::Invalid) => true,
        _ => false,
    }
}

/// The campaign's exit code (DESIGN §3): 3 when a run crashed, 1 when a verdict was not the
/// expected one, 2 when some were unknown (and `--fail-on unknown`), else 0.
pub fn exit_code(outcomes: &[RunOutcome], fail_on_unknown: bool) -> u8 {
    if outcomes.iter().any(|o| o.verdict == "crashed") {
        3
    } else if outcomes.iter().any(|o| !o.passed && o.verdict != "unknown") {
        1
    } else if fail_on_unknown && outcomes.iter().any(|o| o.verdict == "unknown") {
        2
    } else {
        0
    }
}

fn verdict_of(exit_code: i32, summary: Option<&RunSummary>) -> Verdict {
    match summary {
        Some(s) if exit_code != 3 => s.verdict,
        _ => Verdict::Crashed,
    }
}

/// Runs one planned run as a child process and reads back its run folder.
fn execute(
    planned: &PlannedRun,
    args: &CampaignArgs,
    exe: &Path,
    fail_on_unknown: bool,
) -> RunOutcome {
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .args(&planned.args)
        .arg("--results-dir")
        .arg(&args.results_dir)
        .arg("--local-nodes")
        .arg(args.local_nodes.to_string())
        .arg("--local-cluster-id")
        .arg(args.local_cluster_id.to_string())
        .args(ssh_run_args(&args.ssh));
    let started = Instant::now();
    let status = cmd.status();
    let exit_code = match &status {
        Ok(s) => s.code().unwrap_or(3),
        Err(_) => 3,
    };
    let latest = args.results_dir.join(&planned.name).join("latest");
    // A run folder older than this run belongs to an earlier campaign: not ours.
    let run_dir = std::fs::canonicalize(&latest).ok().filter(|dir| {
        std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t + Duration::from_secs(1) >= SystemTime::now() - started.elapsed())
    });
    let summary = run_dir
        .as_deref()
        .and_then(|dir| RunSummary::load(dir).ok());
    let verdict = verdict_of(exit_code, summary.as_ref());
    let explanation = match (&status, &summary) {
        (Err(err), _) => format!("could not start faultline run: {err}"),
        (_, Some(s)) => s.explanation.clone(),
        (_, None) => format!("faultline run exited with {exit_code} and left no run folder"),
    };
    RunOutcome {
        planned: planned.clone(),
        verdict: verdict.as_str().to_string(),
        exit_code,
        passed: judge(planned.expect, verdict, fail_on_unknown),
        report: summary.as_ref().and_then(|s| s.report.clone()),
        ops: summary.as_ref().map_or(0, |s| s.ops),
        duration_s: started.elapsed().as_secs_f64(),
        run_dir,
        explanation,
    }
}

/// The JUnit document: one test case per run; a run whose verdict is not the expected one
/// is a failure carrying the checker's explanation.
pub fn junit(campaign: &str, outcomes: &[RunOutcome]) -> String {
    let failures = outcomes
        .iter()
        .filter(|o| !o.passed && o.verdict != "crashed")
        .count();
    let errors = outcomes.iter().filter(|o| o.verdict == "crashed").count();
    let time: f64 = outcomes.iter().map(|o| o.duration_s).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"faultline\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">\n",
        outcomes.len()
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time:.3}\">\n",
        xml(campaign),
        outcomes.len()
    ));
    for o in outcomes {
        out.push_str(&format!(
            "    <testcase classname=\"faultline.{}.{}\" name=\"{} seed {}\" time=\"{:.3}\">\n",
            xml(&o.planned.db),
            xml(&o.planned.workload),
            xml(&o.planned.name),
            o.planned.seed,
            o.duration_s
        ));
        if !o.passed {
            let element = if o.verdict == "crashed" {
                "error"
            } else {
                "failure"
            };
            let message = format!(
                "expected {}, got {}: {}",
                serde_json::to_value(o.planned.expect)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                o.verdict,
                o.explanation.lines().next().unwrap_or("")
            );
            out.push_str(&format!(
                "      <{element} type=\"{}\" message=\"{}\">{}</{element}>\n",
                xml(&o.verdict),
                xml(&message),
                xml(&o.explanation)
            ));
        }
        if let Some(report) = &o.report {
            out.push_str(&format!(
                "      <system-out>report: {}</system-out>\n",
                xml(&report.display().to_string())
            ));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// summary.html: every run with its verdict, coloured, linking to its report.
pub fn summary_html(campaign: &str, outcomes: &[RunOutcome], summary_dir: &Path) -> String {
    let mut rows = String::new();
    for o in outcomes {
        let link = o.report.as_ref().map(|r| relative_link(summary_dir, r));
        let report = match link {
            Some(href) => format!("<a href=\"{}\">report</a>", html(&href)),
            None => "—".into(),
        };
        rows.push_str(&format!(
            "<tr class=\"{cls}\"><td>{name}</td><td>{db}</td><td>{workload}</td><td>{nemesis}</td><td>{bugs}</td><td>{seed}</td><td>{expect}</td><td class=\"v\">{verdict}</td><td>{ops}</td><td>{dur:.1}</td><td>{report}</td><td class=\"x\">{expl}</td></tr>\n",
            cls = if o.passed { "pass" } else { "fail" },
            name = html(&o.planned.name),
            db = html(&o.planned.db),
            workload = html(&o.planned.workload),
            nemesis = html(&o.planned.nemesis),
            bugs = html(&o.planned.bugs.join(", ")),
            seed = o.planned.seed,
            expect = if o.planned.expect == Expect::Invalid { "invalid" } else { "valid" },
            verdict = html(&o.verdict),
            ops = o.ops,
            dur = o.duration_s,
            expl = html(o.explanation.lines().next().unwrap_or("")),
        ));
    }
    let passed = outcomes.iter().filter(|o| o.passed).count();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
<title>faultline campaign {title}</title>\n<style>\n\
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\n\
td,th{{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}}\n\
tr.pass td.v{{background:#d7f5d7}}tr.fail td.v{{background:#ffd0d0;font-weight:bold}}td.x{{max-width:40em;color:#555}}\n\
</style></head><body>\n<h1>Campaign {title}</h1>\n<p>{passed} of {total} runs got the verdict they expected.</p>\n\
<table><thead><tr><th>run</th><th>db</th><th>workload</th><th>nemesis</th><th>bugs</th><th>seed</th><th>expected</th><th>verdict</th><th>ops</th><th>seconds</th><th>report</th><th>why</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n</body></html>\n",
        title = html(campaign),
        total = outcomes.len(),
    )
}

/// A link from the summary folder to a report, relative when both are under one root so the
/// results folder can be moved or served as a whole.
fn relative_link(from_dir: &Path, to: &Path) -> String {
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

fn table(outcomes: &[RunOutcome]) -> String {
    #[derive(tabled::Tabled)]
    struct Row {
        run: String,
        nemesis: String,
        seed: u64,
        expected: &'static str,
        verdict: String,
        ops: u64,
        seconds: String,
        report: String,
    }
    let rows: Vec<Row> = outcomes
        .iter()
        .map(|o| Row {
            run: o.planned.name.clone(),
            nemesis: o.planned.nemesis.clone(),
            seed: o.planned.seed,
            expected: if o.planned.expect == Expect::Invalid {
                "invalid"
            } else {
                "valid"
            },
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
    tabled::Table::new(rows).with(Style::sharp()).to_string()
}

pub fn run(args: CampaignArgs) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let campaign: CampaignFile = toml::from_str(&text)
        .with_context(|| format!("in campaign file {}", args.file.display()))?;
    let runs = plan(&campaign, rand::random)?;
    if args.dry_run {
        for r in &runs {
            println!("faultline run {}", r.args.join(" "));
        }
        return Ok(0);
    }
    let fail_on_unknown = args.fail_on == "unknown";
    let exe = std::env::current_exe().context("cannot find the faultline executable")?;

    // One cluster for the whole campaign: each run finds it up and leaves it up; it goes
    // down at the end only if the campaign brought it up.
    let local = args.ssh.hosts()?.is_none();
    let brought_up = if local {
        let was_up = local_cluster::status(args.local_cluster_id)?.is_some();
        local_cluster::up(&ClusterConfig {
            id: args.local_cluster_id,
            nodes: args.local_nodes as usize,
        })?;
        !was_up
    } else {
        false
    };

    let stamp = faultline_report::run_dir_name(SystemTime::now());
    let summary_dir = args
        .results_dir
        .join("campaigns")
        .join(slug(&campaign.name))
        .join(&stamp);
    std::fs::create_dir_all(&summary_dir)
        .with_context(|| format!("cannot create {}", summary_dir.display()))?;
    let mut outcomes = Vec::new();
    for (i, planned) in runs.iter().enumerate() {
        eprintln!(
            "faultline campaign: run {}/{}: {}",
            i + 1,
            runs.len(),
            planned.name
        );
        outcomes.push(execute(planned, &args, &exe, fail_on_unknown));
        // Written after every run, so an interrupted campaign still says what it did.
        write_summary(
            &campaign.name,
            &outcomes,
            &summary_dir,
            args.junit.as_deref(),
        )?;
    }
    if brought_up {
        if let Err(err) = local_cluster::down(args.local_cluster_id) {
            eprintln!("faultline campaign: local cluster down failed: {err:#}");
        }
    }
    println!("{}", table(&outcomes));
    let code = exit_code(&outcomes, fail_on_unknown);
    println!(
        "campaign {}: {} of {} runs as expected; summary {}",
        campaign.name,
        outcomes.iter().filter(|o| o.passed).count(),
        outcomes.len(),
        summary_dir.join("summary.html").display()
    );
    let _ = faultline_report::update_index(&args.results_dir);
    Ok(code)
}

fn write_summary(
    name: &str,
    outcomes: &[RunOutcome],
    dir: &Path,
    junit_copy: Option<&Path>,
) -> anyhow::Result<()> {
    let json = serde_json::json!({
        "campaign": name,
        "runs": outcomes,
        "passed": outcomes.iter().filter(|o| o.passed).count(),
        "total": outcomes.len(),
    });
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&json)?)?;
    std::fs::write(dir.join("summary.html"), summary_html(name, outcomes, dir))?;
    let xml = junit(name, outcomes);
    std::fs::write(dir.join("junit.xml"), &xml)?;
    if let Some(path) = junit_copy {
        std::fs::write(path, &xml).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
name = "mini"
time_limit_s = 5
repetitions = 2
seeds = [7, 8]
run_args = ["--concurrency", "4"]

[[matrix]]
db = ["raft", "paxos"]
workload = ["register"]
nemesis = ["none", "partition,kill"]

[[matrix]]
db = ["raft"]
workload = ["register"]
nemesis = ["partition"]
bug = ["stale-read"]
expect = "invalid"
"#;

    #[test]
    fn plans_the_cross_product_with_seeds_per_repetition() {
        let campaign: CampaignFile = toml::from_str(FILE).unwrap();
        let runs = plan(&campaign, || unreachable!("seeds are given")).unwrap();
        assert_eq!(runs.len(), 2 * (2 * 2 + 1));
        assert!(runs[..5].iter().all(|r| r.seed == 7));
        assert!(runs[5..].iter().all(|r| r.seed == 8));
        let bugged = &runs[4];
        assert_eq!(bugged.name, "mini-raft-register-partition-stale-read");
        assert_eq!(bugged.expect, Expect::Invalid);
        assert!(bugged.args.windows(2).any(|w| w == ["--bug", "stale-read"]));
        let quiet = &runs[0];
        assert!(!quiet.args.contains(&"--nemesis".to_string()));
        assert!(runs[1]
            .args
            .windows(2)
            .any(|w| w == ["--nemesis", "partition,kill"]));
        assert!(quiet.args.windows(2).any(|w| w == ["--concurrency", "4"]));
        assert_eq!(runs[1].name, "mini-raft-register-partition-kill");
    }

    #[test]
    fn unknown_fields_and_empty_matrices_are_refused() {
        let err = toml::from_str::<CampaignFile>("name = \"x\"\ntime_limit = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("time_limit"), "{err}");
        let campaign: CampaignFile = toml::from_str("name = \"x\"").unwrap();
        assert!(plan(&campaign, || 1)
            .unwrap_err()
            .to_string()
            .contains("no [[matrix]]"));
    }

    fn outcome(expect: Expect, verdict: Verdict, fail_on_unknown: bool) -> RunOutcome {
        RunOutcome {
            planned: PlannedRun {
                name: "t".into(),
                db: "raft".into(),
                workload: "register".into(),
                nemesis: "none".into(),
                bugs: vec![],
                seed: 1,
                expect,
                args: vec![],
            },
            verdict: verdict.as_str().into(),
            exit_code: 0,
            passed: judge(expect, verdict, fail_on_unknown),
            run_dir: None,
            report: None,
            ops: 10,
            duration_s: 1.0,
            explanation: "two holders <n1> & <n2>".into(),
        }
    }

    #[test]
    fn exit_codes_follow_design_with_expectations() {
        let valid = outcome(Expect::Valid, Verdict::Valid, true);
        let caught = outcome(Expect::Invalid, Verdict::Invalid, true);
        let missed = outcome(Expect::Invalid, Verdict::Valid, true);
        let unknown = outcome(Expect::Valid, Verdict::Unknown, true);
        let crashed = outcome(Expect::Valid, Verdict::Crashed, true);
        assert_eq!(exit_code(&[valid.clone(), caught.clone()], true), 0);
        assert_eq!(exit_code(&[valid.clone(), missed.clone()], true), 1);
        assert_eq!(exit_code(&[valid.clone(), unknown.clone()], true), 2);
        let tolerated = outcome(Expect::Valid, Verdict::Unknown, false);
        assert_eq!(exit_code(&[valid.clone(), tolerated], false), 0);
        assert_eq!(exit_code(&[missed, unknown, crashed], true), 3);
    }

    #[test]
    fn junit_has_one_case_per_run_and_escapes_explanations() {
        let runs = [
            outcome(Expect::Valid, Verdict::Valid, true),
            outcome(Expect::Valid, Verdict::Invalid, true),
        ];
        let doc = junit("mini", &runs);
        assert_eq!(doc.matches("<testcase ").count(), 2);
        assert_eq!(doc.matches("<failure ").count(), 1);
        assert!(doc.contains("tests=\"2\" failures=\"1\" errors=\"0\""));
        assert!(doc.contains("&lt;n1&gt; &amp; &lt;n2&gt;"));
        assert!(!doc.contains("<n1>"));
    }

    #[test]
    fn shipped_campaigns_parse_and_plan() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workloads/campaigns");
        for name in ["smoke.toml", "nightly.toml"] {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let campaign: CampaignFile =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let runs = plan(&campaign, || 3).unwrap();
            assert!(!runs.is_empty(), "{name} plans runs");
        }
    }
}
