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
/// and as optional (`ret: None`) in another (counterexample shrinking).
#[derive(Debug)]
pub(crate) struct View<'a, O> {
    pub op: &'a O,
    pub call: u64,
    pub ret: Option<u64>,
}

impl<O> Entry<O> {
    pub fn view(&self) -> View<'_, O> {
        View {
            op: &self.op,
            call: self.call,
            ret: self.ret,
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
    /// The step allowance of `search_steps` ran out before a verdict.
    OutOfSteps,
}

const NIL: u32 = u32::MAX;
const ILLEGAL: u32 = u32::MAX;
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
        table_bytes(
            self.cache.heads.capacity(),
            std::mem::size_of::<(CacheKey, u32)>(),
        ) + self.cache.masks.capacity() * 16
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
    fn doomed<'o, M: Model>(
        &self,
        model: &M,
        state: &M::State,
        ops: &[&'o M::Op],
        seen: &mut Vec<&'o M::Op>,
    ) -> bool {
        seen.clear();
        let mut checked = 0;
        let mut node = self.next[0];
        while node != NIL {
            let op = ops[self.op[node as usize] as usize];
            if self.is_reset[node as usize] {
                seen.push(op);
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

/// Checks whether `entries` (one sub-history) is linearizable under `model`.
pub(crate) fn search<M: Model>(
    model: &M,
    entries: &[View<'_, M::Op>],
    budget: &Budget,
) -> Outcome<M::State> {
    search_steps(model, entries, budget, u64::MAX)
}

/// `search` that gives up with `OutOfSteps` after `max_steps` steps.
pub(crate) fn search_steps<M: Model>(
    model: &M,
    entries: &[View<'_, M::Op>],
    budget: &Budget,
    max_steps: u64,
) -> Outcome<M::State> {
    let n = entries.len();
    let ops: Vec<&M::Op> = entries.iter().map(|e| e.op).collect();
    const DET_HEAD: u32 = 0;
    const INFO_HEAD: u32 = 1;

    // Determinate events sorted by time (calls and returns); indeterminate calls apart.
    let mut det_events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n);
    let mut info_calls: Vec<(u64, u32)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match e.ret {
            Some(r) => {
                det_events.push((e.call, 0, i as u32));
                det_events.push((r, 1, i as u32));
            }
            None => info_calls.push((e.call, i as u32)),
        }
    }
    det_events.sort_unstable();
    info_calls.sort_unstable();

    let nodes = 2 + det_events.len() + info_calls.len();
    let mut next = vec![NIL; nodes];
    let mut prev = vec![NIL; nodes];
    let mut node_op = vec![0u32; nodes];
    let mut node_time = vec![u64::MAX; nodes];
    let mut node_is_call = vec![false; nodes];
    let mut ret_node = vec![NIL; n];
    let mut link =
        |list_head: u32, items: &mut dyn Iterator<Item = (u64, bool, u32)>, first: usize| {
            let mut last = list_head;
            for (k, (time, is_call, i)) in items.enumerate() {
                let node = (first + k) as u32;
                node_op[node as usize] = i;
                node_time[node as usize] = time;
                node_is_call[node as usize] = is_call;
                if !is_call {
                    ret_node[i as usize] = node;
                }
                prev[node as usize] = last;
                next[last as usize] = node;
                last = node;
            }
        };
    link(
        DET_HEAD,
        &mut det_events.iter().map(|&(t, r, i)| (t, r == 0, i)),
        2,
    );
    link(
        INFO_HEAD,
        &mut info_calls.iter().map(|&(t, i)| (t, true, i)),
        2 + det_events.len(),
    );

    // Optional ops get a bit of the dominance mask (up to 64 of them); every other op is
    // part of the exact signature.
    let mut seed = 0x005E_ED0F_FA17_u64;
    let mut mask_bit = vec![0u64; n];
    for (slot, &(_, i)) in info_calls.iter().take(64).enumerate() {
        mask_bit[i as usize] = 1 << slot;
    }
    let exact_ops = n - info_calls.len().min(64);
    let mut exact_slot = 0;
    let zobrist: Vec<u128> = (0..n)
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
    let determinate: Vec<bool> = entries.iter().map(|e| e.ret.is_some()).collect();
    let resets: Vec<bool> = ops.iter().map(|o| model.resets(o)).collect();
    // Only determinate ops must be linearized, so only they can doom a configuration.
    let bounds: Vec<bool> = entries
        .iter()
        .map(|e| e.ret.is_some() && model.bounds_future(e.op))
        .collect();
    let look_ahead = bounds.iter().any(|&b| b);
    let mut la = LookAhead::new(
        n,
        if look_ahead {
            let mut events = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                if resets[i] {
                    events.push((e.call, i as u32, true));
                }
                if let (true, Some(r)) = (bounds[i], e.ret) {
                    events.push((r, i as u32, false));
                }
            }
            events
        } else {
            Vec::new()
        },
    );
    let mut seen_resets: Vec<&M::Op> = Vec::new();
    // Set when a configuration is entered with a new state or with fewer reset ops left:
    // the only changes that can doom it (linearizing a read only removes constraints).
    let mut check_doomed = look_ahead;
    let mut remaining = det_events.len() / 2;

    let mut s = Search {
        model,
        budget,
        states: Vec::new(),
        state_index: FxHashMap::default(),
        state_chain: Vec::new(),
        state_bytes: 0,
        memo: FxHashMap::default(),
        cache: Cache {
            heads: FxHashMap::default(),
            masks: Vec::new(),
        },
        accounted: 0,
    };
    let mut state = s.intern(model.init());
    let mut exact: u128 = 0;
    let mut mask: u64 = 0;
    // Frames: (node linearized, state before it, barrier it was tried under, forced: it
    // was a legal read-only op, so no other candidate of that configuration needs a try).
    let mut stack: Vec<(u32, u32, u64, bool)> = Vec::with_capacity(n);
    let read_only: Vec<bool> = entries
        .iter()
        .map(|e| e.ret.is_some() && model.is_read_only(e.op))
        .collect();
    // Set when a configuration is entered, so its forced read (if any) is looked for once.
    let mut fresh = true;
    let mut longest: Vec<u32> = Vec::new();
    let mut longest_state = state;
    let mut steps: u64 = 0;
    let debug = std::env::var_os("FAULTLINE_DEBUG_STEPS").is_some();

    let mut cursor = Cursor::Det(next[DET_HEAD as usize]);
    loop {
        if remaining == 0 {
            if debug {
                eprintln!(
                    "{n} ops: linearizable, steps {steps} states {} cache {}",
                    s.states.len(),
                    s.cache.len()
                );
            }
            return Outcome::Linearizable;
        }
        steps += 1;
        if steps > max_steps {
            return Outcome::OutOfSteps;
        }
        if steps.is_multiple_of(CHECK_EVERY_STEPS) {
            s.resync();
            if let Some(reason) = budget.stop_reason() {
                if debug {
                    eprintln!(
                        "{n} ops: {reason}, steps {steps} states {} cache {}",
                        s.states.len(),
                        s.cache.len()
                    );
                }
                return Outcome::Unknown(reason);
            }
        }
        if fresh {
            fresh = false;
            if check_doomed {
                check_doomed = false;
                if la.doomed(model, &s.states[state as usize], &ops, &mut seen_resets) {
                    // Cached already: it stays dead, so nothing is lost.
                    cursor = Cursor::Info(NIL, 0);
                    continue;
                }
            }
            // A legal read-only candidate goes first and alone (see `Model::is_read_only`).
            let mut c = next[DET_HEAD as usize];
            let mut forced = NIL;
            while c != NIL && node_is_call[c as usize] {
                let i = node_op[c as usize];
                if read_only[i as usize] && s.transition(state, i, &ops) == state {
                    forced = c;
                    break;
                }
                c = next[c as usize];
            }
            if forced != NIL {
                let i = node_op[forced as usize];
                let new_exact = exact ^ zobrist[i as usize];
                let key = CacheKey {
                    lo: new_exact as u64,
                    hi: (new_exact >> 64) as u64,
                    state,
                };
                if !s.room_for_cache_growth() {
                    s.resync();
                    return Outcome::Unknown(format!(
                        "memory limit of {} MB reached",
                        budget.limit_bytes / (1024 * 1024)
                    ));
                }
                if s.cache.insert(key, mask) {
                    stack.push((forced, state, 0, true));
                    la.remove(i);
                    exact = new_exact;
                    let r = ret_node[i as usize];
                    for x in [forced, r] {
                        let (p, nx) = (prev[x as usize], next[x as usize]);
                        next[p as usize] = nx;
                        if nx != NIL {
                            prev[nx as usize] = p;
                        }
                    }
                    remaining -= 1;
                    if stack.len() > longest.len() {
                        longest.clear();
                        longest.extend(stack.iter().map(|&(e, _, _, _)| node_op[e as usize]));
                        longest_state = state;
                    }
                    cursor = Cursor::Det(next[DET_HEAD as usize]);
                    fresh = true;
                    continue;
                }
                // Seen before, and it failed then: so does this configuration.
                cursor = Cursor::Info(NIL, 0);
                continue;
            }
        }
        // The candidate to try now, if any, and the barrier it is tried under.
        let (node, barrier) = match cursor {
            Cursor::Det(mut node) => {
                // Legal reads were forced on entry, so reads left here are illegal: skip
                // them without a step each. (The transition is still asked, memoised, so a
                // model whose "read-only" op does change the state is not skipped wrongly.)
                while node != NIL
                    && node_is_call[node as usize]
                    && read_only[node_op[node as usize] as usize]
                    && s.transition(state, node_op[node as usize], &ops) == ILLEGAL
                {
                    node = next[node as usize];
                }
                if node != NIL && node_is_call[node as usize] {
                    (node, 0)
                } else {
                    let barrier = if node == NIL {
                        u64::MAX
                    } else {
                        node_time[node as usize]
                    };
                    cursor = Cursor::Info(next[INFO_HEAD as usize], barrier);
                    continue;
                }
            }
            Cursor::Info(node, barrier) => {
                if node != NIL && node_time[node as usize] < barrier {
                    (node, barrier)
                } else {
                    (NIL, barrier)
                }
            }
        };
        if node != NIL {
            let i = node_op[node as usize];
            let det = determinate[i as usize];
            let t = s.transition(state, i, &ops);
            // An optional op that changes nothing is dominated by leaving it out.
            let useful = t != ILLEGAL && (det || t != state);
            if useful {
                let new_exact = exact ^ zobrist[i as usize];
                let new_mask = mask | mask_bit[i as usize];
                let key = CacheKey {
                    lo: new_exact as u64,
                    hi: (new_exact >> 64) as u64,
                    state: t,
                };
                if !s.room_for_cache_growth() {
                    s.resync();
                    return Outcome::Unknown(format!(
                        "memory limit of {} MB reached",
                        budget.limit_bytes / (1024 * 1024)
                    ));
                }
                if s.cache.insert(key, new_mask) {
                    check_doomed = look_ahead && (t != state || resets[i as usize]);
                    stack.push((node, state, barrier, false));
                    la.remove(i);
                    exact = new_exact;
                    mask = new_mask;
                    state = t;
                    let r = if det { ret_node[i as usize] } else { NIL };
                    for x in [node, r] {
                        if x == NIL {
                            continue;
                        }
                        let (p, nx) = (prev[x as usize], next[x as usize]);
                        next[p as usize] = nx;
                        if nx != NIL {
                            prev[nx as usize] = p;
                        }
                    }
                    if det {
                        remaining -= 1;
                    }
                    if stack.len() > longest.len() {
                        longest.clear();
                        longest.extend(stack.iter().map(|&(e, _, _, _)| node_op[e as usize]));
                        longest_state = state;
                    }
                    cursor = Cursor::Det(next[DET_HEAD as usize]);
                    fresh = true;
                    continue;
                }
            }
            cursor = if det {
                Cursor::Det(next[node as usize])
            } else {
                Cursor::Info(next[node as usize], barrier)
            };
            continue;
        }
        // No candidate left in this configuration: backtrack.
        let Some((e, st, b, forced)) = stack.pop() else {
            if debug {
                eprintln!(
                    "{n} ops: illegal, steps {steps} states {} cache {}",
                    s.states.len(),
                    s.cache.len()
                );
            }
            return Outcome::Illegal {
                longest,
                state: s.states[longest_state as usize].clone(),
            };
        };
        let i = node_op[e as usize];
        let det = determinate[i as usize];
        la.restore(i);
        exact ^= zobrist[i as usize];
        mask &= !mask_bit[i as usize];
        state = st;
        let r = if det { ret_node[i as usize] } else { NIL };
        for x in [r, e] {
            if x == NIL {
                continue;
            }
            let (p, nx) = (prev[x as usize], next[x as usize]);
            next[p as usize] = x;
            if nx != NIL {
                prev[nx as usize] = x;
            }
        }
        if det {
            remaining += 1;
        }
        cursor = if forced {
            Cursor::Info(NIL, 0)
        } else if det {
            Cursor::Det(next[e as usize])
        } else {
            Cursor::Info(next[e as usize], b)
        };
    }
}
