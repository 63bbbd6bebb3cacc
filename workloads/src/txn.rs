//! The transactional workloads, Elle's: `append` (list-append: `append k v` and `r k`) and
//! `wr` (rw-register: `w k v` and `r k`), each txn a few micro-ops over a small set of
//! active keys that rotates (a key retires after `writes_per_key_max` writes and a fresh
//! one takes its place), with every written value unique. Checked by the transactional
//! checker against a consistency model; also the mapping of a txn to and from our nodes'
//! `POST /txn` (`nodes/API.md`).

use crate::system::{SystemRequest, Workload, WorkloadParts};
use faultline_checker::history::Key;
use faultline_core::client::Completion;
use faultline_core::generator::{Invocation, OpGenerator};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::sync::Mutex;

/// The consistency model a txn workload is checked against: what our Raft store promises
/// (one log, applied in order, answered after commit).
pub const DEFAULT_MODEL: &str = "strict-serializable";

/// `append` or `wr` in the registry.
pub struct TxnWorkload(pub TxnKind);

impl Workload for TxnWorkload {
    fn name(&self) -> &str {
        match self.0 {
            TxnKind::Append => "append",
            TxnKind::Wr => "wr",
        }
    }
    fn description(&self) -> &str {
        match self.0 {
            TxnKind::Append => "list-append transactions over rotating keys; Elle-style isolation check (strict-serializable)",
            TxnKind::Wr => "read-write register transactions over rotating keys; Elle-style isolation check (strict-serializable)",
        }
    }
    fn build(&self, _request: &SystemRequest) -> anyhow::Result<WorkloadParts> {
        let params = TxnParams::new(self.0);
        let mut parts = WorkloadParts::new(std::sync::Arc::new(TxnGenerator::new(params)));
        parts.check.consistency_model = Some(DEFAULT_MODEL.into());
        parts
            .test_fields
            .push(("txn_active_keys", json!(params.active_keys)));
        parts
            .test_fields
            .push(("consistency_model", json!(DEFAULT_MODEL)));
        Ok(parts)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// List-append.
    Append,
    /// Read-write register.
    Wr,
}

/// How transactions are drawn; Elle's defaults, scaled to a 30 s run.
#[derive(Debug, Clone, Copy)]
pub struct TxnParams {
    pub kind: TxnKind,
    /// Keys in use at once: few keys make txns collide, which is what exposes anomalies.
    pub active_keys: usize,
    /// Micro-ops per txn are drawn from `1..=mops_max`.
    pub mops_max: usize,
    /// Writes a key takes before it retires (keeps lists, and Elle's inference, short).
    pub writes_per_key_max: u32,
    /// Chance that a micro-op is a read.
    pub read_fraction: f64,
}

impl TxnParams {
    pub fn new(kind: TxnKind) -> TxnParams {
        TxnParams {
            kind,
            active_keys: 5,
            mops_max: 4,
            writes_per_key_max: 32,
            read_fraction: 0.5,
        }
    }
}

/// The shared key rotation: which keys are active, how often each was written, and the
/// next fresh key and value.
#[derive(Debug)]
struct Keys {
    active: Vec<(i64, u32)>,
    next_key: i64,
    next_value: i64,
}

/// Generates txns; shared by all workers (the rotation and the values are global, so values
/// stay unique per key), each worker's choices drawn from its own seeded rng.
#[derive(Debug)]
pub struct TxnGenerator {
    params: TxnParams,
    keys: Mutex<Keys>,
}

impl TxnGenerator {
    pub fn new(params: TxnParams) -> TxnGenerator {
        let active_keys = params.active_keys.max(1);
        TxnGenerator {
            params: TxnParams {
                active_keys,
                mops_max: params.mops_max.max(1),
                writes_per_key_max: params.writes_per_key_max.max(1),
                ..params
            },
            keys: Mutex::new(Keys {
                active: (0..active_keys as i64).map(|k| (k, 0)).collect(),
                next_key: active_keys as i64,
                next_value: 1,
            }),
        }
    }

    /// One txn's micro-ops, as the history records them at invoke.
    pub fn txn(&self, rng: &mut ChaCha8Rng) -> Value {
        let p = &self.params;
        let n = rng.random_range(1..=p.mops_max);
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut mops = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = rng.random_range(0..keys.active.len());
            let key = keys.active[slot].0;
            if rng.random_bool(p.read_fraction) {
                mops.push(json!(["r", key, null]));
                continue;
            }
            let value = keys.next_value;
            keys.next_value += 1;
            let f = match p.kind {
                TxnKind::Append => "append",
                TxnKind::Wr => "w",
            };
            mops.push(json!([f, key, value]));
            keys.active[slot].1 += 1;
            if keys.active[slot].1 >= p.writes_per_key_max {
                // Retired: later txns use a fresh key; this txn may still touch it.
                let fresh = keys.next_key;
                keys.next_key += 1;
                keys.active[slot] = (fresh, 0);
            }
        }
        Value::Array(mops)
    }
}

