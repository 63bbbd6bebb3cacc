//! One planned run as a child `faultline run` process, and what its run folder says.

use super::file::PlannedRun;
use super::summary::{first_violation_s, judge, RunOutcome};
use faultline_control::SshArgs;
use faultline_report::{RunSummary, Verdict};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// What every run of a campaign shares.
pub struct Context<'a> {
    pub results_dir: &'a Path,
    pub local_nodes: u16,
    pub local_cluster_id: u8,
    pub ssh: &'a SshArgs,
    pub exe: &'a Path,
    pub fail_on_unknown: bool,
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

fn verdict_of(exit_code: i32, summary: Option<&RunSummary>) -> Verdict {
    match summary {
        Some(s) if exit_code != 3 => s.verdict,
        _ => Verdict::Crashed,
    }
}

/// Runs one planned run as a child process and reads back its run folder.
pub fn execute(planned: &PlannedRun, ctx: &Context) -> RunOutcome {
    let mut cmd = Command::new(ctx.exe);
    cmd.arg("run")
        .args(&planned.args)
        .arg("--results-dir")
        .arg(ctx.results_dir)
        .arg("--local-nodes")
        .arg(ctx.local_nodes.to_string())
        .arg("--local-cluster-id")
        .arg(ctx.local_cluster_id.to_string())
        .args(ssh_run_args(ctx.ssh));
    let started = Instant::now();
    let status = cmd.status();
    let exit_code = match &status {
        Ok(s) => s.code().unwrap_or(3),
        Err(_) => 3,
    };
    let latest = ctx.results_dir.join(&planned.name).join("latest");
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
    let first_violation = match verdict {
        Verdict::Invalid => run_dir
            .as_deref()
            .and_then(|d| faultline_report::run::read_results(d).ok().flatten())
            .and_then(|r| first_violation_s(&r)),
        _ => None,
    };
    let run_path = run_dir.as_ref().and_then(|d| {
        let id = d.file_name()?.to_str()?;
        Some(format!("{}/{id}", planned.name))
    });
    RunOutcome {
        planned: planned.clone(),
        verdict: verdict.as_str().to_string(),
        exit_code,
        passed: judge(planned.expect, verdict.as_str(), ctx.fail_on_unknown),
        report: summary.as_ref().and_then(|s| s.report.clone()),
        ops: summary.as_ref().map_or(0, |s| s.ops),
        duration_s: started.elapsed().as_secs_f64(),
        run_dir,
        run_path,
        explanation,
        first_violation_s: first_violation,
    }
}
