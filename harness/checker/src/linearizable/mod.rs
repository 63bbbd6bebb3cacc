//! The linearizability checker: splits a history by key, runs the search on every key in
//! parallel under shared time and memory limits, and explains each invalid key.

mod core;
mod explain;
mod prepass;
pub(crate) mod search;
mod stale;

use crate::history::{pair_operations, Key, Op, Operation};
use crate::model::{Model, Prepared};
use crate::results::{Counterexample, KeyResult, LinearizableResult, OpRef};
use crate::verdict::Validity;
use core::Relaxer;
use prepass::Impossible;
use search::{Budget, Entry, Outcome};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits of one linearizability check.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall time for the whole check; keys not decided by then are `unknown`.
    pub time_limit: Option<Duration>,
    /// Bytes the searches' caches and states may hold together; past it, `unknown`.
    pub memory_limit_bytes: usize,
    /// Worker threads; `None`: one per core.
    pub threads: Option<usize>,
    /// Wall time for finding and shrinking each invalid key's counterexample.
    pub shrink_time_limit: Duration,
    /// Build counterexamples for invalid keys (shrinking and explanation); off, an invalid
    /// key only gets the longest partial linearization and its state.
    pub counterexamples: bool,
    /// Decide every key even after one is found non-linearizable (the default: what
    /// `run`, `report` and `campaign` do). Off (what `faultline check` does unless told
    /// `--exhaustive`, as Porcupine does), the check stops at the first invalid key and
    /// keys not decided by then are `unknown` — the verdict is `false` either way.
    pub exhaustive: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_limit: Some(Duration::from_secs(60)),
            memory_limit_bytes: 2048 * 1024 * 1024,
            threads: None,
            shrink_time_limit: Duration::from_millis(400),
            counterexamples: true,
            exhaustive: true,
        }
    }
}

/// The ops of one independent key, prepared for the model.
struct Group<O> {
    key: Option<Key>,
    entries: Vec<Entry<O>>,
    sources: Vec<Operation>,
    error: Option<String>,
}

fn group_history<M: Model>(model: &M, ops: &[Op], pairs: &[Operation]) -> Vec<Group<M::Op>> {
    // Keys looked up by reference in a hash map (no clone, no tree walk per op: 2,000,000
    // ops over 1,000 keys spent ~0.3 s in the BTreeMap this replaced), the groups sorted
    // by key once at the end, so they come out in key order as before.
    let mut index: rustc_hash::FxHashMap<Option<&Key>, usize> = Default::default();
    let mut groups: Vec<Group<M::Op>> = Vec::new();
    for &pair in pairs {
        let inv = &ops[pair.invoke];
        let key = if model.by_key() {
            inv.key.as_ref()
        } else {
            None
        };
        let g = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                key: key.cloned(),
                entries: Vec::new(),
                sources: Vec::new(),
                error: None,
            });
            groups.len() - 1
        });
        let group = &mut groups[g];
        if group.error.is_some() {
            continue;
        }
        let comp = pair.complete.map(|c| &ops[c]);
        match model.prepare(inv, comp) {
            Ok(Prepared::Skip) => {}
            Ok(Prepared::Known(op)) => {
                group.entries.push(Entry {
                    op,
                    call: pair.invoke as u64,
                    ret: pair.complete.map(|c| c as u64),
                });
                group.sources.push(pair);
            }
            Ok(Prepared::Unknown(op)) => {
                group.entries.push(Entry {
                    op,
                    call: pair.invoke as u64,
                    ret: None,
                });
                group.sources.push(pair);
            }
            Err(e) => {
                group.error = Some(format!("op index {}: {e}", inv.index));
            }
        }
    }
    groups.sort_by(|a, b| a.key.cmp(&b.key));
    groups
}

/// Why a key has no verdict when another key was found invalid first.
const STOPPED: &str =
    "not decided: the check stopped at the first invalid key (exhaustive mode decides all)";

/// Cores to use; asked once, since the answer reads cgroup files (slow next to a small check).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl KeyResult {
    fn unknown(key: Option<Key>, ops: usize, reason: String) -> Self {
        KeyResult {
            key,
            valid: Validity::Unknown,
            ops,
            duration_ms: 0.0,
            reason: Some(reason),
            counterexample: None,
        }
    }
}

