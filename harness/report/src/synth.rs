//! Seeded synthetic runs (register and lock workloads, with or without a planted bug, with or
//! without an HTML/JS payload in their values) for the report's tests, benchmark and demos.
//! The histories are made by simulation, so a valid one is valid by construction and a
//! planted bug is a real violation, with the counterexample a checker would report.

use crate::run::{HISTORY_JSONL, LOG_FILE, NODES_DIR, RESULTS_JSON, TEST_JSON};
use anyhow::Context;
use faultline_checker::history::{Key, Op, OpType, Process};
use faultline_checker::stats::compute as history_stats;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// A synthetic run: the three files a run folder holds.
#[derive(Debug, Clone)]
pub struct SynthRun {
    pub test: Value,
    pub history: Vec<Op>,
    pub results: Value,
}

/// A register workload: reads, writes and cas on a few keys.
#[derive(Debug, Clone, Default)]
pub struct RegisterSpec {
    pub seed: u64,
    /// Client operations (each an invoke and, mostly, a completion).
    pub ops: usize,
    /// Concurrent clients; 0 means 5.
    pub concurrency: usize,
    /// Keys; 0 means 3.
    pub keys: usize,
    /// Plant a stale read on key `k0`, and report it as a counterexample.
    pub bug: bool,
    /// A string placed in the test name, a key, a value, a node, an error and a nemesis op.
    pub payload: Option<String>,
}

/// A lock workload: clients acquire, hold and release a few locks, with fencing tokens.
#[derive(Debug, Clone, Default)]
pub struct LockSpec {
    pub seed: u64,
    /// Acquire attempts.
    pub acquisitions: usize,
    /// Concurrent clients; 0 means 4.
    pub concurrency: usize,
    /// Locks; 0 means 2.
    pub locks: usize,
    /// Grant one acquire while another client holds the lock, and report the overlap.
    pub bug: bool,
}

const NODES: [&str; 3] = ["n1", "n2", "n3"];
const MS: u64 = 1_000_000;

/// One client op of the simulation, before it becomes two history events.
#[derive(Debug, Clone)]
struct SimOp {
    process: u64,
    key: Key,
    f: &'static str,
    invoke_time: u64,
    complete_time: Option<u64>,
    /// When it takes effect, within [invoke, complete].
    lin_time: u64,
    kind: OpType,
    invoke_value: Value,
    complete_value: Value,
    node: String,
    error: Option<String>,
}

/// Client slots: each runs one op at a time; a slot whose op ended in `info` continues
/// under a fresh process id (DESIGN §2).
struct Slots {
    free_at: Vec<u64>,
    process: Vec<u64>,
    next_process: u64,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            free_at: vec![0; n],
            process: (0..n as u64).collect(),
            next_process: n as u64,
        }
    }

    /// The slot that is free earliest.
    fn next(&self) -> usize {
        (0..self.free_at.len())
            .min_by_key(|&i| (self.free_at[i], i))
            .unwrap_or(0)
    }

    fn retire(&mut self, slot: usize) {
        self.process[slot] = self.next_process;
        self.next_process += 1;
    }
}

fn nemesis_ops(t_end: u64, payload: Option<&str>) -> Vec<(u64, OpType, &'static str, Value)> {
    let at = |f: f64| (t_end as f64 * f) as u64;
    let mut out = Vec::new();
    let mut fault = |start: f64, f: &'static str, value: Value| {
        out.push((at(start), OpType::Invoke, f, Value::Null));
        out.push((at(start) + 3 * MS, OpType::Info, f, value));
    };
    fault(
        0.15,
        "start-partition",
        json!({"n1": ["n3"], "n2": ["n3"], "n3": ["n1", "n2"]}),
    );
    fault(0.35, "stop-partition", json!("healed"));
    fault(0.45, "kill", json!({"node": "n2"}));
    fault(0.55, "restart", json!({"node": "n2"}));
    fault(0.65, "bump-clock", json!({"node": "n3", "offset_ms": 250}));
    fault(0.78, "reset-clock", json!({"node": "n3"}));
    let note = payload
        .map(|p| json!({"node": "n1", "note": p}))
        .unwrap_or(json!({"node": "n1"}));
    fault(0.85, "pause", note);
    fault(0.9, "resume", json!({"node": "n1"}));
    out
}

