//! Cores: small sets of ops that cannot be linearized on their own, found by growing a
//! window from where the search got stuck and shrinking it to a 1-minimal set.
//!
//! The relaxation a core is judged under: the core's ops must take effect, each between
//! its invoke and its completion; every other `ok` op of the key may take effect between
//! its own invoke and completion, or never; every `info` op at any point after its invoke,
//! or never. A linearization of the whole key is one of these behaviours, so a core that
//! has none proves the key invalid. Making one more op optional only adds behaviours, so
//! shrinking is monotone, and a set from which no single op can be made optional is
//! 1-minimal. Ops invoked after the core's last completion are always left out: each
//! would have to follow every core op, so none can help.
//!
//! To keep each check small, the ops before the core's window may be summarised as the
//! states they can produce, in any order and any number of times (a superset of what they
//! could do), and the window searched from each of those states. Three forms, tried in
//! this order for a key; one form judges every set of one shrink, so the shrink stays
//! monotone:
//!
//! - `Summary::Invoked`: the window starts at `start`, the first invoke among the core's
//!   ops. Every op invoked before `start` is summarised; those of them still running at
//!   `start` (and every `info` one) also stay in the window as optional ops. Sound: take
//!   any linearization of the whole key with each op's point inside its interval, and
//!   cut it at `start`. Every op before the cut was invoked before `start`, so the state
//!   there is reached from the initial one by summarised ops, and is one of the summary's
//!   states. Every op after the cut has its point at or after `start`, so it is a core
//!   op, an op invoked at or after `start`, or one still running at `start` (or `info`):
//!   all of them are in the window, in the order and intervals the linearization gives.
//!   Truncated after the last core op, that is a behaviour of the relaxed problem. Each
//!   op acts once in the linearization; the relaxation lets a straddling one act in both
//!   parts, which only adds behaviours. Monotone: removing a core op moves `start` no
//!   earlier, and a behaviour for the larger set cut at the later `start` is one for the
//!   smaller set by the same argument (the summary is closed under its ops). This form is
//!   used when every state the key's ops can produce can be listed
//!   (`INVOKED_STATES_MAX`); it is computed once per key, incrementally in invoke order,
//!   so each window takes the prefix of it for its `start`. Start states that no window
//!   op can tell apart (`distinct_starts`) are searched once.
//! - `Summary::Completed` (when `Invoked` cannot list the key's states or finds no core,
//!   e.g. a violation that hinges on an op acting once, and the key has at most
//!   `START_STATES_MAX` states): the window's
//!   start is pulled back until no determinate op straddles it; the ops that completed
//!   before it, with the `info` ops invoked before the first core op completed, are
//!   summarised, and the rest stay optional ops.
//! - `Summary::None` (asked for by the caller after both): no summary, every other op is
//!   an optional op.
//!
//! Every candidate check is bounded in wall time and search steps; one that runs out is
//! "not shown invalid" and the shrink moves on (the core is then not marked minimal).

use super::search::{search_from, Budget, Entry, Outcome, View};
use super::stale::{fenced_op, Fenced, Produces};
use crate::model::Model;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Wall time one candidate set may take before it counts as "not shown invalid".
const CANDIDATE_TIME_LIMIT: Duration = Duration::from_millis(50);

/// Search steps one candidate set may take (about 20–60 ms of search): bounds its memory
/// too, so a hard candidate is skipped instead of filling the key's budget.
const CANDIDATE_STEPS: u64 = 1 << 18;

/// Above this many states the `Completed` summary is not used.
const START_STATES_MAX: usize = 512;

/// Above this many states (or four per op and 64 more, or bytes of them, or
/// `INVOKED_STEPS_MAX` model steps to list them) the `Invoked` summary is not used. The bytes bound keeps a model whose states
/// grow without end (appended strings) from spending long on finding that out.
const INVOKED_STATES_MAX: usize = 1 << 12;
const INVOKED_BYTES_MAX: usize = 1 << 22;
const INVOKED_STEPS_MAX: u64 = 1 << 23;

/// States an op may yield (when it changes the state) that `fenced` is told of one by
/// one; past it, the op is taken to yield any state.
const PRODUCED_MAX: usize = 16;

/// The smallest window tried first; it doubles until it is non-linearizable.
const WINDOW_OPS_MIN: usize = 4;

/// The pair sweep: how many of the ops the search could not place it tries, and how
/// many of the ops that completed last before each one's invoke it pairs it with.
const SWEEP_TARGETS: usize = 8;
const SWEEP_PARTNERS: usize = 6;

/// What one relaxed check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    Invalid,
    Linearizable,
    /// Its time or steps ran out, or its form cannot judge it.
    Undecided,
}

