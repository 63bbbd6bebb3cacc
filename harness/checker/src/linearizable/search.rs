//! The Wing–Gong–Lowe search for one independent sub-history.
//!
//! Ops are dense integers; the call and return events sit in a doubly linked list that
//! linearized ops are lifted out of and put back into (undo, never clone). Each visited
//! configuration — the set of linearized ops and the model state — goes into a cache and is
//! never explored twice. The set is kept as a 128-bit Zobrist signature updated in O(1) per
//! step: for up to 128 ops each op owns one bit, so the signature *is* the set; above that
//! each op gets a random 128-bit word and two different sets collide with probability
//! about 2^-128 per pair. States are interned to u32 ids and transitions memoised per
//! (state, op), so a model's `step` runs once per distinct pair.
//!
//! Indeterminate ops return "at infinity" (after every other event): they may be
//! linearized anywhere after their invoke, and the search succeeds as soon as every
//! determinate op is linearized, which leaves the rest out ("never happened").

use crate::model::Model;
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// One op of a sub-history, ready for the search.
#[derive(Debug)]
pub(crate) struct Entry<O> {
    pub op: O,
    /// Position of the invoke event in the history.
    pub call: u64,
    /// Position of the completion; `None` for an op whose outcome is unknown.
    pub ret: Option<u64>,
}

/// Limits shared by all searches of one check: the memory budget is one pool for all
/// threads, so parallel keys cannot together exceed it.
pub(crate) struct Budget {
    pub limit_bytes: usize,
    used: AtomicUsize,
    pub deadline: Option<Instant>,
    pub cancel: AtomicBool,
}

impl Budget {
    pub fn new(limit_bytes: usize, deadline: Option<Instant>) -> Self {
        Budget {
            limit_bytes,
            used: AtomicUsize::new(0),
            deadline,
            cancel: AtomicBool::new(false),
        }
    }

    fn reserve(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > self.limit_bytes {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn over(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.limit_bytes
    }

    /// Why the search must stop now, if it must.
    fn stop_reason(&self) -> Option<String> {
        if self.cancel.load(Ordering::Relaxed) {
            return Some("stopped: another part of the check hit a limit".into());
        }
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                return Some("time limit reached".into());
            }
        }
        if self.over() {
            return Some(format!(
                "memory limit of {} MB reached",
                self.limit_bytes / (1024 * 1024)
            ));
        }
        None
    }
}

#[derive(Debug)]
pub(crate) enum Outcome<S> {
    Linearizable,
    /// `longest`: positions (in the searched slice) of the longest linearization found,
    /// in order; `state`: the model state after it.
    Illegal {
        longest: Vec<u32>,
        state: S,
    },
    Unknown(String),
}

const NIL: u32 = u32::MAX;
const ILLEGAL: u32 = u32::MAX;
const CHECK_EVERY_STEPS: u64 = 1 << 10;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey {
    lo: u64,
    hi: u64,
    state: u32,
}

/// Heap bytes of a hashbrown table with this capacity and element size (control bytes
/// included), so the memory limit sees what the tables really hold.
fn table_bytes(capacity: usize, elem: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (elem + 1) + 16
}

fn splitmix(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Search<'a, M: Model> {
    model: &'a M,
    budget: &'a Budget,
    states: Vec<M::State>,
    state_index: FxHashMap<u64, u32>,
    state_chain: Vec<u32>,
    state_bytes: usize,
    memo: FxHashMap<u64, u32>,
    cache: FxHashSet<CacheKey>,
    accounted: usize,
}

impl<'a, M: Model> Search<'a, M> {
    fn intern(&mut self, state: M::State) -> u32 {
        let mut h = FxHasher::default();
        state.hash(&mut h);
        let h = h.finish();
        let mut id = self.state_index.get(&h).copied().unwrap_or(NIL);
        let head = id;
        while id != NIL {
            if self.states[id as usize] == state {
                return id;
            }
            id = self.state_chain[id as usize];
        }
        let new = self.states.len() as u32;
        self.state_bytes += self.model.state_bytes(&state) + 12;
        self.states.push(state);
        self.state_chain.push(head);
        self.state_index.insert(h, new);
        new
    }

    /// The state after op `i` from state `s`, or ILLEGAL.
    fn transition(&mut self, s: u32, i: u32, ops: &[&M::Op]) -> u32 {
        let key = (u64::from(s) << 32) | u64::from(i);
        if let Some(&t) = self.memo.get(&key) {
            return t;
        }
        let t = match self.model.step(&self.states[s as usize], ops[i as usize]) {
            Some(next) => self.intern(next),
            None => ILLEGAL,
        };
        self.memo.insert(key, t);
        t
    }

    fn actual_bytes(&self) -> usize {
        table_bytes(self.cache.capacity(), std::mem::size_of::<CacheKey>())
            + table_bytes(self.memo.capacity(), 12)
            + table_bytes(self.state_index.capacity(), 12)
            + self.states.capacity() * std::mem::size_of::<M::State>()
            + self.state_chain.capacity() * 4
            + self.state_bytes
    }

    /// Brings the shared budget in line with what this search holds.
    fn resync(&mut self) {
        let actual = self.actual_bytes();
        if actual > self.accounted {
            self.budget.add(actual - self.accounted);
        } else {
            self.budget.release(self.accounted - actual);
        }
        self.accounted = actual;
    }

