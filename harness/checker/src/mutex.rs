//! The mutual-exclusion checker for lock histories: no two clients may hold a lock at
//! times that must overlap, and fencing tokens must grow in the real-time order of grants.
//!
//! A hold from an `ok` acquire is certain. It certainly existed from the acquire's `ok`
//! (the grant happened before the client heard of it) until the client invoked its release,
//! or until its lease could first have expired (the lease started no earlier than the
//! acquire's invoke), whichever is earlier; with neither, to the end of the history. Two
//! such windows of different processes that intersect are an `overlap` violation.
//! An acquire that ended in `info` (or never completed) may or may not have been granted,
//! at any time after its invoke: it is listed as an uncertain hold, possibly held until its
//! lease could have expired (or to the end without a lease), but it can never *force* an
//! overlap — it may never have been granted — so it is not counted in violations.

use crate::history::{pair_operations, Key, Op, OpType, Operation, Process};
use crate::results::{Hold, LockResult, MutexResult, Violation, ViolationKind};
use crate::verdict::Validity;
use std::collections::BTreeMap;
use std::time::Instant;

fn lease_of(v: &serde_json::Value) -> Option<u64> {
    v.get("lease_ms")
        .or_else(|| v.get("ttl_ms"))
        .and_then(|l| l.as_u64())
}

fn token_of(v: &serde_json::Value) -> Option<i64> {
    v.get("token").and_then(|t| t.as_i64())
}

/// Times are only trusted when they never go backwards in file order; otherwise (imported
/// histories without clocks) the position in the file is the time.
fn clock(ops: &[Op]) -> Vec<u64> {
    let monotonic =
        ops.windows(2).all(|w| w[0].time <= w[1].time) && ops.last().is_some_and(|o| o.time > 0);
    if monotonic {
        ops.iter().map(|o| o.time).collect()
    } else {
        (0..ops.len() as u64).collect()
    }
}

/// Checks every lock (key) of a history. Ops other than `acquire`/`release` are ignored.
pub fn check_mutex(ops: &[Op]) -> MutexResult {
    let started = Instant::now();
    let pairs = match pair_operations(ops) {
        Ok(p) => p,
        Err(e) => {
            return MutexResult {
                valid: Validity::Unknown,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                locks: Vec::new(),
                error: Some(format!("malformed history: {e}")),
            }
        }
    };
    let time = clock(ops);
    let mut by_key: BTreeMap<Option<Key>, Vec<Operation>> = BTreeMap::new();
    for p in pairs {
        let f = ops[p.invoke].f.as_str();
        if f == "acquire" || f == "release" {
            by_key.entry(ops[p.invoke].key.clone()).or_default().push(p);
        }
    }
    let locks: Vec<LockResult> = by_key
        .into_iter()
        .map(|(key, pairs)| check_lock(ops, &time, key, &pairs))
        .collect();
    let valid = locks
        .iter()
        .fold(Validity::Valid, |acc, l| acc.combine(l.valid));
    MutexResult {
        valid,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        locks,
        error: None,
    }
}

fn holds_of(ops: &[Op], time: &[u64], pairs: &[Operation]) -> Vec<Hold> {
    let mut holds: Vec<Hold> = Vec::new();
    let mut open: std::collections::HashMap<Process, usize> = Default::default();
    for p in pairs {
        let inv = &ops[p.invoke];
        let comp = p.complete.map(|c| &ops[c]);
        match inv.f.as_str() {
            "acquire" => {
                let kind = comp.map(|c| c.kind);
                if kind == Some(OpType::Fail) {
                    continue;
                }
                let certain = kind == Some(OpType::Ok);
                let lease = comp
                    .and_then(|c| lease_of(&c.value))
                    .or_else(|| lease_of(&inv.value));
                let lease_end =
                    lease.map(|l| time[p.invoke].saturating_add(l.saturating_mul(1_000_000)));
                let hold = Hold {
                    process: inv.process,
                    acquire_index: inv.index,
                    grant_index: comp.map(|c| c.index),
                    release_index: None,
                    start: if certain {
                        time[p.complete.expect("ok has a completion")]
                    } else {
                        time[p.invoke]
                    },
                    end: lease_end,
                    token: comp.and_then(|c| token_of(&c.value)),
                    lease_ms: lease,
                    certain,
                };
                if certain {
                    open.insert(inv.process, holds.len());
                }
                holds.push(hold);
            }
            _ => {
                if let Some(h) = open.remove(&inv.process) {
                    let hold = &mut holds[h];
                    hold.release_index = Some(inv.index);
                    let t = time[p.invoke];
                    hold.end = Some(hold.end.map_or(t, |e| e.min(t)));
                }
            }
        }
    }
    holds
}