/// How the ops before a core's window are summarised (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Summary {
    Invoked,
    Completed,
    None,
}

/// A set of ops shown non-linearizable under the relaxation.
#[derive(Debug, Clone)]
pub(crate) struct Core {
    /// Positions in the key's entries, in invoke order.
    pub ops: Vec<u32>,
    /// Every single op was shown to be needed (making it optional made the rest
    /// linearizable); false when the budget ran out first.
    pub minimal: bool,
    /// The op the key's search could not place next, if known.
    pub stuck: Option<u32>,
}

/// One relaxed sub-history ready for the search.
pub(crate) struct Problem<'e, O, S> {
    pub views: Vec<View<'e, O>>,
    /// Position in the key's entries of each view.
    pub positions: Vec<u32>,
    pub inits: Vec<S>,
    /// Ops left out of `views` because `inits` summarises them.
    pub summarised: usize,
    /// How `inits` summarises the ops before the window (`None`: the initial state).
    pub summary: Summary,
}

/// Every state the key's useful ops can produce from the initial one, in any order and
/// any number of times, listed so that the states of the ops invoked before any point
/// are a prefix: `states[..born_end[k]]` is the closure of the first `k` ops by invoke.
struct InvokedClosure<S> {
    /// Invokes of the useful ops, sorted.
    calls: Vec<u64>,
    states: Vec<S>,
    born_end: Vec<usize>,
    /// Positions in the key's entries of the useful ops, by invoke.
    order: Vec<u32>,
    /// Per op of `order`: the states (ids in `states`) it yields when it changes one;
    /// more than `PRODUCED_MAX` of them stand for any state.
    produced: Vec<Vec<u32>>,
    /// Per op of `order`: its changes (from, to), or `None` past `PRODUCED_MAX` of them.
    moves: Vec<Option<Vec<(u32, u32)>>>,
    /// Per op of `order`: legal in every state of `states`.
    everywhere: Vec<bool>,
}

impl<S> InvokedClosure<S> {
    /// The states of the ops invoked before `start`.
    fn upto(&self, start: u64) -> &[S] {
        let k = self.calls.partition_point(|&c| c < start);
        &self.states[..self.born_end[k]]
    }
}

/// Judges sets of a key's ops under the relaxation.
pub(crate) struct Relaxer<'e, M: Model> {
    model: &'e M,
    entries: &'e [Entry<M::Op>],
    /// Ops that can change a state (read-only ops never help as optional ops).
    useful: Vec<bool>,
    mode: Summary,
    invoked: Option<InvokedClosure<M::State>>,
    /// `Completed` summaries by (window start, first core completion).
    starts: HashMap<(u64, u64), Vec<M::State>>,
    /// `Invoked` start states told apart by the window, by (start, cut).
    distinct: FxHashMap<(u64, u64), Vec<M::State>>,
    memory_limit_bytes: usize,
}

impl<'e, M: Model> Relaxer<'e, M> {
    /// `summarise`: whether the ops before a window may be summarised as start states
    /// (when the key's states are few enough to list). A summary lets an op act twice
    /// (in the summary and in the window), so a key whose violation hinges on an op
    /// acting once may have no core under it: `core` then tries the `Completed` form,
    /// and when that finds none either, ask again without a summary.
    pub fn new(
        model: &'e M,
        entries: &'e [Entry<M::Op>],
        memory_limit_bytes: usize,
        summarise: bool,
    ) -> Self {
        let useful: Vec<bool> = entries
            .iter()
            .map(|e| e.ret.is_none() || !model.is_read_only(&e.op))
            .collect();
        let mut r = Relaxer {
            model,
            entries,
            useful,
            mode: Summary::None,
            invoked: None,
            starts: HashMap::new(),
            distinct: FxHashMap::default(),
            memory_limit_bytes,
        };
        // Listing states that have no end only runs into a bound (kv c10-bad: ~0.2 ms of
        // appends, next to ~0.1 ms for the rest of its counterexample).
        let endless = entries
            .iter()
            .zip(&r.useful)
            .any(|(e, &u)| u && model.grows_without_end(&e.op));
        if summarise && !endless {
            r.invoked = r.invoked_closure();
            if r.invoked.is_some() {
                r.mode = Summary::Invoked;
            } else {
                let all: Vec<u32> = (0..entries.len() as u32)
                    .filter(|&i| r.useful[i as usize])
                    .collect();
                if r.closure(&all).is_some() {
                    r.mode = Summary::Completed;
                }
            }
        }
        r
    }

