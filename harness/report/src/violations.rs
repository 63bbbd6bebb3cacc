//! The report's first section under the verdict: every violation (one counterexample per
//! invalid key, each lock violation), with the node that served each op and the faults in
//! effect at that moment, e.g. "read of nil served by n4, which was cut off from n1, n2, n3
//! by the partition that began at 13.2 s". The first few are expanded, the rest folded.

use crate::escape::html;
use crate::faults::FaultPeriod;
use crate::model::key_text;
use faultline_checker::history::{Key, Op, Operation as Pair};
use faultline_checker::results::{
    CheckerResult, Counterexample, Hold, OpRef, RunResults, Violation,
};
use faultline_checker::verdict::Validity;
use serde_json::Value;
use std::fmt::Write;

/// Violations drawn open; the rest are folded under their one-line summary.
const EXPANDED_MAX: usize = 3;

/// A partition as the nemesis recorded it: who drops whom, from when to when.
struct Partition {
    start_ns: u64,
    end_ns: u64,
    /// node → the nodes it cannot reach.
    grudge: Vec<(String, Vec<String>)>,
}

/// What the report knows of faults: the shaded periods and the partitions' grudges.
pub(crate) struct Faults<'a> {
    periods: &'a [FaultPeriod],
    partitions: Vec<Partition>,
}

impl<'a> Faults<'a> {
    pub(crate) fn new(ops: &[Op], nemesis: &[Pair], periods: &'a [FaultPeriod]) -> Self {
        let mut partitions: Vec<Partition> = Vec::new();
        for p in nemesis {
            let inv = &ops[p.invoke];
            let done = p.complete.map(|c| &ops[c]);
            match inv.f.as_str() {
                "start-partition" => {
                    // The completion names the grudge actually applied.
                    let value = done.map_or(&inv.value, |d| &d.value);
                    let Value::Object(map) = value else { continue };
                    let grudge = map
                        .iter()
                        .filter_map(|(node, dropped)| {
                            let list: Vec<String> = dropped
                                .as_array()?
                                .iter()
                                .filter_map(|d| d.as_str().map(str::to_string))
                                .collect();
                            Some((node.clone(), list))
                        })
                        .collect();
                    partitions.push(Partition {
                        start_ns: inv.time,
                        end_ns: u64::MAX,
                        grudge,
                    });
                }
                "stop-partition" => {
                    for open in partitions.iter_mut().filter(|p| p.end_ns == u64::MAX) {
                        open.end_ns = inv.time;
                    }
                }
                _ => {}
            }
        }
        Faults {
            periods,
            partitions,
        }
    }

    /// The faults in effect at `t_ns`, as seen from `node`.
    pub(crate) fn at(&self, t_ns: u64, node: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.partitions {
            if p.start_ns > t_ns || p.end_ns < t_ns {
                continue;
            }
            let cut_off = node.and_then(|n| p.grudge.iter().find(|(g, _)| g == n));
            out.push(match cut_off {
                Some((n, dropped)) if !dropped.is_empty() => format!(
                    "{n} was cut off from {} by the partition that began at {}",
                    dropped.join(", "),
                    secs(p.start_ns)
                ),
                _ => format!(
                    "the partition that began at {} was in effect{}",
                    secs(p.start_ns),
                    node.map(|n| format!(" ({n} on the side it did not cut off)"))
                        .unwrap_or_default()
                ),
            });
        }
        for p in self.periods {
            if p.kind == "partition" || p.start_ns > t_ns || p.end_ns < t_ns {
                continue;
            }
            // "while the clock fault (…) that began at 4.0 s was in effect": each phrase
            // follows "while" in the sentences that use it.
            out.push(format!(
                "the {} fault ({}) that began at {} was in effect",
                p.kind,
                p.label,
                secs(p.start_ns)
            ));
        }
        out
    }

    /// Shaded bands (start, end, label) of the faults overlapping `lo..=hi`.
    pub(crate) fn bands(&self, lo: u64, hi: u64) -> Vec<(u64, u64, String)> {
        self.periods
            .iter()
            .filter(|p| p.start_ns <= hi && p.end_ns >= lo)
            .map(|p| (p.start_ns.max(lo), p.end_ns.min(hi), p.label.clone()))
            .collect()
    }
}

