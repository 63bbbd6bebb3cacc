//! The transactional checker's benchmark: list-append histories of 100k, 1M and 10M
//! transactions from a simulated serializable store (with injected stale reads and aborted
//! reads, ~1% info), each checked end to end — read the jsonl, check strict
//! serializability, explain the anomalies, serialise the result — in a child process so
//! its peak memory (VmHWM) is its own. Prints txns/s, peak memory and the time growth.
//!
//! Usage: txn-bench [--sizes 100000,1000000,10000000] [--seed N] [--dir DIR] [--keep]
//!        txn-bench --check FILE [--consistency-model M]   (the child)

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

fn child(file: &str, model: &str) -> Result<(), String> {
    let started = Instant::now();
    let f = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
    let h = txn::history::read_jsonl(std::io::BufReader::with_capacity(1 << 20, f), file)?;
    let parsed = started.elapsed().as_secs_f64();
    let options = txn::TxnOptions {
        consistency_model: model.to_string(),
        ..Default::default()
    };
    let mut phases = vec![("parse", parsed)];
    let r = txn::check_timed(&h, &options, &mut phases)?;
    let serialised = Instant::now();
    let json = serde_json::to_string(&r).map_err(|e| e.to_string())?;
    phases.push(("json", serialised.elapsed().as_secs_f64()));
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
            .map(|(name, s)| format!("{name} {s:.2}"))
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
        if let Err(e) = child(&file, &model) {
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
        "{:>10} {:>9} {:>9} {:>12} {:>7} {:>7} {:>10} {:>9}  verdict / anomalies",
        "txns", "file MB", "total s", "txns/s", "user s", "sys s", "peak MB", "growth"
    );
    let mut prev: Option<(usize, f64)> = None;
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
        let growth = prev
            .map(|(pn, ps)| format!("n^{:.2}", (secs / ps).ln() / (n as f64 / pn as f64).ln()))
            .unwrap_or_else(|| "-".into());
        println!(
            "{txns:>10} {mb:>9} {secs:>9.2} {:>12.0} {:>7} {:>7} {:>10.0} {growth:>9}  {} {}",
            txns as f64 / secs,
            field(8),
            field(9),
            kb as f64 / 1024.0,
            field(5),
            field(6),
        );
        println!(
            "{:>10} phases (s): {phases}; {} MB read from storage (parse {parse_s:.2} s)",
            "",
            field(10)
        );
        prev = Some((n, secs));
    }
    println!("txn-bench: load average at the end {}", load_average());
}
