//! Seeded list-append histories from a simulated store, for the tests and the benchmark.
//! The store applies each transaction atomically at its completion (so, with no weakness
//! knob set, the history is strict serializable); knobs make it read stale prefixes, expose
//! appends of transactions that then fail, and lose track of outcomes (`info`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;

#[derive(Debug, Clone)]
pub struct Params {
    pub seed: u64,
    pub txns: usize,
    /// Concurrent clients.
    pub processes: usize,
    /// Keys in use at once; a key retires after `appends_per_key_max` appends and a fresh
    /// one takes its place (Elle's rotating key set).
    pub active_keys: usize,
    pub appends_per_key_max: usize,
    /// Micro-ops per txn: 1..=mops_max.
    pub mops_max: usize,
    pub info_fraction: f64,
    pub fail_fraction: f64,
    /// Chance a read returns a random earlier prefix of the list (a stale snapshot).
    pub stale_read_p: f64,
    /// Chance a failing txn's appends stay visible (aborted reads follow).
    pub dirty_fail_p: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 0,
            txns: 1000,
            processes: 5,
            active_keys: 8,
            appends_per_key_max: 16,
            mops_max: 4,
            info_fraction: 0.01,
            fail_fraction: 0.0,
            stale_read_p: 0.0,
            dirty_fail_p: 0.0,
        }
    }
}

enum PlanMop {
    Append(u64, u64),
    Read(u64),
}

struct InFlight {
    process: u64,
    mops: Vec<PlanMop>,
}

/// Writes a `history.jsonl` of `p.txns` transactions to `out`.
pub fn write_history<W: Write>(p: &Params, mut out: W) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut lists: Vec<Vec<u64>> = Vec::new();
    let mut active: Vec<u64> = Vec::new();
    let mut appends: Vec<usize> = Vec::new();
    let mut next_key = 0u64;
    for _ in 0..p.active_keys.max(1) {
        active.push(next_key);
        lists.push(Vec::new());
        appends.push(0);
        next_key += 1;
    }
    let mut slots: Vec<Option<InFlight>> = (0..p.processes.max(1)).map(|_| None).collect();
    let mut process_of: Vec<u64> = (0..slots.len() as u64).collect();
    let mut next_process = slots.len() as u64;
    let (mut invoked, mut completed) = (0usize, 0usize);
    let (mut index, mut time) = (0u64, 0u64);
    let mut line = String::with_capacity(256);
    while completed < p.txns {
        let s = rng.random_range(0..slots.len());
        time += rng.random_range(1..1000);
        line.clear();
        match slots[s].take() {
            None if invoked < p.txns => {
                let n = rng.random_range(1..=p.mops_max.max(1));
                let mut mops = Vec::with_capacity(n);
                for _ in 0..n {
                    let slot = rng.random_range(0..active.len());
                    let mut k = active[slot];
                    if rng.random_bool(0.5) {
                        mops.push(PlanMop::Read(k));
                    } else {
                        if appends[k as usize] >= p.appends_per_key_max {
                            k = next_key;
                            next_key += 1;
                            lists.push(Vec::new());
                            appends.push(0);
                            active[slot] = k;
                        }
                        appends[k as usize] += 1;
                        mops.push(PlanMop::Append(k, appends[k as usize] as u64));
                    }
                }
                let process = process_of[s];
                write_line(&mut line, index, time, "invoke", process, &mops, None);
                slots[s] = Some(InFlight { process, mops });
                invoked += 1;
            }
            None => continue,
            Some(t) => {
                let r: f64 = rng.random();
                let (kind, apply) = if r < p.info_fraction {
                    ("info", rng.random_bool(0.5))
                } else if r < p.info_fraction + p.fail_fraction {
                    ("fail", rng.random_bool(p.dirty_fail_p))
                } else {
                    ("ok", true)
                };
                let mut reads: Vec<Vec<u64>> = Vec::new();
                for m in &t.mops {
                    match *m {
                        PlanMop::Append(k, v) if apply => lists[k as usize].push(v),
                        PlanMop::Append(..) => {}
                        PlanMop::Read(k) => {
                            let l = &lists[k as usize];
                            let len = if p.stale_read_p > 0.0
                                && !l.is_empty()
                                && rng.random_bool(p.stale_read_p)
                            {
                                rng.random_range(0..l.len())
                            } else {
                                l.len()
                            };
                            reads.push(l[..len].to_vec());
                        }
                    }
                }
                let reads = (kind == "ok").then_some(reads);
                write_line(
                    &mut line,
                    index,
                    time,
                    kind,
                    t.process,
                    &t.mops,
                    reads.as_deref(),
                );
                if kind == "info" {
                    process_of[s] = next_process;
                    next_process += 1;
                }
                completed += 1;
            }
        }
        out.write_all(line.as_bytes())?;
        index += 1;
    }
    out.flush()
}

fn write_line(
    line: &mut String,
    index: u64,
    time: u64,
    kind: &str,
    process: u64,
    mops: &[PlanMop],
    reads: Option<&[Vec<u64>]>,
) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "{{\"index\":{index},\"time\":{time},\"type\":\"{kind}\",\"process\":{process},\"f\":\"txn\",\"value\":["
    );
    let mut r = 0;
    for (i, m) in mops.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        match *m {
            PlanMop::Append(k, v) => {
                let _ = write!(line, "[\"append\",{k},{v}]");
            }
            PlanMop::Read(k) => match reads {
                Some(reads) => {
                    let _ = write!(line, "[\"r\",{k},[");
                    for (j, v) in reads[r].iter().enumerate() {
                        if j > 0 {
                            line.push(',');
                        }
                        let _ = write!(line, "{v}");
                    }
                    line.push_str("]]");
                    r += 1;
                }
                None => {
                    let _ = write!(line, "[\"r\",{k},null]");
                }
            },
        }
    }
    line.push_str("]}\n");
}
