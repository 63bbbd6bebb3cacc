//! A sound check for ops that real time has fenced off from every state they need: a
//! read whose value every op that could have made it current had already been
//! overwritten by an op that completed before the read began (a stale read), and the
//! like for any op that is legal in few states (a cas that succeeded). It decides such a
//! key invalid, with a core of the op and its fences, without the key's search, which on
//! a long key with many processes may never reach the op.
//!
//! Soundness. Take any linearization of the key and an op `q` in it. Call an op *free*
//! (for `q`) when it was invoked before `q` completed and is `info` or completed after
//! `q` was invoked: its point may fall anywhere up to `q`'s. Every other op that was
//! invoked before `q` completed, completed before `q` was invoked. Let `x` be the last
//! op before `q` that changed the state and is not free (or none: the start). After
//! `x` the state was some `a` (a state `x` yields from a reachable one, or the initial
//! state), and every change from there to `q` was made by a free op: the states from
//! `x` to `q` form a chain `a → … → S` along the free ops' changes, with `q` legal in
//! `S`. A determinate op `y` invoked after `x` completed and completed before `q` was
//! invoked has its point between theirs, so it is legal in one of the chain's states and
//! leaves it as it was. Hence, with
//!
//! - `T`: the states some free op yields and `q` is legal in, and `C`: those from which a
//!   chain of the free ops' changes leads into `T` (`T` included);
//! - for each *anchor* — `(x, a)` for each op `x` that changes the state and is not
//!   free, with each state `a` it yields, and `(start, initial state)` — the chain's
//!   states are `a` alone (`q` legal in `a`, no free op after `x`) or lie in `C` (`a`
//!   in `C`); an anchor with neither cannot precede `q`;
//!
//! an op `y` as above that is illegal or changes the state in `a` (first case) or in
//! every state of `C` (second) is a *fence* of the anchor. If every anchor that can
//! precede `q` has a fence, no linearization places `q`, so the key is invalid.
//!
//! The same holds for `q` with one fence per anchor (the *core*) under every relaxation
//! the cores are judged under (`core.rs`): there, each core op still takes effect within
//! its interval, every other op at a point within its own interval (an `info` one after
//! its invoke) or never, and the ops before the window are any state they could produce.
//! The argument above used nothing else: `x` is then the last op before `q` in the
//! relaxed behaviour that changed the state and is not free — in the window, or among
//! the summarised ops, all of which act before the window's start, so before every
//! fence (a core op) acts — or there is none and the chain starts at the initial state.
//! So the core can be shrunk and explained like any other.
//!
//! What it takes as given: the states the key's ops can reach (`states`, the initial one
//! first; any superset will do) and, for each op, the states it yields from one of them
//! when it changes it, and those changes when there are few (`Produces`; an op whose
//! changes are not listed is taken to make them from any state). Read-only ops
//! (`Model::is_read_only`) are taken to change nothing, as the search and the cores take
//! them.
//!
//! Cost: each op `q` looks at the anchors latest first and stops at the first without a
//! fence (for a correct read, the write it read, a few ops back); each fence is looked
//! for from `q`'s invoke backwards, stopping at the anchor's completion. The whole check
//! is bounded in model steps (`STEPS_PER_OP`).

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
    /// The states (ids in `states`) it yields when it changes one, and its changes
    /// (from, to) when listed (`None`: it may make each of them from any state).
    States {
        to: &'a [u32],
        moves: Option<&'a [(u32, u32)]>,
    },
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
    let changes = |i: u32| !matches!(produces[i as usize], Produces::Nothing);
    // Determinate ops that change the state, latest invoke first; `info` ones by invoke;
    // determinate ops by invoke.
    let mut anchors: Vec<u32> = (0..n as u32)
        .filter(|&i| changes(i) && entries[i as usize].ret.is_some())
        .collect();
    anchors.sort_unstable_by_key(|&i| std::cmp::Reverse(call(i)));
    let mut info: Vec<u32> = (0..n as u32)
        .filter(|&i| changes(i) && entries[i as usize].ret.is_none())
        .collect();
    info.sort_unstable_by_key(|&i| call(i));
    let longest = anchors
        .iter()
        .filter_map(|&i| entries[i as usize].ret.map(|r| r - call(i)))
        .max()
        .unwrap_or(0);
    let mut det: Vec<u32> = (0..n as u32)
        .filter(|&i| entries[i as usize].ret.is_some())
        .collect();
    det.sort_unstable_by_key(|&i| call(i));
    let mut steps_left = STEPS_BASE + STEPS_PER_OP * n as u64;
    let cx = Context {
        model,
        entries,
        states,
        produces,
        anchors: &anchors,
        info: &info,
        longest,
        det: &det,
    };
    let mut scratch = Scratch::default();
    for &q in &det {
        if everywhere[q as usize] {
            continue;
        }
        // A stale read looks at every op that changes the state before it (it has no
        // anchor without a fence to stop at), and little more.
        let mut q_steps = (4 * (anchors.len() + info.len()) as u64 + Q_STEPS_BASE).min(steps_left);
        let before = q_steps;
        let verdict = cx.fence_all(q, &mut scratch, &mut q_steps);
        steps_left -= before - q_steps;
        if let Verdict::Fenced = verdict {
            let mut core: Vec<u32> = scratch.fences.values().flatten().copied().collect();
            core.extend(scratch.chain_fence.flatten());
            core.push(q);
            core.sort_unstable_by_key(|&i| call(i));
            core.dedup();
            return Some(Fenced { op: q, core });
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
    /// Some anchor has no fence (or a free op's changes are not listed).
    Placeable,
    /// Every anchor has a fence (in `Scratch`).
    Fenced,
    OutOfSteps,
}

/// One op's working sets, kept between ops for their allocations.
#[derive(Default)]
struct Scratch {
    free: Vec<u32>,
    /// `C` of the module doc, and its members in order.
    chain: Vec<u32>,
    in_chain: rustc_hash::FxHashSet<u32>,
    /// Per state `a` of an anchor with the chain `a` alone: its latest fence, or `None`.
    fences: FxHashMap<u32, Option<u32>>,
    /// The latest fence of the anchors whose chain lies in `C`, once looked for.
    chain_fence: Option<Option<u32>>,
}

struct Context<'c, 'p, M: Model> {
    model: &'c M,
    entries: &'c [Entry<M::Op>],
    states: &'c [M::State],
    produces: &'c [Produces<'p>],
    /// Determinate ops that change the state, latest invoke first.
    anchors: &'c [u32],
    /// `info` ops that change the state, by invoke.
    info: &'c [u32],
    /// The longest interval of an op in `anchors`.
    longest: u64,
    /// Determinate ops by invoke.
    det: &'c [u32],
}

