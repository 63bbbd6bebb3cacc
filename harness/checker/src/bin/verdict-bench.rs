//! Times what a user waits for: the whole `faultline check FILE` process (start, parse,
//! check, counterexample, output) and the same check in-process with its counterexample,
//! beside Porcupine (Go) run in the same session on the same files; prints core sizes.
//!
//! `cargo build --release -p faultline -p faultline-checker && target/release/verdict-bench
//! [--runs N] [--only TEXT] [--faultline PATH] [--porcupine PATH] [--skip-big]
//! [--write-big PATH] [--repeat FILE] [--register-values N] [--seed N]`
//!
//! `--write-big`: only write the big history to PATH, to time it by hand; `--repeat`: only
//! check FILE in-process `--runs` times, to profile it. `--seed N` runs only that seed of
//! the single-key histories; `--only hard` runs them alone; their `proc core` column is
//! what the `--faultline` binary printed (so another build can be compared on the same files).
//! `--register-values N`: the single-key histories draw values from `0..N` (default
//! 1,000,000, so every write is unique; e.g. 100 to make a stale read's value repeat).
//!
//! `--porcupine` (or `FAULTLINE_PORCUPINE_DRIVER`) names a driver program that is called as
//! `DRIVER etcd|kv FILE` and prints `<verdict> <seconds of its check>`; it is built from a
//! Porcupine checkout outside this repository (docs/performance.md says how). Without one
//! the Porcupine columns are skipped.
//!
//! Cases: every Porcupine etcd and kv file of MANIFEST.tsv; single-key cas-register
//! histories with 20–70 processes, 300–5000 ops, some `info`, and one stale read planted
//! (seeded); and a 2,000,000-op history over 1,000 keys with one impossible read.

use faultline_checker::bench_data::{default_dir, load_average, median, read_manifest};
use faultline_checker::history::{write_jsonl, Key, Op, OpType, Process};
use faultline_checker::import::Format;
use faultline_checker::results::LinearizableResult;
use faultline_checker::{check_linearizable_named, generate, import, Limits, Validity};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Peak RSS in MB of the largest child waited for so far.
fn children_peak_mb() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

/// What `faultline check` does by default (first invalid key, counterexamples on).
fn check_limits() -> Limits {
    Limits {
        exhaustive: false,
        ..Limits::default()
    }
}

/// Runs `cmd` `runs` times; median wall seconds and the exit code of the last run.
fn time_process(cmd: &mut dyn FnMut() -> Command, runs: usize) -> (f64, Option<i32>) {
    let (t, code, _) = time_process_output(cmd, runs);
    (t, code)
}

/// `time_process`, with the last run's standard output.
fn time_process_output(
    cmd: &mut dyn FnMut() -> Command,
    runs: usize,
) -> (f64, Option<i32>, String) {
    let mut times = Vec::new();
    let mut code = None;
    let mut stdout = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = cmd().output().expect("start the command");
        times.push(t.elapsed().as_secs_f64());
        code = out.status.code();
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    (median(times), code, stdout)
}

/// The core size `faultline check` printed ("No order of these N operations"), with `+`
/// when it did not say each op is needed; `-` when it printed none. This is the binary
/// under test's own answer (`--faultline`), not the bench's in-process one.
fn printed_core(stdout: &str) -> String {
    let Some(line) = stdout.lines().find(|l| l.contains("No order of these ")) else {
        return "-".into();
    };
    let n = line
        .split("No order of these ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?");
    let minimal = line.contains("Each of them is needed");
    format!("{n}{}", if minimal { "" } else { "+" })
}

fn verdict_of_exit(code: Option<i32>) -> &'static str {
    match code {
        Some(0) => "valid",
        Some(1) => "INVALID",
        Some(2) => "unknown",
        _ => "error",
    }
}

/// Porcupine's answer on one file: median whole-process and in-check seconds, verdict.
fn porcupine(driver: &Path, kind: &str, file: &Path, runs: usize) -> Option<(f64, f64, String)> {
    let (mut wall, mut inner) = (Vec::new(), Vec::new());
    let mut verdict = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(driver).arg(kind).arg(file).output().ok()?;
        wall.push(t.elapsed().as_secs_f64());
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        verdict = words.next()?.to_string();
        inner.push(words.next()?.parse().ok()?);
    }
    Some((median(wall), median(inner), verdict))
}