fn in_fault(t: u64, t_end: u64) -> bool {
    let f = t as f64 / t_end.max(1) as f64;
    (0.15..0.35).contains(&f) || (0.45..0.55).contains(&f) || (0.85..0.9).contains(&f)
}

/// Turns simulated ops and nemesis ops into history events in time order.
fn to_history(sim: &[SimOp], nemesis: Vec<(u64, OpType, &'static str, Value)>) -> Vec<Op> {
    let mut events: Vec<(u64, usize, Op)> = Vec::with_capacity(sim.len() * 2 + nemesis.len());
    let mut seq = 0;
    let mut push = |time: u64, op: Op| {
        events.push((time, seq, op));
        seq += 1;
    };
    for s in sim {
        push(
            s.invoke_time,
            Op {
                index: 0,
                time: s.invoke_time,
                kind: OpType::Invoke,
                process: Process::Client(s.process),
                f: s.f.to_string(),
                key: Some(s.key.clone()),
                value: s.invoke_value.clone(),
                node: Some(s.node.clone()),
                error: None,
            },
        );
        if let Some(t) = s.complete_time {
            push(
                t,
                Op {
                    index: 0,
                    time: t,
                    kind: s.kind,
                    process: Process::Client(s.process),
                    f: s.f.to_string(),
                    key: Some(s.key.clone()),
                    value: s.complete_value.clone(),
                    node: Some(s.node.clone()),
                    error: s.error.clone(),
                },
            );
        }
    }
    for (time, kind, f, value) in nemesis {
        push(
            time,
            Op {
                index: 0,
                time,
                kind,
                process: Process::Nemesis,
                f: f.to_string(),
                key: None,
                value,
                node: None,
                error: None,
            },
        );
    }
    events.sort_by_key(|(t, s, _)| (*t, *s));
    events
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, mut op))| {
            op.index = i as u64;
            op
        })
        .collect()
}

fn test_json(
    name: String,
    seed: u64,
    workload: &str,
    db: &str,
    bug: Value,
    clients: usize,
) -> Value {
    json!({
        "name": name, "faultline_version": env!("CARGO_PKG_VERSION"), "seed": seed,
        "db": db, "workload": workload, "bug": bug, "read_mode": "readindex",
        "nemesis": ["partition", "kill", "clock", "pause"], "nemesis_interval_s": 10,
        "nodes": NODES, "concurrency": clients, "rate": 100, "time_limit_s": 30,
        "start_time": "2026-11-26T07:00:00Z",
        "command": format!("faultline run --db {db} --workload {workload} --seed {seed}"),
    })
}

/// The index of the op in the finished history whose invoke (or completion) matches.
fn op_ref(history: &[Op], s: &SimOp) -> Value {
    let process = Process::Client(s.process);
    let inv = history
        .iter()
        .find(|o| o.process == process && o.time == s.invoke_time && o.kind == OpType::Invoke);
    let done = s.complete_time.and_then(|t| {
        history
            .iter()
            .find(|o| o.process == process && o.time == t && o.kind != OpType::Invoke)
    });
    let kind = match (done, s.kind) {
        (None, _) => "pending",
        (_, OpType::Ok) => "ok",
        (_, OpType::Fail) => "fail",
        _ => "info",
    };
    let value = if s.complete_value.is_null() {
        &s.invoke_value
    } else {
        &s.complete_value
    };
    json!({
        "process": s.process, "f": s.f, "key": s.key, "value": value, "type": kind,
        "invoke_index": inv.map(|o| o.index), "complete_index": done.map(|o| o.index),
        "invoke_time": s.invoke_time, "complete_time": s.complete_time,
    })
}