    /// An op of the key that real time fences off from every state it could go in
    /// (`stale::fenced_op`, over the `Invoked` closure), with its core; `None` when the
    /// key's states could not be listed or no op is fenced.
    pub fn fenced(&self) -> Option<Fenced> {
        let c = self.invoked.as_ref()?;
        let n = self.entries.len();
        let mut produces = vec![Produces::Nothing; n];
        let mut everywhere = vec![false; n];
        for (k, &i) in c.order.iter().enumerate() {
            let p = &c.produced[k];
            produces[i as usize] = if p.len() > PRODUCED_MAX {
                Produces::Any
            } else if p.is_empty() {
                Produces::Nothing
            } else {
                Produces::States {
                    to: p,
                    moves: c.moves[k].as_deref(),
                }
            };
            everywhere[i as usize] = c.everywhere[k];
        }
        fenced_op(self.model, self.entries, &c.states, &produces, &everywhere)
    }

    /// Whether this relaxer summarises the ops before a window.
    pub fn summarises(&self) -> bool {
        self.mode != Summary::None
    }

    /// The `Invoked` closure of the key, or `None` past its limits. Exact for every
    /// prefix: when the `k`-th op joins, it is applied to every state so far, and every
    /// new state gets all of the first `k` ops.
    fn invoked_closure(&self) -> Option<InvokedClosure<M::State>> {
        let mut order: Vec<u32> = (0..self.entries.len() as u32)
            .filter(|&i| self.useful[i as usize])
            .collect();
        order.sort_by_key(|&i| self.entries[i as usize].call);
        let ops: Vec<&M::Op> = order
            .iter()
            .map(|&i| &self.entries[i as usize].op)
            .collect();
        let init = self.model.init();
        let mut seen: FxHashMap<M::State, u32> = [(init.clone(), 0)].into_iter().collect();
        let mut states = vec![init];
        let mut born_end = Vec::with_capacity(ops.len() + 1);
        born_end.push(1);
        // An op's last result, its id and whether `produced` has it: a write gives the
        // same state from every state, and comparing with the last one is much cheaper
        // than a hash lookup.
        let mut last: Vec<Option<(M::State, u32, bool)>> = vec![None; ops.len()];
        // What each op yields when it changes a state, and in how many states it is legal
        // (each (state, op) pair is stepped exactly once below), for `fenced`.
        let mut produced: Vec<Vec<u32>> = vec![Vec::new(); ops.len()];
        // And the changes themselves, (from, to), while there are at most `PRODUCED_MAX`.
        let mut moves: Vec<Option<Vec<(u32, u32)>>> = vec![Some(Vec::new()); ops.len()];
        let mut legal = vec![0u32; ops.len()];
        let mut steps: u64 = 0;
        let model = self.model;
        // A register's ops make at most one new state each; far more than that means
        // states that grow without end (appends), found out here before they get long.
        let states_max = INVOKED_STATES_MAX.min(4 * ops.len() + 64);
        let mut bytes = 0usize;
        let mut add = |t: M::State,
                       j: usize,
                       from: usize,
                       states: &mut Vec<M::State>,
                       last: &mut Vec<Option<(M::State, u32, bool)>>|
         -> Option<()> {
            legal[j] += 1;
            let slot = match &mut last[j] {
                Some(slot) if slot.0 == t => slot,
                other => {
                    let id = match seen.get(&t) {
                        Some(&id) => id,
                        None => {
                            bytes += model.state_bytes(&t);
                            if states.len() >= states_max || bytes > INVOKED_BYTES_MAX {
                                return None;
                            }
                            let id = states.len() as u32;
                            seen.insert(t.clone(), id);
                            states.push(t.clone());
                            id
                        }
                    };
                    other.insert((t, id, false))
                }
            };
            if slot.1 as usize != from {
                if let Some(m) = &mut moves[j] {
                    if m.len() >= PRODUCED_MAX {
                        moves[j] = None;
                    } else {
                        m.push((from as u32, slot.1));
                    }
                }
            }
            if !slot.2 && slot.1 as usize != from {
                slot.2 = true;
                let p = &mut produced[j];
                // Past `PRODUCED_MAX` the list is taken as "any state".
                if p.len() <= PRODUCED_MAX && !p.contains(&slot.1) {
                    p.push(slot.1);
                }
            }
            Some(())
        };
        for k in 0..ops.len() {
            let old = states.len();
            for s in 0..old {
                if let Some(t) = self.model.step(&states[s], ops[k]) {
                    add(t, k, s, &mut states, &mut last)?;
                }
            }
            steps += old as u64;
            let mut q = old;
            while q < states.len() {
                for (j, op) in ops.iter().enumerate().take(k + 1) {
                    if let Some(t) = self.model.step(&states[q], op) {
                        add(t, j, q, &mut states, &mut last)?;
                    }
                }
                steps += k as u64 + 1;
                q += 1;
            }
            if steps > INVOKED_STEPS_MAX {
                return None;
            }
            born_end.push(states.len());
        }
        let everywhere = legal.iter().map(|&c| c as usize == states.len()).collect();
        Some(InvokedClosure {
            calls: order
                .iter()
                .map(|&i| self.entries[i as usize].call)
                .collect(),
            states,
            born_end,
            order,
            produced,
            moves,
            everywhere,
        })
    }

