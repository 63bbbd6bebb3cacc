//! Seeded generators of register histories, for the differential tests and the benchmark.
//!
//! The generator simulates clients of a linearizable register store: each op takes effect
//! at one moment between its invoke and its completion, so the history it writes is
//! linearizable unless `corrupt` asks for a wrong read. Ops may `fail` (no effect) or end in
//! `info` (took effect or not, unknown to the client, which then continues as a fresh
//! process, as DESIGN §2 says).

use crate::history::{Key, Op, OpType, Process};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Params {
    pub seed: u64,
    /// Invocations in all.
    pub ops: usize,
    /// Keys ops are spread over (uniformly); 1 for a single register with no key.
    pub keys: usize,
    /// Concurrent clients.
    pub processes: usize,
    /// Share of ops that end in `info`.
    pub info_fraction: f64,
    /// Share of ops that `fail` (and so had no effect).
    pub fail_fraction: f64,
    /// Values are drawn from `0..values`.
    pub values: i64,
    /// Chance that one `ok` read reports a value it could not have read.
    pub corrupt: f64,
}

impl Params {
    /// The large benchmark history: 1,000,000 ops over 1,000 keys, 20 processes, 5% info.
    pub fn big(seed: u64) -> Self {
        Params {
            seed,
            ops: 1_000_000,
            keys: 1_000,
            processes: 20,
            info_fraction: 0.05,
            fail_fraction: 0.0,
            values: 10,
            corrupt: 0.0,
        }
    }
}

#[derive(Clone)]
enum Phase {
    Idle,
    /// Invoked: key slot, f, value; not yet applied.
    Invoked(usize, &'static str, Value),
    /// Applied: what the completion will say.
    Applied(usize, &'static str, Value, OpType),
}

/// Generates a cas-register history (read/write/cas) as `Params` says.
pub fn register_history(p: &Params) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut state: Vec<Value> = vec![Value::Null; p.keys.max(1)];
    let mut clients: Vec<(u64, Phase)> = (0..p.processes.max(1) as u64)
        .map(|i| (i, Phase::Idle))
        .collect();
    let mut next_process = clients.len() as u64;
    let mut out: Vec<Op> = Vec::with_capacity(p.ops * 2);
    let mut invoked = 0;
    let mut busy = 0;
    let mut time: u64 = 0;
    let corrupt_at = if rng.random_bool(p.corrupt.clamp(0.0, 1.0)) {
        Some(rng.random_range(0..p.ops.max(1)))
    } else {
        None
    };
    let mut reads_seen = 0usize;
    while invoked < p.ops || busy > 0 {
        let c = rng.random_range(0..clients.len());
        let (process, phase) = clients[c].clone();
        let keyed = p.keys > 1;
        let tick = rng.random_range(1..1000u64);
        let mut emit = |kind, f: &str, slot: usize, value: Value, out: &mut Vec<Op>| {
            time += tick;
            out.push(Op {
                index: out.len() as u64,
                time,
                kind,
                process: Process::Client(process),
                f: f.to_string(),
                key: keyed.then_some(Key::Int(slot as i64)),
                value,
                node: None,
                error: None,
            });
        };
        match phase {
            Phase::Idle => {
                if invoked >= p.ops {
                    continue;
                }
                let slot = rng.random_range(0..state.len());
                let roll = rng.random_range(0..10);
                let a = rng.random_range(0..p.values.max(1));
                let b = rng.random_range(0..p.values.max(1));
                let (f, value) = match roll {
                    0..=4 => ("read", Value::Null),
                    5..=7 => ("write", json!(a)),
                    _ => ("cas", json!([a, b])),
                };
                emit(OpType::Invoke, f, slot, value.clone(), &mut out);
                clients[c].1 = Phase::Invoked(slot, f, value);
                invoked += 1;
                busy += 1;
            }
            Phase::Invoked(slot, f, value) => {
                let lost = rng.random_bool(p.info_fraction.clamp(0.0, 1.0));
                let failed = !lost && rng.random_bool(p.fail_fraction.clamp(0.0, 1.0));
                let takes_effect = !failed && (!lost || rng.random_bool(0.5));
                let mut result = value.clone();
                let mut kind = OpType::Ok;
                if takes_effect {
                    match f {
                        "read" => result = state[slot].clone(),
                        "write" => state[slot] = value.clone(),
                        _ => {
                            if state[slot] == value[0] {
                                state[slot] = value[1].clone();
                            } else {
                                kind = OpType::Fail;
                            }
                        }
                    }
                }
                if failed {
                    kind = OpType::Fail;
                }
                if lost {
                    let v = if f == "read" { Value::Null } else { value };
                    emit(OpType::Info, f, slot, v, &mut out);
                    clients[c] = (next_process, Phase::Idle);
                    next_process += 1;
                    busy -= 1;
                } else {
                    clients[c].1 = Phase::Applied(slot, f, result, kind);
                }
            }
            Phase::Applied(slot, f, mut value, kind) => {
                if f == "read" && kind == OpType::Ok {
                    if corrupt_at.is_some_and(|at| reads_seen >= at % (p.ops / 2).max(1)) {
                        value = json!(p.values + 1);
                    }
                    reads_seen += 1;
                }
                emit(kind, f, slot, value, &mut out);
                clients[c].1 = Phase::Idle;
                busy -= 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_history() {
        let p = Params {
            ops: 200,
            keys: 3,
            processes: 4,
            fail_fraction: 0.1,
            ..Params::big(7)
        };
        let a = register_history(&p);
        assert_eq!(a, register_history(&p));
        assert_ne!(
            a,
            register_history(&Params {
                seed: 8,
                ..p.clone()
            })
        );
        let invokes = a.iter().filter(|o| o.kind == OpType::Invoke).count();
        assert_eq!(invokes, 200);
        assert_eq!(a.len(), 400, "every invoke completes");
    }
}