/// Core size and whether it was shown 1-minimal, of the first invalid key.
fn core_of(r: &LinearizableResult) -> String {
    r.keys
        .iter()
        .find_map(|k| k.counterexample.as_ref())
        .map_or("-".into(), |c| {
            format!("{}{}", c.ops.len(), if c.minimal { "" } else { "+" })
        })
}

struct Args {
    runs: usize,
    only: Option<String>,
    faultline: PathBuf,
    porcupine: Option<PathBuf>,
    skip_big: bool,
    /// Write the big history here and exit (to time or profile `faultline check` on it).
    write_big: Option<PathBuf>,
    /// Check this file in-process `--runs` times and print the time per check (to profile
    /// one small file, e.g. under callgrind).
    repeat: Option<PathBuf>,
    register_values: i64,
    seed: Option<u64>,
}

fn args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let exe = std::env::current_exe().expect("own path");
    Args {
        runs: arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(3),
        only: arg("--only"),
        faultline: arg("--faultline")
            .map(PathBuf::from)
            .unwrap_or_else(|| exe.with_file_name("faultline")),
        porcupine: arg("--porcupine")
            .or_else(|| std::env::var("FAULTLINE_PORCUPINE_DRIVER").ok())
            .map(PathBuf::from),
        skip_big: args.iter().any(|a| a == "--skip-big"),
        write_big: arg("--write-big").map(PathBuf::from),
        repeat: arg("--repeat").map(PathBuf::from),
        register_values: arg("--register-values")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000),
        seed: arg("--seed").and_then(|v| v.parse().ok()),
    }
}

/// Totals over a group of files: [ours in-process, ours process, Porcupine in-check,
/// Porcupine process] seconds, and the smallest per-file ratios.
#[derive(Default)]
struct Totals {
    sums: [f64; 4],
    min_in: f64,
    min_proc: f64,
    min_proc_invalid: f64,
    files: usize,
}

impl Totals {
    fn add(&mut self, v: [f64; 4], invalid: bool) {
        if self.files == 0 {
            self.min_in = f64::MAX;
            self.min_proc = f64::MAX;
            self.min_proc_invalid = f64::MAX;
        }
        self.files += 1;
        for (s, x) in self.sums.iter_mut().zip(v) {
            *s += x;
        }
        self.min_in = self.min_in.min(v[2] / v[0]);
        self.min_proc = self.min_proc.min(v[3] / v[1]);
        if invalid {
            self.min_proc_invalid = self.min_proc_invalid.min(v[3] / v[1]);
        }
    }
}