    /// Every state reachable from the initial one by `ops` in any order and any number of
    /// times; `None` past `START_STATES_MAX`.
    fn closure(&self, ops: &[u32]) -> Option<Vec<M::State>> {
        let init = self.model.init();
        let mut seen: std::collections::HashSet<M::State> = [init.clone()].into();
        let mut states = vec![init];
        let mut k = 0;
        while k < states.len() {
            for &i in ops {
                if let Some(next) = self.model.step(&states[k], &self.entries[i as usize].op) {
                    if !seen.contains(&next) {
                        if states.len() >= START_STATES_MAX {
                            return None;
                        }
                        seen.insert(next.clone());
                        states.push(next);
                    }
                }
            }
            k += 1;
        }
        Some(states)
    }

    /// One representative of each class of `states` that the ops at `window` cannot
    /// tell apart. Two states are in one class when every op is illegal in both, or
    /// legal in both with the same result, or legal in both leaving each unchanged (a
    /// read of a value neither holds cannot happen; one both hold means they are equal).
    /// That relation is a bisimulation over the window's ops, so a search from either
    /// decides the same.
    fn distinct_starts(&self, states: &[M::State], window: &[u32]) -> Vec<M::State> {
        let n = states.len();
        let mut class = vec![0u32; n];
        let mut classes = 1u32;
        let mut results: Vec<Option<M::State>> = Vec::with_capacity(n);
        for &i in window {
            if classes as usize == n {
                break;
            }
            let op = &self.entries[i as usize].op;
            results.clear();
            results.extend(states.iter().map(|s| self.model.step(s, op)));
            let legal = results.iter().filter(|r| r.is_some()).count();
            if legal == 0 {
                continue;
            }
            let first = results.iter().flatten().next();
            let constant = results.iter().all(|r| r.is_none() || r.as_ref() == first);
            let unchanged = results
                .iter()
                .zip(states)
                .all(|(r, s)| r.as_ref().is_none_or(|t| t == s));
            if constant || unchanged {
                if legal == n {
                    continue;
                }
                // Split each class into its legal and illegal states.
                let mut split: FxHashMap<u32, u32> = FxHashMap::default();
                for s in 0..n {
                    if results[s].is_some() {
                        let c = class[s];
                        class[s] = *split.entry(c).or_insert_with(|| {
                            classes += 1;
                            classes - 1
                        });
                    }
                }
                // A class that was wholly legal keeps its states together under a new
                // id and leaves its old one unused: harmless, ids only tell classes apart.
            } else {
                let mut split: FxHashMap<(u32, Option<&M::State>), u32> = FxHashMap::default();
                let mut next = 0u32;
                let mut renamed = vec![0u32; n];
                for s in 0..n {
                    renamed[s] =
                        *split
                            .entry((class[s], results[s].as_ref()))
                            .or_insert_with(|| {
                                next += 1;
                                next - 1
                            });
                }
                class = renamed;
                classes = next;
            }
        }
        let mut taken = FxHashSet::default();
        (0..n)
            .filter(|&s| taken.insert(class[s]))
            .map(|s| states[s].clone())
            .collect()
    }

    fn is_det(&self, i: u32) -> bool {
        self.entries[i as usize].ret.is_some()
    }