/// Checks `ops` (a whole history, nemesis events included) for linearizability under
/// `model`, one search per key, in parallel.
pub fn check_linearizable<M: Model>(model: &M, ops: &[Op], limits: &Limits) -> LinearizableResult {
    let started = Instant::now();
    let finish = |keys: Vec<KeyResult>| LinearizableResult {
        model: model.name(),
        valid: keys
            .iter()
            .fold(Validity::Valid, |acc, k| acc.combine(k.valid)),
        duration_ms: ms(started.elapsed()),
        keys,
    };
    // An empty history most likely means the test never ran: nothing was shown to hold.
    if ops.is_empty() {
        let reason = "the history is empty: nothing to check".to_string();
        return finish(vec![KeyResult::unknown(None, 0, reason)]);
    }
    let pairs = match pair_operations(ops) {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("malformed history: {e}");
            return finish(vec![KeyResult::unknown(None, 0, reason)]);
        }
    };
    let groups = group_history(model, ops, &pairs);
    let budget = Budget::new(
        limits.memory_limit_bytes,
        // A limit past what the clock can represent (`--time-limit 1e19`) is no limit.
        limits.time_limit.and_then(|t| started.checked_add(t)),
    );
    finish(check_groups(model, ops, &groups, &budget, limits))
}

/// The ops (invoke indices) of a core `stale` finds in some key of `ops`: an op real time
/// fences off from every state it could go in, and its fences; `None` when it finds none.
/// The check itself runs only on keys whose search is long; this is for the differential
/// tests, which brute-force every core it gives on small histories.
#[doc(hidden)]
pub fn fenced_core<M: Model>(model: &M, ops: &[Op]) -> Option<Vec<u64>> {
    let pairs = pair_operations(ops).ok()?;
    let groups = group_history(model, ops, &pairs);
    groups.iter().filter(|g| g.error.is_none()).find_map(|g| {
        let relaxer = Relaxer::new(
            model,
            &g.entries,
            Limits::default().memory_limit_bytes,
            true,
        );
        let f = relaxer.fenced()?;
        Some(
            f.core
                .iter()
                .map(|&i| ops[g.sources[i as usize].invoke].index)
                .collect(),
        )
    })
}

/// Below this many ops (all keys together) a check runs on one thread.
const PARALLEL_MIN_OPS: usize = 1000;

/// Steps each key gets in the first pass when there are more keys than threads: about
/// 10–30 ms of search, more than any key of the bench data that has a verdict needs.
const FIRST_PASS_STEPS: u64 = 1 << 16;

/// Worker threads for these groups.
fn thread_count<O>(groups: &[Group<O>], limits: &Limits) -> usize {
    // A small history is checked on the calling thread alone: starting and joining a
    // thread costs more than its keys take (kv c01: 0.04 ms alone, 0.5 ms with a helper
    // on the busy development machine).
    let total_ops: usize = groups.iter().map(|g| g.entries.len()).sum();
    limits
        .threads
        .unwrap_or_else(|| {
            if total_ops < PARALLEL_MIN_OPS {
                1
            } else {
                cores()
            }
        })
        .clamp(1, groups.len().max(1))
}