fn porcupine_files(a: &Args) {
    let rows = read_manifest(&default_dir()).expect("MANIFEST.tsv");
    println!(
        "{:<22} {:>5} {:>8} {:>5} {:>9} {:>9} {:>10} {:>10} {:>7} {:>7}",
        "file",
        "ops",
        "verdict",
        "core",
        "ours ms",
        "ours proc",
        "porc. ms",
        "porc. proc",
        "x in",
        "x proc"
    );
    let mut totals = Totals::default();
    for row in &rows {
        let kind = match row.format {
            Format::PorcupineEtcd => "etcd",
            Format::PorcupineKv => "kv",
            _ => continue,
        };
        let name = row
            .path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        if a.only.as_ref().is_some_and(|o| !name.contains(o.as_str())) || row.op_count == 0 {
            continue;
        }
        // In-process, as `faultline check` does it: parse, check, counterexample.
        let mut ours = Vec::new();
        let mut result = None;
        for _ in 0..a.runs {
            let t = Instant::now();
            let (_, ops) = import::read_file(&row.path, Some(row.format)).expect("parses");
            let r =
                check_linearizable_named(&ops, row.model, row.initial.as_ref(), &check_limits())
                    .expect("model");
            ours.push(t.elapsed().as_secs_f64());
            result = Some(r);
        }
        let r = result.expect("at least one run");
        let ours = median(ours);
        let (proc_s, code) = time_process(
            &mut || {
                let mut c = Command::new(&a.faultline);
                c.arg("check").arg(&row.path);
                c
            },
            a.runs,
        );
        let porc = a
            .porcupine
            .as_ref()
            .and_then(|d| porcupine(d, kind, &row.path, a.runs));
        let invalid = r.valid == Validity::Invalid;
        let (pin, pproc) = match &porc {
            Some((w, i, v)) => {
                let agree = (v == "linearizable") == (r.valid == Validity::Valid);
                totals.add([ours, proc_s, *i, *w], invalid);
                (
                    format!("{:.2}{}", i * 1000.0, if agree { "" } else { "!" }),
                    format!("{:.1}", w * 1000.0),
                )
            }
            None => ("-".into(), "-".into()),
        };
        let ratio = |p: Option<f64>, o: f64| p.map_or("-".into(), |p| format!("{:.1}", p / o));
        println!(
            "{:<22} {:>5} {:>8} {:>5} {:>9.2} {:>9.1} {:>10} {:>10} {:>7} {:>7}",
            name,
            row.op_count,
            verdict_of_exit(code),
            core_of(&r),
            ours * 1000.0,
            proc_s * 1000.0,
            pin,
            pproc,
            ratio(porc.as_ref().map(|p| p.1), ours),
            ratio(porc.as_ref().map(|p| p.0), proc_s),
        );
    }
    if totals.files > 0 {
        let s = totals.sums;
        println!(
            "{} files: in-process ours {:.1} ms vs Porcupine {:.1} ms ({:.1}x), smallest per-file ratio {:.1}x; whole process ours {:.0} ms vs Porcupine {:.0} ms ({:.1}x), smallest {:.1}x, smallest on invalid files {:.1}x",
            totals.files,
            s[0] * 1000.0,
            s[2] * 1000.0,
            s[2] / s[0],
            totals.min_in,
            s[1] * 1000.0,
            s[3] * 1000.0,
            s[3] / s[1],
            totals.min_proc,
            totals.min_proc_invalid
        );
    } else {
        println!(
            "Porcupine columns skipped: no driver (--porcupine PATH or FAULTLINE_PORCUPINE_DRIVER)"
        );
    }
    println!("core: ops in the first invalid key's counterexample; + when not shown 1-minimal");
}

fn write_history(ops: &[Op], name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("verdict-bench-{}-{name}", std::process::id()));
    let file = std::fs::File::create(&path).expect("temp file");
    write_jsonl(std::io::BufWriter::new(file), ops).expect("write history");
    path
}

/// A valid single-key history with one stale read planted: the read returns the value of
/// an earlier write that a later completed write overwrote.
fn stale_read_history(seed: u64, processes: usize, ops: usize, values: i64) -> Vec<Op> {
    let p = generate::Params {
        seed,
        ops,
        keys: 1,
        processes,
        info_fraction: 0.05,
        fail_fraction: 0.05,
        values,
        corrupt: 0.0,
    };
    let mut h = generate::register_history(&p);
    // The last ok read, and an ok write that completed well before it.
    let read = (0..h.len())
        .rev()
        .find(|&i| h[i].kind == OpType::Ok && h[i].f == "read" && !h[i].value.is_null());
    let Some(read) = read else { return h };
    let old = (0..read.saturating_sub(h.len() / 4))
        .rev()
        .find(|&i| h[i].kind == OpType::Ok && h[i].f == "write" && h[i].value != h[read].value);
    if let Some(w) = old {
        h[read].value = h[w].value.clone();
    }
    h
}

fn hard_single_keys(a: &Args) {
    println!();
    println!(
        "single-key cas-register histories, one stale read planted (seed s: 20 + 50*s/9 processes), values 0..{}",
        a.register_values
    );
    println!(
        "{:<6} {:>6} {:>6} {:>8} {:>5} {:>8} {:>10} {:>10}",
        "seed", "procs", "ops", "verdict", "core", "ours ms", "proc ms", "proc core"
    );
    let mut worst_core = 0;
    let mut worst_ms: f64 = 0.0;
    for seed in 0..10u64 {
        if a.seed.is_some_and(|s| s != seed) {
            continue;
        }
        let processes = 20 + (50 * seed as usize) / 9;
        let ops = [300, 600, 1000, 1500, 2000, 2500, 3000, 4000, 4500, 5000][seed as usize];
        let h = stale_read_history(seed, processes, ops, a.register_values);
        let path = write_history(&h, &format!("hard-{seed}.jsonl"));
        let t = Instant::now();
        let r = check_linearizable_named(&h, "cas-register", None, &check_limits()).unwrap();
        let ours = t.elapsed().as_secs_f64();
        let (proc_s, code, stdout) = time_process_output(
            &mut || {
                let mut c = Command::new(&a.faultline);
                c.arg("check").arg(&path);
                c
            },
            a.runs,
        );
        let _ = std::fs::remove_file(&path);
        if r.valid == Validity::Invalid {
            let n = r
                .keys
                .iter()
                .find_map(|k| k.counterexample.as_ref())
                .map_or(0, |c| c.ops.len());
            worst_core = worst_core.max(n);
            worst_ms = worst_ms.max(ours);
        }
        println!(
            "{:<6} {:>6} {:>6} {:>8} {:>5} {:>8.1} {:>10.1} {:>10}",
            seed,
            processes,
            ops,
            verdict_of_exit(code),
            core_of(&r),
            ours * 1000.0,
            proc_s * 1000.0,
            printed_core(&stdout)
        );
    }
    println!(
        "largest core {worst_core} ops; slowest invalid check with its counterexample {:.0} ms (in-process)",
        worst_ms * 1000.0
    );
}

