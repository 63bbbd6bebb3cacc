//! The terminal report of the transactional checker: the verdict, a table of the anomaly
//! classes found, and each explained anomaly with its witness cycle edge by edge.

use faultline_checker::history::{Op, OpType, Process};
use faultline_checker::import::{guess_format, Format};
use faultline_checker::results::CheckerResult;
use faultline_checker::txn::{self, TxnResult};
use faultline_checker::{Results, Validity};
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

/// `faultline check` on a transactional `history.jsonl`: read by the txn checker's own
/// reader (blocks parsed on every core, no JSON values kept) and checked, instead of the
/// generic reader's `Op`s. `None` when the file is not such a history (or options ask for
/// other checkers): the generic path then reads it. Returns the events as skeleton ops
/// (no values) for the run summary's counts and latencies, and the results.
pub fn check_fast(
    args: &crate::check::CheckArgs,
    format: Option<Format>,
) -> anyhow::Result<Option<(Vec<Op>, Results)>> {
    use std::io::Read;
    if !matches!(format, None | Some(Format::Jsonl)) || args.model.is_some() {
        return Ok(None);
    }
    if !args.only_f.is_empty() {
        return Ok(None);
    }
    let name = args.file.display().to_string();
    let mut file = std::fs::File::open(&args.file).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let mut start = Vec::with_capacity(SNIFF_BYTES);
    (&mut file)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut start)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let text = String::from_utf8_lossy(&start);
    // faultline writes its lines compact: a txn op says `"f":"txn"` near the start.
    if guess_format(&text) != Format::Jsonl || !text.contains("\"f\":\"txn\"") {
        return Ok(None);
    }
    let (h, summary) = txn::history::read_jsonl_summary(
        std::io::Read::chain(std::io::Cursor::new(start), file),
        &name,
    )
    .map_err(anyhow::Error::msg)?;
    // Other client ops call for other checkers (or none of the txn checker's): the
    // generic path decides those, as before.
    if h.other_ops > 0 || h.mops.is_empty() {
        return Ok(None);
    }
    if let Some(warning) = summary.warning(&name) {
        eprintln!("faultline: warning: {warning}");
    }
    let options = txn::TxnOptions::with_model(args.consistency_model.as_deref());
    let progress = faultline_report::check_progress(h.txns.len() as u64, "checking txns");
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    let r = txn::check(&h, &options).map_err(anyhow::Error::msg);
    progress.finish_and_clear();
    let results = Results::new(vec![CheckerResult::Txn(r?)]);
    let ops = if args.json {
        Vec::new()
    } else {
        skeleton_ops(&h)
    };
    Ok(Some((ops, results)))
}

/// Bytes of the file's start the choice of reader looks at.
const SNIFF_BYTES: usize = 4096;

/// The history's txn events as ops without values, in file order: what the run summary
/// counts (outcomes, latencies) without the micro-ops.
fn skeleton_ops(h: &txn::History) -> Vec<Op> {
    h.events
        .iter()
        .map(|&(t, completion)| {
            let x = &h.txns[t as usize];
            let (kind, index, time) = if completion {
                let kind = match x.outcome {
                    txn::Outcome::Ok => OpType::Ok,
                    txn::Outcome::Fail => OpType::Fail,
                    txn::Outcome::Info => OpType::Info,
                };
                (
                    kind,
                    x.complete_index.unwrap_or_default(),
                    x.complete_time.unwrap_or_default(),
                )
            } else {
                (OpType::Invoke, x.invoke_index, x.invoke_time)
            };
            Op {
                index,
                time,
                kind,
                process: Process::Client(x.process),
                f: "txn".into(),
                key: None,
                value: serde_json::Value::Null,
                node: None,
                error: None,
            }
        })
        .collect()
}