impl<M: Model> Context<'_, '_, M> {
    /// Whether every anchor for `q` that can precede it has a fence.
    fn fence_all(&self, q: u32, sc: &mut Scratch, steps: &mut u64) -> Verdict {
        let entries = self.entries;
        let e = &entries[q as usize];
        let (q_call, q_ret) = (e.call, e.ret.expect("determinate"));
        let legal = |s: u32| self.model.step(&self.states[s as usize], &e.op).is_some();
        sc.fences.clear();
        sc.chain_fence = None;
        sc.chain.clear();
        sc.in_chain.clear();
        // The free ops: `info` ones invoked before `q` completed, and determinate ones
        // that straddle `q`'s invoke.
        sc.free.clear();
        let k = self
            .info
            .partition_point(|&i| entries[i as usize].call < q_ret);
        sc.free.extend(self.info[..k].iter().filter(|&&i| i != q));
        let first = self
            .anchors
            .partition_point(|&i| entries[i as usize].call >= q_ret);
        for &x in &self.anchors[first..] {
            let ex = &entries[x as usize];
            if ex.call + self.longest < q_call {
                break;
            }
            if !spend(steps, 1) {
                return Verdict::OutOfSteps;
            }
            if x != q && ex.ret.is_some_and(|r| r > q_call) {
                sc.free.push(x);
            }
        }
        // `T`, then `C` backwards from it.
        for &x in &sc.free {
            match self.produces[x as usize] {
                Produces::Nothing => {}
                Produces::Any => return Verdict::Placeable,
                Produces::States { to, .. } => {
                    for &s in to {
                        if !spend(steps, 1) {
                            return Verdict::OutOfSteps;
                        }
                        if !sc.in_chain.contains(&s) && legal(s) {
                            sc.in_chain.insert(s);
                            sc.chain.push(s);
                        }
                    }
                }
            }
        }
        let mut next = 0;
        while next < sc.chain.len() {
            let s = sc.chain[next];
            next += 1;
            for &x in &sc.free {
                let Produces::States { to, moves } = self.produces[x as usize] else {
                    continue;
                };
                if !spend(steps, 1 + to.len() as u64) {
                    return Verdict::OutOfSteps;
                }
                match moves {
                    // It may make `s` from any state: every state leads into `T`.
                    None if to.contains(&s) => return Verdict::Placeable,
                    None => {}
                    Some(moves) => {
                        for &(from, into) in moves {
                            if into == s && sc.in_chain.insert(from) {
                                sc.chain.push(from);
                            }
                        }
                    }
                }
            }
        }
        // Determinate ops invoked before `q` was: where fences are looked for.
        let before = self
            .det
            .partition_point(|&i| entries[i as usize].call < q_call);
        for &x in &self.anchors[first..] {
            let ex = &entries[x as usize];
            if x == q {
                continue;
            }
            let Some(x_ret) = ex.ret.filter(|&r| r < q_call) else {
                continue; // free
            };
            let Produces::States { to, .. } = self.produces[x as usize] else {
                return Verdict::Placeable;
            };
            for &a in to {
                match self.anchor_fence(&e.op, a, Some(x_ret), q_call, before, sc, steps) {
                    None => return Verdict::OutOfSteps,
                    Some(true) => {}
                    Some(false) => return Verdict::Placeable,
                }
            }
        }
        match self.anchor_fence(&e.op, 0, None, q_call, before, sc, steps) {
            None => Verdict::OutOfSteps,
            Some(true) => Verdict::Fenced,
            Some(false) => Verdict::Placeable,
        }
    }