/// The 2,000,000-op history over 1,000 keys with one impossible read on key 7.
fn big_invalid_history() -> Vec<Op> {
    let mut h = generate::register_history(&generate::Params {
        ops: 2_000_000,
        ..generate::Params::big(42)
    });
    // One read of a value no one wrote, on key 7, after everything else.
    let last = h.last().map_or(0, |o| o.time);
    for (k, kind, value) in [
        (0, OpType::Invoke, serde_json::Value::Null),
        (1, OpType::Ok, serde_json::json!(12345)),
    ] {
        h.push(Op {
            index: h.len() as u64,
            time: last + 1 + k,
            kind,
            process: Process::Client(1_000_000),
            f: "read".into(),
            key: Some(Key::Int(7)),
            value,
            node: None,
            error: None,
        });
    }
    h
}

fn big_invalid(a: &Args) {
    println!();
    let t = Instant::now();
    let path = write_history(&big_invalid_history(), "big.jsonl");
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out = Command::new(&a.faultline)
        .arg("check")
        .arg(&path)
        .output()
        .expect("faultline check");
    let wall = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    let core_line = text
        .lines()
        .find(|l| l.starts_with("No order of these"))
        .map_or(String::new(), |l| l.chars().take(60).collect());
    println!(
        "2,000,000 ops over 1,000 keys (seed 42) + one impossible read on key 7: `faultline check` {} in {:.1} s, peak {:.0} MB (generation {:.1} s, not timed); {core_line}…",
        verdict_of_exit(out.status.code()),
        wall,
        children_peak_mb(),
        gen_s
    );
}

/// `--repeat FILE`: the in-process check (parse, check, counterexample, explanation) of
/// one file `runs` times, as `faultline check` does it.
fn repeat(path: &Path, runs: usize) {
    let t = Instant::now();
    let mut verdict = Validity::Unknown;
    for _ in 0..runs {
        let (format, ops) = import::read_file(path, None).expect("parses");
        let model = format.default_model(&ops).unwrap_or("cas-register");
        let r = check_linearizable_named(&ops, model, None, &check_limits()).expect("model");
        verdict = r.valid;
    }
    println!(
        "{}: {verdict:?}, {:.2} us per check ({runs} runs)",
        path.display(),
        t.elapsed().as_secs_f64() * 1e6 / runs.max(1) as f64
    );
}

fn main() {
    let a = args();
    if let Some(path) = &a.write_big {
        let file = std::fs::File::create(path).expect("create --write-big file");
        write_jsonl(std::io::BufWriter::new(file), &big_invalid_history()).expect("write");
        return;
    }
    if let Some(path) = &a.repeat {
        repeat(path, a.runs);
        return;
    }
    println!(
        "verdict-bench: faultline {} ; load average at start {}",
        a.faultline.display(),
        load_average()
    );
    if !a.faultline.exists() {
        eprintln!(
            "{} not found: build it (cargo build --release -p faultline) or pass --faultline PATH",
            a.faultline.display()
        );
        std::process::exit(3);
    }
    // `--only hard`: the single-key histories alone.
    if a.only.as_deref() == Some("hard") {
        hard_single_keys(&a);
        println!("load average at end {}", load_average());
        return;
    }
    porcupine_files(&a);
    if a.only.is_none() {
        hard_single_keys(&a);
        if !a.skip_big {
            big_invalid(&a);
        }
    }
    println!("load average at end {}", load_average());
}
