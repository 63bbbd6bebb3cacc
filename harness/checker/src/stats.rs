//! Counts and latencies of a history: the `stats` of results.json, the report's tables and
//! the terminal summary, all from one function so that re-analysing a run changes nothing.
//!
//! The rules (docs/contracts.md, "stats"): client operations only; every invoke is one op,
//! counted once by how it ended — `ok`, `fail`, `info`, or `pending` when the history ended
//! before it completed (a crash, an interrupt). Latency quantiles (nearest rank, in ms,
//! rounded to the microsecond) are over the ops the system answered, `ok` and `fail`: the
//! time of an `info` is the client's timeout and that of a pending op the end of the test,
//! neither a latency of the system.

use crate::history::{pair_ops, Op, Operation, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `stats` of results.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Client operations invoked: `ok + fail + info + pending`.
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Never completed. Files written before this field counted these under `info` or not
    /// at all; they read as 0.
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub by_f: BTreeMap<String, FStats>,
}

/// Counts and latency quantiles of one operation name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FStats {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    #[serde(default)]
    pub pending: u64,
    /// `null` when no op of this name was answered.
    #[serde(default)]
    pub p50_ms: Option<f64>,
    #[serde(default)]
    pub p99_ms: Option<f64>,
}

/// Stats of a whole history.
pub fn compute(ops: &[Op]) -> Stats {
    of(ops, &pair_ops(ops).clients)
}

/// Stats of some client operations of `ops` (one key's, one checker's).
pub fn of<'a>(ops: &[Op], operations: impl IntoIterator<Item = &'a Operation>) -> Stats {
    let mut stats = Stats::default();
    let mut latencies: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for operation in operations {
        let f = ops[operation.invoke].f.as_str();
        let entry = stats.by_f.entry(f.to_owned()).or_default();
        stats.ops += 1;
        let (total, mine) = match operation.outcome {
            Outcome::Ok => (&mut stats.ok, &mut entry.ok),
            Outcome::Fail => (&mut stats.fail, &mut entry.fail),
            Outcome::Info => (&mut stats.info, &mut entry.info),
            Outcome::Pending => (&mut stats.pending, &mut entry.pending),
        };
        *total += 1;
        *mine += 1;
        if answered(operation) {
            if let Some(l) = operation.latency_ns(ops) {
                latencies.entry(f).or_default().push(l);
            }
        }
    }
    for (f, mut l) in latencies {
        l.sort_unstable();
        if let Some(entry) = stats.by_f.get_mut(f) {
            entry.p50_ms = ms(quantile(&l, 0.5));
            entry.p99_ms = ms(quantile(&l, 0.99));
        }
    }
    stats
}

/// Whether an operation's latency is the system's: it answered, `ok` or `fail`.
pub fn answered(operation: &Operation) -> bool {
    matches!(operation.outcome, Outcome::Ok | Outcome::Fail)
}

/// Quantile `q` (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Nanoseconds as milliseconds rounded to the microsecond, as results.json stores them.
pub fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| (n as f64 / 1e6 * 1000.0).round() / 1000.0)
}

/// Overall latency quantiles (ms) of some operations, by the same rule as `by_f`.
pub fn latency_quantiles<'a>(
    ops: &[Op],
    operations: impl IntoIterator<Item = &'a Operation>,
    qs: &[f64],
) -> Vec<Option<f64>> {
    let mut l: Vec<u64> = operations
        .into_iter()
        .filter(|o| answered(o))
        .filter_map(|o| o.latency_ns(ops))
        .collect();
    l.sort_unstable();
    qs.iter().map(|&q| ms(quantile(&l, q))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};

    fn op(index: u64, time_ms: u64, kind: OpType, process: Process, f: &str) -> Op {
        Op {
            index,
            time: time_ms * 1_000_000,
            kind,
            process,
            f: f.into(),
            key: None,
            value: serde_json::Value::Null,
            node: None,
            error: None,
        }
    }

    #[test]
    fn every_invoke_counts_once_and_latency_is_over_answered_ops() {
        use OpType::*;
        let c = Process::Client;
        let history = vec![
            op(0, 0, Invoke, c(0), "read"),
            op(1, 1, Invoke, c(1), "write"),
            op(2, 3, Ok, c(0), "read"),
            op(3, 4, Invoke, Process::Nemesis, "kill"),
            op(4, 2_505, Info, c(1), "write"),
            op(5, 2_506, Info, Process::Nemesis, "kill"),
            op(6, 6, Invoke, c(0), "read"),
            op(7, 16, Fail, c(0), "read"),
            op(8, 17, Invoke, c(3), "cas"),
            // Knossos drops an info that completes nothing; so do the stats.
            op(9, 18, Info, c(9), "write"),
        ];
        let stats = compute(&history);
        assert_eq!(
            (stats.ops, stats.ok, stats.fail, stats.info, stats.pending),
            (4, 1, 1, 1, 1)
        );
        let read = &stats.by_f["read"];
        assert_eq!((read.ok, read.fail), (1, 1));
        assert_eq!((read.p50_ms, read.p99_ms), (Some(3.0), Some(10.0)));
        // A timeout's 2.5 s is the client's, not the system's.
        assert_eq!(stats.by_f["write"].info, 1);
        assert_eq!(stats.by_f["write"].p50_ms, None);
        assert_eq!(stats.by_f["cas"].pending, 1);
        assert_eq!(stats.by_f["cas"].p99_ms, None);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&[7], 0.0), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn older_stats_without_pending_still_read() {
        let old = r#"{"ops": 3, "ok": 2, "fail": 1, "info": 0,
            "by_f": {"read": {"ok": 1, "fail": 0, "info": 0, "p50_ms": 1.2, "p99_ms": 9.9}}}"#;
        let s: Stats = serde_json::from_str(old).unwrap();
        assert_eq!(s.pending, 0);
        assert_eq!(s.by_f["read"].p99_ms, Some(9.9));
        let core_style = r#"{"ops": 1, "ok": 1, "fail": 0, "info": 0,
            "by_f": {"read": {"ok": 1, "fail": 0, "info": 0, "p50_ms": 0.0, "p99_ms": 0.0}}}"#;
        assert!(serde_json::from_str::<Stats>(core_style).is_ok());
    }
}