/// A register run; see [`RegisterSpec`].
pub fn register_run(spec: &RegisterSpec) -> SynthRun {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let clients = if spec.concurrency == 0 {
        5
    } else {
        spec.concurrency
    };
    let nkeys = if spec.keys == 0 { 3 } else { spec.keys };
    let t_end_estimate = (spec.ops as u64 / clients as u64 + 1) * 6 * MS;
    let mut slots = Slots::new(clients);
    let mut sim: Vec<SimOp> = Vec::with_capacity(spec.ops);
    for _ in 0..spec.ops {
        let slot = slots.next();
        let t = slots.free_at[slot] + rng.random_range(200_000..2 * MS);
        let faulty = in_fault(t, t_end_estimate);
        let key = Key::Str(format!("k{}", rng.random_range(0..nkeys)));
        let f = match rng.random_range(0..10) {
            0..5 => "read",
            5..8 => "write",
            _ => "cas",
        };
        let mut latency = rng.random_range(MS / 2..4 * MS);
        if rng.random_bool(0.02) || faulty {
            latency += rng.random_range(0..if faulty { 60 * MS } else { 30 * MS });
        }
        let timed_out = rng.random_bool(if faulty { 0.05 } else { 0.005 });
        let (kind, complete) = if timed_out {
            (OpType::Info, t + 100 * MS)
        } else {
            (OpType::Ok, t + latency)
        };
        let lin = t + rng.random_range(0..=(complete - t));
        sim.push(SimOp {
            process: slots.process[slot],
            key,
            f,
            invoke_time: t,
            complete_time: Some(complete),
            lin_time: lin,
            kind,
            invoke_value: Value::Null,
            complete_value: Value::Null,
            node: NODES[rng.random_range(0..NODES.len())].to_string(),
            error: timed_out.then(|| "timeout".to_string()),
        });
        slots.free_at[slot] = complete;
        if timed_out {
            slots.retire(slot);
        }
    }
    // The last op of the first slot never completes: the history ends with it in flight.
    if let Some(last) = sim.iter_mut().rev().find(|s| s.process == slots.process[0]) {
        last.complete_time = None;
        last.kind = OpType::Info;
        last.error = None;
    }
    // Apply ops in linearization order; write values are unique per key, so a stale read
    // can be planted that no order explains.
    let mut order: Vec<usize> = (0..sim.len()).collect();
    order.sort_by_key(|&i| sim[i].lin_time);
    let mut state: std::collections::HashMap<Key, (Value, u64)> = Default::default();
    for i in order {
        let (cur, counter) = state.entry(sim[i].key.clone()).or_insert((Value::Null, 0));
        let s = &mut sim[i];
        let takes_effect = s.kind == OpType::Ok || rng.random_bool(0.5);
        match s.f {
            "read" => {
                if s.kind == OpType::Ok {
                    s.complete_value = cur.clone();
                }
            }
            "write" => {
                *counter += 1;
                s.invoke_value = json!(*counter);
                s.complete_value = s.invoke_value.clone();
                if takes_effect {
                    *cur = s.invoke_value.clone();
                }
            }
            _ => {
                *counter += 1;
                let expected = if rng.random_bool(0.6) {
                    cur.clone()
                } else {
                    json!(rng.random_range(0..*counter))
                };
                s.invoke_value = json!([expected, *counter]);
                s.complete_value = s.invoke_value.clone();
                let matches = *cur == expected;
                if s.kind == OpType::Ok && !matches {
                    s.kind = OpType::Fail;
                    s.error = Some("precondition failed".into());
                } else if matches && takes_effect {
                    *cur = json!(*counter);
                }
            }
        }
    }
    let mut bug_ops: Option<(usize, usize, usize, Value)> = None;
    if spec.bug {
        bug_ops = plant_stale_read(&mut sim);
    }
    let mut extra_key_ops = 0;
    if let Some(p) = &spec.payload {
        if let Some(s) = sim.iter_mut().find(|s| s.kind == OpType::Fail) {
            s.error = Some(format!("rejected {p}"));
        }
        if let Some(s) = sim.first_mut() {
            s.node = p.clone();
        }
        // A write of the payload itself, on a key named by it.
        let t = sim.last().map(|s| s.invoke_time).unwrap_or(0) + MS;
        sim.push(SimOp {
            process: slots.next_process,
            key: Key::Str(p.clone()),
            f: "write",
            invoke_time: t,
            complete_time: Some(t + MS),
            lin_time: t,
            kind: OpType::Ok,
            invoke_value: json!(p),
            complete_value: json!(p),
            node: "n1".into(),
            error: None,
        });
        extra_key_ops = 1;
    }
    let t_end = sim
        .iter()
        .filter_map(|s| s.complete_time)
        .max()
        .unwrap_or(0);
    let history = to_history(
        &sim,
        nemesis_ops(t_end.min(t_end_estimate), spec.payload.as_deref()),
    );
    let name = match &spec.payload {
        Some(p) => format!("register {p}"),
        None => "raft-register".to_string(),
    };
    let bug = match (&spec.payload, spec.bug) {
        (Some(p), _) => json!(p),
        (None, true) => json!("stale-follower-reads"),
        (None, false) => Value::Null,
    };
    let test = test_json(name, spec.seed, "register", "raft", bug, clients);
    let mut keys = Vec::new();
    for k in 0..nkeys {
        let key = Key::Str(format!("k{k}"));
        let n = sim.iter().filter(|s| s.key == key).count();
        let mut entry = json!({"key": key, "valid": true, "ops": n, "duration_ms": 1.5});
        if let (Some((w1, w2, r, state)), 0) = (&bug_ops, k) {
            let refs = |is: &[usize]| {
                is.iter()
                    .map(|&i| op_ref(&history, &sim[i]))
                    .collect::<Vec<_>>()
            };
            let (a, b, c) = (&sim[*w1], &sim[*w2], &sim[*r]);
            let explanation = format!(
                "process {} read {} at {:.1} ms, but process {} had written {} (done at {:.1} ms) and \
                 process {} then overwrote it with {} (done at {:.1} ms) before the read began at \
                 {:.1} ms; no other op writes {}, so no order of these ops explains the read: \
                 key k0 cannot be linearized",
                c.process, c.complete_value, c.complete_time.unwrap_or(0) as f64 / 1e6,
                a.process, a.invoke_value, a.complete_time.unwrap_or(0) as f64 / 1e6,
                b.process, b.invoke_value, b.complete_time.unwrap_or(0) as f64 / 1e6,
                c.invoke_time as f64 / 1e6, c.complete_value,
            );
            entry = json!({"key": key, "valid": false, "ops": n, "duration_ms": 4.2,
                "counterexample": {"ops": refs(&[*w1, *w2, *r]),
                    "partial_linearization": refs(&[*w1, *w2]), "state": state,
                    "explanation": explanation}});
        }
        keys.push(entry);
    }
    if let Some(p) = &spec.payload {
        keys.push(json!({"key": p, "valid": true, "ops": extra_key_ops, "duration_ms": 0.1}));
    }
    let valid = bug_ops.is_none();
    let results = json!({
        "valid": valid,
        "checkers": [{"name": "linearizable", "model": "cas-register", "valid": valid,
                      "duration_ms": 12.5, "keys": keys}],
        "stats": history_stats(&history),
    });
    SynthRun {
        test,
        history,
        results,
    }
}