    /// The relaxed sub-history in which `core` (determinate ops) must take effect.
    pub fn problem(&mut self, core: &[u32]) -> Problem<'e, M::Op, M::State> {
        match self.mode {
            Summary::Invoked => self.problem_invoked(core),
            Summary::Completed | Summary::None => self.problem_completed(core),
        }
    }

    fn views(&self, keep: &[u32], in_core: &[bool]) -> Vec<View<'e, M::Op>> {
        let entries = self.entries;
        keep.iter()
            .map(|&i| {
                let e = &entries[i as usize];
                View {
                    op: &e.op,
                    call: e.call,
                    ret: e.ret,
                    optional: !in_core[i as usize],
                }
            })
            .collect()
    }

    fn problem_invoked(&mut self, core: &[u32]) -> Problem<'e, M::Op, M::State> {
        let entries = self.entries;
        let mut in_core = vec![false; entries.len()];
        for &i in core {
            in_core[i as usize] = true;
        }
        let call = |i: u32| entries[i as usize].call;
        let ret = |i: u32| entries[i as usize].ret.unwrap_or(u64::MAX);
        let start = core.iter().map(|&i| call(i)).min().unwrap_or(0);
        let cut = core.iter().map(|&i| ret(i)).max().unwrap_or(0);
        // Still running at `start`, or invoked after it (and before the cut).
        let in_window = |i: u32| call(i) < cut && ret(i) >= start;
        let keep: Vec<u32> = (0..entries.len() as u32)
            .filter(|&i| in_core[i as usize] || (self.useful[i as usize] && in_window(i)))
            .collect();
        let summarised = (0..entries.len() as u32)
            .filter(|&i| !in_core[i as usize] && self.useful[i as usize] && ret(i) < start)
            .count();
        if !self.distinct.contains_key(&(start, cut)) {
            // Told apart by every op the window of any core with this start and cut
            // could hold (reads included): finer than needed, so still sound.
            let window: Vec<u32> = (0..entries.len() as u32)
                .filter(|&i| in_window(i))
                .collect();
            let states = match &self.invoked {
                Some(c) => c.upto(start),
                None => &[],
            };
            let distinct = self.distinct_starts(states, &window);
            self.distinct.insert((start, cut), distinct);
        }
        Problem {
            views: self.views(&keep, &in_core),
            positions: keep,
            inits: self.distinct[&(start, cut)].clone(),
            summarised,
            summary: Summary::Invoked,
        }
    }

    fn problem_completed(&mut self, core: &[u32]) -> Problem<'e, M::Op, M::State> {
        let entries = self.entries;
        let mut in_core = vec![false; entries.len()];
        for &i in core {
            in_core[i as usize] = true;
        }
        let ret = |i: u32| entries[i as usize].ret.unwrap_or(u64::MAX);
        let call = |i: u32| entries[i as usize].call;
        let cut = core.iter().map(|&i| ret(i)).max().unwrap_or(0);
        let others: Vec<u32> = (0..entries.len() as u32)
            .filter(|&i| !in_core[i as usize] && self.useful[i as usize] && call(i) < cut)
            .collect();
        // The window's start: no determinate op completing after it was invoked before it.
        let mut start = core.iter().map(|&i| call(i)).min().unwrap_or(0);
        let det_others: Vec<u32> = others.iter().copied().filter(|&i| self.is_det(i)).collect();
        loop {
            let earlier = core
                .iter()
                .chain(&det_others)
                .filter(|&&i| ret(i) >= start)
                .map(|&i| call(i))
                .min()
                .unwrap_or(start);
            if earlier >= start {
                break;
            }
            start = earlier;
        }
        let before = |i: u32| entries[i as usize].ret.is_some_and(|r| r < start);
        let mut inits = None;
        let mut summarised = 0;
        if self.mode == Summary::Completed {
            // An info op invoked before the first core op completed may also act before
            // the window (and again in it: the summary allows repeats).
            let first_ret = core.iter().map(|&i| ret(i)).min().unwrap_or(0);
            let early: Vec<u32> = others
                .iter()
                .copied()
                .filter(|&i| before(i) || (!self.is_det(i) && call(i) < first_ret))
                .collect();
            summarised = others.iter().filter(|&&i| before(i)).count();
            let key = (start, first_ret);
            if !self.starts.contains_key(&key) {
                if let Some(states) = self.closure(&early) {
                    self.starts.insert(key, states);
                }
            }
            inits = self.starts.get(&key).cloned();
            if inits.is_none() {
                summarised = 0;
            }
        }
        let keep: Vec<u32> = (0..entries.len() as u32)
            .filter(|&i| in_core[i as usize] || others.binary_search(&i).is_ok())
            .filter(|&i| in_core[i as usize] || inits.is_none() || !before(i))
            .collect();
        Problem {
            views: self.views(&keep, &in_core),
            positions: keep,
            summary: if inits.is_some() {
                Summary::Completed
            } else {
                Summary::None
            },
            inits: inits.unwrap_or_else(|| vec![self.model.init()]),
            summarised,
        }
    }

    /// Whether `core` alone is non-linearizable under the relaxation.
    pub fn check(&mut self, core: &[u32], deadline: Instant) -> Check {
        if core.is_empty() {
            return Check::Linearizable;
        }
        let p = self.problem(core);
        // A `Completed` summary too large to list leaves the set judged without one,
        // which is a stricter relaxation than the one the shrink states: not usable.
        if self.mode == Summary::Completed && p.summary != Summary::Completed {
            return Check::Undecided;
        }
        let budget = Budget::new(
            self.memory_limit_bytes / 2,
            Some(deadline.min(Instant::now() + CANDIDATE_TIME_LIMIT)),
        );
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match self.solve(&p, &budget, CANDIDATE_STEPS) {
                Outcome::Illegal { .. } => Check::Invalid,
                Outcome::Linearizable => Check::Linearizable,
                _ => Check::Undecided,
            }
        }));
        outcome.unwrap_or(Check::Undecided)
    }

    /// Searches `p` (on its quotient when the ops before the window are summarised and the
    /// quotient can be built); `longest` in an `Illegal` outcome is positions in
    /// `p.views`, and its state the key model's state after them.
    pub fn solve(
        &self,
        p: &Problem<'e, M::Op, M::State>,
        budget: &Budget,
        max_steps: u64,
    ) -> Outcome<M::State> {
        if self.mode != Summary::None {
            let ops: Vec<&M::Op> = p.views.iter().map(|v| v.op).collect();
            if let Some((q, inits)) = Quotient::new(self.model, &ops, &p.inits) {
                let positions: Vec<u32> = (0..ops.len() as u32).collect();
                let views: Vec<View<'_, u32>> = p
                    .views
                    .iter()
                    .zip(&positions)
                    .map(|(v, k)| View {
                        op: k,
                        call: v.call,
                        ret: v.ret,
                        optional: v.optional,
                    })
                    .collect();
                return match search_from(&q, &views, &inits, budget, max_steps) {
                    Outcome::Illegal { longest, .. } => {
                        // The same order from one of the start states in the quotient's
                        // class is legal in the key's model too: replayed from each, the
                        // first that takes it gives the real state.
                        let state = p
                            .inits
                            .iter()
                            .find_map(|s| {
                                longest.iter().try_fold(s.clone(), |s, &v| {
                                    self.model.step(&s, p.views[v as usize].op)
                                })
                            })
                            .unwrap_or_else(|| self.model.init());
                        Outcome::Illegal { longest, state }
                    }
                    Outcome::Linearizable => Outcome::Linearizable,
                    Outcome::Unknown(r) => Outcome::Unknown(r),
                    Outcome::OutOfSteps { longest } => Outcome::OutOfSteps { longest },
                };
            }
        }
        search_from(self.model, &p.views, &p.inits, budget, max_steps)
    }

    /// The determinate op the search could not place after `longest`: the one whose
    /// completion comes first among those not placed.
    pub fn stuck_op(&self, longest: &[u32]) -> Option<u32> {
        super::search::stuck_op(self.entries, longest)
    }

    /// The pair sweep: each of the first determinate ops the search could not place
    /// (by completion), alone and with each of the ops that completed last before its
    /// invoke (a stale read and the write it should have seen). Each set is tiny, so
    /// each check is quick.
    fn sweep(&mut self, longest: &[u32], deadline: Instant) -> Option<Vec<u32>> {
        let mut placed = vec![false; self.entries.len()];
        for &i in longest {
            placed[i as usize] = true;
        }
        let mut targets: Vec<(u64, u32)> = (0..self.entries.len() as u32)
            .filter(|&i| !placed[i as usize])
            .filter_map(|i| self.entries[i as usize].ret.map(|r| (r, i)))
            .collect();
        targets.sort_unstable();
        targets.truncate(SWEEP_TARGETS);
        // Determinate ops by completion, to find those completed just before an invoke.
        let mut by_ret: Vec<(u64, u32)> = (0..self.entries.len() as u32)
            .filter_map(|i| self.entries[i as usize].ret.map(|r| (r, i)))
            .collect();
        by_ret.sort_unstable();
        for &(_, q) in &targets {
            if Instant::now() >= deadline {
                return None;
            }
            if self.check(&[q], deadline) == Check::Invalid {
                return Some(vec![q]);
            }
            let call = self.entries[q as usize].call;
            let end = by_ret.partition_point(|&(r, _)| r < call);
            for &(_, p) in by_ret[..end].iter().rev().take(SWEEP_PARTNERS) {
                if Instant::now() >= deadline {
                    return None;
                }
                let set = if p < q { vec![p, q] } else { vec![q, p] };
                if self.check(&set, deadline) == Check::Invalid {
                    return Some(set);
                }
            }
        }
        None
    }

    /// A non-linearizable set around the stuck point after `longest`: from the pair
    /// sweep, or a window grown from a few ops until it is one; `None` when even all ops
    /// up to the stuck point are not shown non-linearizable by `deadline`.
    pub fn window(&mut self, longest: &[u32], deadline: Instant) -> Option<Vec<u32>> {
        if let Some(set) = self.sweep(longest, deadline) {
            return Some(set);
        }
        let stuck = self.stuck_op(longest)?;
        let cut = self.entries[stuck as usize].ret?;
        // Nearest to the stuck op first: those completing last before or around it.
        let mut near: Vec<u32> = (0..self.entries.len() as u32)
            .filter(|&i| i != stuck && self.is_det(i) && self.entries[i as usize].call < cut)
            .collect();
        near.sort_unstable_by_key(|&i| {
            std::cmp::Reverse(self.entries[i as usize].ret.unwrap_or(0).min(cut))
        });
        near.insert(0, stuck);
        let mut k = WINDOW_OPS_MIN.min(near.len());
        loop {
            if Instant::now() >= deadline {
                return None;
            }
            let mut w = near[..k].to_vec();
            w.sort_unstable();
            if self.check(&w, deadline) == Check::Invalid {
                return Some(w);
            }
            if k == near.len() {
                return None;
            }
            k = (k * 2).min(near.len());
        }
    }

    /// The shortest prefix of the key (every determinate op completed by some time) that
    /// is non-linearizable under the relaxation: for when the stuck point misleads.
    pub fn prefix(&mut self, deadline: Instant) -> Option<Vec<u32>> {
        let mut returns: Vec<u64> = self.entries.iter().filter_map(|e| e.ret).collect();
        returns.sort_unstable();
        let upto = |cut: u64| -> Vec<u32> {
            (0..self.entries.len() as u32)
                .filter(|&i| self.entries[i as usize].ret.is_some_and(|r| r <= cut))
                .collect()
        };
        let (mut lo, mut hi) = (0, returns.len());
        let mut found = None;
        while lo < hi && Instant::now() < deadline {
            let mid = (lo + hi) / 2;
            let set = upto(returns[mid]);
            if self.check(&set, deadline) == Check::Invalid {
                hi = mid;
                found = Some(set);
            } else {
                lo = mid + 1;
            }
        }
        found
    }

    /// Shrinks a non-linearizable `set` by delta debugging (chunks, then single ops) until
    /// no single op can be made optional, or `deadline`.
    pub fn shrink(&mut self, set: Vec<u32>, deadline: Instant) -> (Vec<u32>, bool) {
        let mut current = set;
        let mut chunk = current.len().div_ceil(2);
        while chunk >= 1 {
            let mut start = 0;
            let mut all_decided = true;
            while start < current.len() {
                if Instant::now() >= deadline {
                    return (current, false);
                }
                let end = (start + chunk).min(current.len());
                let candidate: Vec<u32> = current[..start]
                    .iter()
                    .chain(&current[end..])
                    .copied()
                    .collect();
                match self.check(&candidate, deadline) {
                    Check::Invalid => current = candidate,
                    Check::Linearizable => start += chunk,
                    Check::Undecided => {
                        all_decided = false;
                        start += chunk;
                    }
                }
            }
            if chunk == 1 {
                return (current, all_decided);
            }
            chunk = chunk.div_ceil(2);
        }
        (current, true)
    }

    /// A core for a key the search found invalid after `longest`, within `deadline`:
    /// under the `Invoked` summary if it shows one, else under the `Completed` one.
    pub fn core(&mut self, longest: &[u32], deadline: Instant) -> Option<Core> {
        let stuck = self.stuck_op(longest);
        if self.mode == Summary::Invoked {
            // Most of the budget, leaving the `Completed` form some of it.
            let now = Instant::now();
            let part = now + deadline.saturating_duration_since(now).mul_f64(0.6);
            if let Some(set) = self.window(longest, part) {
                return Some(self.shrunk(set, stuck, deadline));
            }
            let few = self
                .invoked
                .as_ref()
                .is_some_and(|c| c.states.len() <= START_STATES_MAX);
            if !few {
                return None;
            }
            self.mode = Summary::Completed;
        }
        let set = self
            .window(longest, deadline)
            .or_else(|| self.prefix(deadline))?;
        Some(self.shrunk(set, stuck, deadline))
    }

    /// `set` (non-linearizable) shrunk into a core.
    pub fn shrunk(&mut self, set: Vec<u32>, stuck: Option<u32>, deadline: Instant) -> Core {
        let (ops, minimal) = self.shrink(set, deadline);
        Core {
            ops,
            minimal,
            stuck,
        }
    }
}

