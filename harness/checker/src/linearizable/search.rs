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
//! Indeterminate ops (`info`, pending) return "at infinity": they may be linearized
//! anywhere after their invoke, and the search succeeds as soon as every determinate op is
//! linearized, which leaves the rest out ("never happened"). They live in a list of their
//! own and are tried only after the determinate candidates of a configuration, and the
//! cache knows that they are optional: a configuration with the same determinate ops and
//! state as one already explored, but with a superset of its indeterminate ops, can do
//! nothing the explored one could not (leave the extra ones out), so it is pruned. For the
//! same reason an indeterminate op that leaves the state unchanged is never linearized.
//! Without this, every subset of the pending `info` ops would be a configuration of its own.
//!
//! Counterexample searches also have optional ops *with* a completion (`View::optional`):
//! such an op may take effect between its invoke and its completion, or never, so it
//! expires once an op invoked after its completion is linearized. The same dominance holds
//! (fewer optional ops linearized means an earlier latest invoke, so fewer expired), and
//! the search may start from several initial states (`search_from`).
//!
//! Look-ahead (for models that implement `Model::may_become_legal`, e.g. kv): entering a
//! configuration with a new state, the search asks whether each of the nearest ops that
//! must still be linearized can still become legal, given only the reset ops (puts) that
//! could come before it, and abandons the configuration when one cannot. For append
//! registers this rejects a wrong order of concurrent appends one step after it is made,
//! instead of after every way of continuing it: kv c50-ok went from ~1 M steps to ~21 K.

use crate::model::Model;
use rustc_hash::{FxHashMap, FxHasher};
use std::collections::hash_map::Entry as Slot;
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

/// An op as one search sees it: the same op may be searched as determinate in one search
/// and as optional in another (counterexample shrinking).
#[derive(Debug)]
pub(crate) struct View<'a, O> {
    pub op: &'a O,
    pub call: u64,
    /// `None`: it may take effect at any point after its invoke, or never (`info`).
    pub ret: Option<u64>,
    /// With `ret`: it may take effect between its invoke and `ret`, or never.
    pub optional: bool,
}

impl<O> Entry<O> {
    pub fn view(&self) -> View<'_, O> {
        View {
            op: &self.op,
            call: self.call,
            ret: self.ret,
            optional: false,
        }
    }
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
            return Some("stopped: another key was found non-linearizable".into());
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
    /// The step allowance of `search_steps` ran out before a verdict; `longest` as for
    /// `Illegal`, so far.
    OutOfSteps {
        longest: Vec<u32>,
    },
}

const NIL: u32 = u32::MAX;
const ILLEGAL: u32 = u32::MAX;
/// A transition not computed yet (state ids stay below it: each state costs bytes).
const UNSET: u32 = u32::MAX - 1;
/// Entries of the dense transition table at most (256 KB).
const DENSE_ENTRIES_MAX: usize = 1 << 16;
const CHECK_EVERY_STEPS: u64 = 1 << 10;

#[derive(Clone, Copy, PartialEq, Eq)]
struct CacheKey {
    lo: u64,
    hi: u64,
    state: u32,
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // Exact bitsets differ in few low bits; FxHash alone spreads them badly over the
        // table (long probe runs), so mix them fully first (splitmix64's finaliser).
        let mut z = self.lo
            ^ self.hi.rotate_left(29)
            ^ u64::from(self.state).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h.write_u64(z ^ (z >> 31));
    }
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

/// Visited configurations: exact signature of the determinate part (plus state) →
/// a chain of masks of the optional (indeterminate) ops linearized with it.
struct Cache {
    heads: FxHashMap<CacheKey, u32>,
    /// (mask, next link) chains.
    masks: Vec<(u64, u32)>,
}

impl Cache {
    /// Records the configuration; false when it (or one it dominates) was seen.
    fn insert(&mut self, key: CacheKey, mask: u64) -> bool {
        // One hash and probe for both the lookup and the insert: most keys are new.
        match self.heads.entry(key) {
            Slot::Vacant(v) => {
                v.insert(self.masks.len() as u32);
                self.masks.push((mask, NIL));
                true
            }
            Slot::Occupied(mut o) => {
                let head = o.get_mut();
                let mut link = *head;
                while link != NIL {
                    let (seen, next) = self.masks[link as usize];
                    if seen & !mask == 0 {
                        return false;
                    }
                    link = next;
                }
                self.masks.push((mask, *head));
                *head = (self.masks.len() - 1) as u32;
                true
            }
        }
    }

