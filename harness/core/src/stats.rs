//! Counts and latencies of a history, for the `stats` field of results.json.

use faultline_checker::history::{Op, OpType, Process};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// `stats` of results.json (docs/contracts.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Completed client operations.
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub by_f: BTreeMap<String, FStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FStats {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Pairs each client completion with its process's open invoke; nemesis events and
/// invokes without completion are not counted.
pub fn compute(history: &[Op]) -> Stats {
    let mut open: HashMap<u64, u64> = HashMap::new();
    let mut latencies: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut stats = Stats::default();
    for op in history {
        let Process::Client(process) = op.process else {
            continue;
        };
        if op.kind == OpType::Invoke {
            open.insert(process, op.time);
            continue;
        }
        let Some(invoked) = open.remove(&process) else {
            continue;
        };
        let entry = stats.by_f.entry(op.f.clone()).or_default();
        match op.kind {
            OpType::Ok => {
                stats.ok += 1;
                entry.ok += 1;
            }
            OpType::Fail => {
                stats.fail += 1;
                entry.fail += 1;
            }
            _ => {
                stats.info += 1;
                entry.info += 1;
            }
        }
        stats.ops += 1;
        latencies
            .entry(op.f.clone())
            .or_default()
            .push(op.time.saturating_sub(invoked));
    }
    for (f, mut lat) in latencies {
        lat.sort_unstable();
        if let Some(entry) = stats.by_f.get_mut(&f) {
            entry.p50_ms = percentile_ms(&lat, 0.50);
            entry.p99_ms = percentile_ms(&lat, 0.99);
        }
    }
    stats
}

fn percentile_ms(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_ns.len() as f64 * q).ceil() as usize).clamp(1, sorted_ns.len());
    sorted_ns[rank - 1] as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn op(index: u64, time_ms: u64, kind: OpType, process: Process, f: &str) -> Op {
        Op {
            index,
            time: time_ms * 1_000_000,
            kind,
            process,
            f: f.into(),
            key: None,
            value: Value::Null,
            node: None,
            error: None,
        }
    }

    #[test]
    fn pairs_completions_with_invokes_per_process() {
        use OpType::*;
        let c = Process::Client;
        let history = vec![
            op(0, 0, Invoke, c(0), "read"),
            op(1, 1, Invoke, c(1), "write"),
            op(2, 3, Ok, c(0), "read"),
            op(3, 4, Invoke, Process::Nemesis, "kill"),
            op(4, 5, Info, c(1), "write"),
            op(5, 6, Info, Process::Nemesis, "kill"),
            op(6, 6, Invoke, c(0), "read"),
            op(7, 16, Fail, c(0), "read"),
            op(8, 17, Invoke, c(3), "cas"),
        ];
        let stats = compute(&history);
        assert_eq!((stats.ops, stats.ok, stats.fail, stats.info), (3, 1, 1, 1));
        let read = &stats.by_f["read"];
        assert_eq!((read.ok, read.fail), (1, 1));
        assert_eq!(read.p50_ms, 3.0);
        assert_eq!(read.p99_ms, 10.0);
        assert_eq!(stats.by_f["write"].info, 1);
        assert!(!stats.by_f.contains_key("cas"));
    }
}
