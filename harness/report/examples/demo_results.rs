//! Writes a results folder of synthetic runs (valid, invalid, lock, XSS payload) with their
//! reports and index, to look at a report without a cluster:
//! `cargo run -p faultline-report --example demo_results -- /tmp/demo-results`.

use faultline_report::synth::{lock_run, register_run, write_run, LockSpec, RegisterSpec};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "demo-results".into()),
    );
    let ops: usize = std::env::var("DEMO_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let runs = [
        (
            "raft-register",
            "20261126T070000Z",
            register_run(&RegisterSpec {
                seed: 1,
                ops,
                ..Default::default()
            }),
        ),
        (
            "raft-register",
            "20261126T071000Z",
            register_run(&RegisterSpec {
                seed: 2,
                ops,
                bug: true,
                ..Default::default()
            }),
        ),
        (
            "redis-lock",
            "20261126T072000Z",
            lock_run(&LockSpec {
                seed: 3,
                acquisitions: ops / 4,
                bug: true,
                ..Default::default()
            }),
        ),
        (
            "xss",
            "20261126T073000Z",
            register_run(&RegisterSpec {
                seed: 4,
                ops: 300,
                payload: Some("<script>window.__xss=1</script><img src=x onerror=alert(1)>".into()),
                ..Default::default()
            }),
        ),
    ];
    for (test, id, run) in &runs {
        let dir = root.join(test).join(id);
        write_run(&dir, run)?;
        let report = faultline_report::finish_run(&dir)?;
        println!("{}", report.display());
    }
    println!("{}", root.join("index.html").display());
    Ok(())
}
