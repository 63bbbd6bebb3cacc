//! Counterexamples: shrink an invalid key to a small core of ops that cannot be
//! linearized, and say in words why no order of them works.
//!
//! Shrinking does not delete the other ops (deleting the write a read saw would make any
//! read "invalid" and explain nothing); it makes them optional: each may take effect at
//! any point after its invoke, or not at all. That only adds behaviours, so a core that is
//! still non-linearizable this way is a real contradiction among its own ops.

use super::search::{search, Budget, Entry, Outcome, View};
use crate::model::Model;
use crate::results::OpRef;
use std::time::{Duration, Instant};

/// Wall time one shrinking candidate may take.
const CANDIDATE_TIME_LIMIT: Duration = Duration::from_millis(100);

pub(crate) struct Minimal {
    /// Positions in the key's entries, in invoke order: the core.
    pub ops: Vec<u32>,
    /// Ops invoked after this position play no part.
    pub cut: u64,
    /// Whether shrinking ran to the end (every single op was tried for removal).
    pub complete: bool,
}

/// The key's ops invoked up to `cut`, with those outside `core` made optional. Ops
/// invoked after the cut cannot matter: every core op completed before it.
fn relaxed<'a, O>(entries: &'a [Entry<O>], core: &[u32], cut: u64) -> Vec<View<'a, O>> {
    let mut in_core = vec![false; entries.len()];
    for &i in core {
        in_core[i as usize] = true;
    }
    entries
        .iter()
        .zip(in_core)
        .map(|(e, keep)| View {
            op: &e.op,
            call: e.call,
            ret: if keep { e.ret } else { None },
        })
        .map(|v| {
            if v.call <= cut {
                v
            } else {
                View { ret: None, ..v }
            }
        })
        .collect()
}

fn invalid<M: Model>(
    model: &M,
    views: &[View<'_, M::Op>],
    main: &Budget,
    deadline: Instant,
) -> bool {
    let budget = Budget::new(
        main.limit_bytes / 2,
        Some(deadline.min(Instant::now() + CANDIDATE_TIME_LIMIT)),
    );
    matches!(search(model, views, &budget), Outcome::Illegal { .. })
}

/// The shortest prefix of the key that is already non-linearizable, as the time of its
/// last completion (non-linearizability only grows with the prefix, so binary search).
fn shortest_prefix<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    main: &Budget,
    deadline: Instant,
) -> u64 {
    let mut returns: Vec<u64> = entries.iter().filter_map(|e| e.ret).collect();
    returns.sort_unstable();
    let (mut lo, mut hi) = (0, returns.len());
    while lo < hi && Instant::now() < deadline {
        let mid = (lo + hi) / 2;
        let cut = returns[mid];
        let core: Vec<u32> = (0..entries.len() as u32)
            .filter(|&i| entries[i as usize].ret.is_some_and(|r| r <= cut))
            .collect();
        if invalid(model, &relaxed(entries, &core, cut), main, deadline) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    returns.get(lo).copied().unwrap_or(u64::MAX)
}

/// Delta debugging: drop chunks of ops from the core (halves, quarters, … single ops)
/// while the history stays non-linearizable. Bounded by `deadline`; what is left then is
/// still a contradiction, only perhaps not minimal.
pub(crate) fn shrink<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    main: &Budget,
    deadline: Instant,
) -> Minimal {
    let deadline = main.deadline.map_or(deadline, |d| d.min(deadline));
    let cut = shortest_prefix(model, entries, main, deadline);
    // Ops of unknown outcome are optional already; only determinate ones form the core.
    let mut current: Vec<u32> = (0..entries.len() as u32)
        .filter(|&i| entries[i as usize].ret.is_some_and(|r| r <= cut))
        .collect();
    let mut chunk = current.len().div_ceil(2);
    while chunk >= 1 {
        let mut start = 0;
        while start < current.len() {
            if Instant::now() >= deadline {
                return Minimal {
                    ops: current,
                    cut,
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
            if !candidate.is_empty()
                && invalid(model, &relaxed(entries, &candidate, cut), main, deadline)
            {
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
        cut,
        complete: true,
    }
}

/// Text for a person: the core ops, the longest order that works, and why each core op
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
    let others = entries.iter().filter(|e| e.call <= minimal.cut).count() - minimal.ops.len();
    let _ = writeln!(
        text,
        "No order of these {} operations agrees with both real time and the {} model (starting from {}){}{}:",
        minimal.ops.len(),
        model.name(),
        model.state_json(&model.init()),
        if others > 0 {
            format!(", even if each of the other {others} operations took effect at any point after its invoke, or not at all")
        } else {
            String::new()
        },
        if minimal.complete {
            ""
        } else {
            " [shrinking stopped at its time limit; the set may not be minimal]"
        }
    );
    for &i in &minimal.ops {
        let _ = writeln!(text, "  - {}", refs[i as usize].describe());
    }
    let budget = Budget::new(
        main.limit_bytes / 2,
        Some(Instant::now() + Duration::from_secs(1)),
    );
    let views = relaxed(entries, &minimal.ops, minimal.cut);
    let Outcome::Illegal { longest, state } = search(model, &views, &budget) else {
        return text;
    };
    if longest.is_empty() {
        let _ = writeln!(text, "Not one of them can go first:");
    } else {
        let _ = writeln!(text, "The longest order that works:");
        let core: std::collections::HashSet<u32> = minimal.ops.iter().copied().collect();
        for (n, &i) in longest.iter().enumerate() {
            let tag = if core.contains(&i) { "" } else { "(optional) " };
            let _ = writeln!(text, "  {}. {tag}{}", n + 1, refs[i as usize].describe());
        }
        let _ = writeln!(
            text,
            "after which the state is {}, and none of these can go next:",
            model.state_json(&state)
        );
    }
    let placed: std::collections::HashSet<u32> = longest.iter().copied().collect();
    // The earliest completion among core ops not placed: nothing invoked after it can go next.
    let first_open_return = minimal
        .ops
        .iter()
        .filter(|p| !placed.contains(p))
        .filter_map(|&p| views[p as usize].ret.map(|r| (r, p)))
        .min();
    for &i in &minimal.ops {
        if placed.contains(&i) {
            continue;
        }
        let why = match first_open_return {
            Some((r, q)) if views[i as usize].call > r => format!(
                "it was invoked after [{}] had completed, and that op is not placed yet",
                refs[q as usize].describe()
            ),
            _ => match model.step(&state, &entries[i as usize].op) {
                None => model.why_illegal(&state, &entries[i as usize].op),
                Some(_) => "it is legal here, but every order that continues with it fails later"
                    .to_string(),
            },
        };
        let _ = writeln!(text, "  - {}: {why}", refs[i as usize].describe());
    }
    text
}
