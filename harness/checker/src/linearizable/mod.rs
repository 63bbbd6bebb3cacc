//! The linearizability checker: splits a history by key, runs the search on every key in
//! parallel under shared time and memory limits, and explains each invalid key.

mod explain;
pub(crate) mod search;

use crate::history::{pair_operations, Key, Op, Operation};
use crate::model::{Model, Prepared};
use crate::results::{Counterexample, KeyResult, LinearizableResult, OpRef};
use crate::verdict::Validity;
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
    /// Wall time for shrinking each invalid key's counterexample.
    pub shrink_time_limit: Duration,
    /// Build counterexamples for invalid keys (shrinking and explanation); off, an invalid
    /// key only gets the longest partial linearization and its state.
    pub counterexamples: bool,
    /// Decide every key even after one is found non-linearizable. Off (the default, as in
    /// Porcupine), the check stops at the first invalid key and keys not decided by then
    /// are `unknown` — the verdict is `false` either way.
    pub exhaustive: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_limit: Some(Duration::from_secs(60)),
            memory_limit_bytes: 2048 * 1024 * 1024,
            threads: None,
            shrink_time_limit: Duration::from_secs(2),
            counterexamples: true,
            exhaustive: false,
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
    let mut by_key: std::collections::BTreeMap<Option<Key>, Group<M::Op>> = Default::default();
    for &pair in pairs {
        let inv = &ops[pair.invoke];
        let key = if model.by_key() {
            inv.key.clone()
        } else {
            None
        };
        let group = by_key.entry(key.clone()).or_insert_with(|| Group {
            key,
            entries: Vec::new(),
            sources: Vec::new(),
            error: None,
        });
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
    by_key.into_values().collect()
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

/// Checks `ops` (a whole history, nemesis events included) for linearizability under
/// `model`, one search per key, in parallel.
pub fn check_linearizable<M: Model>(model: &M, ops: &[Op], limits: &Limits) -> LinearizableResult {
    let started = Instant::now();
    // An empty history most likely means the test never ran: nothing was shown to hold.
    let pairs = match pair_operations(ops) {
        Ok(_) if ops.is_empty() => Err("the history is empty: nothing to check".to_string()),
        other => other,
    };
    let pairs = match pairs {
        Ok(p) => p,
        Err(e) if ops.is_empty() => {
            return LinearizableResult {
                model: model.name(),
                valid: Validity::Unknown,
                duration_ms: ms(started.elapsed()),
                keys: vec![KeyResult {
                    key: None,
                    valid: Validity::Unknown,
                    ops: 0,
                    duration_ms: 0.0,
                    reason: Some(e),
                    counterexample: None,
                }],
            }
        }
        Err(e) => {
            return LinearizableResult {
                model: model.name(),
                valid: Validity::Unknown,
                duration_ms: ms(started.elapsed()),
                keys: vec![KeyResult {
                    key: None,
                    valid: Validity::Unknown,
                    ops: 0,
                    duration_ms: 0.0,
                    reason: Some(format!("malformed history: {e}")),
                    counterexample: None,
                }],
            }
        }
    };
    let groups = group_history(model, ops, &pairs);
    let budget = Budget::new(
        limits.memory_limit_bytes,
        // A limit past what the clock can represent (`--time-limit 1e19`) is no limit.
        limits.time_limit.and_then(|t| started.checked_add(t)),
    );

    // Biggest keys first, so one large key does not start last and run alone.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(groups[g].entries.len()));
    // A small history is checked on the calling thread alone: starting and joining a
    // thread costs more than its keys take (kv c01: 0.04 ms alone, 0.5 ms with a helper
    // on the busy development machine).
    let total_ops: usize = groups.iter().map(|g| g.entries.len()).sum();
    let threads = limits
        .threads
        .unwrap_or_else(|| {
            if total_ops < PARALLEL_MIN_OPS {
                1
            } else {
                cores()
            }
        })
        .clamp(1, groups.len().max(1));
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
    let results: Mutex<Vec<Option<KeyResult>>> = Mutex::new(vec![None; groups.len()]);
    let deferred: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let run_pass = |order: &[usize], max_steps: u64| {
        let next = AtomicUsize::new(0);
        let work = || loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&g) = order.get(k) else { break };
            let r = if budget.cancel.load(Ordering::Relaxed) {
                KeyResult {
                    key: groups[g].key.clone(),
                    valid: Validity::Unknown,
                    ops: groups[g].entries.len(),
                    duration_ms: 0.0,
                    reason: Some(STOPPED.into()),
                    counterexample: None,
                }
            } else {
                match check_group(model, ops, &groups[g], &budget, limits, max_steps) {
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
        // The calling thread is one of the workers.
        let helpers = threads.min(order.len()).saturating_sub(1);
        if helpers == 0 {
            work();
        } else {
            std::thread::scope(|scope| {
                for _ in 0..helpers {
                    scope.spawn(work);
                }
                work();
            });
        }
    };
    run_pass(&order, first_pass);
    let mut again = std::mem::take(&mut *deferred.lock().unwrap_or_else(|e| e.into_inner()));
    again.sort_by_key(|&g| std::cmp::Reverse(groups[g].entries.len()));
    run_pass(&again, u64::MAX);
    let keys: Vec<KeyResult> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let valid = keys
        .iter()
        .fold(Validity::Valid, |acc, k| acc.combine(k.valid));
    LinearizableResult {
        model: model.name(),
        valid,
        duration_ms: ms(started.elapsed()),
        keys,
    }
}

/// Below this many ops (all keys together) a check runs on one thread.
const PARALLEL_MIN_OPS: usize = 1000;

/// Steps each key gets in the first pass when there are more keys than threads: about
/// 10–30 ms of search, more than any key of the bench data that has a verdict needs.
const FIRST_PASS_STEPS: u64 = 1 << 16;

/// Decides one key; `None` when `max_steps` ran out first.
fn check_group<M: Model>(
    model: &M,
    ops: &[Op],
    group: &Group<M::Op>,
    budget: &Budget,
    limits: &Limits,
    max_steps: u64,
) -> Option<KeyResult> {
    let started = Instant::now();
    let mut result = KeyResult {
        key: group.key.clone(),
        valid: Validity::Unknown,
        ops: group.entries.len(),
        duration_ms: 0.0,
        reason: None,
        counterexample: None,
    };
    if let Some(e) = &group.error {
        result.reason = Some(e.clone());
        return Some(result);
    }
    let all: Vec<search::View<'_, M::Op>> = group.entries.iter().map(Entry::view).collect();
    // A panicking user model must give `unknown`, not take the whole check down.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        search::search_steps(model, &all, budget, max_steps)
    }));
    match outcome {
        Err(_) => result.reason = Some("the model panicked".into()),
        Ok(Outcome::OutOfSteps) => return None,
        Ok(Outcome::Linearizable) => result.valid = Validity::Valid,
        Ok(Outcome::Unknown(_)) if budget.cancel.load(Ordering::Relaxed) => {
            result.reason = Some(STOPPED.into())
        }
        Ok(Outcome::Unknown(reason)) => {
            result.reason = Some(format!(
                "{reason} after {:.1} s",
                started.elapsed().as_secs_f64()
            ))
        }
        Ok(Outcome::Illegal { longest, state }) => {
            result.valid = Validity::Invalid;
            let shrink_deadline = Instant::now() + limits.shrink_time_limit;
            let refs: Vec<OpRef> = group.sources.iter().map(|&s| OpRef::new(ops, s)).collect();
            let (minimal, text) = if limits.counterexamples {
                let minimal = explain::shrink(model, &group.entries, budget, shrink_deadline);
                let text = explain::explain(model, &group.entries, &refs, &minimal, budget);
                (minimal.ops, text)
            } else {
                (Vec::new(), String::new())
            };
            result.counterexample = Some(Counterexample {
                ops: minimal.iter().map(|&i| refs[i as usize].clone()).collect(),
                partial_linearization: longest.iter().map(|&i| refs[i as usize].clone()).collect(),
                state: model.state_json(&state),
                explanation: text,
            });
        }
    }
    result.duration_ms = ms(started.elapsed());
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{parse, Format};
    use crate::model::{Convention, RegisterModel};

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
