//! The set checker of the lock-set workload (Jepsen's `checker/set`): every acknowledged
//! `add` must be in the final `read` of its set.
//!
//! Per key: `add` ops carry one element each (the invoke's value); the last `ok` `read`
//! returns the whole set (a JSON array). An `ok` add missing from that read is *lost*, an
//! element read that no add attempted is *unexpected*, and an element of an add that ended
//! in `fail` (it certainly did not happen) but is read anyway is *failed but present* — a
//! misclassified outcome. Each of the three makes the key invalid. Adds that ended in
//! `info` may or may not be present. A key without an `ok` read cannot be decided: unknown.

use crate::history::{pair_operations, Key, Op, OpType, Operation};
use crate::results::OpRef;
use crate::verdict::Validity;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// How many ops of each kind a result lists in full; the counts are always complete.
const LISTED_MAX: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetResult {
    pub valid: Validity,
    pub duration_ms: f64,
    pub sets: Vec<SetKeyResult>,
    /// One paragraph over every set that is not valid; absent when all are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Why the history could not be checked (then `valid` is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The verdict for one set (one key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetKeyResult {
    pub key: Option<Key>,
    pub valid: Validity,
    /// Adds invoked, acknowledged (`ok`), and of unknown outcome (`info` or pending).
    pub attempted: usize,
    pub acknowledged: usize,
    pub indeterminate: usize,
    /// The final read the verdict rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_read: Option<OpRef>,
    /// Acknowledged elements missing from the final read, ascending.
    pub lost: Vec<i64>,
    /// Elements read that no add attempted.
    pub unexpected: Vec<i64>,
    /// Elements of adds that ended in `fail` and were read anyway.
    pub failed_present: Vec<i64>,
    /// Elements of adds of unknown outcome that the final read holds.
    pub recovered: usize,
    /// The first lost adds, each with the acknowledged adds that ran beside it (the writes
    /// that may have overwritten it).
    pub lost_adds: Vec<LostAdd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostAdd {
    pub add: OpRef,
    pub concurrent: Vec<OpRef>,
}

fn element(v: &serde_json::Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.get("element").and_then(|e| e.as_i64()))
}

/// Checks every set (key) of a history; ops other than `add` and `read` are ignored.
pub fn check_set(ops: &[Op]) -> SetResult {
    let started = Instant::now();
    let elapsed = |s: Instant| s.elapsed().as_secs_f64() * 1000.0;
    let pairs = match pair_operations(ops) {
        Ok(p) => p,
        Err(e) => {
            return SetResult {
                valid: Validity::Unknown,
                duration_ms: elapsed(started),
                sets: Vec::new(),
                explanation: None,
                error: Some(format!("malformed history: {e}")),
            }
        }
    };
    let mut by_key: BTreeMap<Option<Key>, Vec<Operation>> = BTreeMap::new();
    for p in pairs {
        let f = ops[p.invoke].f.as_str();
        if f == "add" || f == "read" {
            by_key.entry(ops[p.invoke].key.clone()).or_default().push(p);
        }
    }
    let sets: Vec<SetKeyResult> = by_key
        .into_iter()
        .map(|(key, pairs)| check_one(ops, key, &pairs))
        .collect();
    let valid = sets
        .iter()
        .fold(Validity::Valid, |acc, s| acc.combine(s.valid));
    let problems: Vec<String> = sets.iter().filter_map(describe).collect();
    SetResult {
        valid,
        duration_ms: elapsed(started),
        sets,
        explanation: (!problems.is_empty()).then(|| problems.join(" ")),
        error: None,
    }
}

fn outcome(ops: &[Op], p: &Operation) -> Option<OpType> {
    p.complete.map(|c| ops[c].kind)
}

