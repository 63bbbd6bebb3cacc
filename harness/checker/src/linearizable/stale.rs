//! A sound check for ops that real time has fenced off from every state they need: a
//! read whose value every op that could have made it current had already been
//! overwritten by an op that completed before the read began (a stale read), and the
//! like for any op that is legal in few states (a cas that succeeded). It decides such a
//! key invalid, with a core of the op and its fences, without the key's search, which on
//! a long key with many processes may never reach the op.
//!
//! Soundness. Take any linearization of the key, an op `q` in it, and the state `S` just
//! before `q`. Either no op before `q` changed the state, and `S` is the initial state,
//! or some op `x` was the last one before `q` that did (`step(pre, x) = S != pre`). Every
//! op between `x` (or the start) and `q` then left `S` as it was. So when `q` is legal in
//! `S` and
//!
//! - `x` exists: `x`'s point is before `q`'s, so `x` was invoked before `q` completed; a
//!   determinate op `y` invoked after `x` completed and completed before `q` was invoked
//!   has its point between theirs, and must be legal in `S` and leave it unchanged;
//! - no `x`: `S` is the initial state, and every determinate op that completed before
//!   `q` was invoked must be legal in it and leave it unchanged.
//!
//! An op `y` that breaks this for `(x, S)` is a *fence* of it. If every pair — each op
//! `x` invoked before `q` completed, with each state `S != pre` it yields from a
//! reachable state `pre` and in which `q` is legal, and the initial state if `q` is legal
//! in it — has a fence, no linearization places `q`, so the key is invalid.
//!
//! The same holds for `q` with one fence per pair (the *core*) under every relaxation the
//! cores are judged under (`core.rs`): there, each core op still takes effect within its
//! interval, every other op at a point within its own interval (an `info` one after its
//! invoke) or never, and the ops before the window are any state they could produce.
//! The argument above used nothing else: `x` is then the last op before `q` in the
//! relaxed behaviour that changed the state, or there is none and `S` is the start
//! state, which is the initial state or a state some op invoked before the window (so
//! before `q` completed) yields from a reachable one — a pair that was checked, with a
//! fence in the core, whose point lies in the window before `q`'s. So the core can be
//! shrunk and explained like any other, and its ops fenced: every op in it is needed.
//!
//! What it takes as given: the states the key's ops can reach (`states`, the initial one
//! first; any superset will do) and, for each op, every state it yields from one of them
//! when it changes it (`Produces`). An `info` op `x` has no completion, so nothing is
//! forced after it and it is never fenced; nor is an op that completes after `q` began.
//! Read-only ops (`Model::is_read_only`) are taken to change nothing, as the search and
//! the cores take them.
//!
//! Cost: each op `q` looks at the ops invoked before it completed, latest first, and
//! stops at the first pair with no fence (for a correct read, the write it read, a few
//! ops back), and each fence is looked for from `q`'s invoke backwards, stopping at the
//! pair's completion. The whole check is bounded in model steps (`STEPS_PER_OP`).

use super::search::Entry;
use crate::model::Model;
use rustc_hash::FxHashMap;

/// Model steps the check may take per op of the key (plus `STEPS_BASE`) before it gives
/// up without a conclusion.
const STEPS_PER_OP: u64 = 256;
const STEPS_BASE: u64 = 1 << 16;

/// What an op can do to the state, over the reachable states.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Produces<'a> {
    /// It never changes the state (a read, or an op no reachable state lets change it).
    Nothing,
    /// The states (ids in `states`) it yields when it changes one.
    States(&'a [u32]),
    /// Too many to list: it is taken to yield any state.
    Any,
}

/// An op no linearization can place, and its core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fenced {
    /// Position in the key's entries.
    pub op: u32,
    /// The op and its fences, in invoke order.
    pub core: Vec<u32>,
}

/// The first determinate op of `entries` (by invoke) that real time fences off from
/// every state it is legal in; `None` when there is none or the step bound ran out.
/// `everywhere[i]`: op `i` is known to be legal in every state of `states` (a write);
/// such an op is not looked at, since any state lets it go.
pub(crate) fn fenced_op<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    states: &[M::State],
    produces: &[Produces<'_>],
    everywhere: &[bool],
) -> Option<Fenced> {
    let n = entries.len();
    let call = |i: u32| entries[i as usize].call;
    // Ops that change the state, latest invoke first; determinate ops by invoke.
    let mut producers: Vec<u32> = (0..n as u32)
        .filter(|&i| !matches!(produces[i as usize], Produces::Nothing))
        .collect();
    producers.sort_unstable_by_key(|&i| std::cmp::Reverse(call(i)));
    let mut det: Vec<u32> = (0..n as u32)
        .filter(|&i| entries[i as usize].ret.is_some())
        .collect();
    det.sort_unstable_by_key(|&i| call(i));
    let mut steps_left = STEPS_BASE + STEPS_PER_OP * n as u64;
    let mut fences: FxHashMap<u32, Option<u32>> = FxHashMap::default();
    let cx = Context {
        model,
        entries,
        states,
        produces,
        producers: &producers,
        det: &det,
    };
    for &q in &det {
        if everywhere[q as usize] {
            continue;
        }
        // A stale read looks at every op that changes the state before it (its scan has
        // no pair without a fence to stop at), and little more.
        let mut q_steps = (4 * producers.len() as u64 + Q_STEPS_BASE).min(steps_left);
        let before = q_steps;
        fences.clear();
        let verdict = cx.fence_all(q, &mut fences, &mut q_steps);
        steps_left -= before - q_steps;
        match verdict {
            Verdict::Placeable | Verdict::OutOfSteps => {}
            Verdict::Fenced => {
                let mut core: Vec<u32> = fences.values().flatten().copied().collect();
                core.push(q);
                core.sort_unstable_by_key(|&i| call(i));
                core.dedup();
                return Some(Fenced { op: q, core });
            }
        }
        if steps_left == 0 {
            return None;
        }
    }
    None
}

