//! Counterexamples in words: the core's ops, the relaxation it is minimal under, the
//! longest order of them that works and why each op left over cannot come next.

use super::core::{Core, Relaxer, Summary};
use super::search::{Budget, Entry, Outcome};
use crate::model::Model;
use crate::results::OpRef;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// A core with more ops than this is not listed whole: the stuck op and its nearest
/// neighbours are (the whole set is in results.json).
const LISTED_OPS_MAX: usize = 30;
/// Neighbours listed beside the stuck op when a core is too large to list.
const NEIGHBOURS_LISTED: usize = 10;

/// The relaxation, in words, for `others` ops outside the core.
pub(crate) fn relaxation_text(others: usize, summary: Summary) -> String {
    let mut text = format!(
        "each of the other {others} operations of this key may take effect at one moment between its invoke and its completion (an info one: at any moment after its invoke), or never"
    );
    match summary {
        Summary::Invoked => text.push_str(
            "; those invoked before the first of these was invoked are taken as any state they could produce in any order, each any number of times (and those of them still running then, or info, may also take effect after it)",
        ),
        Summary::Completed => text.push_str(
            "; those that completed before the first of these began, and the info ones invoked before the first of these completed, are taken as any state they could produce in any order, each any number of times",
        ),
        Summary::None => {}
    }
    text
}

pub(crate) struct Explained {
    pub text: String,
    pub relaxation: String,
}

/// Text for a person about `core`, a set of the key's `entries` (described by `refs`).
pub(crate) fn explain<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    refs: &[OpRef],
    relaxer: &mut Relaxer<'_, M>,
    core: &Core,
    memory_limit_bytes: usize,
) -> Explained {
    let problem = relaxer.problem(&core.ops);
    let others = problem.views.len() - core.ops.len() + problem.summarised;
    let relaxation = relaxation_text(others, problem.summary);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "No order of these {} operations agrees with both real time and the {} model (starting from {}), even if {}.{}",
        core.ops.len(),
        model.name(),
        model.state_json(&model.init()),
        relaxation,
        if core.minimal {
            " Each of them is needed: with any one of them optional the rest could be ordered."
        } else {
            " [shrinking stopped at its time limit: the set may not be minimal]"
        }
    );
    let listed = listed_ops(entries, core);
    if listed.len() < core.ops.len() {
        let _ = writeln!(
            text,
            "The set is large; the op the search could not place and its {} nearest neighbours (all {} are in results.json):",
            listed.len().saturating_sub(1),
            core.ops.len()
        );
    }
    for &i in &listed {
        let mark = if Some(i) == core.stuck {
            "  <- stuck here"
        } else {
            ""
        };
        let _ = writeln!(text, "  - {}{mark}", refs[i as usize].describe());
    }
    let budget = Budget::new(
        memory_limit_bytes / 2,
        Some(Instant::now() + Duration::from_millis(500)),
    );
    let Outcome::Illegal { longest, state } = relaxer.solve(&problem, &budget, u64::MAX) else {
        return Explained { text, relaxation };
    };
    // Back to positions in the key's entries.
    let longest: Vec<u32> = longest
        .iter()
        .map(|&v| problem.positions[v as usize])
        .collect();
    if longest.is_empty() {
        let _ = writeln!(text, "Not one of them can go first:");
    } else {
        let _ = writeln!(text, "The longest order that works:");
        let in_core: std::collections::HashSet<u32> = core.ops.iter().copied().collect();
        for (n, &i) in longest.iter().enumerate() {
            let tag = if in_core.contains(&i) {
                ""
            } else {
                "(optional) "
            };
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
    let first_open_return = core
        .ops
        .iter()
        .filter(|p| !placed.contains(p))
        .filter_map(|&p| entries[p as usize].ret.map(|r| (r, p)))
        .min();
    let mut why_listed = 0;
    for &i in &listed {
        if placed.contains(&i) || why_listed >= LISTED_OPS_MAX {
            continue;
        }
        why_listed += 1;
        let why = match first_open_return {
            Some((r, q)) if entries[i as usize].call > r => format!(
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
    Explained { text, relaxation }
}

/// The core's ops to list: all of them, or when there are too many, the stuck op and the
/// ops nearest to it in time.
fn listed_ops<O>(entries: &[Entry<O>], core: &Core) -> Vec<u32> {
    if core.ops.len() <= LISTED_OPS_MAX {
        return core.ops.clone();
    }
    let centre = core
        .stuck
        .filter(|s| core.ops.contains(s))
        .unwrap_or(core.ops[core.ops.len() - 1]);
    let t = entries[centre as usize].call;
    let mut near: Vec<u32> = core.ops.iter().copied().filter(|&i| i != centre).collect();
    near.sort_unstable_by_key(|&i| entries[i as usize].call.abs_diff(t));
    near.truncate(NEIGHBOURS_LISTED);
    near.push(centre);
    near.sort_unstable();
    near
}

/// States listed by name in an impossible op's explanation; past it, only counted.
const STATES_LISTED_MAX: usize = 12;

/// Text for a person about an op the pre-pass found illegal in every state the key's ops
/// can produce (`states`, the initial one first), and the relaxation it is a core under.
pub(crate) fn explain_impossible<M: Model>(
    model: &M,
    op: &M::Op,
    described: &str,
    others: usize,
    states: &[M::State],
) -> Explained {
    let relaxation = format!(
        "each of the other {others} operations of this key may take effect at any moment, in any order, any number of times, or never"
    );
    let mut listed = String::new();
    for (n, s) in states.iter().take(STATES_LISTED_MAX).enumerate() {
        if n > 0 {
            listed.push_str(", ");
        }
        let _ = write!(listed, "{}", model.state_json(s));
    }
    if states.len() > STATES_LISTED_MAX {
        let _ = write!(listed, ", … ({} in all)", states.len());
    }
    let why = states
        .first()
        .map_or_else(String::new, |s| model.why_illegal(s, op));
    let mut text = String::new();
    let _ = writeln!(
        text,
        "This operation cannot take effect in any state the {} model can reach with this key's operations, even if {relaxation}. It is needed: with it optional, nothing would have to take effect.",
        model.name()
    );
    let _ = writeln!(text, "  - {described}  <- stuck here");
    let _ = writeln!(
        text,
        "The states this key's operations can produce from {} (in any order, each any number of times) are: {listed}; it is illegal in every one of them (in the first: {why}).",
        model.state_json(&model.init())
    );
    Explained { text, relaxation }
}
