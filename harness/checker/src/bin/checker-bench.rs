//! Times the checker on every bench-data file beside Porcupine's figures from MANIFEST.tsv,
//! the unpartitioned kv cases, and a generated large history; prints peak memory.
//!
//! `cargo run --release -p faultline-checker --bin checker-bench -- [--runs N] [--only TEXT]`
//! times the MANIFEST files (those whose path contains TEXT); `-- --file PATH [--model M]`
//! times one history file of any format.
//! The big cases run in child processes (`--case NAME`) so each one's peak RSS is its own.

use faultline_checker::bench_data::{default_dir, load_average, median, read_manifest, Row};
use faultline_checker::{check_linearizable_named, generate, import, Limits, Validity};
use std::time::{Duration, Instant};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system, all threads) this process has used. The machine is shared,
/// so wall time alone overstates what the checker costs when others are busy.
fn cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn verdict_name(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "linearizable",
        Validity::Invalid => "not-linearizable",
        Validity::Unknown => "unknown",
    }
}

fn verdict_only() -> Limits {
    // `--threads N` (N ≥ 1) instead of one per core: to see what parallel keys buy.
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|t| t.parse().ok());
    Limits {
        time_limit: Some(Duration::from_secs(60)),
        counterexamples: false,
        threads,
        // First invalid key, as Porcupine and `faultline check` do.
        exhaustive: false,
        ..Limits::default()
    }
}

struct Timed {
    median_s: f64,
    cpu_median_s: f64,
    verdict: Validity,
}

fn time_row(row: &Row, runs: usize, limits: &Limits) -> Timed {
    let (_, ops) = import::read_file(&row.path, Some(row.format)).expect("bench file parses");
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut verdict = Validity::Unknown;
    for _ in 0..runs {
        let t = Instant::now();
        let c = cpu_s();
        let r =
            check_linearizable_named(&ops, row.model, row.initial.as_ref(), limits).expect("model");
        times.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_s() - c);
        verdict = r.valid;
    }
    Timed {
        median_s: median(times),
        cpu_median_s: median(cpu),
        verdict,
    }
}

/// `--file PATH [--model M]`: times any history file (format guessed), e.g. a generated
/// one that is not in MANIFEST.tsv.
fn time_file(path: &str, model: &str, runs: usize) {
    let (format, ops) = import::read_file(std::path::Path::new(path), None)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut verdict = Validity::Unknown;
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu_s());
        let r = check_linearizable_named(&ops, model, None, &verdict_only())
            .unwrap_or_else(|e| panic!("{e}"));
        wall.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_s() - c);
        verdict = r.valid;
    }
    println!(
        "{path} ({format:?}, {} events, model {model}): {}, median of {runs}: {:.3} ms wall, {:.3} ms CPU; load average {}",
        ops.len(),
        verdict_name(verdict),
        median(wall) * 1000.0,
        median(cpu) * 1000.0,
        load_average()
    );
}

/// One big case, run in this (child) process; prints one line the parent relays.
fn run_case(name: &str) {
    let dir = default_dir().join("porcupine/test_data/kv");
    let mut limits = verdict_only();
    let (label, ops, model) = match name {
        "kv-map-c10" => {
            let (_, ops) = import::read_file(&dir.join("c10-ok.txt"), None).unwrap();
            ("kv c10-ok as one map (kv-map)", ops, "kv-map")
        }
        "kv-map-c50" => {
            limits.time_limit = Some(Duration::from_secs(30));
            limits.memory_limit_bytes = 1024 * 1024 * 1024;
            let (_, ops) = import::read_file(&dir.join("c50-ok.txt"), None).unwrap();
            (
                "kv c50-ok as one map (kv-map), 30 s / 1024 MB limits",
                ops,
                "kv-map",
            )
        }
        "big" => {
            let t = Instant::now();
            let ops = generate::register_history(&generate::Params::big(42));
            let path =
                std::env::temp_dir().join(format!("faultline-big-{}.jsonl", std::process::id()));
            let file = std::fs::File::create(&path).expect("temp file");
            faultline_checker::history::write_jsonl(std::io::BufWriter::new(file), &ops).unwrap();
            let gen_s = t.elapsed().as_secs_f64();
            drop(ops);
            let t = Instant::now();
            let ops = faultline_checker::read_jsonl(&path).expect("read back");
            let read_s = t.elapsed().as_secs_f64();
            let _ = std::fs::remove_file(&path);
            let t = Instant::now();
            let c = cpu_s();
            let r =
                check_linearizable_named(&ops, "cas-register", None, &Limits::default()).unwrap();
            let check_s = t.elapsed().as_secs_f64();
            println!(
                "CASE\t1M ops, 1,000 keys, 20 procs, 5% info (seed 42)\t{}\tgen+write {:.1} s, read {:.1} s, check {:.2} s ({:.2} s CPU)\t{:.0}",
                verdict_name(r.valid),
                gen_s,
                read_s,
                check_s,
                cpu_s() - c,
                peak_rss_mb()
            );
            return;
        }
        other => panic!("unknown case {other}"),
    };
    let t = Instant::now();
    let c = cpu_s();
    let r = check_linearizable_named(&ops, model, None, &limits).unwrap();
    let reason = r
        .keys
        .iter()
        .find_map(|k| k.reason.clone())
        .unwrap_or_default();
    println!(
        "CASE\t{label}\t{}\tcheck {:.3} s ({:.3} s CPU) {reason}\t{:.0}",
        verdict_name(r.valid),
        t.elapsed().as_secs_f64(),
        cpu_s() - c,
        peak_rss_mb()
    );
}

