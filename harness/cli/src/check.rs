//! `faultline check FILE`: check a history offline (faultline's `history.jsonl`, or
//! Porcupine/Knossos files), print a table per key and the counterexamples, exit 0/1/2/3.

use anyhow::Context;
use clap::Args;
use faultline_checker::history::{Op, Process};
use faultline_checker::import::{self, Format};
use faultline_checker::results::{CheckerResult, KeyResult, LinearizableResult, MutexResult};
use faultline_checker::{check_history, CheckOptions, Limits, Results, Validity};
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;
use tabled::{settings::Style, Table, Tabled};

#[derive(Args)]
pub struct CheckArgs {
    /// The history file to check.
    pub file: PathBuf,
    /// jsonl, porcupine-etcd, porcupine-kv or knossos-edn; guessed from the content when
    /// not given.
    #[arg(long)]
    pub format: Option<String>,
    /// register, cas-register, cas-register:knossos, cas-register:porcupine, kv, kv-map,
    /// multi-register or mutex; by default chosen from the format and the ops.
    #[arg(long)]
    pub model: Option<String>,
    /// The model's initial state as JSON (e.g. 0, null, "", {"x":0,"y":0}); text that is
    /// not JSON is taken as a string.
    #[arg(long)]
    pub initial: Option<String>,
    /// Seconds for the whole linearizability search; undecided keys are then unknown.
    #[arg(long = "time-limit", default_value_t = 60.0)]
    pub time_limit_s: f64,
    /// Megabytes the search may hold; past it, unknown.
    #[arg(long = "memory-limit", default_value_t = 2048)]
    pub memory_limit_mb: usize,
    /// Print results as JSON (results.json's shape) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Decide every key even after one is found non-linearizable (by default the check
    /// stops at the first invalid key, as Porcupine does; `run`, `report` and `campaign`
    /// always decide every key).
    #[arg(long)]
    pub exhaustive: bool,
    /// Check transactions against this consistency model: read-uncommitted,
    /// read-committed, cursor-stability, repeatable-read, snapshot-isolation, serializable,
    /// strong-session-snapshot-isolation, strong-snapshot-isolation,
    /// strong-session-serializable or strict-serializable (the default for txn histories).
    #[arg(long = "consistency-model")]
    pub consistency_model: Option<String>,
    /// Check only the client ops whose `f` is one of these (comma-separated), e.g.
    /// `write,cas` to ask whether a register's writes alone are linearizable when its
    /// reads are not. Nemesis ops stay; op indices stay those of the file.
    #[arg(long = "only-f", value_delimiter = ',', value_name = "F")]
    pub only_f: Vec<String>,
}

/// Returns the process exit code (DESIGN §3).
pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    let format = match &args.format {
        None => None,
        Some(name) => Some(Format::parse(name).with_context(|| {
            format!(
                "--format {name:?}: expected one of {}",
                Format::NAMES.join(", ")
            )
        })?),
    };
    if !(args.time_limit_s > 0.0 && args.time_limit_s.is_finite()) {
        anyhow::bail!("--time-limit must be a positive number of seconds");
    }
    // A transactional jsonl history goes through the txn checker's own parallel reader.
    if let Some((ops, results)) = crate::check_txn::check_fast(&args, format)? {
        return print_results(&args, Format::Jsonl, &ops, &results);
    }
    // Streamed: a history.jsonl is parsed line by line, never held whole as text.
    let read = import::read_history_file(&args.file, format)?;
    if let Some(warning) = read
        .history
        .summary
        .warning(&args.file.display().to_string())
    {
        eprintln!("faultline: warning: {warning}");
    }
    let (format, mut ops) = (read.format, read.history.ops);
    if !args.only_f.is_empty() {
        ops.retain(|o| o.process == Process::Nemesis || args.only_f.contains(&o.f));
    }
    let model = args
        .model
        .clone()
        .or_else(|| format.default_model(&ops).map(str::to_string));
    let initial = match &args.initial {
        Some(text) => Some(
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone())),
        ),
        None => model.as_deref().and_then(|m| format.default_initial(m)),
    };
    let options = CheckOptions {
        model,
        initial,
        limits: Limits {
            // Past Duration's range (`1e300`) means no limit, not a panic.
            time_limit: Some(
                Duration::try_from_secs_f64(args.time_limit_s).unwrap_or(Duration::MAX),
            ),
            memory_limit_bytes: args.memory_limit_mb.saturating_mul(1024 * 1024),
            exhaustive: args.exhaustive,
            ..Limits::default()
        },
        mutex: None,
        set: None,
        consistency_model: args.consistency_model.clone(),
    };
    // A long search shows it is alive (on a terminal only; nothing in CI logs).
    let progress = faultline_report::check_progress(ops.len() as u64, "checking ops");
    progress.enable_steady_tick(Duration::from_millis(200));
    let results = check_history(&ops, &options).map_err(anyhow::Error::msg);
    progress.finish_and_clear();
    print_results(&args, format, &ops, &results?)
}

