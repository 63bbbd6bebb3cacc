//! Cores: small sets of ops that cannot be linearized on their own, found by growing a
//! window from where the search got stuck and shrinking it to a 1-minimal set.
//!
//! The relaxation a core is judged under: the core's ops must take effect, each between
//! its invoke and its completion; every other `ok` op of the key may take effect between
//! its own invoke and completion, or never; every `info` op at any point after its invoke,
//! or never. A linearization of the whole key is one of these behaviours, so a core that
//! has none proves the key invalid. Making one more op optional only adds behaviours, so
//! shrinking is monotone, and a set from which no single op can be made optional is
//! 1-minimal.
//!
//! Two reductions keep each check small without losing soundness:
//! - ops invoked after the core's last completion are left out: each would have to follow
//!   every core op, so none can help;
//! - the ops that completed before the core's window began (before every op of the window
//!   was invoked), with the info ops invoked before the first core op completed, are
//!   summarised as the states they can produce, taken in any order and any number of
//!   times (a superset of what they could do), and the window is searched from
//!   each of those states. When a model's states from the key's ops are too many to list
//!   (`START_STATES_MAX`), the summary is not used and those ops stay optional ops.

use super::search::{search_from, Budget, Entry, Outcome, View};
use crate::model::Model;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Wall time one candidate set may take before it counts as "not shown invalid".
const CANDIDATE_TIME_LIMIT: Duration = Duration::from_millis(50);

/// Above this many states the ops before a window are not summarised.
const START_STATES_MAX: usize = 512;

/// The smallest window tried first; it doubles until it is non-linearizable.
const WINDOW_OPS_MIN: usize = 4;

/// What one relaxed check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    Invalid,
    Linearizable,
    /// Its time or memory ran out.
    Undecided,
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
    /// Whether `inits` is a summary (rather than the model's initial state).
    pub summary: bool,
}

/// Judges sets of a key's ops under the relaxation.
pub(crate) struct Relaxer<'e, M: Model> {
    model: &'e M,
    entries: &'e [Entry<M::Op>],
    /// Ops that can change a state (read-only ops never help as optional ops).
    useful: Vec<bool>,
    /// Whether the ops before a window may be summarised as start states for this key.
    summarise: bool,
    starts: HashMap<(u64, u64), Vec<M::State>>,
    memory_limit_bytes: usize,
}

impl<'e, M: Model> Relaxer<'e, M> {
    /// `summarise`: whether the ops before a window may be summarised as start states
    /// (when the key's states are few enough to list). The summary lets an early info op
    /// act twice (in the summary and in the window), so a key whose violation hinges on
    /// an info op acting once may have no core under it: then ask again without.
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
            summarise: false,
            starts: HashMap::new(),
            memory_limit_bytes,
        };
        // Decided once per key, so that every set of one shrink is judged the same way
        // (the summary gives more freedom than the optional ops it replaces).
        let all: Vec<u32> = (0..entries.len() as u32)
            .filter(|&i| r.useful[i as usize])
            .collect();
        r.summarise = summarise && r.closure(&all).is_some();
        r
    }

    /// Whether this relaxer summarises the ops before a window.
    pub fn summarises(&self) -> bool {
        self.summarise
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

    fn is_det(&self, i: u32) -> bool {
        self.entries[i as usize].ret.is_some()
    }

    /// The relaxed sub-history in which `core` (determinate ops) must take effect.
    pub fn problem(&mut self, core: &[u32]) -> Problem<'e, M::Op, M::State> {
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
        if self.summarise {
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
        let views = keep
            .iter()
            .map(|&i| {
                let e = &entries[i as usize];
                View {
                    op: &e.op,
                    call: e.call,
                    ret: e.ret,
                    optional: !in_core[i as usize],
                }
            })
            .collect();
        Problem {
            views,
            positions: keep,
            summary: inits.is_some(),
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
        let budget = Budget::new(
            self.memory_limit_bytes / 2,
            Some(deadline.min(Instant::now() + CANDIDATE_TIME_LIMIT)),
        );
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            search_from(self.model, &p.views, &p.inits, &budget, u64::MAX)
        }));
        match outcome {
            Ok(Outcome::Illegal { .. }) => Check::Invalid,
            Ok(Outcome::Linearizable) => Check::Linearizable,
            _ => Check::Undecided,
        }
    }

    /// The determinate op the search could not place after `longest`: the one whose
    /// completion comes first among those not placed.
    pub fn stuck_op(&self, longest: &[u32]) -> Option<u32> {
        super::search::stuck_op(self.entries, longest)
    }

    /// A non-linearizable window around the stuck point after `longest`, grown from a few
    /// ops until it is one; `None` when even all ops up to the stuck point are not shown
    /// non-linearizable by `deadline`.
    pub fn window(&mut self, longest: &[u32], deadline: Instant) -> Option<Vec<u32>> {
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

    /// A core for a key the search found invalid after `longest`, within `deadline`.
    pub fn core(&mut self, longest: &[u32], deadline: Instant) -> Option<Core> {
        let stuck = self.stuck_op(longest);
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