impl OpGenerator for TxnGenerator {
    fn next_op(&self, _key: &Key, rng: &mut ChaCha8Rng) -> Invocation {
        Invocation {
            f: "txn",
            key: None,
            value: self.txn(rng),
        }
    }

    fn final_op(&self, _key: &Key) -> Option<Invocation> {
        None
    }
}

/// The node API's keys are strings; the history keeps the workload's integer keys.
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `POST /txn` body for the invoked micro-ops.
pub fn request_body(mops: &Value, request_id: &str) -> Value {
    let txn: Vec<Value> = mops
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| match m.as_array().map(Vec::as_slice) {
                    Some([f, k, v, ..]) => json!([f, key_text(k), v]),
                    _ => m.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    json!({ "txn": txn, "request_id": request_id })
}

/// The completed txn for the history: the invoked micro-ops with each read's value taken
/// from the node's answer. An answer that does not echo the micro-ops is `info` (the txn
/// was answered, so it may have happened, but what it read is unknown).
pub fn completion(invoked: &Value, answer: &Value) -> Completion {
    let (Some(mine), Some(theirs)) = (invoked.as_array(), answer["txn"].as_array()) else {
        return Completion::info(format!("the txn answer holds no micro-ops: {answer}"));
    };
    if mine.len() != theirs.len() {
        return Completion::info(format!(
            "the txn answer has {} micro-ops for {}: {answer}",
            theirs.len(),
            mine.len()
        ));
    }
    let mut done = Vec::with_capacity(mine.len());
    for (m, t) in mine.iter().zip(theirs) {
        let (Some([f, k, v]), Some([tf, tk, tv])) = (
            m.as_array().map(Vec::as_slice),
            t.as_array().map(Vec::as_slice),
        ) else {
            return Completion::info(format!("malformed micro-op in the txn answer: {t}"));
        };
        if f != tf || key_text(k) != key_text(tk) {
            return Completion::info(format!("the txn answer's micro-op {t} is not {m}"));
        }
        done.push(if f == "r" {
            json!([f, k, tv])
        } else {
            json!([f, k, v])
        });
    }
    Completion::ok(Some(Value::Array(done)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::generator::worker_rng;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn values_are_unique_and_keys_rotate() {
        for kind in [TxnKind::Append, TxnKind::Wr] {
            let g = TxnGenerator::new(TxnParams::new(kind));
            let mut rng = worker_rng(3, 0);
            let mut written = BTreeSet::new();
            let mut writes_per_key: BTreeMap<i64, u32> = BTreeMap::new();
            let mut reads = 0;
            for _ in 0..2000 {
                let op = g.next_op(&Key::Int(0), &mut rng);
                assert_eq!((op.f, op.key), ("txn", None));
                let mops = op.value.as_array().unwrap();
                assert!((1..=4).contains(&mops.len()));
                for m in mops {
                    let k = m[1].as_i64().unwrap();
                    match m[0].as_str().unwrap() {
                        "r" => {
                            assert_eq!(m[2], Value::Null);
                            reads += 1;
                        }
                        f => {
                            assert_eq!(
                                f,
                                if kind == TxnKind::Append {
                                    "append"
                                } else {
                                    "w"
                                }
                            );
                            assert!(written.insert(m[2].as_i64().unwrap()), "{m}");
                            *writes_per_key.entry(k).or_default() += 1;
                        }
                    }
                }
            }
            assert!(reads > 1000, "{reads}");
            assert!(
                writes_per_key.len() > 50,
                "keys rotate: {}",
                writes_per_key.len()
            );
            assert!(writes_per_key.values().all(|&n| n <= 32));
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_txns() {
        let draw = || {
            let g = TxnGenerator::new(TxnParams::new(TxnKind::Append));
            let mut rng = worker_rng(9, 1);
            (0..50).map(|_| g.txn(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }

    #[test]
    fn the_node_answer_fills_in_the_reads() {
        let invoked = json!([["append", 3, 7], ["r", 3, null], ["w", 4, 1]]);
        let body = request_body(&invoked, "p1-1");
        assert_eq!(
            body,
            json!({"txn": [["append", "3", 7], ["r", "3", null], ["w", "4", 1]], "request_id": "p1-1"})
        );
        let answer = json!({"txn": [["append", "3", 7], ["r", "3", [5, 7]], ["w", "4", 1]]});
        let done = completion(&invoked, &answer);
        assert_eq!(
            done.value,
            Some(json!([["append", 3, 7], ["r", 3, [5, 7]], ["w", 4, 1]]))
        );
        assert_eq!(done.kind, faultline_checker::history::OpType::Ok);
        for bad in [
            json!({}),
            json!({"txn": [["append", "3", 7]]}),
            json!({"txn": [["append", "3", 7], ["r", "9", []], ["w", "4", 1]]}),
        ] {
            assert_eq!(
                completion(&invoked, &bad).kind,
                faultline_checker::history::OpType::Info,
                "{bad}"
            );
        }
    }
}
