//! Fault periods: when each nemesis fault was in effect, from the nemesis ops of a history,
//! so plots can shade them.

use crate::model::NemesisPerf;
use faultline_checker::history::Op;
use faultline_checker::history::Operation as Pair;

/// One fault, from the invoke of the op that started it to the completion of the op that
/// stopped it (the widest window in which it may have acted). `end == start` marks an
/// instantaneous fault (e.g. a failover).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPeriod {
    /// `partition`, `clock`, `kill`, `pause`, `packet`, `failover`, or a name from test.json.
    pub kind: String,
    /// The `f` that started it and a short form of its value.
    pub label: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// True when no stop op followed before the history ended.
    pub open: bool,
    pub color: String,
}

/// The default fault kinds of docs/contracts.md: name, start fs, stop fs, colour.
fn default_kinds() -> Vec<NemesisPerf> {
    let k = |name: &str, start: &[&str], stop: &[&str], color: &str| NemesisPerf {
        name: name.into(),
        start: start.iter().map(|s| s.to_string()).collect(),
        stop: stop.iter().map(|s| s.to_string()).collect(),
        color: Some(color.into()),
    };
    vec![
        k(
            "partition",
            &["start-partition"],
            &["stop-partition"],
            "#e0b0ff",
        ),
        k(
            "clock",
            &["bump-clock", "strobe-clock", "skew-clock"],
            &["reset-clock"],
            "#9fd3f0",
        ),
        k("kill", &["kill"], &["restart"], "#ffb3a7"),
        k("pause", &["pause"], &["resume"], "#ffe08a"),
        k("packet", &["start-packet"], &["stop-packet"], "#b8e6b0"),
        k("failover", &["failover"], &[], "#c9c9c9"),
    ]
}

/// A short, single-line description of a nemesis value, at most `max` characters.
pub fn short_value(v: &serde_json::Value, max: usize) -> String {
    let text = match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > max {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Fault periods from the nemesis pairs of a history. Kinds declared in test.json's
/// `nemesis_perf` take precedence over the defaults. A stop closes every open period of its
/// kind (a `restart` after two `kill`s ends both).
pub fn fault_periods(ops: &[Op], nemesis: &[Pair], declared: &[NemesisPerf]) -> Vec<FaultPeriod> {
    let mut kinds: Vec<NemesisPerf> = declared.to_vec();
    kinds.extend(default_kinds());
    let history_end = ops.last().map(|o| o.time).unwrap_or(0);
    let mut periods: Vec<FaultPeriod> = Vec::new();
    for pair in nemesis {
        let inv = &ops[pair.invoke];
        let done = pair.complete.map(|c| &ops[c]);
        let end_time = done.map(|d| d.time).unwrap_or(inv.time);
        let Some(kind) = kinds
            .iter()
            .find(|k| k.start.contains(&inv.f) || k.stop.contains(&inv.f))
        else {
            continue;
        };
        let color = kind.color.clone().unwrap_or_else(|| "#d0d0d0".into());
        if kind.start.contains(&inv.f) {
            let value = done
                .filter(|d| !d.value.is_null())
                .map(|d| &d.value)
                .unwrap_or(&inv.value);
            let label = format!("{} {}", inv.f, short_value(value, 60))
                .trim_end()
                .to_string();
            let instantaneous = kind.stop.is_empty();
            periods.push(FaultPeriod {
                kind: kind.name.clone(),
                label,
                start_ns: inv.time,
                end_ns: if instantaneous { end_time } else { history_end },
                open: !instantaneous,
                color,
            });
        } else {
            for p in periods.iter_mut().filter(|p| p.open && p.kind == kind.name) {
                p.end_ns = end_time.max(p.start_ns);
                p.open = false;
            }
        }
    }
    periods
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::history::pair_ops;
    use faultline_checker::history::{OpType, Process};
    use serde_json::json;

    fn nem(index: u64, time: u64, kind: OpType, f: &str, value: serde_json::Value) -> Op {
        Op {
            index,
            time,
            kind,
            process: Process::Nemesis,
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
        }
    }

    #[test]
    fn periods_follow_start_and_stop_ops() {
        use OpType::*;
        let h = vec![
            nem(0, 10, Invoke, "start-partition", json!(null)),
            nem(1, 12, Info, "start-partition", json!({"n1": ["n2"]})),
            nem(2, 20, Invoke, "kill", json!({"node": "n2"})),
            nem(3, 21, Info, "kill", json!({"node": "n2"})),
            nem(4, 30, Invoke, "stop-partition", json!(null)),
            nem(5, 31, Info, "stop-partition", json!(null)),
            nem(6, 40, Invoke, "failover", json!(null)),
            nem(7, 41, Info, "failover", json!(null)),
            nem(8, 50, Invoke, "crash-disk", json!(null)),
            nem(9, 60, Info, "crash-disk", json!(null)),
        ];
        let nemesis = pair_ops(&h).nemesis;
        let declared = vec![NemesisPerf {
            name: "disk".into(),
            start: vec!["crash-disk".into()],
            stop: vec!["heal-disk".into()],
            color: None,
        }];
        let p = fault_periods(&h, &nemesis, &declared);
        let got: Vec<(&str, u64, u64, bool)> = p
            .iter()
            .map(|p| (p.kind.as_str(), p.start_ns, p.end_ns, p.open))
            .collect();
        assert_eq!(
            got,
            vec![
                ("partition", 10, 31, false),
                ("kill", 20, 60, true),
                ("failover", 40, 41, false),
                ("disk", 50, 60, true),
            ]
        );
        assert_eq!(p[0].label, r#"start-partition {"n1":["n2"]}"#);
    }

    #[test]
    fn short_values_are_cut() {
        assert_eq!(short_value(&json!("abcdef"), 4), "abc…");
        assert_eq!(short_value(&json!(null), 4), "");
    }
}