/// Prints the results (JSON, or the tables and the run summary) and returns the exit code.
fn print_results(
    args: &CheckArgs,
    format: Format,
    ops: &[Op],
    results: &Results,
) -> anyhow::Result<u8> {
    let mut text = String::new();
    if args.json {
        text = serde_json::to_string_pretty(&results)? + "\n";
    } else {
        // Keys and values come from the file: they must not drive the terminal.
        text.push_str(&faultline_report::escape::terminal(&render(
            &args.file.display().to_string(),
            format,
            results,
        )));
        // faultline's own histories carry times: add the run summary's counts and
        // latencies per checker and key, as at the end of a run.
        if matches!(format, Format::Jsonl) {
            text.push_str(&faultline_report::summary_for_checked(ops, results, None));
        }
    }
    write_stdout(&text)?;
    Ok(results.valid.exit_code() as u8)
}

/// Writes `text` to standard output. A reader that went away (`faultline check F | head`)
/// is not an error of the check: the verdict's exit code still stands, where `print!`
/// would panic with a backtrace.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn verdict(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    }
}

#[derive(Tabled)]
struct KeyRow {
    key: String,
    ops: usize,
    verdict: &'static str,
    #[tabled(rename = "time ms")]
    time_ms: String,
    note: String,
}

#[derive(Tabled)]
struct LockRow {
    lock: String,
    holds: usize,
    uncertain: usize,
    violations: usize,
    verdict: &'static str,
}

/// Keys shown one per row; beyond this only the keys that are not valid are listed.
const KEY_ROWS_MAX: usize = 40;

fn key_row(k: &KeyResult) -> KeyRow {
    KeyRow {
        key: k.key.as_ref().map_or("-".into(), |k| k.to_string()),
        ops: k.ops,
        verdict: verdict(k.valid),
        time_ms: format!("{:.2}", k.duration_ms),
        note: k.reason.clone().unwrap_or_default(),
    }
}

fn render_linearizable(out: &mut String, r: &LinearizableResult) {
    use std::fmt::Write;
    let count = |v: Validity| r.keys.iter().filter(|k| k.valid == v).count();
    let _ = writeln!(
        out,
        "linearizability ({}): {} in {:.1} ms — {} of {} keys invalid, {} undecided",
        r.model,
        verdict(r.valid),
        r.duration_ms,
        count(Validity::Invalid),
        r.keys.len(),
        count(Validity::Unknown)
    );
    let shown: Vec<&KeyResult> = if r.keys.len() <= KEY_ROWS_MAX {
        r.keys.iter().collect()
    } else {
        r.keys
            .iter()
            .filter(|k| k.valid != Validity::Valid)
            .take(KEY_ROWS_MAX)
            .collect()
    };
    let mut rows: Vec<KeyRow> = shown.iter().map(|k| key_row(k)).collect();
    if shown.len() < r.keys.len() {
        let valid = r.keys.iter().filter(|k| k.valid == Validity::Valid).count();
        rows.push(KeyRow {
            key: format!("({} more)", r.keys.len() - shown.len()),
            ops: r.keys.iter().map(|k| k.ops).sum::<usize>()
                - shown.iter().map(|k| k.ops).sum::<usize>(),
            verdict: "",
            time_ms: String::new(),
            note: format!("{valid} of {} keys valid", r.keys.len()),
        });
    }
    let _ = writeln!(out, "{}", Table::new(rows).with(Style::sharp()));
    for k in r.keys.iter().filter(|k| k.valid == Validity::Invalid) {
        let Some(cx) = &k.counterexample else {
            continue;
        };
        let key = k
            .key
            .as_ref()
            .map_or("the history".into(), |k| format!("key {k}"));
        let _ = writeln!(out, "\n{key} is not linearizable.");
        out.push_str(&cx.explanation);
        // Empty when no search ran (the pre-pass decided the key) or none placed an op:
        // the explanation then says all there is.
        if !cx.partial_linearization.is_empty() {
            let _ = writeln!(
                out,
                "In the whole key the search got {} ops deep before it was stuck, in state {}.",
                cx.partial_linearization.len(),
                cx.state
            );
        }
    }
}

