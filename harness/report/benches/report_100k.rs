//! Benchmark: report.html for a 100,000-op history (about 200,000 history events) must be
//! written in under 5 s and weigh at most 10 MB. Prints the numbers, and how long headless
//! Chromium takes to draw the page when it is installed. Exits 1 when a goal is missed.
//!
//! `cargo bench -p faultline-report --bench report_100k`

use faultline_report::synth::{self, RegisterSpec};
use std::time::Instant;

const OPS: usize = 100_000;
const SECONDS_MAX: f64 = 5.0;
const BYTES_MAX: u64 = 10 * 1024 * 1024;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let run_dir = dir.path().join("bench").join("20261126T070000Z");
    let t = Instant::now();
    let run = synth::register_run(&RegisterSpec {
        seed: 100,
        ops: OPS,
        concurrency: 20,
        keys: 5,
        bug: true,
        payload: None,
    });
    synth::write_run(&run_dir, &run)?;
    let events = run.history.len();
    println!(
        "history: {OPS} ops, {events} events, {:.1} MB (made in {:.2} s)",
        std::fs::metadata(run_dir.join("history.jsonl"))?.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let mut best = f64::MAX;
    let mut size = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let report = faultline_report::write_report(&run_dir)?;
        best = best.min(t.elapsed().as_secs_f64());
        size = std::fs::metadata(&report)?.len();
    }
    let time_ok = best < SECONDS_MAX;
    let size_ok = size <= BYTES_MAX;
    println!(
        "report.html: written in {best:.2} s (best of 3; goal < {SECONDS_MAX} s) {}",
        if time_ok { "ok" } else { "MISSED" }
    );
    println!(
        "report.html: {:.2} MB (goal <= {} MB) {}",
        size as f64 / 1024.0 / 1024.0,
        BYTES_MAX / 1024 / 1024,
        if size_ok { "ok" } else { "MISSED" }
    );
    browser_render(&run_dir.join("report.html"));
    if !(time_ok && size_ok) {
        std::process::exit(1);
    }
    Ok(())
}

/// Loads the report in headless Chromium and prints the page's own timing (script start to
/// everything drawn, hover and zoom exercised), when Chromium is installed.
fn browser_render(report: &std::path::Path) {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        println!("browser: skipped, no /usr/bin/chromium");
        return;
    }
    let profile = tempfile::tempdir().expect("a temporary folder");
    let t = Instant::now();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--window-size=1400,1000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", report.display()))
        .stderr(std::process::Stdio::null())
        .output();
    let wall = t.elapsed().as_secs_f64();
    let Ok(out) = out else {
        println!("browser: chromium did not start");
        return;
    };
    let dom = String::from_utf8_lossy(&out.stdout);
    let check = dom
        .split("<pre id=\"selfcheck\" hidden=\"\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or("(no self-check: the page's script did not finish)");
    println!("browser: chromium loaded and drew it in {wall:.1} s wall; page self-check: {check}");
}
