//! A cheap, sound pre-pass over one key: a determinate op that is illegal in every state the
//! key's ops can produce decides the key invalid at once, with that op as a 1-op core.
//!
//! Soundness: in any linearization of the key, the state before each op is the result of
//! applying some of the key's ops, in some order, each at most once, to the initial state.
//! The closure computed here — every state reachable from the initial one by the key's ops
//! in any order, each any number of times (indeterminate ops included, since they may take
//! effect) — contains every such state. A determinate op must take effect, so if its `step`
//! is `None` in every state of the closure, no linearization exists. The same argument makes
//! it a core under any relaxation that lets the other ops do at most what the closure
//! allows (take effect at any moment, in any order, any number of times, or never); it is
//! 1-minimal, since with it made optional nothing is left that has to take effect.
//!
//! Nothing here trusts `Model::is_read_only`: every op is stepped in every state, so a
//! model whose "read" changes the state still gets a complete closure.
//!
//! It pays off on long keys whose search would have to exhaust every order of the ops
//! before the impossible one (a read of a value nobody wrote, 2,000,000 ops over 1,000
//! keys: unknown after 60 s before it). Its cost is bounded so that it stays a small share
//! of any key's check: it gives up (no conclusion) past `STATES_MAX` states or
//! `STEPS_PER_OP` steps per op.

use super::search::Entry;
use crate::model::Model;
use rustc_hash::FxHashSet;

/// Above this many distinct states the closure is not listed (no conclusion).
const STATES_MAX: usize = 256;

/// Model steps the closure may take per op of the key (plus `STEPS_BASE`): a register with
/// 10 values over 1,600 ops needs 11 per op.
const STEPS_PER_OP: usize = 32;
const STEPS_BASE: usize = 4096;

/// A determinate op illegal in every reachable state, and those states.
pub(crate) struct Impossible<S> {
    /// Position in the key's entries.
    pub op: u32,
    /// Every state the key's ops can produce, the initial one first.
    pub states: Vec<S>,
}

/// The first determinate op of `entries` (in invoke order) that is illegal in every state
/// the key's ops can produce, when the closure is small enough to list; `None` otherwise
/// (either every op is legal somewhere, or the closure was too large to decide).
pub(crate) fn impossible_op<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
) -> Option<Impossible<M::State>> {
    let n = entries.len();
    if !entries.iter().any(|e| e.ret.is_some()) {
        return None;
    }
    let max_steps = STEPS_BASE + STEPS_PER_OP.saturating_mul(n);
    let init = model.init();
    let mut seen: FxHashSet<M::State> = FxHashSet::default();
    seen.insert(init.clone());
    let mut states = vec![init];
    // Whether each op is legal in some state listed so far.
    let mut legal = vec![false; n];
    let mut steps = 0usize;
    let mut k = 0;
    while k < states.len() {
        if steps + n > max_steps {
            return None;
        }
        steps += n;
        for (i, e) in entries.iter().enumerate() {
            let Some(next) = model.step(&states[k], &e.op) else {
                continue;
            };
            legal[i] = true;
            // Reads and failed cas leave the state as it is: no lookup needed.
            if next == states[k] || seen.contains(&next) {
                continue;
            }
            if states.len() >= STATES_MAX {
                return None;
            }
            seen.insert(next.clone());
            states.push(next);
        }
        k += 1;
    }
    let op = (0..n).find(|&i| entries[i].ret.is_some() && !legal[i])?;
    Some(Impossible {
        op: op as u32,
        states,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Convention, RegOp, RegisterModel, Val};

    fn entry(op: RegOp, call: u64, ret: Option<u64>) -> Entry<RegOp> {
        Entry { op, call, ret }
    }

    #[test]
    fn a_read_of_a_value_nobody_wrote_is_impossible() {
        let model = RegisterModel::new(true, Convention::Faultline, Val::Null);
        let entries = vec![
            entry(RegOp::Write(Val::Int(1)), 0, Some(1)),
            entry(RegOp::Read(Some(Val::Int(1))), 2, Some(3)),
            entry(RegOp::Read(Some(Val::Int(7))), 4, Some(5)),
        ];
        let found = impossible_op(&model, &entries).expect("read of 7 is impossible");
        assert_eq!(found.op, 2);
        assert_eq!(found.states, vec![Val::Null, Val::Int(1)]);
    }

    #[test]
    fn an_info_write_or_a_cas_can_produce_the_value() {
        let model = RegisterModel::new(true, Convention::Faultline, Val::Null);
        // 7 only comes from an indeterminate write, or a cas from a value a write produced:
        // both may have taken effect, so the read is possible.
        let info_write = vec![
            entry(RegOp::Write(Val::Int(7)), 0, None),
            entry(RegOp::Read(Some(Val::Int(7))), 4, Some(5)),
        ];
        assert!(impossible_op(&model, &info_write).is_none());
        let cas = vec![
            entry(RegOp::Write(Val::Int(1)), 0, Some(1)),
            entry(
                RegOp::Cas {
                    from: Val::Int(1),
                    to: Val::Int(7),
                    ok: Some(true),
                },
                2,
                Some(3),
            ),
            entry(RegOp::Read(Some(Val::Int(7))), 4, Some(5)),
        ];
        assert!(impossible_op(&model, &cas).is_none());
        // An indeterminate impossible op need not take effect: no conclusion.
        let info_read = vec![entry(RegOp::Read(Some(Val::Int(7))), 0, None)];
        assert!(impossible_op(&model, &info_read).is_none());
    }

    #[test]
    fn too_many_states_give_no_conclusion() {
        let model = RegisterModel::new(false, Convention::Faultline, Val::Null);
        let mut entries: Vec<Entry<RegOp>> = (0..(STATES_MAX as i64 + 10))
            .map(|v| {
                entry(
                    RegOp::Write(Val::Int(v)),
                    2 * v as u64,
                    Some(2 * v as u64 + 1),
                )
            })
            .collect();
        entries.push(entry(
            RegOp::Read(Some(Val::Int(-1))),
            100_000,
            Some(100_001),
        ));
        assert!(impossible_op(&model, &entries).is_none());
    }
}