fn check_one(ops: &[Op], key: Option<Key>, pairs: &[Operation]) -> SetKeyResult {
    let mut result = SetKeyResult {
        key,
        valid: Validity::Valid,
        attempted: 0,
        acknowledged: 0,
        indeterminate: 0,
        final_read: None,
        lost: Vec::new(),
        unexpected: Vec::new(),
        failed_present: Vec::new(),
        recovered: 0,
        lost_adds: Vec::new(),
        reason: None,
    };
    let mut attempted = BTreeSet::new();
    let mut failed = BTreeSet::new();
    let mut indeterminate = BTreeSet::new();
    let mut acked: BTreeMap<i64, &Operation> = BTreeMap::new();
    let mut final_read: Option<&Operation> = None;
    for p in pairs {
        let inv = &ops[p.invoke];
        if inv.f == "read" {
            if outcome(ops, p) == Some(OpType::Ok) {
                final_read = Some(p);
            }
            continue;
        }
        let Some(e) = element(&inv.value) else {
            result.valid = Validity::Unknown;
            result.reason = Some(format!(
                "add #{} has no integer element (value {})",
                inv.index, inv.value
            ));
            return result;
        };
        attempted.insert(e);
        match outcome(ops, p) {
            Some(OpType::Ok) => {
                acked.insert(e, p);
            }
            Some(OpType::Fail) => {
                failed.insert(e);
            }
            _ => {
                indeterminate.insert(e);
            }
        }
    }
    result.attempted = attempted.len();
    result.acknowledged = acked.len();
    result.indeterminate = indeterminate.len();
    let Some(read) = final_read else {
        result.valid = Validity::Unknown;
        result.reason = Some("no read of the set succeeded, so no add can be confirmed".into());
        return result;
    };
    result.final_read = Some(OpRef::new(ops, *read));
    let read_value = &ops[read.complete.expect("an ok read has a completion")].value;
    let Some(read_set) = read_value.as_array().and_then(|a| {
        a.iter()
            .map(|v| v.as_i64())
            .collect::<Option<BTreeSet<i64>>>()
    }) else {
        result.valid = Validity::Unknown;
        result.reason = Some(format!(
            "the final read #{} returned {read_value}, not a list of integers",
            ops[read.invoke].index
        ));
        return result;
    };
    result.lost = acked
        .keys()
        .filter(|e| !read_set.contains(e))
        .copied()
        .collect();
    result.unexpected = read_set
        .iter()
        .filter(|e| !attempted.contains(e))
        .copied()
        .collect();
    result.failed_present = read_set
        .iter()
        .filter(|e| failed.contains(e) && !acked.contains_key(e))
        .copied()
        .collect();
    result.recovered = indeterminate.intersection(&read_set).count();
    for e in result.lost.iter().take(LISTED_MAX) {
        let lost = acked[e];
        let (start, end) = span(ops, lost);
        let concurrent = acked
            .values()
            .filter(|p| p.invoke != lost.invoke)
            .filter(|p| {
                let (s, t) = span(ops, p);
                s < end && start < t
            })
            .take(LISTED_MAX)
            .map(|p| OpRef::new(ops, **p))
            .collect();
        result.lost_adds.push(LostAdd {
            add: OpRef::new(ops, *lost),
            concurrent,
        });
    }
    if !(result.lost.is_empty() && result.unexpected.is_empty() && result.failed_present.is_empty())
    {
        result.valid = Validity::Invalid;
    }
    result
}

/// An op's interval in history order (indices, so imported histories without clocks work).
fn span(ops: &[Op], p: &Operation) -> (u64, u64) {
    let start = ops[p.invoke].index;
    let end = p.complete.map_or(u64::MAX, |c| ops[c].index);
    (start, end)
}