/// Decides every group (or, not exhaustive, until one is invalid): results in key order.
fn check_groups<M: Model>(
    model: &M,
    ops: &[Op],
    groups: &[Group<M::Op>],
    budget: &Budget,
    limits: &Limits,
) -> Vec<KeyResult> {
    // Biggest keys first, so one large key does not start last and run alone.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(groups[g].entries.len()));
    let threads = thread_count(groups, limits);
    // With more keys than threads, a first pass gives each key a bounded number of steps,
    // so that one hard key cannot hold a thread while an easy invalid key waits behind it
    // (the check stops at the first invalid key: kv c50-bad on one thread took 7 s, its
    // biggest key alone running into the memory limit). Keys it leaves undecided run again
    // without a bound, which repeats at most `FIRST_PASS_STEPS` steps of work each.
    let first_pass = if groups.len() > threads {
        FIRST_PASS_STEPS
    } else {
        u64::MAX
    };
    let mut results: Mutex<Vec<Option<KeyResult>>> = Mutex::new(vec![None; groups.len()]);
    // A large history gets the pre-pass on every key before any search, so that a key with
    // an impossible op is found at once instead of after the searches of the keys before it
    // (2,000,000 ops over 1,000 keys: 0.1 s for all the pre-passes, next to seconds of
    // search). A small one gets it only for a key whose search runs out of its first
    // round's steps (`decide`): its searches are quick, and the pre-pass would be a
    // fixed cost on every one.
    let total_ops: usize = groups.iter().map(|g| g.entries.len()).sum();
    let prepassed = total_ops >= PARALLEL_MIN_OPS;
    if prepassed {
        // Not exhaustive, a key found here cancels the rest: they are then STOPPED below
        // without a search.
        let found = prepass_all(model, ops, groups, &order, threads, budget, limits);
        let slots = results.get_mut().unwrap_or_else(|e| e.into_inner());
        for (g, r) in found {
            slots[g] = Some(r);
        }
        order.retain(|&g| slots[g].is_none());
    }
    let deferred: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let run_pass = |order: &[usize], max_steps: u64| {
        let next = AtomicUsize::new(0);
        let work = || loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&g) = order.get(k) else { break };
            let group = &groups[g];
            let r = if budget.cancel.load(Ordering::Relaxed) {
                KeyResult::unknown(group.key.clone(), group.entries.len(), STOPPED.into())
            } else {
                match check_group(model, ops, group, budget, limits, max_steps, prepassed) {
                    Some(r) => r,
                    None => {
                        deferred.lock().unwrap_or_else(|e| e.into_inner()).push(g);
                        continue;
                    }
                }
            };
            if r.valid == Validity::Invalid && !limits.exhaustive {
                budget.cancel.store(true, Ordering::Relaxed);
            }
            results.lock().unwrap_or_else(|e| e.into_inner())[g] = Some(r);
        };
        on_workers(threads.min(order.len()), work);
    };
    run_pass(&order, first_pass);
    let mut again = std::mem::take(&mut *deferred.lock().unwrap_or_else(|e| e.into_inner()));
    again.sort_by_key(|&g| std::cmp::Reverse(groups[g].entries.len()));
    run_pass(&again, u64::MAX);
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Runs `work` (a loop that takes jobs until none are left) on `workers` threads, the
/// calling thread one of them, so one worker needs no thread at all.
fn on_workers(workers: usize, work: impl Fn() + Sync) {
    let helpers = workers.saturating_sub(1);
    if helpers == 0 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(&work);
            }
            work();
        });
    }
}

/// The pre-pass (`prepass::impossible_op`) on every key, in parallel: the keys it decides
/// invalid, with their results. Not exhaustive, it stops at the first such key.
fn prepass_all<M: Model>(
    model: &M,
    ops: &[Op],
    groups: &[Group<M::Op>],
    order: &[usize],
    threads: usize,
    budget: &Budget,
    limits: &Limits,
) -> Vec<(usize, KeyResult)> {
    let found: Mutex<Vec<(usize, KeyResult)>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let work = || loop {
        if budget.cancel.load(Ordering::Relaxed) {
            break;
        }
        let k = next.fetch_add(1, Ordering::Relaxed);
        let Some(&g) = order.get(k) else { break };
        let group = &groups[g];
        if group.error.is_some() {
            continue;
        }
        let started = Instant::now();
        // A panicking user model is left to the search, which reports it.
        let imp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            prepass::impossible_op(model, &group.entries)
        }));
        if let Ok(Some(imp)) = imp {
            let r = impossible_result(model, ops, group, limits, imp, started);
            if !limits.exhaustive {
                budget.cancel.store(true, Ordering::Relaxed);
            }
            found.lock().unwrap_or_else(|e| e.into_inner()).push((g, r));
        }
    };
    on_workers(threads.min(order.len()), work);
    found.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The result of a key the pre-pass decided: invalid, its core the one impossible op.
fn impossible_result<M: Model>(
    model: &M,
    ops: &[Op],
    group: &Group<M::Op>,
    limits: &Limits,
    imp: Impossible<M::State>,
    started: Instant,
) -> KeyResult {
    let i = imp.op as usize;
    let stuck = OpRef::new(ops, group.sources[i]);
    let mut cx = Counterexample {
        ops: vec![stuck.clone()],
        // With its one op optional, nothing is left that must take effect.
        minimal: true,
        relaxation: String::new(),
        stuck: Some(stuck),
        // No search ran: nothing was linearized, the state is the initial one.
        partial_linearization: Vec::new(),
        state: model.state_json(&model.init()),
        explanation: String::new(),
    };
    if limits.counterexamples {
        let others = group.entries.len() - 1;
        let described = cx.ops[0].describe();
        let e = explain::explain_impossible(
            model,
            &group.entries[i].op,
            &described,
            others,
            &imp.states,
        );
        cx.explanation = e.text;
        cx.relaxation = e.relaxation;
    }
    let result = KeyResult {
        key: group.key.clone(),
        valid: Validity::Invalid,
        ops: group.entries.len(),
        duration_ms: 0.0,
        reason: None,
        counterexample: Some(cx),
    };
    finished(result, started)
}

