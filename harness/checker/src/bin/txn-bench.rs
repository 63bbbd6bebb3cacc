//! The transactional checker's benchmark: list-append histories of 100k, 1M and 10M
//! transactions from a simulated serializable store (with injected stale reads and aborted
//! reads, ~1% info), each checked end to end — read the jsonl, check strict
//! serializability, explain the anomalies, serialise the result — in a child process so
//! its peak memory (VmHWM) is its own. Prints, per size, the child's wall time, user and
//! system CPU, txns per second of wall time and per CPU second, peak memory, the phases
//! (wall / CPU seconds each) and the growth exponent of the wall and CPU time from the
//! size before; at the end the goals, met or not.
//!
//! Usage: txn-bench [--sizes 100000,1000000,10000000] [--seed N] [--dir DIR] [--keep]
//!        txn-bench --check FILE [--consistency-model M] [--result OUT]   (the child;
//!        `--result` writes the verdict as JSON, its duration zeroed, to compare binaries)

use faultline_checker::txn::{self, generate};
use std::io::BufWriter;
use std::time::Instant;

fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This process's CPU seconds so far: (user, system), from /proc/self/stat.
fn cpu_s() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) end at its last ')'.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf only reads a constant of the system.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
    (field(11), field(12))
}

/// Bytes this process read from storage (not the page cache), from /proc/self/io.
fn storage_read_mb() -> f64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes: "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / (1 << 20) as f64
}

fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn child(file: &str, model: &str, result: Option<&str>) -> Result<(), String> {
    let started = Instant::now();
    let f = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
    let h = txn::history::read_jsonl(std::io::BufReader::with_capacity(1 << 20, f), file)?;
    let parsed = started.elapsed().as_secs_f64();
    let options = txn::TxnOptions {
        consistency_model: model.to_string(),
        ..Default::default()
    };
    let cpu = || {
        let (u, s) = cpu_s();
        u + s
    };
    let parse_cpu = cpu();
    let mut phases = vec![("parse", parsed, parse_cpu)];
    let r = txn::check_timed(&h, &options, &mut phases, cpu)?;
    let serialised = (Instant::now(), cpu());
    let json = serde_json::to_string(&r).map_err(|e| e.to_string())?;
    phases.push((
        "json",
        serialised.0.elapsed().as_secs_f64(),
        cpu() - serialised.1,
    ));
    if let Some(out) = result {
        let mut same = r.clone();
        same.duration_ms = 0.0;
        let text = serde_json::to_string_pretty(&same).map_err(|e| e.to_string())?;
        std::fs::write(out, text).map_err(|e| format!("{out}: {e}"))?;
    }
    let total = started.elapsed().as_secs_f64();
    let (user, sys) = cpu_s();
    // One line the parent reads: txns, seconds, parse seconds, KiB, verdict, anomaly types,
    // result bytes, CPU user and system seconds, MB read from storage; then the phases.
    println!(
        "RESULT {} {total:.3} {parsed:.3} {} {} {} {} {user:.2} {sys:.2} {:.0}",
        h.txns.len(),
        vm_hwm_kb().unwrap_or(0),
        serde_json::to_string(&r.valid).unwrap_or_default(),
        r.anomaly_types.join(","),
        json.len(),
        storage_read_mb()
    );
    println!(
        "PHASES {}",
        phases
            .iter()
            .map(|(name, s, c)| format!("{name} {s:.2}/{c:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Keep one generated history (for profiling the child by hand).
    let keep = args.iter().any(|a| a == "--keep");
    let model = arg(&args, "--consistency-model").unwrap_or_else(|| "strict-serializable".into());
    if let Some(file) = arg(&args, "--check") {
        if let Err(e) = child(&file, &model, arg(&args, "--result").as_deref()) {
            eprintln!("txn-bench: {e}");
            std::process::exit(3);
        }
        return;
    }
    let sizes: Vec<usize> = arg(&args, "--sizes")
        .unwrap_or_else(|| "100000,1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seed: u64 = arg(&args, "--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let dir = arg(&args, "--dir")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!(
        "txn-bench: seed {seed}, model {model}, {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!(
        "{:>10} {:>8} {:>8} {:>9} {:>7} {:>7} {:>10} {:>8} {:>7} {:>7}  verdict / anomalies",
        "txns",
        "file MB",
        "wall s",
        "txns/s",
        "user s",
        "sys s",
        "txns/CPU s",
        "peak MB",
        "growth",
        "CPU gr."
    );
    // (txns, wall s, CPU s, peak MB) of each size, for the growth and the goals.
    let mut rows: Vec<(usize, f64, f64, f64)> = Vec::new();
    for n in sizes {
        let path = dir.join(format!(
            "faultline-txn-bench-{}-{n}.jsonl",
            std::process::id()
        ));
        let p = generate::Params {
            seed,
            txns: n,
            processes: 10,
            active_keys: 10,
            appends_per_key_max: 32,
            mops_max: 4,
            info_fraction: 0.01,
            fail_fraction: 0.001,
            // About one anomaly per 100k txns of each kind.
            stale_read_p: 1e-5,
            dirty_fail_p: 0.01,
        };
        let file = match std::fs::File::create(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("txn-bench: {}: {e}", path.display());
                std::process::exit(3);
            }
        };
        if let Err(e) = generate::write_history(&p, BufWriter::with_capacity(1 << 20, file)) {
            eprintln!("txn-bench: writing {}: {e}", path.display());
            let _ = std::fs::remove_file(&path);
            std::process::exit(3);
        }
        let mb = std::fs::metadata(&path).map_or(0, |m| m.len()) / (1 << 20);
        let out = std::process::Command::new(&args[0])
            .args([
                "--check",
                &path.display().to_string(),
                "--consistency-model",
                &model,
            ])
            .output();
        if !keep {
            let _ = std::fs::remove_file(&path);
        }
        let out = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
            Ok(o) => {
                eprintln!(
                    "txn-bench: child failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                std::process::exit(3);
            }
            Err(e) => {
                eprintln!("txn-bench: cannot run the child: {e}");
                std::process::exit(3);
            }
        };
        let Some(line) = out.lines().find(|l| l.starts_with("RESULT ")) else {
            eprintln!("txn-bench: child printed no result: {out}");
            std::process::exit(3);
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let txns: usize = f[1].parse().unwrap_or(0);
        let secs: f64 = f[2].parse().unwrap_or(f64::NAN);
        let parse_s: f64 = f[3].parse().unwrap_or(f64::NAN);
        let kb: u64 = f[4].parse().unwrap_or(0);
        let field = |i: usize| f.get(i).copied().unwrap_or("?");
        let phases = out
            .lines()
            .find_map(|l| l.strip_prefix("PHASES "))
            .unwrap_or("");
        let user: f64 = field(8).parse().unwrap_or(f64::NAN);
        let sys: f64 = field(9).parse().unwrap_or(f64::NAN);
        let cpu = user + sys;
        let (growth, cpu_growth) = match rows.last() {
            Some(&(pn, ps, pc, _)) => (
                format!("n^{:.2}", exponent(pn, ps, txns, secs)),
                format!("n^{:.2}", exponent(pn, pc, txns, cpu)),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{txns:>10} {mb:>8} {secs:>8.2} {:>9.0} {user:>7.2} {sys:>7.2} {:>10.0} {:>8.0} {growth:>7} {cpu_growth:>7}  {} {}",
            txns as f64 / secs,
            txns as f64 / cpu,
            kb as f64 / 1024.0,
            field(5),
            field(6),
        );
        println!(
            "{:>10} phases (wall/CPU s): {phases}; {} MB read from storage (parse {parse_s:.2} s); load average now {}",
            "",
            field(10),
            load_average()
        );
        rows.push((txns, secs, cpu, kb as f64 / 1024.0));
    }
    println!("txn-bench: load average at the end {}", load_average());
    goals(&rows);
}

/// The exponent k of time growing as n^k from (n0, t0) to (n1, t1).
fn exponent(n0: usize, t0: f64, n1: usize, t1: f64) -> f64 {
    (t1 / t0).ln() / (n1 as f64 / n0 as f64).ln()
}

/// The benchmark's goals (issue #20): >= 300,000 txns/s of wall time at every size, the
/// 10M history under 4 GB, and time growing no faster than n log n.
fn goals(rows: &[(usize, f64, f64, f64)]) {
    let Some(slowest) = rows
        .iter()
        .map(|r| r.0 as f64 / r.1)
        .min_by(|a, b| a.total_cmp(b))
    else {
        return;
    };
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal >= 300000 txns/s at every size: slowest {slowest:.0}/s, {}",
        met(slowest >= 300_000.0)
    );
    if let Some(r) = rows.iter().find(|r| r.0 >= 10_000_000) {
        println!(
            "goal 10M under 4 GB peak: {:.0} MB, {}",
            r.3,
            met(r.3 < 4096.0)
        );
    }
    if let [.., a, b] = rows {
        // n log n from a to b, as an exponent of n over that range.
        let nlogn = exponent(
            a.0,
            a.0 as f64 * (a.0 as f64).ln(),
            b.0,
            b.0 as f64 * (b.0 as f64).ln(),
        );
        let (wall, cpu) = (exponent(a.0, a.1, b.0, b.1), exponent(a.0, a.2, b.0, b.2));
        println!(
            "goal growth no worse than n log n (n^{nlogn:.3} from {} to {}): wall n^{wall:.3} {}, CPU n^{cpu:.3} {}",
            a.0,
            b.0,
            met(wall <= nlogn),
            met(cpu <= nlogn)
        );
    }
}
