//! Consistency models and the anomalies each forbids, after Elle's lattice
//! (`elle.consistency-model`, EPL-1.0; read, not copied): a model forbids its own anomalies
//! and those of every weaker model it implies.

/// Cycle anomalies, weakest edge set first: ww only, + wr, exactly one rw, two or more rw
/// none adjacent, two or more rw.
pub const CYCLE_BASES: [&str; 5] = ["G0", "G1c", "G-single", "G-nonadjacent", "G2-item"];

/// What snapshot isolation forbids of the cycles (Elle: G-SI, G-nonadjacent).
const SI_CYCLES: [&str; 4] = ["G0", "G1c", "G-single", "G-nonadjacent"];

/// Anomalies found without cycles.
pub const NON_CYCLE: [&str; 7] = [
    "G1a",
    "G1b",
    "internal",
    "incompatible-order",
    "duplicate-elements",
    "garbage-read",
    "lost-update",
];

/// The models `--consistency-model` accepts, weakest first.
pub const MODELS: [&str; 10] = [
    "read-uncommitted",
    "read-committed",
    "cursor-stability",
    "repeatable-read",
    "snapshot-isolation",
    "serializable",
    "strong-session-snapshot-isolation",
    "strong-snapshot-isolation",
    "strong-session-serializable",
    "strict-serializable",
];

pub const DEFAULT_MODEL: &str = "strict-serializable";

/// Which variants of cycle anomalies a model forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Dependency edges only.
    Data,
    /// Plus each process's order (strong session models).
    Process,
    /// Plus real-time order (strict / strong models).
    Realtime,
}

fn cycles_upto(bases: &[&str], order: Order) -> Vec<String> {
    let mut out: Vec<String> = bases.iter().map(|b| b.to_string()).collect();
    // A process-order cycle is also a real-time one (processes are sequential), so a model
    // forbidding real-time cycles forbids process ones too.
    if order != Order::Data {
        out.extend(bases.iter().map(|b| format!("{b}-process")));
    }
    if order == Order::Realtime {
        out.extend(bases.iter().map(|b| format!("{b}-realtime")));
    }
    out
}

/// The anomalies `model` forbids; `None` for an unknown model.
pub fn forbidden(model: &str) -> Option<Vec<String>> {
    let always = ["duplicate-elements", "garbage-read"];
    let rc = ["G1a", "G1b", "incompatible-order"];
    let (cycles, order, extra): (&[&str], Order, &[&str]) = match model {
        "read-uncommitted" => (&["G0"], Order::Data, &[]),
        "read-committed" => (&["G0", "G1c"], Order::Data, &rc),
        "cursor-stability" => (&["G0", "G1c"], Order::Data, &["lost-update"]),
        // G-single over items is a G2-item cycle too (Elle: G-single-item implies G2-item).
        "repeatable-read" => (&CYCLE_BASES, Order::Data, &["lost-update"]),
        "snapshot-isolation" => (&SI_CYCLES, Order::Data, &["lost-update", "internal"]),
        "serializable" => (&CYCLE_BASES, Order::Data, &["lost-update", "internal"]),
        "strong-session-snapshot-isolation" => {
            (&SI_CYCLES, Order::Process, &["lost-update", "internal"])
        }
        "strong-snapshot-isolation" => (&SI_CYCLES, Order::Realtime, &["lost-update", "internal"]),
        "strong-session-serializable" => {
            (&CYCLE_BASES, Order::Process, &["lost-update", "internal"])
        }
        "strict-serializable" => (&CYCLE_BASES, Order::Realtime, &["lost-update", "internal"]),
        _ => return None,
    };
    let mut out = cycles_upto(cycles, order);
    out.extend(always.iter().map(|s| s.to_string()));
    if model != "read-uncommitted" {
        out.extend(rc.iter().map(|s| s.to_string()));
    }
    out.extend(extra.iter().map(|s| s.to_string()));
    out.sort();
    out.dedup();
    Some(out)
}

/// The widest order a model's forbidden cycles use.
pub fn order_of(model: &str) -> Order {
    match forbidden(model) {
        Some(f) if f.iter().any(|a| a.ends_with("-realtime")) => Order::Realtime,
        Some(f) if f.iter().any(|a| a.ends_with("-process")) => Order::Process,
        _ => Order::Data,
    }
}

/// The models that `found` anomalies rule out, weakest first.
pub fn ruled_out(found: &[String]) -> Vec<&'static str> {
    MODELS
        .iter()
        .copied()
        .filter(|m| {
            forbidden(m)
                .unwrap_or_default()
                .iter()
                .any(|a| found.contains(a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stronger_models_forbid_more() {
        let sub = |a: &str, b: &str| {
            let (fa, fb) = (forbidden(a).unwrap(), forbidden(b).unwrap());
            fa.iter().all(|x| fb.contains(x))
        };
        for (weak, strong) in [
            ("read-uncommitted", "read-committed"),
            ("read-committed", "cursor-stability"),
            ("cursor-stability", "repeatable-read"),
            ("cursor-stability", "snapshot-isolation"),
            ("snapshot-isolation", "serializable"),
            ("repeatable-read", "serializable"),
            ("snapshot-isolation", "strong-session-snapshot-isolation"),
            (
                "strong-session-snapshot-isolation",
                "strong-snapshot-isolation",
            ),
            ("serializable", "strong-session-serializable"),
            ("strong-session-serializable", "strict-serializable"),
            ("strong-snapshot-isolation", "strict-serializable"),
        ] {
            assert!(sub(weak, strong), "{weak} should forbid less than {strong}");
            assert!(
                !sub(strong, weak),
                "{strong} should forbid more than {weak}"
            );
        }
        assert!(!forbidden("snapshot-isolation")
            .unwrap()
            .contains(&"G2-item".into()));
        assert!(forbidden("nonsense").is_none());
        assert_eq!(
            ruled_out(&["G2-item".into()]),
            vec![
                "repeatable-read",
                "serializable",
                "strong-session-serializable",
                "strict-serializable"
            ]
        );
    }
}