/// Steps of the first search of a key before a window around where it is stuck is tried;
/// each later round gets `STEPS_GROWTH` times more.
const ROUND_STEPS_FIRST: u64 = 1 << 16;
const STEPS_GROWTH: u64 = 4;

/// Wall time a window around a stuck search may take to show the key invalid.
const WINDOW_TIME_LIMIT: Duration = Duration::from_millis(100);

/// How a key's search ended.
enum Decided<'e, M: Model> {
    Valid,
    /// The pre-pass found an op illegal in every state the key's ops can produce.
    Impossible(Impossible<M::State>),
    /// The search found no order (`longest`, `state`: where it got furthest).
    Illegal {
        longest: Vec<u32>,
        state: M::State,
    },
    /// A window around where the search was stuck is non-linearizable on its own, or
    /// (`stuck` given) an op is fenced off from every state it could go in; `relaxer`
    /// judged it, and shrinks it (listing the key's states again would cost as much as
    /// the rest of a long key's check).
    Window {
        longest: Vec<u32>,
        window: Vec<u32>,
        stuck: Option<u32>,
        relaxer: Box<Relaxer<'e, M>>,
    },
    Unknown(String),
    Panicked,
    OutOfSteps,
}

/// Searches one key in rounds of growing step allowances; between rounds, a window around
/// where the search is stuck is checked on its own, so that one impossible op in a long
/// key is found without exploring every order of the ops before it.
fn decide<'e, M: Model>(
    model: &'e M,
    group: &'e Group<M::Op>,
    budget: &Budget,
    limits: &Limits,
    max_steps: u64,
    prepassed: bool,
) -> Decided<'e, M> {
    let mut prepassed = prepassed;
    let all: Vec<search::View<'_, M::Op>> = group.entries.iter().map(Entry::view).collect();
    let mut relaxer: Option<Box<Relaxer<'e, M>>> = None;
    let mut tried_stuck = None;
    let mut tried_fenced = false;
    let mut allowance = ROUND_STEPS_FIRST.min(max_steps);
    loop {
        // A panicking user model must give `unknown`, not take the whole check down.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            search::search_steps(model, &all, budget, allowance)
        }));
        let longest = match outcome {
            Err(_) => return Decided::Panicked,
            Ok(Outcome::Linearizable) => return Decided::Valid,
            Ok(Outcome::Illegal { longest, state }) => return Decided::Illegal { longest, state },
            Ok(Outcome::Unknown(reason)) => return Decided::Unknown(reason),
            Ok(Outcome::OutOfSteps { longest }) => longest,
        };
        // A long search: first the cheap pre-pass, which may decide the key at once.
        if !prepassed {
            prepassed = true;
            let imp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                prepass::impossible_op(model, &group.entries)
            }));
            match imp {
                Err(_) => return Decided::Panicked,
                Ok(Some(imp)) => return Decided::Impossible(imp),
                Ok(None) => {}
            }
        }
        if relaxer.is_none() {
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Relaxer::new(model, &group.entries, limits.memory_limit_bytes, true)
            }));
            match made {
                Err(_) => return Decided::Panicked,
                Ok(r) => relaxer = Some(Box::new(r)),
            }
        }
        let Some(r) = relaxer.as_mut() else {
            return Decided::Panicked;
        };
        // Once, with the key's states listed: an op real time fences off from every
        // state it could go in (a stale read) decides the key, however far the search is
        // from reaching it.
        if !tried_fenced {
            tried_fenced = true;
            let fenced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.fenced()));
            match fenced {
                Err(_) => return Decided::Panicked,
                Ok(Some(f)) => {
                    return Decided::Window {
                        longest,
                        window: f.core,
                        stuck: Some(f.op),
                        relaxer: relaxer.take().expect("made above"),
                    }
                }
                Ok(None) => {}
            }
        }
        let stuck = r.stuck_op(&longest);
        if stuck.is_some() && stuck != tried_stuck {
            tried_stuck = stuck;
            let deadline = Instant::now() + WINDOW_TIME_LIMIT;
            let deadline = budget.deadline.map_or(deadline, |d| d.min(deadline));
            if let Some(window) = r.window(&longest, deadline) {
                return Decided::Window {
                    longest,
                    window,
                    stuck: None,
                    relaxer: relaxer.take().expect("made above"),
                };
            }
        }
        if allowance >= max_steps {
            return Decided::OutOfSteps;
        }
        allowance = allowance.saturating_mul(STEPS_GROWTH).min(max_steps);
    }
}