    /// Whether the anchor with state `a` whose op completed at `after` (`None`: the
    /// start) cannot precede `q` or has a fence invoked after `after`; `None` when the
    /// steps ran out.
    #[allow(clippy::too_many_arguments)]
    fn anchor_fence(
        &self,
        q_op: &M::Op,
        a: u32,
        after: Option<u64>,
        q_call: u64,
        before: usize,
        sc: &mut Scratch,
        steps: &mut u64,
    ) -> Option<bool> {
        let in_chain = sc.in_chain.contains(&a);
        if !in_chain {
            if !spend(steps, 1) {
                return None;
            }
            if self.model.step(&self.states[a as usize], q_op).is_none() {
                return Some(true);
            }
        }
        let cached = if in_chain {
            sc.chain_fence
        } else {
            sc.fences.get(&a).copied()
        };
        let f = match cached {
            Some(f) => f,
            None => {
                let f = if in_chain {
                    self.latest_fence(&sc.chain, after, q_call, before, steps)?
                } else {
                    self.latest_fence(&[a], after, q_call, before, steps)?
                };
                if in_chain {
                    sc.chain_fence = Some(f);
                } else {
                    sc.fences.insert(a, f);
                }
                f
            }
        };
        let call = |f: u32| self.entries[f as usize].call;
        Some(f.is_some_and(|f| after.is_none_or(|t| call(f) > t)))
    }

    /// The latest invoked determinate op that completed before `q_call` and is illegal in
    /// or changes every state of `set`, looked for down to `after` (`before`: the
    /// determinate ops invoked before `q_call`, a prefix of `det`); `Some(None)` when
    /// there is none that late, `None` when the steps ran out. A fence found is the latest
    /// of all, so it answers every later ask for the same set.
    fn latest_fence(
        &self,
        set: &[u32],
        after: Option<u64>,
        q_call: u64,
        before: usize,
        steps: &mut u64,
    ) -> Option<Option<u32>> {
        'ops: for &y in self.det[..before].iter().rev() {
            let ey = &self.entries[y as usize];
            if after.is_some_and(|a| ey.call < a) {
                break;
            }
            if ey.ret.is_some_and(|r| r >= q_call) {
                continue;
            }
            for &s in set {
                if !spend(steps, 1) {
                    return None;
                }
                let state = &self.states[s as usize];
                if self.model.step(state, &ey.op).as_ref() == Some(state) {
                    continue 'ops;
                }
            }
            return Some(Some(y));
        }
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