/// Above this many states reachable in a window (or this many model steps to list them)
/// a check searches the key's own model instead of the quotient.
const QUOTIENT_STATES_MAX: usize = 4096;
const QUOTIENT_STEPS_MAX: usize = 1 << 20;

/// A window's model with its states merged into classes that no sequence of the
/// window's ops can tell apart (the coarsest bisimulation over the states the window's
/// ops reach from its start states): ops are positions in the window, states class ids.
/// Exact for the window: an order of its ops is legal from a start state in the key's
/// model exactly when it is legal from that state's class here. What it buys: optional
/// ops whose effects the window cannot tell apart (writes of values nothing in the
/// window reads) lead to one state, so the search's dominance and "an optional op that
/// changes nothing" pruning cut the orders of them down, which otherwise make showing a
/// small core non-linearizable exponential in the ops running beside it.
pub(crate) struct Quotient {
    ops: usize,
    /// `trans[class * ops + op]`: the class after `op`, or `NONE`.
    trans: Vec<u32>,
    read_only: Vec<bool>,
}

const NONE: u32 = u32::MAX;

impl Quotient {
    /// The quotient of `ops` from `inits`, with the class of each start state; `None`
    /// past `QUOTIENT_STATES_MAX` or `QUOTIENT_STEPS_MAX`.
    pub(crate) fn new<M: Model>(
        model: &M,
        ops: &[&M::Op],
        inits: &[M::State],
    ) -> Option<(Quotient, Vec<u32>)> {
        let n = ops.len();
        let mut states: Vec<M::State> = Vec::new();
        let mut index: FxHashMap<M::State, u32> = FxHashMap::default();
        let intern =
            |s: M::State, states: &mut Vec<M::State>, index: &mut FxHashMap<M::State, u32>| {
                if let Some(&id) = index.get(&s) {
                    return Some(id);
                }
                if states.len() >= QUOTIENT_STATES_MAX {
                    return None;
                }
                let id = states.len() as u32;
                index.insert(s.clone(), id);
                states.push(s);
                Some(id)
            };
        let mut init_ids = Vec::with_capacity(inits.len());
        for s in inits {
            init_ids.push(intern(s.clone(), &mut states, &mut index)?);
        }
        let mut trans: Vec<u32> = Vec::new();
        let mut q = 0;
        while q < states.len() {
            if trans.len() + n > QUOTIENT_STEPS_MAX {
                return None;
            }
            for op in ops {
                let t = match model.step(&states[q], op) {
                    Some(t) => intern(t, &mut states, &mut index)?,
                    None => NONE,
                };
                trans.push(t);
            }
            q += 1;
        }
        // Moore's refinement: split classes by the classes their ops lead to, until
        // nothing splits.
        let m = states.len();
        let mut class = vec![0u32; m];
        let mut count = 1usize;
        loop {
            let mut ids: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
            let mut next = vec![0u32; m];
            for s in 0..m {
                let mut sig = Vec::with_capacity(n + 1);
                sig.push(class[s]);
                sig.extend(trans[s * n..(s + 1) * n].iter().map(|&t| {
                    if t == NONE {
                        NONE
                    } else {
                        class[t as usize]
                    }
                }));
                let k = ids.len() as u32;
                next[s] = *ids.entry(sig).or_insert(k);
            }
            let new_count = ids.len();
            class = next;
            if new_count == count {
                break;
            }
            count = new_count;
        }
        // One representative's row per class (all members' rows agree on classes).
        let mut rep = vec![u32::MAX; count];
        for s in 0..m {
            if rep[class[s] as usize] == u32::MAX {
                rep[class[s] as usize] = s as u32;
            }
        }
        let mut qtrans = Vec::with_capacity(count * n);
        for &r in &rep {
            let r = r as usize;
            qtrans.extend(trans[r * n..(r + 1) * n].iter().map(|&t| {
                if t == NONE {
                    NONE
                } else {
                    class[t as usize]
                }
            }));
        }
        let mut init_classes: Vec<u32> = init_ids.iter().map(|&i| class[i as usize]).collect();
        let mut taken = FxHashSet::default();
        init_classes.retain(|c| taken.insert(*c));
        Some((
            Quotient {
                ops: n,
                trans: qtrans,
                read_only: ops.iter().map(|o| model.is_read_only(o)).collect(),
            },
            init_classes,
        ))
    }
}

impl Model for Quotient {
    type Op = u32;
    type State = u32;

    fn name(&self) -> String {
        "quotient".into()
    }

    fn prepare(
        &self,
        _invoke: &crate::history::Op,
        _completion: Option<&crate::history::Op>,
    ) -> Result<crate::model::Prepared<u32>, String> {
        Err("a quotient model only replays a window".into())
    }

    fn init(&self) -> u32 {
        0
    }

    fn step(&self, state: &u32, op: &u32) -> Option<u32> {
        let t = self.trans[*state as usize * self.ops + *op as usize];
        (t != NONE).then_some(t)
    }

    fn is_read_only(&self, op: &u32) -> bool {
        // A read-only op of the key's model leaves every state as it is, so every class.
        self.read_only[*op as usize]
    }

    fn state_json(&self, state: &u32) -> serde_json::Value {
        serde_json::json!(state)
    }
}