    /// Before the cache grows (its new table and the old one live together while it
    /// rehashes), reserve the new table's bytes; false when that would pass the limit.
    fn room_for_cache_growth(&mut self) -> bool {
        if self.cache.len() < self.cache.capacity() {
            return true;
        }
        let extra = table_bytes(
            (self.cache.capacity() + 1) * 2,
            std::mem::size_of::<CacheKey>(),
        );
        if !self.budget.reserve(extra) {
            return false;
        }
        self.accounted += extra;
        true
    }
}

impl<M: Model> Drop for Search<'_, M> {
    fn drop(&mut self) {
        self.budget.release(self.accounted);
    }
}

/// Checks whether `entries` (one sub-history) is linearizable under `model`.
pub(crate) fn search<M: Model>(
    model: &M,
    entries: &[&Entry<M::Op>],
    budget: &Budget,
) -> Outcome<M::State> {
    let n = entries.len();
    let ops: Vec<&M::Op> = entries.iter().map(|e| &e.op).collect();

    // Events sorted by time; an unknown op's return comes after everything else.
    let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n);
    for (i, e) in entries.iter().enumerate() {
        events.push((e.call, 0, i as u32));
        events.push((e.ret.unwrap_or(u64::MAX), 1, i as u32));
    }
    events.sort_unstable();

    // Node 0 is the head; node k + 1 is events[k].
    let nodes = events.len() + 1;
    let mut next = vec![NIL; nodes];
    let mut prev = vec![NIL; nodes];
    let mut node_op = vec![0u32; nodes];
    let mut node_is_call = vec![false; nodes];
    let mut ret_node = vec![0u32; n];
    for (k, &(_, is_ret, i)) in events.iter().enumerate() {
        let node = k + 1;
        node_op[node] = i;
        node_is_call[node] = is_ret == 0;
        if is_ret == 1 {
            ret_node[i as usize] = node as u32;
        }
        prev[node] = k as u32;
        next[k] = node as u32;
    }

    let mut seed = 0x5EED_0F_FA17_u64;
    let zobrist: Vec<u128> = (0..n)
        .map(|i| {
            if n <= 128 {
                1u128 << i
            } else {
                (u128::from(splitmix(&mut seed)) << 64) | u128::from(splitmix(&mut seed))
            }
        })
        .collect();
    let determinate: Vec<bool> = entries.iter().map(|e| e.ret.is_some()).collect();
    let mut remaining = determinate.iter().filter(|d| **d).count();

    let mut s = Search {
        model,
        budget,
        states: Vec::new(),
        state_index: FxHashMap::default(),
        state_chain: Vec::new(),
        state_bytes: 0,
        memo: FxHashMap::default(),
        cache: FxHashSet::default(),
        accounted: 0,
    };
    let mut state = s.intern(model.init());
    let mut linearized: u128 = 0;
    let mut stack: Vec<(u32, u32)> = Vec::with_capacity(n);
    let mut longest: Vec<u32> = Vec::new();
    let mut longest_state = state;
    let mut steps: u64 = 0;

    let mut entry = next[0];
    loop {
        if remaining == 0 {
            return Outcome::Linearizable;
        }
        steps += 1;
        if steps % CHECK_EVERY_STEPS == 0 {
            s.resync();
            if let Some(reason) = budget.stop_reason() {
                return Outcome::Unknown(reason);
            }
        }
        let node = entry as usize;
        if entry != NIL && node_is_call[node] {
            let i = node_op[node];
            let t = s.transition(state, i, &ops);
            if t != ILLEGAL {
                let lin = linearized ^ zobrist[i as usize];
                let key = CacheKey {
                    lo: lin as u64,
                    hi: (lin >> 64) as u64,
                    state: t,
                };
                if !s.room_for_cache_growth() {
                    s.resync();
                    return Outcome::Unknown(format!(
                        "memory limit of {} MB reached",
                        budget.limit_bytes / (1024 * 1024)
                    ));
                }
                if s.cache.insert(key) {
                    stack.push((entry, state));
                    linearized = lin;
                    state = t;
                    // Lift the call and its return out of the list.
                    let r = ret_node[i as usize] as usize;
                    for x in [node, r] {
                        let (p, nx) = (prev[x], next[x]);
                        next[p as usize] = nx;
                        if nx != NIL {
                            prev[nx as usize] = p;
                        }
                    }
                    if determinate[i as usize] {
                        remaining -= 1;
                    }
                    if stack.len() > longest.len() {
                        longest.clear();
                        longest.extend(stack.iter().map(|&(e, _)| node_op[e as usize]));
                        longest_state = state;
                    }
                    entry = next[0];
                    continue;
                }
            }
            entry = next[node];
        } else {
            // A return (or the end of the list): the op it closes was not linearized in
            // time, so backtrack.
            let Some((e, st)) = stack.pop() else {
                return Outcome::Illegal {
                    longest,
                    state: s.states[longest_state as usize].clone(),
                };
            };
            let i = node_op[e as usize];
            linearized ^= zobrist[i as usize];
            state = st;
            let r = ret_node[i as usize] as usize;
            for x in [r, e as usize] {
                let (p, nx) = (prev[x], next[x]);
                next[p as usize] = x as u32;
                if nx != NIL {
                    prev[nx as usize] = x as u32;
                }
            }
            if determinate[i as usize] {
                remaining += 1;
            }
            entry = next[e as usize];
        }
    }
}
