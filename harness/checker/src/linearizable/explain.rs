//! Counterexamples: shrink an invalid key's ops to a small set that still cannot be
//! linearized, and say in words why no order of them works.

use super::search::{search, Budget, Entry, Outcome};
use crate::model::Model;
use crate::results::OpRef;
use std::time::{Duration, Instant};

/// Wall time one shrinking candidate may take.
const CANDIDATE_TIME_LIMIT: Duration = Duration::from_millis(200);

pub(crate) struct Minimal {
    /// Positions in the key's entries, in invoke order.
    pub ops: Vec<u32>,
    /// Whether shrinking ran to the end (every single op was tried for removal).
    pub complete: bool,
}

fn still_invalid<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    subset: &[u32],
    budget: &Budget,
) -> bool {
    let sub: Vec<&Entry<M::Op>> = subset.iter().map(|&i| &entries[i as usize]).collect();
    matches!(search(model, &sub, budget), Outcome::Illegal { .. })
}

/// Delta debugging: drop chunks of ops (halves, quarters, … single ops) while the rest
/// stays non-linearizable. Bounded by `deadline`; what is left then is still invalid,
/// only perhaps not minimal.
pub(crate) fn shrink<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    main: &Budget,
    deadline: Instant,
) -> Minimal {
    let deadline = main.deadline.map_or(deadline, |d| d.min(deadline));
    let mut current: Vec<u32> = (0..entries.len() as u32).collect();
    let mut chunk = current.len().div_ceil(2);
    while chunk >= 1 {
        let mut start = 0;
        while start < current.len() {
            if Instant::now() >= deadline {
                return Minimal {
                    ops: current,
                    complete: false,
                };
            }
            let end = (start + chunk).min(current.len());
            let candidate: Vec<u32> = current[..start]
                .iter()
                .chain(&current[end..])
                .copied()
                .collect();
            // One hard candidate must not eat the whole shrinking time: past its own
            // limit it counts as "not shown invalid" and its ops stay.
            let budget = Budget::new(
                main.limit_bytes / 2,
                Some(deadline.min(Instant::now() + CANDIDATE_TIME_LIMIT)),
            );
            if !candidate.is_empty() && still_invalid(model, entries, &candidate, &budget) {
                current = candidate;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    Minimal {
        ops: current,
        complete: true,
    }
}

/// Text for a person: the ops, the longest order of them that works, and why each op
/// left over cannot come next.
pub(crate) fn explain<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    refs: &[OpRef],
    minimal: &Minimal,
    main: &Budget,
) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let init = model.init();
    let _ = writeln!(
        text,
        "No order of these {} operations agrees with both real time and the {} model (starting from {}){}:",
        minimal.ops.len(),
        model.name(),
        model.state_json(&init),
        if minimal.complete { "" } else { " [shrinking stopped at its time limit; the set may not be minimal]" }
    );
    for &i in &minimal.ops {
        let _ = writeln!(text, "  - {}", refs[i as usize].describe());
    }
    let budget = Budget::new(
        main.limit_bytes / 2,
        Some(Instant::now() + Duration::from_secs(1)),
    );
    let sub: Vec<&Entry<M::Op>> = minimal.ops.iter().map(|&i| &entries[i as usize]).collect();
    let Outcome::Illegal { longest, state } = search(model, &sub, &budget) else {
        return text;
    };
    if longest.is_empty() {
        let _ = writeln!(text, "Not one of them can go first:");
    } else {
        let _ = writeln!(text, "The longest order that works:");
        for (n, &p) in longest.iter().enumerate() {
            let i = minimal.ops[p as usize];
            let _ = writeln!(text, "  {}. {}", n + 1, refs[i as usize].describe());
        }
        let _ = writeln!(
            text,
            "after which the state is {}, and no op left can go next:",
            model.state_json(&state)
        );
    }
    let placed: std::collections::HashSet<u32> = longest.iter().copied().collect();
    // The earliest completion among ops not placed: nothing invoked after it can go next.
    let first_open_return = (0..sub.len() as u32)
        .filter(|p| !placed.contains(p))
        .filter_map(|p| sub[p as usize].ret.map(|r| (r, p)))
        .min();
    for p in 0..sub.len() as u32 {
        if placed.contains(&p) {
            continue;
        }
        let i = minimal.ops[p as usize];
        let why = match first_open_return {
            Some((r, q)) if sub[p as usize].call > r => format!(
                "it was invoked after [{}] had completed, and that op is not placed yet",
                refs[minimal.ops[q as usize] as usize].describe()
            ),
            _ => match model.step(&state, &sub[p as usize].op) {
                None => model.why_illegal(&state, &sub[p as usize].op),
                Some(_) => "it is legal here, but every order that continues with it fails later"
                    .to_string(),
            },
        };
        let _ = writeln!(text, "  - {}: {why}", refs[i as usize].describe());
    }
    text
}
