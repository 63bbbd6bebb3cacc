//! The seeded generator: which operation each client issues next, on which key, and when.

use faultline_checker::history::Key;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// One operation a client is asked to perform.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub f: &'static str,
    pub key: Option<Key>,
    /// What the history records at invoke: the written value, `[expected, new]` for a
    /// cas, `null` for a read.
    pub value: Value,
}

/// Where an operation is asked for: which process and worker, how far the run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenContext {
    /// The process that will perform it (a retired process's worker continues under a
    /// fresh one, DESIGN §2).
    pub process: u64,
    /// The worker (0..concurrency), stable across processes.
    pub worker: usize,
    /// Time since the workload started.
    pub elapsed: Duration,
    /// `true` in the final phase (after the faults were healed).
    pub final_phase: bool,
}

/// What a workload generates: the next operation on a key, and the final-phase
/// operation (e.g. a read) for every key that was used. A generator is shared by every
/// worker; one that keeps state (e.g. what each worker holds) keeps it per worker.
pub trait OpGenerator: Send + Sync {
    /// The next operation on `key`, chosen with the worker's own seeded rng.
    fn next_op(&self, key: &Key, rng: &mut ChaCha8Rng) -> Invocation;
    /// The operation issued once per used key after the faults are healed, if any.
    fn final_op(&self, key: &Key) -> Option<Invocation>;
    /// As [`OpGenerator::next_op`], seeing where it is asked (process, worker, elapsed
    /// time). The workers call this one; override it to use the context.
    fn next_op_in(&self, _cx: &GenContext, key: &Key, rng: &mut ChaCha8Rng) -> Invocation {
        self.next_op(key, rng)
    }
    /// Sees how each of its operations ended, before the worker asks for its next one
    /// (e.g. to react to a failed acquire, or to stop writing a key that timed out).
    fn completed(&self, _cx: &GenContext, _op: &Invocation, _done: &crate::client::Completion) {}
}

/// The rng of one client worker: derived from the run's seed and the worker's number,
/// so each worker's sequence of choices reproduces from the seed alone.
pub fn worker_rng(seed: u64, worker: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(worker as u64 + 1);
    rng
}

/// Independent keys, as Jepsen's independent tests do: workers are split into groups
/// of `workers_per_key`; each group works on one key until `ops_per_key` operations were
/// issued on it, then moves to a fresh key. Keeping each key's history short keeps the
/// linearizability check of each key fast.
#[derive(Debug)]
pub struct KeyPlan {
    workers_per_key: usize,
    ops_per_key: u64,
    groups: usize,
    issued: Vec<AtomicU64>,
}

impl KeyPlan {
    pub fn new(concurrency: usize, workers_per_key: usize, ops_per_key: u64) -> KeyPlan {
        let workers_per_key = workers_per_key.max(1);
        let groups = concurrency.max(1).div_ceil(workers_per_key);
        KeyPlan {
            workers_per_key,
            ops_per_key: ops_per_key.max(1),
            groups,
            issued: (0..groups).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn group_of(&self, worker: usize) -> usize {
        (worker / self.workers_per_key).min(self.groups - 1)
    }

    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The group that works on `key` (keys outside the plan go to group 0).
    pub fn group_of_key(&self, key: &Key) -> usize {
        match key {
            Key::Int(k) if *k >= 0 => (*k as u64 % self.groups as u64) as usize,
            _ => 0,
        }
    }

    /// The key for the next operation of `worker`'s group; every call counts one op.
    pub fn next_key(&self, worker: usize) -> Key {
        let group = self.group_of(worker);
        let n = self.issued[group].fetch_add(1, Ordering::Relaxed);
        Key::Int((group as u64 + self.groups as u64 * (n / self.ops_per_key)) as i64)
    }

    /// Every key handed out so far, in ascending order.
    pub fn used_keys(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        for (group, issued) in self.issued.iter().enumerate() {
            let n = issued.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            for round in 0..n.div_ceil(self.ops_per_key) {
                keys.push((group as u64 + self.groups as u64 * round) as i64);
            }
        }
        keys.sort_unstable();
        keys.into_iter().map(Key::Int).collect()
    }
}

/// Paces one worker so that all workers together issue `rate` ops/s on average: the gap
/// between two ops of a worker is uniform in [0, 2·concurrency/rate), as Jepsen's stagger.
#[derive(Debug)]
pub struct Pacer {
    mean_gap: Option<Duration>,
    next_due: Instant,
}

impl Pacer {
    /// `rate` is the total target over all `concurrency` workers; `None` means as fast as
    /// the clients go.
    pub fn new(rate: Option<f64>, concurrency: usize, now: Instant) -> Pacer {
        let mean_gap = rate
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Duration::from_secs_f64(concurrency.max(1) as f64 / r));
        Pacer {
            mean_gap,
            next_due: now,
        }
    }

    /// When the next op may start. A worker that fell behind (slow ops) starts at once
    /// but does not burst to catch up, so a recovering cluster is not flooded.
    pub fn next(&mut self, rng: &mut ChaCha8Rng, now: Instant) -> Instant {
        let Some(mean) = self.mean_gap else {
            return now;
        };
        if self.next_due + mean < now {
            self.next_due = now;
        }
        self.next_due += mean.mul_f64(rng.random_range(0.0..2.0));
        self.next_due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_move_to_fresh_keys_after_their_quota() {
        let plan = KeyPlan::new(6, 3, 2);
        // Group 0 = workers 0..3 starts on key 0, group 1 = workers 3..6 on key 1.
        assert_eq!(plan.next_key(0), Key::Int(0));
        assert_eq!(plan.next_key(1), Key::Int(0));
        assert_eq!(plan.next_key(2), Key::Int(2));
        assert_eq!(plan.next_key(4), Key::Int(1));
        assert_eq!(plan.next_key(0), Key::Int(2));
        assert_eq!(plan.next_key(0), Key::Int(4));
        assert_eq!(
            plan.used_keys(),
            vec![Key::Int(0), Key::Int(1), Key::Int(2), Key::Int(4)]
        );
    }

    #[test]
    fn a_partial_group_shares_the_last_key() {
        let plan = KeyPlan::new(5, 2, 100);
        assert_eq!(plan.group_of(4), 2);
        assert_eq!(plan.next_key(4), Key::Int(2));
    }

    #[test]
    fn the_same_seed_gives_the_same_choices_and_workers_differ() {
        let mut rng = worker_rng(42, 3);
        let b: Vec<u32> = (0..8).map(|_| rng.random()).collect();
        let mut other = worker_rng(42, 4);
        let c: Vec<u32> = (0..8).map(|_| other.random()).collect();
        let mut rng_a = worker_rng(42, 3);
        let again: Vec<u32> = (0..8).map(|_| rng_a.random()).collect();
        assert_eq!(b, again);
        assert_ne!(b, c);
    }

    #[test]
    fn the_pacer_averages_the_target_rate() {
        // 4 workers at 400 ops/s in all: 100 ops/s each, a mean gap of 10 ms.
        let start = Instant::now();
        let mut pacer = Pacer::new(Some(400.0), 4, start);
        let mut rng = worker_rng(1, 0);
        let mut due = start;
        for _ in 0..10_000 {
            due = pacer.next(&mut rng, due);
        }
        let per_op = (due - start).as_secs_f64() / 10_000.0;
        assert!((per_op - 0.010).abs() < 0.0005, "mean gap {per_op}");
        assert!(Pacer::new(None, 4, start).next(&mut rng, start) == start);
    }
}
