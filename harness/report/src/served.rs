//! Which host served each op of a counterexample, and what the faults were doing to that
//! host meanwhile: a stale read explained in terms of the node that answered it.

use faultline_checker::history::{Op, OpType, Process};
use serde_json::Value;

/// One fault that touched a host: `what` names it for a sentence.
struct Touch {
    start_ns: u64,
    end_ns: Option<u64>,
    what: String,
}

/// The faults that touched `node`, from the nemesis ops' completions (the grudge a
/// partition applied, the hosts a kill or pause hit) to the completion of the op that
/// stopped them.
fn touches(history: &[Op], node: &str) -> Vec<Touch> {
    let mut out: Vec<Touch> = Vec::new();
    let nemesis = history
        .iter()
        .filter(|o| o.process == Process::Nemesis && o.kind != OpType::Invoke);
    for op in nemesis {
        let stops = |f: &str| match f {
            "stop-partition" => Some("partition"),
            "restart" => Some("kill"),
            "resume" => Some("pause"),
            _ => None,
        };
        if let Some(kind) = stops(&op.f) {
            for t in out.iter_mut().filter(|t| t.end_ns.is_none()) {
                if t.what.starts_with(kind) {
                    t.end_ns = Some(op.time);
                }
            }
            continue;
        }
        let what = match op.f.as_str() {
            "start-partition" => op
                .value
                .get(node)
                .and_then(Value::as_array)
                .filter(|peers| !peers.is_empty())
                .map(|peers| {
                    let names: Vec<&str> = peers.iter().filter_map(Value::as_str).collect();
                    let total = op.value.as_object().map_or(0, |m| m.len());
                    let side = if total > 0 && (total - names.len()) * 2 <= total {
                        "the minority side"
                    } else {
                        "the majority side"
                    };
                    format!(
                        "partition that cut {node} off from {} ({node} on {side})",
                        names.join(", ")
                    )
                }),
            "kill" | "pause" => op
                .value
                .as_array()
                .filter(|hosts| hosts.iter().any(|h| h.as_str() == Some(node)))
                .map(|_| {
                    let verb = if op.f == "kill" { "killed" } else { "paused" };
                    format!("{} that {verb} {node}", op.f)
                }),
            _ => None,
        };
        if let Some(what) = what {
            out.push(Touch {
                start_ns: op.time,
                end_ns: None,
                what,
            });
        }
    }
    out
}

fn seconds(ns: u64) -> String {
    format!("{:.2} s", ns as f64 / 1e9)
}

/// One sentence per op (by its invoke index) that names the host that served it, and the
/// faults on that host while it ran. `db` names the system ("etcd 3.4.23"); `how` says how
/// that system answers such a read, when the run's configuration says (e.g. serializable).
pub fn served_by(
    history: &[Op],
    invoke_indices: &[u64],
    db: &str,
    how: Option<&str>,
) -> Vec<String> {
    let by_index = |i: u64| history.iter().find(|o| o.index == i);
    let mut out = Vec::new();
    for &i in invoke_indices {
        let Some(invoke) = by_index(i) else { continue };
        let completion = history
            .iter()
            .skip_while(|o| o.index <= i)
            .find(|o| o.process == invoke.process && o.kind != OpType::Invoke);
        let Some(node) = completion
            .and_then(|c| c.node.as_deref())
            .or(invoke.node.as_deref())
        else {
            continue;
        };
        let end = completion.map_or(u64::MAX, |c| c.time);
        let value = completion
            .filter(|c| c.kind == OpType::Ok && !c.value.is_null())
            .map_or(&invoke.value, |c| &c.value);
        let value = if value.is_null() {
            "nil".to_string()
        } else {
            value.to_string()
        };
        let mut text = format!(
            "Process {}'s {} {value} (event {i}) was served by {node} ({db}), from {} to {}",
            invoke.process,
            invoke.f,
            seconds(invoke.time),
            completion.map_or("the end".into(), |c| seconds(c.time)),
        );
        let during: Vec<String> = touches(history, node)
            .into_iter()
            .filter(|t| t.start_ns <= end && t.end_ns.is_none_or(|e| e >= invoke.time))
            .map(|t| {
                format!(
                    "a {} (from {} to {})",
                    t.what,
                    seconds(t.start_ns),
                    t.end_ns.map_or("the end".into(), seconds)
                )
            })
            .collect();
        if during.is_empty() {
            text.push_str(", while no fault touched it.");
        } else {
            text.push_str(&format!(", during {}.", during.join(" and ")));
            if let Some(how) = how {
                text.push(' ');
                text.push_str(how);
            }
        }
        out.push(text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(v: Value) -> Op {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_read_on_the_minority_side_names_its_node_and_the_partition() {
        let history = vec![
            op(
                json!({"index": 0, "time": 1_000_000_000u64, "type": "info", "process": "nemesis", "f": "start-partition",
                      "value": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}}),
            ),
            op(
                json!({"index": 1, "time": 2_000_000_000u64, "type": "invoke", "process": 4, "f": "read", "key": 1, "value": null, "node": "n1"}),
            ),
            op(
                json!({"index": 2, "time": 2_100_000_000u64, "type": "ok", "process": 4, "f": "read", "key": 1, "value": null, "node": "n1"}),
            ),
            op(
                json!({"index": 3, "time": 3_000_000_000u64, "type": "info", "process": "nemesis", "f": "stop-partition", "value": null}),
            ),
            op(
                json!({"index": 4, "time": 4_000_000_000u64, "type": "invoke", "process": 5, "f": "read", "key": 1, "value": null, "node": "n2"}),
            ),
            op(
                json!({"index": 5, "time": 4_100_000_000u64, "type": "ok", "process": 5, "f": "read", "key": 1, "value": 3, "node": "n2"}),
            ),
        ];
        let lines = served_by(&history, &[1, 4], "etcd 3.4.23", Some("Serializable."));
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("read nil (event 1) was served by n1 (etcd 3.4.23)"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("cut n1 off from n2, n3 (n1 on the minority side)"),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with("Serializable."), "{}", lines[0]);
        assert!(
            lines[1].contains("read 3 (event 4) was served by n2"),
            "{}",
            lines[1]
        );
        assert!(
            lines[1].ends_with("while no fault touched it."),
            "{}",
            lines[1]
        );
    }
}