    fn len(&self) -> usize {
        self.masks.len()
    }
}

struct Search<'a, M: Model> {
    model: &'a M,
    budget: &'a Budget,
    states: Vec<M::State>,
    state_index: FxHashMap<u64, u32>,
    state_chain: Vec<u32>,
    state_bytes: usize,
    /// Transitions of the first `dense_rows` states: `dense[s * ops + i]`, `UNSET` until
    /// asked. A table lookup instead of a hash probe (150 instructions a transition on
    /// the etcd logs) where the table stays small; later states use `memo`.
    dense: Vec<u32>,
    dense_rows: usize,
    ops: usize,
    memo: FxHashMap<u64, u32>,
    cache: Cache,
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
        if (new as usize) < self.dense_rows {
            self.dense.resize(self.dense.len() + self.ops, UNSET);
        }
        self.state_bytes += self.model.state_bytes(&state) + 12;
        self.states.push(state);
        self.state_chain.push(head);
        self.state_index.insert(h, new);
        new
    }

    /// The state after op `i` from state `s`, or ILLEGAL.
    fn transition(&mut self, s: u32, i: u32, ops: &[&M::Op]) -> u32 {
        let slot = (s as usize) * self.ops + i as usize;
        let dense = (s as usize) < self.dense_rows;
        let key = (u64::from(s) << 32) | u64::from(i);
        if dense {
            let t = self.dense[slot];
            if t != UNSET {
                return t;
            }
        } else if let Some(&t) = self.memo.get(&key) {
            return t;
        }
        let t = match self.model.step(&self.states[s as usize], ops[i as usize]) {
            Some(next) => self.intern(next),
            None => ILLEGAL,
        };
        if dense {
            self.dense[slot] = t;
        } else {
            self.memo.insert(key, t);
        }
        t
    }

    fn actual_bytes(&self) -> usize {
        table_bytes(
            self.cache.heads.capacity(),
            std::mem::size_of::<(CacheKey, u32)>(),
        ) + self.cache.masks.capacity() * 16
            + table_bytes(self.memo.capacity(), 12)
            + self.dense.capacity() * 4
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
        let heads = &self.cache.heads;
        let masks = &self.cache.masks;
        let mut extra = 0;
        if heads.len() == heads.capacity() {
            extra += table_bytes(
                (heads.capacity() + 1) * 2,
                std::mem::size_of::<(CacheKey, u32)>(),
            );
        }
        if masks.len() == masks.capacity() {
            extra += (masks.capacity() + 1) * 2 * 16;
        }
        if extra == 0 {
            return true;
        }
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

/// Where the scan of candidates for the next linearized op is.
#[derive(Clone, Copy)]
enum Cursor {
    /// In the determinate list, at this node.
    Det(u32),
    /// In the indeterminate list, at this node; only calls before `barrier` (the time of
    /// the first determinate return still in the list) are candidates.
    Info(u32, u64),
}

/// How many ops that must still be linearized one look-ahead asks about, nearest return
/// first. The nearest ones catch a wrong order of concurrent appends as well as any; asking
/// about every one makes a long key quadratic (20,000 kv ops on two keys: 3.4 s of CPU
/// instead of 0.17 s), while 32 still decides kv c50-ok in the same number of steps.
const LOOK_AHEAD_OPS: usize = 32;

/// The ops the look-ahead (`Model::may_become_legal`) needs, in time order: the call of
/// every reset op and the return of every op that bounds the future, as a list of its own
/// that linearized ops are lifted out of like the event list. A walk over it is a walk
/// over the few ops that matter, not over every call and return still open.
struct LookAhead {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Per node: its op, and whether it is that op's (reset) call or its (bounding) return.
    op: Vec<u32>,
    is_reset: Vec<bool>,
    /// Per op: its reset node and its bounding node, or NIL.
    nodes: Vec<[u32; 2]>,
}

impl LookAhead {
    /// `events`: (time, op, is_reset) of every node; node 0 is the head.
    fn new(n: usize, mut events: Vec<(u64, u32, bool)>) -> Self {
        // At equal times a reset goes first: counting a reset that might not be able to
        // come first only weakens the pruning, never makes it wrong.
        events.sort_unstable_by_key(|&(t, i, reset)| (t, !reset, i));
        let len = events.len() + 1;
        let mut la = LookAhead {
            next: vec![NIL; len],
            prev: vec![NIL; len],
            op: vec![0; len],
            is_reset: vec![false; len],
            nodes: vec![[NIL; 2]; n],
        };
        for (k, &(_, i, reset)) in events.iter().enumerate() {
            let node = k + 1;
            la.op[node] = i;
            la.is_reset[node] = reset;
            la.nodes[i as usize][usize::from(!reset)] = node as u32;
            la.prev[node] = k as u32;
            la.next[k] = node as u32;
        }
        la
    }

    /// Op `i` was linearized: it can no longer reset or be doomed.
    fn remove(&mut self, i: u32) {
        for x in self.nodes[i as usize] {
            if x != NIL {
                let (p, nx) = (self.prev[x as usize], self.next[x as usize]);
                self.next[p as usize] = nx;
                if nx != NIL {
                    self.prev[nx as usize] = p;
                }
            }
        }
    }

    /// Undoes the last `remove`, which was of op `i`.
    fn restore(&mut self, i: u32) {
        for x in self.nodes[i as usize].into_iter().rev() {
            if x != NIL {
                let (p, nx) = (self.prev[x as usize], self.next[x as usize]);
                self.next[p as usize] = x;
                if nx != NIL {
                    self.prev[nx as usize] = x;
                }
            }
        }
    }

    /// Whether some op that must still be linearized can no longer become legal from
    /// `state`, so the configuration can be abandoned. The resets met before an op's
    /// return are exactly those that may still be linearized before it. Stopping early
    /// (`LOOK_AHEAD_OPS`) only prunes less, never wrongly.
    /// A reset that is optional and expired (`expires[i] <= max_call`: an op invoked after
    /// its completion is linearized) can no longer come, so it is not counted.
    #[allow(clippy::too_many_arguments)]
    fn doomed<'o, M: Model>(
        &self,
        model: &M,
        state: &M::State,
        ops: &[&'o M::Op],
        expires: &[u64],
        max_call: u64,
        seen: &mut Vec<&'o M::Op>,
    ) -> bool {
        seen.clear();
        let mut checked = 0;
        let mut node = self.next[0];
        while node != NIL {
            let i = self.op[node as usize] as usize;
            let op = ops[i];
            if self.is_reset[node as usize] {
                if expires[i] > max_call {
                    seen.push(op);
                }
            } else {
                if !model.may_become_legal(state, op, seen) {
                    return true;
                }
                checked += 1;
                if checked >= LOOK_AHEAD_OPS {
                    break;
                }
            }
            node = self.next[node as usize];
        }
        false
    }
}

/// The determinate op a search could not place after `longest`: the one whose completion
/// comes first among those not placed.
pub(crate) fn stuck_op<O>(entries: &[Entry<O>], longest: &[u32]) -> Option<u32> {
    let mut placed = vec![false; entries.len()];
    for &i in longest {
        placed[i as usize] = true;
    }
    (0..entries.len() as u32)
        .filter(|&i| !placed[i as usize])
        .filter_map(|i| entries[i as usize].ret.map(|r| (r, i)))
        .min()
        .map(|(_, i)| i)
}

/// Checks whether `entries` (one sub-history) is linearizable under `model`, giving up
/// with `OutOfSteps` after `max_steps` steps.
pub(crate) fn search_steps<M: Model>(
    model: &M,
    entries: &[View<'_, M::Op>],
    budget: &Budget,
    max_steps: u64,
) -> Outcome<M::State> {
    search_from(model, entries, &[model.init()], budget, max_steps)
}

/// `search_steps` that may start from any of `inits`: linearizable when some order works
/// from some initial state. The starts share one cache, since a configuration reached
/// from two starts is the same configuration.
pub(crate) fn search_from<M: Model>(
    model: &M,
    entries: &[View<'_, M::Op>],
    inits: &[M::State],
    budget: &Budget,
    max_steps: u64,
) -> Outcome<M::State> {
    let lists = EventLists::new(entries);
    let signatures = Signatures::new(entries, &lists.info_order);
    let look_ahead = LookAhead::for_entries(model, entries);
    let mut walk = Walk::new(model, entries, budget, lists, signatures, look_ahead);
    walk.run(inits, max_steps)
}

const DET_HEAD: u32 = 0;
const INFO_HEAD: u32 = 1;

/// The call and return events as two doubly linked lists: determinate calls and returns
/// in time order from `DET_HEAD`, optional ops' calls in time order from `INFO_HEAD`.
struct EventLists {
    next: Vec<u32>,
    prev: Vec<u32>,
    node_op: Vec<u32>,
    node_time: Vec<u64>,
    node_is_call: Vec<bool>,
    ret_node: Vec<u32>,
    /// Optional ops in call order.
    info_order: Vec<u32>,
    determinate_ops: usize,
}

impl EventLists {
    fn new<O>(entries: &[View<'_, O>]) -> Self {
        let n = entries.len();
        let mut det_events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n);
        let mut info_calls: Vec<(u64, u32)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match e.ret {
                Some(r) if !e.optional => {
                    det_events.push((e.call, 0, i as u32));
                    det_events.push((r, 1, i as u32));
                }
                _ => info_calls.push((e.call, i as u32)),
            }
        }
        det_events.sort_unstable();
        info_calls.sort_unstable();
        let nodes = 2 + det_events.len() + info_calls.len();
        let mut l = EventLists {
            next: vec![NIL; nodes],
            prev: vec![NIL; nodes],
            node_op: vec![0u32; nodes],
            node_time: vec![u64::MAX; nodes],
            node_is_call: vec![false; nodes],
            ret_node: vec![NIL; n],
            info_order: info_calls.iter().map(|&(_, i)| i).collect(),
            determinate_ops: det_events.len() / 2,
        };
        l.link(
            DET_HEAD,
            det_events.iter().map(|&(t, r, i)| (t, r == 0, i)),
            2,
        );
        l.link(
            INFO_HEAD,
            info_calls.iter().map(|&(t, i)| (t, true, i)),
            2 + det_events.len(),
        );
        l
    }

    fn link(&mut self, head: u32, items: impl Iterator<Item = (u64, bool, u32)>, first: usize) {
        let mut last = head;
        for (k, (time, is_call, i)) in items.enumerate() {
            let node = (first + k) as u32;
            self.node_op[node as usize] = i;
            self.node_time[node as usize] = time;
            self.node_is_call[node as usize] = is_call;
            if !is_call {
                self.ret_node[i as usize] = node;
            }
            self.prev[node as usize] = last;
            self.next[last as usize] = node;
            last = node;
        }
    }

    #[inline]
    fn lift(&mut self, x: u32) {
        let (p, nx) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = nx;
        if nx != NIL {
            self.prev[nx as usize] = p;
        }
    }

    #[inline]
    fn unlift(&mut self, x: u32) {
        let (p, nx) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = x;
        if nx != NIL {
            self.prev[nx as usize] = x;
        }
    }
}

/// How a set of linearized ops is named in the cache: optional ops get a bit of the
/// dominance mask (up to 64 of them); every other op is part of the exact signature.
struct Signatures {
    zobrist: Vec<u128>,
    mask_bit: Vec<u64>,
}

impl Signatures {
    fn new<O>(entries: &[View<'_, O>], info_order: &[u32]) -> Self {
        let n = entries.len();
        let mut seed = 0x005E_ED0F_FA17_u64;
        let mut mask_bit = vec![0u64; n];
        for (slot, &i) in info_order.iter().take(64).enumerate() {
            mask_bit[i as usize] = 1 << slot;
        }
        let exact_ops = n - info_order.len().min(64);
        let mut exact_slot = 0;
        let zobrist = (0..n)
            .map(|i| {
                if mask_bit[i] != 0 {
                    0
                } else if exact_ops <= 128 {
                    exact_slot += 1;
                    1u128 << (exact_slot - 1)
                } else {
                    (u128::from(splitmix(&mut seed)) << 64) | u128::from(splitmix(&mut seed))
                }
            })
            .collect();
        Signatures { zobrist, mask_bit }
    }
}

impl LookAhead {
    /// The look-ahead lists of a sub-history; `None` when the model never prunes on it.
    fn for_entries<M: Model>(model: &M, entries: &[View<'_, M::Op>]) -> Option<Self> {
        // Only determinate ops must be linearized, so only they can doom a configuration.
        let bounds: Vec<bool> = entries
            .iter()
            .map(|e| e.ret.is_some() && !e.optional && model.bounds_future(e.op))
            .collect();
        if !bounds.iter().any(|&b| b) {
            return None;
        }
        let mut events = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if model.resets(e.op) {
                events.push((e.call, i as u32, true));
            }
            if let (true, Some(r)) = (bounds[i], e.ret) {
                events.push((r, i as u32, false));
            }
        }
        Some(LookAhead::new(entries.len(), events))
    }
}

/// One linearized op on the search stack.
#[derive(Clone, Copy)]
struct Frame {
    node: u32,
    /// The state before it.
    state: u32,
    /// The barrier it was tried under.
    barrier: u64,
    /// It was a legal read-only op, so no other candidate of that configuration needs a try.
    forced: bool,
    /// The latest call among the ops linearized before it.
    max_call: u64,
}

/// What entering a configuration decided.
enum Entered {
    /// Go on scanning candidates.
    Scan,
    /// A forced read was linearized: enter the next configuration.
    Descended,
    /// The configuration is dead (doomed or seen): backtrack.
    Dead,
    OutOfMemory,
}

/// The depth-first walk over configurations, with everything it changes and undoes.
struct Walk<'a, 'v, M: Model> {
    model: &'a M,
    budget: &'a Budget,
    ops: Vec<&'v M::Op>,
    lists: EventLists,
    signatures: Signatures,
    la: Option<LookAhead>,
    s: Search<'a, M>,
    determinate: Vec<bool>,
    resets: Vec<bool>,
    read_only: Vec<bool>,
    /// Per op: an optional op with a known completion can only be linearized while every
    /// linearized op was invoked before that completion; `u64::MAX` for the others.
    expires: Vec<u64>,
    calls: Vec<u64>,
    /// The expiry times of the optional reset ops, sorted: linearizing an op invoked after
    /// one of them takes that reset away from the look-ahead, which may doom the
    /// configuration even though its state did not change.
    reset_expiries: Vec<u64>,
    /// Forced reads are only safe when no optional op expires (see `enter`).
    force_reads: bool,
    seen_resets: Vec<&'v M::Op>,
    // The configuration.
    state: u32,
    exact: u128,
    mask: u64,
    max_call: u64,
    remaining: usize,
    stack: Vec<Frame>,
    /// Set when a configuration is entered with a new state or with fewer reset ops left:
    /// the only changes that can doom it (linearizing a read only removes constraints).
    check_doomed: bool,
    longest: Vec<u32>,
    longest_state: u32,
}

impl<'a, 'v, M: Model> Walk<'a, 'v, M> {
    fn new(
        model: &'a M,
        entries: &[View<'v, M::Op>],
        budget: &'a Budget,
        lists: EventLists,
        signatures: Signatures,
        la: Option<LookAhead>,
    ) -> Self {
        let n = entries.len();
        let expires: Vec<u64> = entries
            .iter()
            .map(|e| match e.ret {
                Some(r) if e.optional => r,
                _ => u64::MAX,
            })
            .collect();
        let force_reads = expires.iter().all(|&x| x == u64::MAX);
        let mut reset_expiries: Vec<u64> = entries
            .iter()
            .zip(&expires)
            .filter(|&(e, &x)| x != u64::MAX && model.resets(e.op))
            .map(|(_, &x)| x)
            .collect();
        reset_expiries.sort_unstable();
        Walk {
            model,
            budget,
            ops: entries.iter().map(|e| e.op).collect(),
            remaining: lists.determinate_ops,
            lists,
            signatures,
            la,
            s: Search {
                model,
                budget,
                states: Vec::new(),
                state_index: FxHashMap::default(),
                state_chain: Vec::new(),
                state_bytes: 0,
                dense: Vec::new(),
                dense_rows: DENSE_ENTRIES_MAX / n.max(1),
                ops: n,
                memo: FxHashMap::default(),
                cache: Cache {
                    heads: FxHashMap::default(),
                    masks: Vec::new(),
                },
                accounted: 0,
            },
            determinate: entries
                .iter()
                .map(|e| e.ret.is_some() && !e.optional)
                .collect(),
            resets: entries.iter().map(|e| model.resets(e.op)).collect(),
            read_only: entries
                .iter()
                .map(|e| e.ret.is_some() && !e.optional && model.is_read_only(e.op))
                .collect(),
            expires,
            calls: entries.iter().map(|e| e.call).collect(),
            reset_expiries,
            force_reads,
            seen_resets: Vec::new(),
            state: 0,
            exact: 0,
            mask: 0,
            max_call: 0,
            stack: Vec::with_capacity(n),
            check_doomed: false,
            longest: Vec::new(),
            longest_state: 0,
        }
    }

    fn out_of_memory(&mut self) -> Outcome<M::State> {
        self.s.resync();
        Outcome::Unknown(format!(
            "memory limit of {} MB reached",
            self.budget.limit_bytes / (1024 * 1024)
        ))
    }

    fn debug_line(&self, what: &str, steps: u64) {
        if std::env::var_os("FAULTLINE_DEBUG_STEPS").is_some() {
            eprintln!(
                "{} ops: {what}, steps {steps} states {} cache {}",
                self.ops.len(),
                self.s.states.len(),
                self.s.cache.len()
            );
        }
    }

    fn run(&mut self, inits: &[M::State], max_steps: u64) -> Outcome<M::State> {
        let mut inits = inits.iter();
        let Some(first) = inits.next() else {
            return Outcome::Illegal {
                longest: Vec::new(),
                state: self.model.init(),
            };
        };
        self.start(first.clone());
        // Set when a configuration is entered, so its forced read (if any) is looked for once.
        let mut fresh = true;
        let mut steps: u64 = 0;
        let mut cursor = Cursor::Det(self.lists.next[DET_HEAD as usize]);
        loop {
            if self.remaining == 0 {
                self.debug_line("linearizable", steps);
                return Outcome::Linearizable;
            }
            steps += 1;
            if steps > max_steps {
                return Outcome::OutOfSteps {
                    longest: self.longest.clone(),
                };
            }
            if steps.is_multiple_of(CHECK_EVERY_STEPS) {
                self.s.resync();
                if let Some(reason) = self.budget.stop_reason() {
                    self.debug_line(&reason, steps);
                    return Outcome::Unknown(reason);
                }
            }
            if fresh {
                fresh = false;
                match self.enter() {
                    Entered::Scan => {}
                    Entered::Descended => {
                        cursor = Cursor::Det(self.lists.next[DET_HEAD as usize]);
                        fresh = true;
                        continue;
                    }
                    Entered::Dead => {
                        cursor = Cursor::Info(NIL, 0);
                        continue;
                    }
                    Entered::OutOfMemory => return self.out_of_memory(),
                }
            }
            let Some((node, barrier)) = self.candidate(&mut cursor) else {
                continue;
            };
            if node != NIL {
                match self.try_linearize(node, barrier) {
                    Some(true) => {
                        cursor = Cursor::Det(self.lists.next[DET_HEAD as usize]);
                        fresh = true;
                    }
                    Some(false) => {
                        let i = self.lists.node_op[node as usize];
                        cursor = if self.determinate[i as usize] {
                            Cursor::Det(self.lists.next[node as usize])
                        } else {
                            Cursor::Info(self.lists.next[node as usize], barrier)
                        };
                    }
                    None => return self.out_of_memory(),
                }
                continue;
            }
            // No candidate left in this configuration: backtrack, or start over from the
            // next initial state.
            match self.backtrack() {
                Some(c) => cursor = c,
                None => match inits.next() {
                    Some(init) => {
                        self.start(init.clone());
                        cursor = Cursor::Det(self.lists.next[DET_HEAD as usize]);
                        fresh = true;
                    }
                    None => {
                        self.debug_line("illegal", steps);
                        return Outcome::Illegal {
                            longest: std::mem::take(&mut self.longest),
                            state: self.s.states[self.longest_state as usize].clone(),
                        };
                    }
                },
            }
        }
    }

    /// Enters the root configuration from `init`.
    fn start(&mut self, init: M::State) {
        self.state = self.s.intern(init);
        if self.longest.is_empty() {
            self.longest_state = self.state;
        }
        self.check_doomed = self.la.is_some();
    }

    /// On entering a configuration: abandon it if the look-ahead dooms it, and linearize a
    /// legal read-only candidate at once if there is one. That is safe (any order that
    /// works can be changed to put the read first) unless an optional op expires: moving
    /// the read before it would then rule the optional op out, so with such ops present
    /// reads are tried like any other op.
    fn enter(&mut self) -> Entered {
        if self.check_doomed {
            self.check_doomed = false;
            if let Some(la) = &self.la {
                if la.doomed(
                    self.model,
                    &self.s.states[self.state as usize],
                    &self.ops,
                    &self.expires,
                    self.max_call,
                    &mut self.seen_resets,
                ) {
                    // Cached already: it stays dead, so nothing is lost.
                    return Entered::Dead;
                }
            }
        }
        if !self.force_reads {
            return Entered::Scan;
        }
        let mut c = self.lists.next[DET_HEAD as usize];
        let mut forced = NIL;
        while c != NIL && self.lists.node_is_call[c as usize] {
            let i = self.lists.node_op[c as usize];
            if self.read_only[i as usize]
                && self.s.transition(self.state, i, &self.ops) == self.state
            {
                forced = c;
                break;
            }
            c = self.lists.next[c as usize];
        }
        if forced == NIL {
            return Entered::Scan;
        }
        let i = self.lists.node_op[forced as usize];
        let new_exact = self.exact ^ self.signatures.zobrist[i as usize];
        let key = CacheKey {
            lo: new_exact as u64,
            hi: (new_exact >> 64) as u64,
            state: self.state,
        };
        if !self.s.room_for_cache_growth() {
            return Entered::OutOfMemory;
        }
        if !self.s.cache.insert(key, self.mask) {
            // Seen before, and it failed then: so does this configuration.
            return Entered::Dead;
        }
        self.push(
            forced, self.state, 0, true, new_exact, self.mask, self.state,
        );
        Entered::Descended
    }

    /// The candidate to try now under `cursor`, and its barrier; `Some((NIL, _))` when
    /// none is left; `None` when the cursor moved on to the optional ops (scan again).
    #[inline]
    fn candidate(&mut self, cursor: &mut Cursor) -> Option<(u32, u64)> {
        let l = &self.lists;
        match *cursor {
            Cursor::Det(mut node) => {
                // Legal reads were forced on entry, so reads left here are illegal: skip
                // them without a step each. (The transition is still asked, memoised, so a
                // model whose "read-only" op does change the state is not skipped wrongly.)
                while node != NIL
                    && l.node_is_call[node as usize]
                    && self.read_only[l.node_op[node as usize] as usize]
                    && self
                        .s
                        .transition(self.state, l.node_op[node as usize], &self.ops)
                        == ILLEGAL
                {
                    node = l.next[node as usize];
                }
                if node != NIL && l.node_is_call[node as usize] {
                    Some((node, 0))
                } else {
                    let barrier = if node == NIL {
                        u64::MAX
                    } else {
                        l.node_time[node as usize]
                    };
                    *cursor = Cursor::Info(l.next[INFO_HEAD as usize], barrier);
                    None
                }
            }
            Cursor::Info(mut node, barrier) => {
                // An optional op whose completion came before a linearized op's invoke
                // can no longer take effect.
                while node != NIL
                    && l.node_time[node as usize] < barrier
                    && self.expires[l.node_op[node as usize] as usize] <= self.max_call
                {
                    node = l.next[node as usize];
                }
                if node != NIL && l.node_time[node as usize] < barrier {
                    Some((node, barrier))
                } else {
                    Some((NIL, barrier))
                }
            }
        }
    }

    /// Tries to linearize the op at `node` next: true when it was (a new configuration),
    /// false when it is illegal, useless or leads to a configuration seen before; `None`
    /// when the cache may not grow.
    #[inline]
    fn try_linearize(&mut self, node: u32, barrier: u64) -> Option<bool> {
        let i = self.lists.node_op[node as usize];
        let det = self.determinate[i as usize];
        let t = self.s.transition(self.state, i, &self.ops);
        // An optional op that changes nothing is dominated by leaving it out.
        if t == ILLEGAL || (!det && t == self.state) {
            return Some(false);
        }
        let new_exact = self.exact ^ self.signatures.zobrist[i as usize];
        let new_mask = self.mask | self.signatures.mask_bit[i as usize];
        let key = CacheKey {
            lo: new_exact as u64,
            hi: (new_exact >> 64) as u64,
            state: t,
        };
        if !self.s.room_for_cache_growth() {
            return None;
        }
        if !self.s.cache.insert(key, new_mask) {
            return Some(false);
        }
        self.check_doomed = self.la.is_some()
            && (t != self.state || self.resets[i as usize] || self.expires_resets(i));
        self.push(node, self.state, barrier, false, new_exact, new_mask, t);
        Some(true)
    }

    /// Whether linearizing op `i` next expires an optional reset op.
    #[inline]
    fn expires_resets(&self, i: u32) -> bool {
        let call = self.calls[i as usize];
        call > self.max_call && {
            let k = self.reset_expiries.partition_point(|&x| x <= self.max_call);
            self.reset_expiries.get(k).is_some_and(|&x| x <= call)
        }
    }

    /// Linearizes the op at `node`: lifts its events out of the lists.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn push(
        &mut self,
        node: u32,
        before: u32,
        barrier: u64,
        forced: bool,
        exact: u128,
        mask: u64,
        after: u32,
    ) {
        let i = self.lists.node_op[node as usize];
        self.stack.push(Frame {
            node,
            state: before,
            barrier,
            forced,
            max_call: self.max_call,
        });
        if let Some(la) = &mut self.la {
            la.remove(i);
        }
        self.exact = exact;
        self.mask = mask;
        self.state = after;
        self.max_call = self.max_call.max(self.calls[i as usize]);
        self.lists.lift(node);
        if self.determinate[i as usize] {
            self.lists.lift(self.lists.ret_node[i as usize]);
            self.remaining -= 1;
        }
        if self.stack.len() > self.longest.len() {
            self.longest.clear();
            let l = &self.lists;
            self.longest
                .extend(self.stack.iter().map(|f| l.node_op[f.node as usize]));
            self.longest_state = self.state;
        }
    }

    /// Undoes the last linearization; the cursor to go on with, or `None` at the root.
    #[inline]
    fn backtrack(&mut self) -> Option<Cursor> {
        let f = self.stack.pop()?;
        let i = self.lists.node_op[f.node as usize];
        let det = self.determinate[i as usize];
        if let Some(la) = &mut self.la {
            la.restore(i);
        }
        self.exact ^= self.signatures.zobrist[i as usize];
        self.mask &= !self.signatures.mask_bit[i as usize];
        self.state = f.state;
        self.max_call = f.max_call;
        if det {
            self.lists.unlift(self.lists.ret_node[i as usize]);
            self.remaining += 1;
        }
        self.lists.unlift(f.node);
        Some(if f.forced {
            Cursor::Info(NIL, 0)
        } else if det {
            Cursor::Det(self.lists.next[f.node as usize])
        } else {
            Cursor::Info(self.lists.next[f.node as usize], f.barrier)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use crate::model::{KvModel, KvOp, Prepared};

    /// A completed kv op from "put v", "append v" or "get v".
    fn kv(text: &str) -> KvOp {
        let (f, arg) = text.split_once(' ').unwrap();
        let op = |kind, value| Op {
            index: 0,
            time: 0,
            kind,
            process: Process::Client(0),
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
        };
        let value = serde_json::Value::String(arg.into());
        let invoke_value = if f == "get" {
            serde_json::Value::Null
        } else {
            value.clone()
        };
        let (invoke, ok) = (op(OpType::Invoke, invoke_value), op(OpType::Ok, value));
        match KvModel::new(true, "").prepare(&invoke, Some(&ok)) {
            Ok(Prepared::Known(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    /// `append z` then `get p` must take effect; `put p` (running over `put`) and eight
    /// appends are optional.
    fn search_with_put(put: (u64, u64)) -> Outcome<<KvModel as Model>::State> {
        let mut ops = vec![(kv("put p"), put.0, put.1, true)];
        for k in 0..8 {
            ops.push((kv(&format!("append x{k}")), 2 + k, 30, true));
        }
        ops.push((kv("append z"), 31, 40, false));
        ops.push((kv("get p"), 41, 42, false));
        let views: Vec<View<'_, KvOp>> = ops
            .iter()
            .map(|(op, call, ret, optional)| View {
                op,
                call: *call,
                ret: Some(*ret),
                optional: *optional,
            })
            .collect();
        let budget = Budget::new(1 << 30, None);
        search_steps(&KvModel::new(true, ""), &views, &budget, 1000)
    }

    #[test]
    fn an_optional_put_that_expired_no_longer_keeps_a_read_alive() {
        // Once anything invoked after the put's completion is linearized the put can no
        // longer come, so `get p` is doomed as soon as the state stops being a prefix of
        // "p". Counting the expired put as a possible reset explored every order of the
        // optional appends (~100,000 configurations) before giving up.
        let outcome = search_with_put((0, 1));
        assert!(
            matches!(outcome, Outcome::Illegal { .. }),
            "{outcome:?} within 1,000 steps"
        );
        // A put that can still come after `append z` keeps the read alive: p, z, put p, get p.
        let outcome = search_with_put((35, 45));
        assert!(matches!(outcome, Outcome::Linearizable), "{outcome:?}");
    }
}