fn secs(ns: u64) -> String {
    format!("{:.1} s", ns as f64 / 1e9)
}

/// The node an op was served by: what the checker recorded, else the history's.
fn node_of(op: &OpRef, ops: &[Op]) -> Option<String> {
    op.node.clone().or_else(|| {
        let at = |i: u64| ops.get(i as usize).and_then(|o| o.node.clone());
        op.complete_index
            .and_then(at)
            .or_else(|| at(op.invoke_index))
    })
}

fn value_text(v: &Value) -> String {
    if v.is_null() {
        "nil".into()
    } else {
        v.to_string()
    }
}

/// "read of nil served by n4, which was cut off from n1, n2 by the partition that began at
/// 13.2 s": one op, its node and the faults at its completion.
pub(crate) fn op_sentence(op: &OpRef, ops: &[Op], faults: &Faults<'_>) -> String {
    let node = node_of(op, ops);
    let at = op.complete_time.unwrap_or(op.invoke_time);
    let mut s = format!(
        "{} of {} by process {} ({:?}) at {}",
        op.f,
        value_text(&op.value),
        op.process,
        op.outcome,
        secs(at)
    )
    .to_lowercase();
    if let Some(n) = &node {
        let _ = write!(s, ", served by {n}");
    }
    let in_effect = faults.at(at, node.as_deref());
    if in_effect.is_empty() {
        s.push_str(", with no fault in effect");
    } else {
        let _ = write!(s, ", while {}", in_effect.join("; "));
    }
    s
}

/// One invalid key's counterexample or one lock violation, to render.
enum Item<'r> {
    Key {
        checker: &'r str,
        model: &'r str,
        key: String,
        cx: &'r Counterexample,
        key_ref: &'r Option<Key>,
    },
    Lock {
        checker: &'r str,
        key: String,
        key_ref: &'r Option<Key>,
        holds: &'r [Hold],
        v: &'r Violation,
    },
}

fn items(results: &RunResults) -> Vec<Item<'_>> {
    let mut out = Vec::new();
    for c in &results.checkers {
        if let CheckerResult::Linearizable(l) = c {
            for k in l.keys.iter().filter(|k| k.valid == Validity::Invalid) {
                if let Some(cx) = &k.counterexample {
                    out.push(Item::Key {
                        checker: c.name(),
                        model: &l.model,
                        key: key_text(&k.key),
                        cx,
                        key_ref: &k.key,
                    });
                }
            }
        }
        for l in c.locks() {
            for v in &l.violations {
                out.push(Item::Lock {
                    checker: c.name(),
                    key: key_text(&l.key),
                    key_ref: &l.key,
                    holds: &l.holds,
                    v,
                });
            }
        }
    }
    out
}

/// How a hold's grant came about: the node that granted it and the faults then.
fn hold_sentence(h: &Hold, ops: &[Op], faults: &Faults<'_>) -> String {
    let grant = h.grant_index.and_then(|i| ops.get(i as usize));
    let node = grant.and_then(|o| o.node.clone()).or_else(|| {
        ops.get(h.acquire_index as usize)
            .and_then(|o| o.node.clone())
    });
    let mut s = format!(
        "process {} {} the lock at {}",
        h.process,
        if h.certain {
            "was granted"
        } else {
            "may have been granted"
        },
        secs(h.start)
    );
    if let Some(n) = &node {
        let _ = write!(s, " by {n}");
    }
    if let Some(t) = h.token {
        let _ = write!(s, " (token {t})");
    }
    let in_effect = faults.at(h.start, node.as_deref());
    if in_effect.is_empty() {
        s.push_str(", with no fault in effect");
    } else {
        let _ = write!(s, ", while {}", in_effect.join("; "));
    }
    s
}

/// Draws the counterexample of one key (its ops on their time axis, the fault bands).
pub(crate) type DrawKey<'f> =
    dyn Fn(&mut String, &Option<Key>, &Counterexample, &[(u64, u64, String)]) + 'f;
/// Draws one lock violation.
pub(crate) type DrawLock<'f> = dyn Fn(&mut String, &str, &Option<Key>, &[Hold], &Violation) + 'f;

