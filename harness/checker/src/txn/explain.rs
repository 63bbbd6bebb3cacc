//! Sentences a person can verify: one per edge of a witness cycle, naming the key, the
//! values and the read that proves the edge.

use super::history::{History, ListRead, Mop, Val};
use super::infer::{describe_list, Facts, PROCESS, REALTIME, RW, WR, WW};
use crate::history::Key;

fn show_reg(h: &History, v: Option<Val>) -> String {
    v.map_or("nil".into(), |v| h.val_text(v))
}

/// Why `a → b` holds with relation `rel`, and the key it is about.
pub fn edge(h: &History, f: &Facts, a: u32, b: u32, rel: u8) -> (Option<Key>, String) {
    match rel {
        WW => ww(h, f, a, b),
        WR => wr(h, f, a, b),
        RW => rw(h, f, a, b),
        PROCESS => (
            None,
            format!(
                "T{a} and T{b} ran on process {}, T{a} first (process order)",
                h.txns[a as usize].process
            ),
        ),
        REALTIME => {
            let (ta, tb) = (&h.txns[a as usize], &h.txns[b as usize]);
            (
                None,
                format!(
                    "T{a} completed (event #{}) before T{b} was invoked (event #{}) (real-time order)",
                    ta.complete_index.map_or("?".into(), |i| i.to_string()),
                    tb.invoke_index
                ),
            )
        }
        _ => (None, format!("T{a} precedes T{b}")),
    }
}

fn writer_of(h: &History, f: &Facts, key: u32, v: Val) -> Option<u32> {
    f.writers.get(h, key, v).map(|w| w.txn)
}

fn ww(h: &History, f: &Facts, a: u32, b: u32) -> (Option<Key>, String) {
    for m in h.mops_of(a) {
        match *m {
            Mop::Append { key, val } => {
                let order = &h.orders[key as usize].elems;
                let Some(pos) = order.iter().position(|x| *x == val) else {
                    continue;
                };
                // The next element another txn appended, skipping a's own.
                let Some(next) = order[pos + 1..]
                    .iter()
                    .find(|v| writer_of(h, f, key, **v) != Some(a))
                else {
                    continue;
                };
                if writer_of(h, f, key, *next) == Some(b) {
                    let by = f.longest_reader[key as usize]
                        .map(|r| format!("T{r}'s read "))
                        .unwrap_or_default();
                    return (
                        Some(h.key(key).clone()),
                        format!(
                            "T{b} appended {} to key {} after T{a}'s {}: {by}{} has {} before {}",
                            h.val_text(*next),
                            h.key(key),
                            h.val_text(val),
                            describe_list(
                                h,
                                &order[..=order.iter().position(|x| x == next).unwrap_or(pos)]
                            ),
                            h.val_text(val),
                            h.val_text(*next)
                        ),
                    );
                }
            }
            Mop::Write { key, val } => {
                for next in f.reg_next.get(&(key, Some(val))).into_iter().flatten() {
                    if writer_of(h, f, key, *next) == Some(b) {
                        return (
                            Some(h.key(key).clone()),
                            format!(
                                "T{b} wrote key {} = {} over T{a}'s {} (version order {} < {})",
                                h.key(key),
                                h.val_text(*next),
                                h.val_text(val),
                                h.val_text(val),
                                h.val_text(*next)
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    (None, format!("T{b} overwrote a value T{a} wrote"))
}

fn wr(h: &History, f: &Facts, a: u32, b: u32) -> (Option<Key>, String) {
    for m in h.mops_of(b) {
        match *m {
            Mop::ReadList {
                key,
                seen: Some(read @ ListRead::Prefix(_)),
            } => {
                let vals = h.list_read(key, read);
                if let Some(&last) = vals.last() {
                    if writer_of(h, f, key, last) == Some(a) {
                        return (
                            Some(h.key(key).clone()),
                            format!(
                                "T{b} read key {} as {}, which ends with T{a}'s append of {}",
                                h.key(key),
                                describe_list(h, vals),
                                h.val_text(last)
                            ),
                        );
                    }
                }
            }
            Mop::ReadReg {
                key,
                val: Some(v),
                known: true,
                ..
            } if writer_of(h, f, key, v) == Some(a) => {
                return (
                    Some(h.key(key).clone()),
                    format!(
                        "T{b} read key {} = {}, which T{a} wrote",
                        h.key(key),
                        h.val_text(v)
                    ),
                );
            }
            _ => {}
        }
    }
    (None, format!("T{b} read a value T{a} wrote"))
}

fn rw(h: &History, f: &Facts, a: u32, b: u32) -> (Option<Key>, String) {
    for m in h.mops_of(a) {
        match *m {
            Mop::ReadList {
                key,
                seen: Some(ListRead::Prefix(len)),
            } => {
                let order = &h.orders[key as usize].elems;
                if let Some(&next) = order.get(len as usize) {
                    if writer_of(h, f, key, next) == Some(b) {
                        let by = f.longest_reader[key as usize]
                            .map(|r| format!(" (T{r} read {})", describe_list(h, order)))
                            .unwrap_or_default();
                        return (
                            Some(h.key(key).clone()),
                            format!(
                                "T{a} read key {} as {}, before T{b}'s append of {}, the next element{by}",
                                h.key(key),
                                describe_list(h, &order[..len as usize]),
                                h.val_text(next)
                            ),
                        );
                    }
                }
            }
            Mop::ReadReg {
                key,
                val,
                known: true,
                ..
            } => {
                for next in f.reg_next.get(&(key, val)).into_iter().flatten() {
                    if writer_of(h, f, key, *next) == Some(b) {
                        return (
                            Some(h.key(key).clone()),
                            format!(
                                "T{a} read key {} = {}, which T{b} overwrote with {} (version order {} < {})",
                                h.key(key),
                                show_reg(h, val),
                                h.val_text(*next),
                                show_reg(h, val),
                                h.val_text(*next)
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    (None, format!("T{a} read a version that T{b} overwrote"))
}

/// A txn's micro-ops as JSON, the way the history showed them.
pub fn txn_value(h: &History, t: u32) -> serde_json::Value {
    use serde_json::{json, Value};
    let key = |k: u32| serde_json::to_value(h.key(k)).unwrap_or(Value::Null);
    Value::Array(
        h.mops_of(t)
            .iter()
            .map(|m| match *m {
                Mop::Append { key: k, val } => json!(["append", key(k), h.val_json(val)]),
                Mop::ReadList { key: k, seen } => match seen {
                    Some(r) => json!([
                        "r",
                        key(k),
                        h.list_read(k, r)
                            .iter()
                            .map(|v| h.val_json(*v))
                            .collect::<Vec<_>>()
                    ]),
                    None => json!(["r", key(k), null]),
                },
                Mop::Write { key: k, val } => json!(["w", key(k), h.val_json(val)]),
                Mop::ReadReg {
                    key: k, val, known, ..
                } => match (known, val) {
                    (true, Some(v)) => json!(["r", key(k), h.val_json(v)]),
                    _ => json!(["r", key(k), null]),
                },
            })
            .collect(),
    )
}