/// Totals: [our wall, our CPU, Porcupine] seconds.
#[derive(Default)]
struct Sums {
    etcd: [f64; 3],
    all: [f64; 3],
}

impl Sums {
    fn add(&mut self, etcd: bool, wall: f64, cpu: f64, porcupine: f64) {
        for (i, v) in [wall, cpu, porcupine].into_iter().enumerate() {
            self.all[i] += v;
            if etcd {
                self.etcd[i] += v;
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(case) = arg("--case") {
        run_case(&case);
        return;
    }
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(7);
    if let Some(file) = arg("--file") {
        time_file(&file, &arg("--model").unwrap_or_else(|| "kv".into()), runs);
        return;
    }
    let only = arg("--only");
    let rows = read_manifest(&default_dir()).expect("MANIFEST.tsv");
    let mut limits = verdict_only();
    // `--counterexamples`: time what `faultline check` does for invalid keys, shrinking included.
    limits.counterexamples = args.iter().any(|a| a == "--counterexamples");

    println!("load average at start: {}", load_average());
    println!(
        "{:<52} {:>5} {:>17} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "file", "ops", "verdict", "wall ms", "CPU ms", "porc. ms", "wall x", "CPU x"
    );
    let mut sums = Sums::default();
    let mut mismatches = 0;
    for row in &rows {
        let name = row
            .path
            .strip_prefix(default_dir())
            .unwrap_or(&row.path)
            .display()
            .to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let t = time_row(row, runs, &limits);
        let ok = t.verdict == row.expected;
        mismatches += usize::from(!ok);
        if let Some(p) = row.porcupine_s {
            sums.add(name.contains("etcd_"), t.median_s, t.cpu_median_s, p);
        }
        let ratio = |ours: f64| {
            row.porcupine_s
                .map_or("-".into(), |p| format!("{:.1}", p / ours.max(1e-6)))
        };
        println!(
            "{:<52} {:>5} {:>17} {:>9.3} {:>9.3} {:>9} {:>7} {:>7}",
            name.trim_start_matches("porcupine/test_data/")
                .trim_start_matches("knossos/data/"),
            row.op_count,
            format!(
                "{}{}",
                verdict_name(t.verdict),
                if ok { "" } else { " (!)" }
            ),
            t.median_s * 1000.0,
            t.cpu_median_s * 1000.0,
            row.porcupine_s
                .map_or("-".into(), |p| format!("{:.3}", p * 1000.0)),
            ratio(t.median_s),
            ratio(t.cpu_median_s),
        );
    }
    println!();
    println!("median of {runs} runs per file, verdict only (no counterexample shrinking), parse excluded");
    for (label, s) in [
        ("etcd logs", &sums.etcd),
        ("all files with a Porcupine figure", &sums.all),
    ] {
        println!(
            "{label} total: ours {:.1} ms wall / {:.1} ms CPU, Porcupine {:.1} ms ({:.1}x wall, {:.1}x CPU)",
            s[0] * 1000.0,
            s[1] * 1000.0,
            s[2] * 1000.0,
            s[2] / s[0].max(1e-9),
            s[2] / s[1].max(1e-9)
        );
    }
    println!("verdict mismatches: {mismatches}");
    println!("peak RSS of this process: {:.0} MB", peak_rss_mb());
    if only.is_some() {
        return;
    }
    println!();
    println!("load average: {}", load_average());
    println!(
        "{:<70} {:>16} {:>44} {:>10}",
        "case (child process)", "verdict", "time", "peak MB"
    );
    let exe = std::env::current_exe().expect("own path");
    for case in ["kv-map-c10", "kv-map-c50", "big"] {
        let out = std::process::Command::new(&exe)
            .args(["--case", case])
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find_map(|l| l.strip_prefix("CASE\t")) {
            Some(line) => {
                let f: Vec<&str> = line.split('\t').collect();
                println!("{:<56} {:>16} {:>60} {:>8}", f[0], f[1], f[2], f[3]);
            }
            None => println!("{case}: failed: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }
}