/// Makes an ok read on `k0` return the value of a write that a later write had already
/// overwritten before the read began. Returns (first write, second write, read, the value
/// the read should have seen).
fn plant_stale_read(sim: &mut [SimOp]) -> Option<(usize, usize, usize, Value)> {
    let k0 = Key::Str("k0".into());
    let ok_writes: Vec<usize> = (0..sim.len())
        .filter(|&i| sim[i].key == k0 && sim[i].f == "write" && sim[i].kind == OpType::Ok)
        .collect();
    let reads: Vec<usize> = (sim.len() / 2..sim.len())
        .chain(0..sim.len() / 2)
        .filter(|&i| sim[i].key == k0 && sim[i].f == "read" && sim[i].kind == OpType::Ok)
        .collect();
    for r in reads {
        let read_start = sim[r].invoke_time;
        let done_before = |i: usize| sim[i].complete_time.is_some_and(|t| t < read_start);
        let Some(&w2) = ok_writes.iter().rev().find(|&&i| done_before(i)) else {
            continue;
        };
        let Some(&w1) = ok_writes.iter().rev().find(|&&i| {
            sim[i]
                .complete_time
                .is_some_and(|t| t < sim[w2].invoke_time)
        }) else {
            continue;
        };
        let seen = sim[r].complete_value.clone();
        sim[r].complete_value = sim[w1].invoke_value.clone();
        return Some((w1, w2, r, seen));
    }
    None
}

