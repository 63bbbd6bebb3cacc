//! The `faultline` command line: every verb, parsed and dispatched, with the exit codes of
//! DESIGN §3 (0 valid, 1 invalid, 2 unknown, 3 the harness itself failed). A program of its
//! own calls [`main_with`] with its registry and keeps every verb.

use crate::{campaign, check, cluster, report, run, serve, systems, vagrant};
use clap::{Parser, Subcommand};
use faultline_workloads::system::Registry;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "A Jepsen-style distributed-systems testing harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a recorded history for linearizability or mutual exclusion.
    Check(check::CheckArgs),
    /// Bring the local cluster of namespace hosts up or down, show it, heal faults.
    Cluster(cluster::ClusterArgs),
    /// Run a test against a system: set it up, drive clients, check, report.
    Run(Box<run::RunArgs>),
    /// Re-check a run folder from its history and rewrite results.json and report.html.
    Report(report::ReportArgs),
    /// Serve the results folder (index and reports) over HTTP, on 127.0.0.1 by default.
    Serve(serve::ServeArgs),
    /// Run a matrix of tests from a campaign file and summarise them.
    Campaign(campaign::CampaignCmd),
    /// List the systems under test: workloads, options, faults they take, planted bugs.
    Systems(systems::SystemsArgs),
    /// Write a nodes file for --nodes-file from `vagrant ssh-config`.
    VagrantNodes(vagrant::VagrantNodesArgs),
}

/// The command line as `faultline check …` sees it: the same program name, version, about
/// and `check` subcommand as [`Cli`], without the other verbs. Building clap's tree of every
/// verb's arguments (and freeing it) was about 0.5 M instructions, a sixth of a whole
/// `faultline check` of a small file; `check`'s own usage, help and errors are built from
/// the same `CheckArgs`, so they read the same.
#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "A Jepsen-style distributed-systems testing harness"
)]
struct CheckCli {
    #[command(subcommand)]
    command: CheckOnly,
}

#[derive(Subcommand)]
enum CheckOnly {
    /// Check a recorded history for linearizability or mutual exclusion.
    Check(check::CheckArgs),
}

/// Runs the `faultline` command line with `registry`'s systems and workloads: the stock
/// binary passes `Registry::stock()`, a user's own binary adds its systems, e.g.
/// `faultline::cli::main_with(Registry::stock().with(MySystem))`.
pub fn main_with(registry: Registry) -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|verb| verb == "check")
    {
        return match CheckCli::try_parse() {
            Ok(CheckCli {
                command: CheckOnly::Check(args),
            }) => exit(check::run(args)),
            Err(err) => usage_error(err),
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let outcome = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Report(args) => report::run(args, &registry),
        Command::Run(args) => run::run(*args, &registry),
        Command::Serve(args) => serve::run(args),
        Command::VagrantNodes(args) => vagrant::run(args),
        Command::Campaign(args) => campaign::run(args),
        Command::Systems(args) => systems::run(args, &registry),
    };
    exit(outcome)
}

/// clap exits 2 on a usage error, which DESIGN §3 gives to an unknown verdict: CI with
/// `--fail-on unknown` would misread a typo. A usage error is the harness failing: 3.
fn usage_error(err: clap::Error) -> ExitCode {
    let _ = err.print();
    ExitCode::from(if err.use_stderr() { 3 } else { 0 })
}

/// The exit code of a verb's outcome; an error is printed and is the harness failing (3).
fn exit(outcome: anyhow::Result<u8>) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // Errors quote files and hosts: they must not drive the terminal.
            let err = faultline_report::escape::terminal(&format!("{err:#}"));
            eprintln!("faultline: error: {err}");
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What clap makes of `args` under a parser: the parsed check file, or the message
    /// (help text or error) and whether it goes to stderr.
    fn outcome<P: Parser>(args: &[&str], file: impl Fn(P) -> Option<String>) -> String {
        match P::try_parse_from(args) {
            Ok(parsed) => format!("ok {:?}", file(parsed)),
            Err(err) => format!("{} {}", err.use_stderr(), err.render()),
        }
    }

    #[test]
    fn check_alone_parses_help_and_errors_as_the_whole_command_line_does() {
        let cases: &[&[&str]] = &[
            &["faultline", "check", "--help"],
            &["faultline", "check", "-h"],
            &["faultline", "check"],
            &["faultline", "check", "--bogus", "h.jsonl"],
            &["faultline", "check", "--time-limit", "x", "h.jsonl"],
            &[
                "faultline",
                "check",
                "h.jsonl",
                "--json",
                "--only-f",
                "read,write",
            ],
            &["faultline", "check", "--exhaustve", "h.jsonl"],
        ];
        for args in cases {
            let whole = outcome::<Cli>(args, |c| match c.command {
                Command::Check(a) => {
                    Some(format!("{} {:?} {}", a.file.display(), a.only_f, a.json))
                }
                _ => None,
            });
            let alone = outcome::<CheckCli>(args, |c| match c.command {
                CheckOnly::Check(a) => {
                    Some(format!("{} {:?} {}", a.file.display(), a.only_f, a.json))
                }
            });
            assert_eq!(whole, alone, "{args:?}");
        }
    }
}