fn render_mutex(out: &mut String, r: &MutexResult) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "mutual exclusion: {} in {:.1} ms",
        verdict(r.valid),
        r.duration_ms
    );
    if let Some(e) = &r.error {
        let _ = writeln!(out, "  {e}");
    }
    let rows: Vec<LockRow> = r
        .locks
        .iter()
        .map(|l| LockRow {
            lock: l.key.as_ref().map_or("-".into(), |k| k.to_string()),
            holds: l.holds.len(),
            uncertain: l.holds.iter().filter(|h| !h.certain).count(),
            violations: l.violations.len(),
            verdict: verdict(l.valid),
        })
        .collect();
    let _ = writeln!(out, "{}", Table::new(rows).with(Style::sharp()));
    for l in &r.locks {
        for v in &l.violations {
            let _ = writeln!(out, "  - {:?}: {}", v.kind, v.explanation);
        }
    }
}

fn render_set(out: &mut String, r: &faultline_checker::set::SetResult) {
    let _ = writeln!(
        out,
        "set: {} ({} set(s), {:.1} ms)",
        verdict(r.valid),
        r.sets.len(),
        r.duration_ms
    );
    for s in &r.sets {
        let _ = writeln!(
            out,
            "  {}: {} — {} acknowledged, {} lost, {} unexpected",
            s.key.as_ref().map_or("-".into(), |k| k.to_string()),
            verdict(s.valid),
            s.acknowledged,
            s.lost.len(),
            s.unexpected.len()
        );
    }
    for text in r.error.iter().chain(&r.explanation) {
        let _ = writeln!(out, "  {text}");
    }
}

/// The terminal report of a check.
fn render(file: &str, format: Format, results: &Results) -> String {
    let mut out = format!("{file} ({})\n", format.name());
    for c in &results.checkers {
        match c {
            CheckerResult::Linearizable(r) => render_linearizable(&mut out, r),
            CheckerResult::Mutex(r) => render_mutex(&mut out, r),
            CheckerResult::Set(r) => render_set(&mut out, r),
            CheckerResult::Other => {}
            CheckerResult::Txn(r) => crate::check_txn::render(&mut out, r),
        }
        out.push('\n');
    }
    out.push_str(&format!("verdict: {}\n", verdict(results.valid)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_temp(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("faultline-check-{}-{name}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        path
    }

    fn args(file: PathBuf) -> CheckArgs {
        CheckArgs {
            file,
            format: None,
            model: None,
            initial: None,
            time_limit_s: 10.0,
            memory_limit_mb: 256,
            json: false,
            exhaustive: false,
            consistency_model: None,
            only_f: Vec::new(),
        }
    }

    #[test]
    fn exit_codes_follow_the_verdict() {
        let good = write_temp("good.log", "INFO  jepsen.util - 1\t:invoke\t:write\t3\nINFO  jepsen.util - 1\t:ok\t:write\t3\nINFO  jepsen.util - 2\t:invoke\t:read\tnil\nINFO  jepsen.util - 2\t:ok\t:read\t3\n");
        let bad = write_temp("bad.log", "INFO  jepsen.util - 1\t:invoke\t:write\t3\nINFO  jepsen.util - 1\t:ok\t:write\t3\nINFO  jepsen.util - 2\t:invoke\t:read\tnil\nINFO  jepsen.util - 2\t:ok\t:read\t4\n");
        let empty = write_temp("empty.log", "");
        assert_eq!(run(args(good.clone())).unwrap(), 0);
        assert_eq!(run(args(bad.clone())).unwrap(), 1);
        assert_eq!(run(args(empty.clone())).unwrap(), 2);
        // Its one stale read removed, the bad history's write alone is linearizable.
        let writes_only = CheckArgs {
            only_f: vec!["write".into()],
            ..args(bad.clone())
        };
        assert_eq!(run(writes_only).unwrap(), 0);
        for p in [good, bad, empty] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn malformed_input_names_file_and_line() {
        let path = write_temp("broken.jsonl", "{\"index\":0,\"time\":0,\"type\":\"invoke\",\"process\":1,\"f\":\"read\",\"value\":null}\n{\"index\":1,\"type\":\"ok\"}\n");
        let err = run(args(path.clone())).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(err.contains("broken.jsonl:2:"), "{err}");
        assert!(err.contains("missing field"), "{err}");
    }
}