/// Decides one key; `None` when `max_steps` ran out first.
fn check_group<M: Model>(
    model: &M,
    ops: &[Op],
    group: &Group<M::Op>,
    budget: &Budget,
    limits: &Limits,
    max_steps: u64,
    prepassed: bool,
) -> Option<KeyResult> {
    let started = Instant::now();
    let mut result = KeyResult::unknown(group.key.clone(), group.entries.len(), String::new());
    if let Some(e) = &group.error {
        result.reason = Some(e.clone());
        return Some(result);
    }
    let decided = decide(model, group, budget, limits, max_steps, prepassed);
    let (longest, state, window, stuck) = match decided {
        Decided::OutOfSteps => return None,
        Decided::Impossible(imp) => {
            return Some(impossible_result(model, ops, group, limits, imp, started))
        }
        Decided::Panicked => {
            result.reason = Some("the model panicked".into());
            return Some(finished(result, started));
        }
        Decided::Valid => {
            result.valid = Validity::Valid;
            result.reason = None;
            return Some(finished(result, started));
        }
        Decided::Unknown(_) if budget.cancel.load(Ordering::Relaxed) => {
            result.reason = Some(STOPPED.into());
            return Some(finished(result, started));
        }
        Decided::Unknown(reason) => {
            result.reason = Some(format!(
                "{reason} after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            return Some(finished(result, started));
        }
        Decided::Illegal { longest, state } => (longest, Some(state), None, None),
        Decided::Window {
            longest,
            window,
            stuck,
            relaxer,
        } => (longest, None, Some((window, relaxer)), stuck),
    };
    result.valid = Validity::Invalid;
    result.reason = None;
    result.counterexample = Some(counterexample(
        model, ops, group, limits, budget, longest, state, window, stuck,
    ));
    Some(finished(result, started))
}

fn finished(mut result: KeyResult, started: Instant) -> KeyResult {
    result.duration_ms = ms(started.elapsed());
    result
}

/// The counterexample of an invalid key: its core (found from where the search got stuck,
/// or from the `window` that decided it), shrunk within the shrinking budget, explained.
/// `stuck`: the op that decided it, when not the one the search could not place.
#[allow(clippy::too_many_arguments)]
fn counterexample<M: Model>(
    model: &M,
    ops: &[Op],
    group: &Group<M::Op>,
    limits: &Limits,
    budget: &Budget,
    longest: Vec<u32>,
    state: Option<M::State>,
    window: Option<(Vec<u32>, Box<Relaxer<'_, M>>)>,
    stuck: Option<u32>,
) -> Counterexample {
    let refs: Vec<OpRef> = group.sources.iter().map(|&s| OpRef::new(ops, s)).collect();
    let stuck = stuck.or_else(|| search::stuck_op(&group.entries, &longest));
    let mut cx = Counterexample {
        ops: Vec::new(),
        minimal: false,
        relaxation: String::new(),
        stuck: stuck.map(|i| refs[i as usize].clone()),
        partial_linearization: longest.iter().map(|&i| refs[i as usize].clone()).collect(),
        state: state.map_or(serde_json::Value::Null, |s| model.state_json(&s)),
        explanation: String::new(),
    };
    if !limits.counterexamples {
        // Verdict only: the window that decided the key, if one did, unshrunk.
        cx.ops = window
            .map(|(w, _)| w)
            .unwrap_or_default()
            .iter()
            .map(|&i| refs[i as usize].clone())
            .collect();
        return cx;
    }
    let deadline = Instant::now() + limits.shrink_time_limit;
    let deadline = budget.deadline.map_or(deadline, |d| d.min(deadline));
    let (window, mut relaxer) = match window {
        Some((w, r)) => (Some(w), *r),
        None => (
            None,
            Relaxer::new(model, &group.entries, limits.memory_limit_bytes, true),
        ),
    };
    let mut core = match window {
        Some(set) => Some(relaxer.shrunk(set, stuck, deadline)),
        None => relaxer.core(&longest, deadline),
    };
    if core.is_none() && relaxer.summarises() {
        relaxer = Relaxer::new(model, &group.entries, limits.memory_limit_bytes, false);
        core = relaxer.core(&longest, deadline);
    }
    let Some(core) = core else {
        cx.explanation = format!(
            "No set of ops smaller than the whole key was shown non-linearizable within the {:.0} ms shrinking budget. The search could not place {} after {} ops.",
            ms(limits.shrink_time_limit),
            cx.stuck.as_ref().map_or("any op".into(), |o| format!("[{}]", o.describe())),
            longest.len()
        );
        return cx;
    };
    cx.ops = core.ops.iter().map(|&i| refs[i as usize].clone()).collect();
    cx.minimal = core.minimal;
    let e = explain::explain(
        model,
        &group.entries,
        &refs,
        &mut relaxer,
        &core,
        limits.memory_limit_bytes,
    );
    cx.explanation = e.text;
    cx.relaxation = e.relaxation;
    cx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{parse, Format};
    use crate::model::{Convention, RegisterModel, Val};

    /// A long, concurrent single-key history (too hard to search within the limit given)
    /// with one read of a value no write of the key could produce appended.
    fn hard_key_with_an_impossible_read() -> (Vec<Op>, u64) {
        let mut h = crate::generate::register_history(&crate::generate::Params {
            seed: 3,
            ops: 4000,
            keys: 1,
            processes: 60,
            info_fraction: 0.05,
            fail_fraction: 0.05,
            // Few values, so the states the key's ops produce are few enough to list.
            values: 20,
            corrupt: 0.0,
        });
        let last = h.last().map_or(0, |o| o.time);
        let read_index = h.len() as u64;
        for (k, kind, value) in [
            (0, crate::history::OpType::Invoke, serde_json::Value::Null),
            (1, crate::history::OpType::Ok, serde_json::json!(-5)),
        ] {
            h.push(Op {
                index: h.len() as u64,
                time: last + 1 + k,
                kind,
                process: crate::history::Process::Client(9_999),
                f: "read".into(),
                key: None,
                value,
                node: None,
                error: None,
            });
        }
        (h, read_index)
    }

    #[test]
    fn a_read_of_a_value_never_written_is_a_one_op_core_whatever_the_rest_costs() {
        let (h, read_index) = hard_key_with_an_impossible_read();
        let model = RegisterModel::new(true, Convention::Faultline, Val::Null);
        for exhaustive in [false, true] {
            // A budget in which the key's search could not decide anything.
            let limits = Limits {
                time_limit: Some(Duration::from_millis(1)),
                memory_limit_bytes: 1024 * 1024,
                exhaustive,
                ..Limits::default()
            };
            let result = check_linearizable(&model, &h, &limits);
            assert_eq!(result.valid, Validity::Invalid, "{:?}", result.keys);
            let cx = result.keys[0]
                .counterexample
                .as_ref()
                .expect("counterexample");
            assert_eq!(cx.ops.len(), 1, "{cx:?}");
            assert_eq!(cx.ops[0].invoke_index, read_index);
            assert!(cx.minimal);
            assert_eq!(cx.stuck.as_ref().map(|s| s.invoke_index), Some(read_index));
            assert!(cx.explanation.contains("it read -5"), "{}", cx.explanation);
        }
        // Without the impossible read the history is not invalid: the read alone made it so.
        let without: Vec<Op> = h[..h.len() - 2].to_vec();
        let limits = Limits {
            time_limit: Some(Duration::from_millis(1)),
            memory_limit_bytes: 1024 * 1024,
            ..Limits::default()
        };
        assert_ne!(
            check_linearizable(&model, &without, &limits).valid,
            Validity::Invalid
        );
    }

    #[test]
    fn a_stale_read_in_a_hard_key_is_a_two_op_core() {
        // Many processes and unique values: a search that must exhaust the orders of the
        // concurrent writes nobody reads before it gets to the planted read.
        let mut h = crate::generate::register_history(&crate::generate::Params {
            seed: 9,
            ops: 5000,
            keys: 1,
            processes: 70,
            info_fraction: 0.05,
            fail_fraction: 0.05,
            values: 1_000_000,
            corrupt: 0.0,
        });
        let ok = |o: &Op, f: &str| o.kind == crate::history::OpType::Ok && o.f == f;
        let read = (0..h.len())
            .rev()
            .find(|&i| ok(&h[i], "read") && !h[i].value.is_null())
            .unwrap();
        let old = (0..read - h.len() / 4)
            .rev()
            .find(|&i| ok(&h[i], "write") && h[i].value != h[read].value)
            .unwrap();
        h[read].value = h[old].value.clone();
        let model = RegisterModel::new(true, Convention::Faultline, Val::Null);
        let limits = Limits {
            exhaustive: false,
            ..Limits::default()
        };
        let result = check_linearizable(&model, &h, &limits);
        assert_eq!(result.valid, Validity::Invalid, "{:?}", result.keys);
        let cx = result.keys[0].counterexample.as_ref().unwrap();
        assert_eq!(cx.ops.len(), 2, "{cx:?}");
        assert!(cx.minimal);
        let stuck = cx.stuck.as_ref().unwrap();
        assert_eq!(stuck.complete_index, Some(h[read].index), "{cx:?}");
        assert!(cx
            .ops
            .iter()
            .any(|o| o.complete_index == Some(h[read].index)));
        // Without the planted read the same key is not invalid.
        let model_ok = check_linearizable(
            &model,
            &crate::generate::register_history(&crate::generate::Params {
                seed: 9,
                ops: 5000,
                keys: 1,
                processes: 70,
                info_fraction: 0.05,
                fail_fraction: 0.05,
                values: 1_000_000,
                corrupt: 0.0,
            }),
            &Limits {
                time_limit: Some(Duration::from_millis(500)),
                ..limits
            },
        );
        assert_ne!(model_ok.valid, Validity::Invalid);
    }

    #[test]
    fn a_read_only_an_info_cas_could_serve_is_fenced_through_it() {
        // The read of 3 needs the pending cas 2→3, so the state 2 just before it; write 5
        // ran after the only write of 2 completed and before the read began.
        let lines = |with_fence: bool| {
            let mut ev = vec![
                (1, "invoke", "write", "1"),
                (1, "ok", "write", "1"),
                (2, "invoke", "cas", "[2,3]"),
                (3, "invoke", "write", "2"),
                (3, "ok", "write", "2"),
            ];
            if with_fence {
                ev.push((4, "invoke", "write", "5"));
                ev.push((4, "ok", "write", "5"));
            }
            ev.push((5, "invoke", "read", "null"));
            ev.push((5, "ok", "read", "3"));
            ev.iter()
                .enumerate()
                .map(|(i, (p, t, f, v))| {
                    format!(
                        r#"{{"index":{i},"time":{i},"type":"{t}","process":{p},"f":"{f}","value":{v}}}"#
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let model = RegisterModel::new(true, Convention::Faultline, Val::Null);
        let ops = parse(&lines(true), Format::Jsonl, "h.jsonl").unwrap();
        assert_eq!(fenced_core(&model, &ops), Some(vec![5, 7]));
        let ops = parse(&lines(false), Format::Jsonl, "h.jsonl").unwrap();
        assert_eq!(fenced_core(&model, &ops), None);
    }

    #[test]
    fn a_time_limit_past_the_clocks_range_is_no_limit() {
        let text = concat!(
            r#"{"index":0,"time":1,"type":"invoke","process":0,"f":"write","value":1}"#,
            "\n",
            r#"{"index":1,"time":2,"type":"ok","process":0,"f":"write","value":1}"#,
            "\n",
        );
        let ops = parse(text, Format::Jsonl, "h.jsonl").unwrap();
        let limits = Limits {
            time_limit: Some(Duration::MAX),
            ..Limits::default()
        };
        let result = check_linearizable(
            &RegisterModel::new(
                false,
                Convention::Faultline,
                (&serde_json::Value::Null).into(),
            ),
            &ops,
            &limits,
        );
        assert_eq!(result.valid, Validity::Valid, "{:?}", result.keys);
    }
}
