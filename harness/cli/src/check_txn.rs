//! The terminal report of the transactional checker: the verdict, a table of the anomaly
//! classes found, and each explained anomaly with its witness cycle edge by edge.

use faultline_checker::txn::TxnResult;
use faultline_checker::Validity;
use tabled::{settings::Style, Table, Tabled};

#[derive(Tabled)]
struct Row {
    anomaly: String,
    count: usize,
    #[tabled(rename = "forbidden by model")]
    forbidden: &'static str,
}

/// Control characters from a history never reach the terminal raw.
fn safe(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

pub fn render(out: &mut String, r: &TxnResult) {
    use std::fmt::Write;
    let verdict = match r.valid {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    };
    let _ = writeln!(
        out,
        "transactions ({}): {verdict} in {:.1} ms — {} txns ({} ok, {} info, {} fail), {} edges",
        r.consistency_model, r.duration_ms, r.txns, r.ok, r.info, r.fail, r.edges
    );
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "  {}", safe(reason));
    }
    if !r.counts.is_empty() {
        let rows: Vec<Row> = r
            .counts
            .iter()
            .map(|(k, n)| Row {
                anomaly: k.clone(),
                count: *n,
                forbidden: if r.forbidden.contains(k) { "yes" } else { "no" },
            })
            .collect();
        let _ = writeln!(out, "{}", Table::new(rows).with(Style::sharp()));
    }
    if !r.not.is_empty() {
        let _ = writeln!(out, "ruled out: {}", r.not.join(", "));
    }
    for a in &r.anomalies {
        let _ = writeln!(out, "\n{}", safe(&a.heading()));
        for t in &a.txns {
            let _ = writeln!(
                out,
                "  T{:<6} process {:<4} {:<4}  {}   [{}]",
                t.id,
                t.process,
                t.outcome_name(),
                safe(&t.value.to_string()),
                t.events()
            );
        }
        if a.steps.is_empty() {
            let _ = writeln!(out, "  {}", safe(&a.explanation));
        }
        for s in &a.steps {
            let _ = writeln!(out, "  {}", safe(&s.sentence()));
        }
    }
}