fn list(elements: &[i64]) -> String {
    let shown: Vec<String> = elements
        .iter()
        .take(LISTED_MAX)
        .map(i64::to_string)
        .collect();
    let more = elements.len().saturating_sub(LISTED_MAX);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// One paragraph a person can follow, for a set that is not valid.
fn describe(s: &SetKeyResult) -> Option<String> {
    let name = s
        .key
        .as_ref()
        .map_or("the set".to_string(), |k| format!("set {k}"));
    match s.valid {
        Validity::Valid => None,
        Validity::Unknown => Some(format!(
            "{name}: unknown: {}.",
            s.reason.as_deref().unwrap_or("not decided")
        )),
        Validity::Invalid => {
            let read = s.final_read.as_ref().map_or(String::new(), |r| {
                format!(
                    " the final read (#{})",
                    r.complete_index.unwrap_or(r.invoke_index)
                )
            });
            let mut parts = Vec::new();
            if !s.lost.is_empty() {
                let mut text = format!(
                    "{} of {} acknowledged adds are missing from{read}: {}",
                    s.lost.len(),
                    s.acknowledged,
                    list(&s.lost)
                );
                if let Some(first) = s.lost_adds.first() {
                    let others: Vec<String> = first
                        .concurrent
                        .iter()
                        .take(5)
                        .map(|o| {
                            format!(
                                "process {} added {} [#{}..#{}]",
                                o.process,
                                o.value,
                                o.invoke_index,
                                o.complete_index.unwrap_or_default()
                            )
                        })
                        .collect();
                    text.push_str(&format!(
                        ". Process {} added {} [#{}..#{}] and was acknowledged, yet a later write of the set left it out",
                        first.add.process,
                        first.add.value,
                        first.add.invoke_index,
                        first.add.complete_index.unwrap_or_default()
                    ));
                    if !others.is_empty() {
                        text.push_str(&format!(
                            "; acknowledged adds that ran at the same time, each a read-modify-write that should have held the lock alone: {}",
                            others.join("; ")
                        ));
                    }
                    text.push_str(". Either two clients held the lock at once and the later write overwrote the earlier, or the store lost an acknowledged write");
                }
                parts.push(text);
            }
            if !s.unexpected.is_empty() {
                parts.push(format!(
                    "{read} holds elements no add attempted: {}",
                    list(&s.unexpected)
                ));
            }
            if !s.failed_present.is_empty() {
                parts.push(format!(
                    "{read} holds elements of adds that were reported failed: {}",
                    list(&s.failed_present)
                ));
            }
            Some(format!("{name} is invalid: {}.", parts.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A history from (process, type, f, value) rows on one key.
    fn history(rows: &[(u64, &str, &str, Value)]) -> Vec<Op> {
        rows.iter()
            .enumerate()
            .map(|(i, (p, t, f, v))| {
                serde_json::from_value(json!({
                    "index": i, "time": (i as u64 + 1) * 1000, "type": t,
                    "process": p, "f": f, "key": 0, "value": v
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn every_acknowledged_add_read_back_is_valid() {
        let ops = history(&[
            (0, "invoke", "add", json!(1)),
            (0, "ok", "add", json!(1)),
            (1, "invoke", "add", json!(2)),
            (1, "info", "add", json!(2)),
            (2, "invoke", "add", json!(3)),
            (2, "fail", "add", json!(3)),
            (3, "invoke", "read", json!(null)),
            (3, "ok", "read", json!([1, 2])),
        ]);
        let r = check_set(&ops);
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        let s = &r.sets[0];
        assert_eq!((s.attempted, s.acknowledged, s.indeterminate), (3, 1, 1));
        assert_eq!(s.recovered, 1);
        assert!(r.explanation.is_none());
    }

    #[test]
    fn a_lost_add_names_the_adds_beside_it() {
        // 1 and 2 run at once (two holders); the write of 2 overwrote 1.
        let ops = history(&[
            (0, "invoke", "add", json!(1)),
            (1, "invoke", "add", json!(2)),
            (0, "ok", "add", json!(1)),
            (1, "ok", "add", json!(2)),
            (2, "invoke", "add", json!(3)),
            (2, "ok", "add", json!(3)),
            (3, "invoke", "read", json!(null)),
            (3, "ok", "read", json!([2, 3])),
        ]);
        let r = check_set(&ops);
        assert_eq!(r.valid, Validity::Invalid);
        let s = &r.sets[0];
        assert_eq!(s.lost, vec![1]);
        assert_eq!(s.lost_adds[0].concurrent.len(), 1);
        assert_eq!(s.lost_adds[0].concurrent[0].value, json!(2));
        let text = r.explanation.unwrap();
        assert!(
            text.contains("1 of 3 acknowledged adds are missing"),
            "{text}"
        );
        assert!(text.contains("process 1 added 2 [#1..#3]"), "{text}");
    }

    #[test]
    fn unexpected_and_failed_elements_are_invalid() {
        let ops = history(&[
            (0, "invoke", "add", json!(1)),
            (0, "fail", "add", json!(1)),
            (3, "invoke", "read", json!(null)),
            (3, "ok", "read", json!([1, 9])),
        ]);
        let r = check_set(&ops);
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.sets[0].unexpected, vec![9]);
        assert_eq!(r.sets[0].failed_present, vec![1]);
    }

    #[test]
    fn without_a_successful_read_the_set_is_unknown() {
        let ops = history(&[
            (0, "invoke", "add", json!(1)),
            (0, "ok", "add", json!(1)),
            (3, "invoke", "read", json!(null)),
            (3, "fail", "read", json!(null)),
        ]);
        let r = check_set(&ops);
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r
            .explanation
            .unwrap()
            .contains("no read of the set succeeded"));
        let bad = history(&[
            (3, "invoke", "read", json!(null)),
            (3, "ok", "read", json!({"not": "a list"})),
        ]);
        assert_eq!(check_set(&bad).valid, Validity::Unknown);
    }
}