/// A lock run; see [`LockSpec`].
pub fn lock_run(spec: &LockSpec) -> SynthRun {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let clients = if spec.concurrency == 0 {
        4
    } else {
        spec.concurrency
    };
    let nlocks = if spec.locks == 0 { 2 } else { spec.locks };
    let mut slots = Slots::new(clients);
    let mut free_at = vec![0u64; nlocks];
    let mut token = 0u64;
    let mut sim = Vec::new();
    let mut holds: Vec<Vec<Value>> = vec![Vec::new(); nlocks];
    let mut violation: Option<(usize, Value, Value)> = None;
    let bug_at = spec.acquisitions / 2;
    for n in 0..spec.acquisitions {
        let slot = slots.next();
        let lock = rng.random_range(0..nlocks);
        let key = Key::Str(format!("lock-{lock}"));
        let t = slots.free_at[slot] + rng.random_range(MS..5 * MS);
        let process = slots.process[slot];
        let node = NODES[rng.random_range(0..NODES.len())].to_string();
        let planted = spec.bug && violation.is_none() && n >= bug_at && free_at[lock] > t + MS;
        let grant = if planted {
            t + MS
        } else {
            free_at[lock].max(t) + rng.random_range(MS / 2..2 * MS)
        };
        let mut op = |f: &'static str,
                      inv: u64,
                      done: u64,
                      kind: OpType,
                      value: Value,
                      error: Option<&str>| {
            sim.push(SimOp {
                process,
                key: key.clone(),
                f,
                invoke_time: inv,
                complete_time: Some(done),
                lin_time: inv,
                kind,
                invoke_value: Value::Null,
                complete_value: value,
                node: node.clone(),
                error: error.map(str::to_string),
            });
        };
        if grant > t + 60 * MS {
            op(
                "acquire",
                t,
                t + 60 * MS,
                OpType::Fail,
                Value::Null,
                Some("lock busy"),
            );
            slots.free_at[slot] = t + 60 * MS;
            continue;
        }
        token += 1;
        op(
            "acquire",
            t,
            grant,
            OpType::Ok,
            json!({"token": token, "lease_ms": 5000}),
            None,
        );
        let release = grant + rng.random_range(2 * MS..15 * MS);
        let released = release + rng.random_range(MS / 2..MS);
        op("release", release, released, OpType::Ok, Value::Null, None);
        let hold = json!({"process": process, "start": grant, "end": released, "token": token,
                          "certain": true});
        if planted {
            let other = holds[lock].last().cloned().unwrap_or(Value::Null);
            // The earlier grant first, so the explanation reads in time order.
            violation = Some(if other["start"].as_u64() <= hold["start"].as_u64() {
                (lock, other, hold.clone())
            } else {
                (lock, hold.clone(), other)
            });
        }
        holds[lock].push(hold);
        free_at[lock] = free_at[lock].max(released);
        slots.free_at[slot] = released;
    }
    let t_end = sim
        .iter()
        .filter_map(|s| s.complete_time)
        .max()
        .unwrap_or(0);
    let history = to_history(&sim, nemesis_ops(t_end, None));
    let locks: Vec<Value> = (0..nlocks)
        .map(|l| {
            let violations: Vec<Value> = match &violation {
                Some((vl, a, b)) if *vl == l => vec![json!({
                    "kind": "overlap", "holds": [a, b],
                    "explanation": format!(
                        "process {} acquired lock-{l} (token {}) at {:.1} ms while process {} \
                         still held it (token {}, released at {:.1} ms): two holders at once",
                        b["process"], b["token"], b["start"].as_u64().unwrap_or(0) as f64 / 1e6,
                        a["process"], a["token"], a["end"].as_u64().unwrap_or(0) as f64 / 1e6)
                })],
                _ => vec![],
            };
            json!({"key": format!("lock-{l}"), "valid": violations.is_empty(),
                   "holds": holds[l], "violations": violations})
        })
        .collect();
    let valid = violation.is_none();
    let results = json!({
        "valid": valid,
        "checkers": [{"name": "mutex", "valid": valid, "duration_ms": 3.0, "locks": locks}],
        "stats": history_stats(&history),
    });
    let bug = if spec.bug {
        json!("ttl-without-fencing")
    } else {
        Value::Null
    };
    let test = test_json(
        "redis-lock".into(),
        spec.seed,
        "lock",
        "redis-lock",
        bug,
        clients,
    );
    SynthRun {
        test,
        history,
        results,
    }
}