/// Model steps one op's check may take beyond four per op that changes the state.
const Q_STEPS_BASE: u64 = 256;

enum Verdict {
    /// Some pair has no fence (or one op yields states not listed).
    Placeable,
    /// Every pair has a fence (in `fences`).
    Fenced,
    OutOfSteps,
}

struct Context<'c, 'p, M: Model> {
    model: &'c M,
    entries: &'c [Entry<M::Op>],
    states: &'c [M::State],
    produces: &'c [Produces<'p>],
    /// Ops that change the state, latest invoke first.
    producers: &'c [u32],
    /// Determinate ops by invoke.
    det: &'c [u32],
}

impl<M: Model> Context<'_, '_, M> {
    /// Whether every pair for `q` has a fence. `fences`: per state, the determinate op
    /// that completed before `q` was invoked and is illegal in it or changes it, the latest
    /// invoked (so it fences every pair whose op completed before that invoke); `None`
    /// when none was found.
    fn fence_all(
        &self,
        q: u32,
        fences: &mut FxHashMap<u32, Option<u32>>,
        steps: &mut u64,
    ) -> Verdict {
        let entries = self.entries;
        let e = &entries[q as usize];
        let (q_call, q_ret) = (e.call, e.ret.expect("determinate"));
        // Determinate ops invoked before `q` was: where fences are looked for.
        let before = self
            .det
            .partition_point(|&i| entries[i as usize].call < q_call);
        let first = self
            .producers
            .partition_point(|&i| entries[i as usize].call >= q_ret);
        for &x in &self.producers[first..] {
            if x == q {
                continue;
            }
            let ex = &entries[x as usize];
            let yields = match self.produces[x as usize] {
                Produces::Nothing => continue,
                Produces::Any => return Verdict::Placeable,
                Produces::States(s) => s,
            };
            for &s in yields {
                if !spend(steps, 1) {
                    return Verdict::OutOfSteps;
                }
                if self.model.step(&self.states[s as usize], &e.op).is_none() {
                    continue;
                }
                // Nothing is forced between `x` and `q` when `x` may take effect after `q`
                // was invoked.
                let Some(x_ret) = ex.ret.filter(|&r| r < q_call) else {
                    return Verdict::Placeable;
                };
                match self.fence_of(s, Some(x_ret), q_call, before, fences, steps) {
                    None => return Verdict::OutOfSteps,
                    Some(Some(f)) if entries[f as usize].call > x_ret => {}
                    Some(_) => return Verdict::Placeable,
                }
            }
        }
        // No op changed the state before `q`: the initial state, `states[0]`.
        if !spend(steps, 1) {
            return Verdict::OutOfSteps;
        }
        if self.model.step(&self.states[0], &e.op).is_some() {
            match self.fence_of(0, None, q_call, before, fences, steps) {
                None => return Verdict::OutOfSteps,
                Some(Some(_)) => {}
                Some(None) => return Verdict::Placeable,
            }
        }
        // Only the states `q` is legal in were asked for: each fence found is needed.
        Verdict::Fenced
    }

    /// The fence of state `s` for an op invoked at `q_call` (`before`: the determinate ops
    /// invoked earlier, a prefix of `det`): the latest invoked one, when it was invoked
    /// after `after` (a completion; `None`: the start); `Some(None)` when there is none
    /// that late, `None` when the steps ran out. A fence found once is the latest, so it
    /// answers every later ask for the same state.
    fn fence_of(
        &self,
        s: u32,
        after: Option<u64>,
        q_call: u64,
        before: usize,
        fences: &mut FxHashMap<u32, Option<u32>>,
        steps: &mut u64,
    ) -> Option<Option<u32>> {
        if let Some(&Some(f)) = fences.get(&s) {
            return Some(Some(f));
        }
        let state = &self.states[s as usize];
        for &y in self.det[..before].iter().rev() {
            let ey = &self.entries[y as usize];
            if after.is_some_and(|a| ey.call < a) {
                break;
            }
            if ey.ret.is_some_and(|r| r >= q_call) {
                continue;
            }
            if !spend(steps, 1) {
                return None;
            }
            if self.model.step(state, &ey.op).as_ref() != Some(state) {
                fences.insert(s, Some(y));
                return Some(Some(y));
            }
        }
        fences.insert(s, None);
        Some(None)
    }
}

fn spend(steps: &mut u64, k: u64) -> bool {
    if *steps < k {
        return false;
    }
    *steps -= k;
    true
}
