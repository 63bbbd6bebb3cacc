//! Reading `history.jsonl` and pairing its events into operations (invoke + completion),
//! plus the op counts and latency quantiles every view of a run shows.

use crate::model::{FStats, Stats};
use anyhow::Context;
use faultline_checker::history::{Key, Op, OpType, Process};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

/// Reads a history file; an unreadable line is an error naming the file and line.
pub fn read_history(path: &Path) -> anyhow::Result<Vec<Op>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ops = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: cannot read", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let op: Op = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a history event", path.display(), n + 1))?;
        ops.push(op);
    }
    Ok(ops)
}

/// How an operation ended. `Pending` ops never completed before the history ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
        }
    }
}

/// One operation: positions of its invoke and completion in the history slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub invoke: usize,
    pub complete: Option<usize>,
    pub outcome: Outcome,
}

impl Pair {
    /// Latency in nanoseconds, for completed ops.
    pub fn latency_ns(&self, ops: &[Op]) -> Option<u64> {
        self.complete
            .map(|c| ops[c].time.saturating_sub(ops[self.invoke].time))
    }

    /// The value that best describes the op: the completion's when it has one
    /// (a read's result), else the invoke's.
    pub fn value<'a>(&self, ops: &'a [Op]) -> &'a serde_json::Value {
        match self.complete {
            Some(c) if !ops[c].value.is_null() => &ops[c].value,
            _ => &ops[self.invoke].value,
        }
    }
}

/// Pairs every invoke with its process's next completion, in invoke order. Client ops and
/// nemesis ops come back apart. A completion without an invoke is skipped: the checker,
/// not the report, judges malformed histories.
pub fn pair_ops(ops: &[Op]) -> (Vec<Pair>, Vec<Pair>) {
    let mut clients = Vec::new();
    let mut nemesis = Vec::new();
    // Nemesis faults may overlap, so they pair by `f` rather than by process.
    let mut open_client: HashMap<u64, usize> = HashMap::new();
    let mut open_nemesis: HashMap<&str, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let slot = match op.process {
            Process::Client(p) => (Some(p), None),
            Process::Nemesis => (None, Some(op.f.as_str())),
        };
        if op.kind == OpType::Invoke {
            let pair = Pair {
                invoke: i,
                complete: None,
                outcome: Outcome::Pending,
            };
            match slot {
                (Some(p), _) => {
                    clients.push(pair);
                    open_client.insert(p, clients.len() - 1);
                }
                (_, Some(f)) => {
                    nemesis.push(pair);
                    open_nemesis.insert(f, nemesis.len() - 1);
                }
                _ => {}
            }
            continue;
        }
        let outcome = match op.kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        };
        let target = match slot {
            (Some(p), _) => open_client.remove(&p).map(|j| &mut clients[j]),
            (_, Some(f)) => open_nemesis.remove(f).map(|j| &mut nemesis[j]),
            _ => None,
        };
        if let Some(pair) = target {
            pair.complete = Some(i);
            pair.outcome = outcome;
        }
    }
    (clients, nemesis)
}

/// Quantile `q` (0..=1) of sorted values, nearest-rank.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| (n as f64 / 1e6 * 1000.0).round() / 1000.0)
}

/// Counts and quantiles for a set of client ops. Pending ops count as `info`: their outcome
/// is unknown. Latency quantiles are over `ok` ops only, since timeouts would swamp them.
pub fn stats_of<'a>(ops: &[Op], pairs: impl IntoIterator<Item = &'a Pair>) -> Stats {
    let mut stats = Stats::default();
    let mut latencies: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for pair in pairs {
        let f = &ops[pair.invoke].f;
        let entry = stats.by_f.entry(f.clone()).or_default();
        stats.ops += 1;
        match pair.outcome {
            Outcome::Ok => {
                stats.ok += 1;
                entry.ok += 1;
                if let Some(l) = pair.latency_ns(ops) {
                    latencies.entry(f.clone()).or_default().push(l);
                }
            }
            Outcome::Fail => {
                stats.fail += 1;
                entry.fail += 1;
            }
            Outcome::Info | Outcome::Pending => {
                stats.info += 1;
                entry.info += 1;
            }
        }
    }
    for (f, mut l) in latencies {
        l.sort_unstable();
        let entry: &mut FStats = stats.by_f.get_mut(&f).expect("counted above");
        entry.p50_ms = ms(quantile(&l, 0.5));
        entry.p99_ms = ms(quantile(&l, 0.99));
    }
    stats
}

/// `results.json`'s `stats` for a whole history.
pub fn history_stats(ops: &[Op]) -> Stats {
    let (clients, _) = pair_ops(ops);
    stats_of(ops, &clients)
}

/// Overall latency quantiles (ms) over the `ok` ops of a set.
pub fn latency_quantiles(ops: &[Op], pairs: &[&Pair]) -> (Option<f64>, Option<f64>) {
    let mut l: Vec<u64> = pairs
        .iter()
        .filter(|p| p.outcome == Outcome::Ok)
        .filter_map(|p| p.latency_ns(ops))
        .collect();
    l.sort_unstable();
    (ms(quantile(&l, 0.5)), ms(quantile(&l, 0.99)))
}

/// Client ops grouped by key (ops without a key under `None`).
pub fn pairs_by_key<'a>(ops: &[Op], pairs: &'a [Pair]) -> BTreeMap<Option<Key>, Vec<&'a Pair>> {
    let mut map: BTreeMap<Option<Key>, Vec<&Pair>> = BTreeMap::new();
    for p in pairs {
        map.entry(ops[p.invoke].key.clone()).or_default().push(p);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(index: u64, time: u64, kind: OpType, process: Process, f: &str) -> Op {
        Op {
            index,
            time,
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
    fn pairs_interleaved_processes_and_counts_pending_as_info() {
        use OpType::*;
        let c = Process::Client;
        let h = vec![
            op(0, 0, Invoke, c(1), "write"),
            op(1, 5, Invoke, c(2), "read"),
            op(2, 6, Invoke, Process::Nemesis, "start-partition"),
            op(3, 10, Ok, c(2), "read"),
            op(4, 12, Info, Process::Nemesis, "start-partition"),
            op(5, 20_000_000, Fail, c(1), "write"),
            op(6, 21_000_000, Invoke, c(1), "read"),
        ];
        let (clients, nemesis) = pair_ops(&h);
        assert_eq!(clients.len(), 3);
        assert_eq!(
            (clients[0].complete, clients[0].outcome),
            (Some(5), Outcome::Fail)
        );
        assert_eq!(
            (clients[1].complete, clients[1].outcome),
            (Some(3), Outcome::Ok)
        );
        assert_eq!(clients[2].outcome, Outcome::Pending);
        assert_eq!(nemesis[0].complete, Some(4));
        let s = history_stats(&h);
        assert_eq!((s.ops, s.ok, s.fail, s.info), (3, 1, 1, 1));
        assert_eq!(s.by_f["read"].p50_ms, Some(0.000));
        assert_eq!(s.by_f["write"].p50_ms, None);
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
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        std::fs::write(
            &path,
            "{\"index\":0,\"time\":0,\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n\n{\"index\":1}\n",
        )
        .unwrap();
        let err = format!("{:#}", read_history(&path).unwrap_err());
        assert!(err.contains("history.jsonl:3"), "{err}");
    }
}