/// The violations section; nothing when the run has none.
pub(crate) fn section(
    out: &mut String,
    results: Option<&RunResults>,
    ops: &[Op],
    faults: &Faults<'_>,
    draw_key: &DrawKey<'_>,
    draw_lock: &DrawLock<'_>,
) {
    let Some(results) = results else { return };
    let items = items(results);
    if items.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<section id=\"violations\"><h2>Violations ({})</h2>",
        items.len()
    );
    for (n, item) in items.iter().enumerate() {
        let open = if n < EXPANDED_MAX { " open" } else { "" };
        match item {
            Item::Key {
                checker,
                model,
                key,
                cx,
                key_ref,
            } => {
                let lead = cx
                    .stuck
                    .as_ref()
                    .filter(|s| cx.ops.iter().any(|o| o.invoke_index == s.invoke_index))
                    .or_else(|| cx.ops.last());
                let headline = lead.map_or_else(
                    || "no small core was found within the shrinking budget".to_string(),
                    |o| op_sentence(o, ops, faults),
                );
                let _ = write!(
                    out,
                    "<details class=\"violation\"{open}><summary><b>{checker} ({model}): key {key}</b> — {n} ops cannot be linearized{minimal}: {headline}</summary>",
                    checker = html(checker),
                    model = html(model),
                    key = html(key),
                    n = cx.ops.len(),
                    minimal = if cx.minimal { " (a 1-minimal core)" } else { "" },
                    headline = html(&headline),
                );
                out.push_str("<table class=\"grid core\"><thead><tr><th>op</th><th>node</th><th>faults in effect</th></tr></thead><tbody>");
                for o in &cx.ops {
                    let node = node_of(o, ops);
                    let at = o.complete_time.unwrap_or(o.invoke_time);
                    let f = faults.at(at, node.as_deref());
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                        html(&o.describe()),
                        html(node.as_deref().unwrap_or("?")),
                        html(&if f.is_empty() {
                            "none".to_string()
                        } else {
                            f.join("; ")
                        })
                    );
                }
                out.push_str("</tbody></table>");
                let lo = cx.ops.iter().map(|o| o.invoke_time).min().unwrap_or(0);
                let hi = cx
                    .ops
                    .iter()
                    .map(|o| o.complete_time.unwrap_or(o.invoke_time))
                    .max()
                    .unwrap_or(0);
                draw_key(out, key_ref, cx, &faults.bands(lo, hi));
                out.push_str("</details>");
            }
            Item::Lock {
                checker,
                key,
                key_ref,
                holds,
                v,
            } => {
                let sentences: Vec<String> = v
                    .holds
                    .iter()
                    .map(|h| hold_sentence(h, ops, faults))
                    .collect();
                let _ = write!(
                    out,
                    "<details class=\"violation\"{open}><summary><b>{checker}: lock {key}</b> — {kind:?}: {s}</summary>",
                    checker = html(checker),
                    key = html(key),
                    kind = v.kind,
                    s = html(&sentences.join("; ")),
                );
                draw_lock(out, checker, key_ref, holds, v);
                out.push_str("</details>");
            }
        }
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod fault_phrase_tests {
    use super::*;

    #[test]
    fn faults_in_effect_read_as_clauses_after_while() {
        let periods = vec![FaultPeriod {
            kind: "clock".into(),
            label: "bump-clock {\"offsets_ms\":{\"n1\":3198}}".into(),
            start_ns: 3_955_000_000,
            end_ns: 5_000_000_000,
            open: false,
            color: "#000".into(),
        }];
        let faults = Faults {
            periods: &periods,
            partitions: vec![Partition {
                start_ns: 1_000_000_000,
                end_ns: 9_000_000_000,
                grudge: vec![("n1".into(), vec!["n2".into()]), ("n2".into(), vec![])],
            }],
        };
        let at = faults.at(4_300_000_000, Some("n2"));
        assert_eq!(
            at,
            vec![
                "the partition that began at 1.0 s was in effect (n2 on the side it did not cut off)"
                    .to_string(),
                "the clock fault (bump-clock {\"offsets_ms\":{\"n1\":3198}}) that began at 4.0 s was in effect"
                    .to_string(),
            ]
        );
        assert_eq!(
            faults.at(4_300_000_000, Some("n1"))[0],
            "n1 was cut off from n2 by the partition that began at 1.0 s"
        );
        assert!(faults.at(9_500_000_000, Some("n1")).is_empty());
    }
}