/// Writes a synthetic run into a run folder, with node and controller logs, as a real run
/// leaves it (report.html aside).
pub fn write_run(dir: &Path, run: &SynthRun) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join(TEST_JSON), serde_json::to_vec_pretty(&run.test)?)?;
    std::fs::write(
        dir.join(RESULTS_JSON),
        serde_json::to_vec_pretty(&run.results)?,
    )?;
    let mut h = std::io::BufWriter::new(std::fs::File::create(dir.join(HISTORY_JSONL))?);
    for op in &run.history {
        serde_json::to_writer(&mut h, op)?;
        h.write_all(b"\n")?;
    }
    h.flush()?;
    for node in NODES {
        let d = dir.join(NODES_DIR).join(node);
        std::fs::create_dir_all(&d)?;
        std::fs::write(
            d.join("node.log"),
            format!("{node}: started\n{node}: stopped\n"),
        )?;
    }
    std::fs::write(dir.join(LOG_FILE), "faultline: synthetic run\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::history::{pair_ops, Outcome, Paired};

    #[test]
    fn same_seed_same_history_and_processes_never_overlap() {
        let spec = RegisterSpec {
            seed: 3,
            ops: 300,
            ..Default::default()
        };
        let a = register_run(&spec);
        assert_eq!(a.history, register_run(&spec).history);
        let Paired {
            clients: pairs,
            nemesis,
            ..
        } = pair_ops(&a.history);
        assert_eq!(pairs.len(), 300);
        assert_eq!(nemesis.len(), 8);
        assert_eq!(
            pairs
                .iter()
                .filter(|p| p.outcome == Outcome::Pending)
                .count(),
            1
        );
        // A process issues its next op only after the previous one completed.
        let mut last_end: std::collections::HashMap<Process, u64> = Default::default();
        for p in &pairs {
            let inv = &a.history[p.invoke];
            if let Some(end) = last_end.get(&inv.process) {
                assert!(inv.time > *end);
            }
            last_end.insert(
                inv.process,
                p.complete.map(|c| a.history[c].time).unwrap_or(u64::MAX),
            );
        }
    }

    #[test]
    fn the_planted_stale_read_is_in_the_history() {
        let run = register_run(&RegisterSpec {
            seed: 5,
            ops: 500,
            bug: true,
            ..Default::default()
        });
        let cx = &run.results["checkers"][0]["keys"][0]["counterexample"];
        let ops = cx["ops"].as_array().unwrap();
        assert_eq!(ops.len(), 3);
        let read = &run.history[ops[2]["complete_index"].as_u64().unwrap() as usize];
        let first_write = &run.history[ops[0]["complete_index"].as_u64().unwrap() as usize];
        let second_write = &run.history[ops[1]["complete_index"].as_u64().unwrap() as usize];
        assert_eq!(read.f, "read");
        assert_eq!(read.value, first_write.value);
        assert_ne!(read.value, second_write.value);
        let read_invoke = &run.history[ops[2]["invoke_index"].as_u64().unwrap() as usize];
        assert!(second_write.time < read_invoke.time);
        assert_eq!(run.results["valid"], json!(false));
    }

    #[test]
    fn a_planted_lock_overlap_is_reported() {
        let run = lock_run(&LockSpec {
            seed: 9,
            acquisitions: 200,
            bug: true,
            ..Default::default()
        });
        let locks = run.results["checkers"][0]["locks"].as_array().unwrap();
        let v: Vec<&Value> = locks
            .iter()
            .flat_map(|l| l["violations"].as_array().unwrap())
            .collect();
        assert_eq!(v.len(), 1);
        let (a, b) = (&v[0]["holds"][0], &v[0]["holds"][1]);
        assert!(b["start"].as_u64() < a["end"].as_u64());
        let clean = lock_run(&LockSpec {
            seed: 9,
            acquisitions: 200,
            ..Default::default()
        });
        assert_eq!(clean.results["valid"], json!(true));
    }
}