fn span(h: &Hold) -> String {
    let end = match h.release_index {
        Some(r) => format!("its release at #{r}"),
        None if h.end.is_some() => "its lease could expire".to_string(),
        None => "the end of the history (never released)".to_string(),
    };
    format!(
        "process {} (acquire #{}, granted by #{}{}) held it until {end}",
        h.process,
        h.acquire_index,
        h.grant_index.map_or("?".into(), |g| g.to_string()),
        h.token.map_or(String::new(), |t| format!(", token {t}")),
    )
}

fn check_lock(ops: &[Op], time: &[u64], key: Option<Key>, pairs: &[Operation]) -> LockResult {
    let holds = holds_of(ops, time, pairs);
    let name = key
        .as_ref()
        .map_or("the lock".to_string(), |k| format!("lock {k}"));
    let mut violations = Vec::new();

    // Overlaps: sweep certain holds by start.
    let mut certain: Vec<&Hold> = holds.iter().filter(|h| h.certain).collect();
    certain.sort_by_key(|h| h.start);
    let mut active: Vec<&Hold> = Vec::new();
    for h in &certain {
        active.retain(|a| a.end.is_none_or(|e| e > h.start));
        for a in &active {
            if a.process != h.process && h.end.is_none_or(|e| e > h.start) {
                violations.push(Violation {
                    kind: ViolationKind::Overlap,
                    holds: [(*a).clone(), (*h).clone()],
                    explanation: format!(
                        "Two clients held {name} at once: {}; and {}. The second grant was acknowledged before the first holder released it.",
                        span(a),
                        span(h)
                    ),
                });
            }
        }
        active.push(h);
    }

    // Fencing: a grant acknowledged before another acquire was invoked must carry a
    // smaller token. Sweep acquires by invoke time, with grants by acknowledgement time.
    let invoke_time: std::collections::HashMap<u64, u64> = pairs
        .iter()
        .map(|p| (ops[p.invoke].index, time[p.invoke]))
        .collect();
    let mut tokened: Vec<(&Hold, u64)> = holds
        .iter()
        .filter(|h| h.certain && h.token.is_some())
        .map(|h| (h, invoke_time.get(&h.acquire_index).copied().unwrap_or(0)))
        .collect();
    tokened.sort_by_key(|&(_, invoked)| invoked);
    let mut grants: Vec<&Hold> = tokened.iter().map(|&(h, _)| h).collect();
    grants.sort_by_key(|h| h.start);
    let mut g = 0;
    let mut best: Option<&Hold> = None;
    for &(h, invoked) in &tokened {
        while g < grants.len() && grants[g].start < invoked {
            if best.is_none_or(|b| grants[g].token > b.token) {
                best = Some(grants[g]);
            }
            g += 1;
        }
        if let Some(b) = best {
            if b.token >= h.token {
                violations.push(Violation {
                    kind: ViolationKind::Fencing,
                    holds: [b.clone(), h.clone()],
                    explanation: format!(
                        "Fencing tokens of {name} went backwards: process {} was granted token {} (#{}) before process {} invoked the acquire (#{}) that was granted token {}.",
                        b.process,
                        b.token.unwrap_or_default(),
                        b.grant_index.unwrap_or_default(),
                        h.process,
                        h.acquire_index,
                        h.token.unwrap_or_default()
                    ),
                });
            }
        }
    }
    // Two concurrent grants with one token: the sweep above cannot see them.
    let mut seen: std::collections::HashMap<i64, &Hold> = Default::default();
    for &(h, _) in &tokened {
        let t = h.token.unwrap_or_default();
        match seen.get(&t) {
            Some(first) if first.process != h.process => {
                let already = violations.iter().any(|v| {
                    v.kind == ViolationKind::Fencing && v.holds[0] == **first && v.holds[1] == *h
                });
                if !already {
                    violations.push(Violation {
                        kind: ViolationKind::Fencing,
                        holds: [(*first).clone(), h.clone()],
                        explanation: format!(
                            "Two grants of {name} carried the same fencing token {t}: processes {} (#{}) and {} (#{}).",
                            first.process,
                            first.acquire_index,
                            h.process,
                            h.acquire_index
                        ),
                    });
                }
            }
            Some(_) => {}
            None => {
                seen.insert(t, h);
            }
        }
    }

    LockResult {
        key,
        valid: if violations.is_empty() {
            Validity::Valid
        } else {
            Validity::Invalid
        },
        holds,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Builds a history from (process, type, f, value) rows; time = 10 ms per event.
    fn history(rows: &[(u64, &str, &str, Value)]) -> Vec<Op> {
        rows.iter()
            .enumerate()
            .map(|(i, (p, t, f, v))| {
                serde_json::from_value(json!({
                    "index": i, "time": (i as u64 + 1) * 10_000_000, "type": t,
                    "process": p, "f": f, "key": "lock-0", "value": v
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn sequential_holds_are_valid() {
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "ok", "acquire", json!({"token": 1})),
            (1, "invoke", "release", json!(null)),
            (1, "ok", "release", json!(null)),
            (2, "invoke", "acquire", json!(null)),
            (2, "ok", "acquire", json!({"token": 2})),
            (2, "invoke", "release", json!(null)),
            (2, "ok", "release", json!(null)),
        ]);
        let r = check_mutex(&ops);
        assert_eq!(r.valid, Validity::Valid);
        assert_eq!(r.locks[0].holds.len(), 2);
        assert_eq!(r.locks[0].holds[0].release_index, Some(2));
        assert_eq!(r.locks[0].holds[1].token, Some(2));
    }

    #[test]
    fn overlapping_holders_are_reported_once_with_both_holds() {
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "ok", "acquire", json!(null)),
            (2, "invoke", "acquire", json!(null)),
            (2, "ok", "acquire", json!(null)),
            (1, "invoke", "release", json!(null)),
            (1, "ok", "release", json!(null)),
            (2, "invoke", "release", json!(null)),
            (2, "ok", "release", json!(null)),
        ]);
        let r = check_mutex(&ops);
        assert_eq!(r.valid, Validity::Invalid);
        let v = &r.locks[0].violations;
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::Overlap);
        assert_eq!(v[0].holds[0].process, Process::Client(1));
        assert_eq!(v[0].holds[1].process, Process::Client(2));
        assert!(v[0].explanation.contains("process 1") && v[0].explanation.contains("process 2"));
    }

    #[test]
    fn concurrent_release_and_acquire_do_not_have_to_overlap() {
        // 2's grant is acknowledged after 1 invoked its release: the release may have
        // taken effect first, so nothing must overlap.
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "ok", "acquire", json!(null)),
            (2, "invoke", "acquire", json!(null)),
            (1, "invoke", "release", json!(null)),
            (2, "ok", "acquire", json!(null)),
            (1, "ok", "release", json!(null)),
        ]);
        assert_eq!(check_mutex(&ops).valid, Validity::Valid);
    }

    #[test]
    fn info_acquire_is_uncertain_and_forces_no_overlap() {
        let ops = history(&[
            (1, "invoke", "acquire", json!({"lease_ms": 50})),
            (1, "info", "acquire", json!(null)),
            (2, "invoke", "acquire", json!(null)),
            (2, "ok", "acquire", json!(null)),
        ]);
        let r = check_mutex(&ops);
        assert_eq!(r.valid, Validity::Valid);
        let info = &r.locks[0].holds[0];
        assert!(!info.certain);
        // Possibly held from its invoke until its lease could have expired.
        assert_eq!(info.start, 10_000_000);
        assert_eq!(info.end, Some(10_000_000 + 50_000_000));
        // Without a lease: possibly held to the end of the history.
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "info", "acquire", json!(null)),
        ]);
        assert_eq!(check_mutex(&ops).locks[0].holds[0].end, None);
    }

    #[test]
    fn a_hold_ends_where_its_lease_could_have_expired() {
        // 1's lease (20 ms from its invoke at 10 ms) may have expired at 30 ms; 2 is
        // granted at 40 ms while 1 never released: no must-overlap, but a stale token
        // would be a fencing violation.
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "ok", "acquire", json!({"token": 5, "lease_ms": 20})),
            (2, "invoke", "acquire", json!(null)),
            (2, "ok", "acquire", json!({"token": 6})),
        ]);
        let r = check_mutex(&ops);
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.locks[0].violations);
        // Same without the lease: 1 still holds it when 2 is granted.
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "ok", "acquire", json!({"token": 5})),
            (2, "invoke", "acquire", json!(null)),
            (2, "ok", "acquire", json!({"token": 6})),
        ]);
        assert_eq!(check_mutex(&ops).valid, Validity::Invalid);
    }

    #[test]
    fn a_huge_lease_lasts_to_the_end_of_time_instead_of_wrapping() {
        // 18,446,744,073,710 ms in ns wraps u64 to 0.45 ms: the overlap would vanish.
        for lease in [18_446_744_073_710u64, u64::MAX] {
            let ops = history(&[
                (1, "invoke", "acquire", json!(null)),
                (1, "ok", "acquire", json!({"token": 5, "lease_ms": lease})),
                (2, "invoke", "acquire", json!(null)),
                (2, "ok", "acquire", json!({"token": 6})),
            ]);
            let r = check_mutex(&ops);
            assert_eq!(r.valid, Validity::Invalid, "lease {lease}");
        }
    }

    #[test]
    fn fencing_tokens_must_grow_in_grant_order() {
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "ok", "acquire", json!({"token": 7, "lease_ms": 5})),
            (2, "invoke", "acquire", json!(null)),
            (2, "ok", "acquire", json!({"token": 3})),
        ]);
        let r = check_mutex(&ops);
        let v = &r.locks[0].violations;
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].kind, ViolationKind::Fencing);
        assert_eq!(v[0].holds[0].token, Some(7));
        assert_eq!(v[0].holds[1].token, Some(3));
    }

    #[test]
    fn one_token_for_two_concurrent_grants_is_a_fencing_violation() {
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (2, "invoke", "acquire", json!(null)),
            (1, "ok", "acquire", json!({"token": 4, "lease_ms": 1})),
            (1, "invoke", "release", json!(null)),
            (1, "ok", "release", json!(null)),
            (2, "ok", "acquire", json!({"token": 4})),
        ]);
        let r = check_mutex(&ops);
        assert!(r.locks[0]
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::Fencing
                && v.explanation.contains("same fencing token")));
    }

    #[test]
    fn failed_acquires_hold_nothing_and_locks_are_apart() {
        let mut ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "fail", "acquire", json!(null)),
            (2, "invoke", "acquire", json!(null)),
            (2, "ok", "acquire", json!(null)),
            (3, "invoke", "acquire", json!(null)),
            (3, "ok", "acquire", json!(null)),
        ]);
        // Process 3 takes another lock.
        ops[4].key = Some(Key::Str("lock-1".into()));
        ops[5].key = Some(Key::Str("lock-1".into()));
        let r = check_mutex(&ops);
        assert_eq!(r.valid, Validity::Valid);
        assert_eq!(r.locks.len(), 2);
        assert_eq!(r.locks[0].holds.len(), 1);
    }

    #[test]
    fn serialises_as_contracts_say() {
        let ops = history(&[
            (1, "invoke", "acquire", json!(null)),
            (1, "ok", "acquire", json!({"token": 1})),
        ]);
        let v =
            serde_json::to_value(crate::results::CheckerResult::Mutex(check_mutex(&ops))).unwrap();
        assert_eq!(v["name"], "mutex");
        assert_eq!(v["valid"], true);
        let hold = &v["locks"][0]["holds"][0];
        for field in [
            "process",
            "acquire_index",
            "grant_index",
            "release_index",
            "start",
            "end",
            "token",
            "certain",
        ] {
            assert!(hold.get(field).is_some(), "hold lacks {field}: {hold}");
        }
    }
}
