//! Differential test: thousands of small random histories (seeded; 2–5 processes; ok, fail,
//! info and pending ops) checked by the search and by a brute-force reference that tries
//! every order. They must agree on every history, and every counterexample's core must be
//! non-linearizable according to the reference, alone and under the relaxation the
//! checker states (brute-forced here from its definition), and 1-minimal under it: with
//! any one of its ops made optional, the rest can be ordered. The stale-op check
//! (`fenced_core`), which the checker only runs on long keys, is run on every history
//! here, and every core it gives must be non-linearizable under each of the three
//! relaxations its argument covers, and its history non-linearizable.

use faultline_checker::generate::{register_history, Params};
use faultline_checker::history::{pair_operations, Op, OpType};
use faultline_checker::linearizable::fenced_core;
use faultline_checker::model::{
    Convention, KvModel, Model, MutexModel, Prepared, RegisterModel, Val,
};
use faultline_checker::results::LinearizableResult;
use faultline_checker::{check_linearizable, Limits, Validity};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// (op, invoke position, completion position or None when the outcome is unknown)
type Entry<O> = (O, usize, Option<usize>);

fn prepare<M: Model>(model: &M, ops: &[Op]) -> Vec<Entry<M::Op>> {
    let mut out = Vec::new();
    for p in pair_operations(ops).expect("well-formed") {
        match model
            .prepare(&ops[p.invoke], p.complete.map(|c| &ops[c]))
            .expect("prepares")
        {
            Prepared::Skip => {}
            Prepared::Known(op) => out.push((op, p.invoke, p.complete)),
            Prepared::Unknown(op) => out.push((op, p.invoke, None)),
        }
    }
    out
}

/// Tries every order that respects real time; unknown ops may also be left out.
fn brute<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    used: &mut Vec<bool>,
    state: &M::State,
) -> bool {
    let open: Vec<usize> = (0..entries.len()).filter(|&i| !used[i]).collect();
    if open.iter().all(|&i| entries[i].2.is_none()) {
        return true;
    }
    let barrier = open
        .iter()
        .filter_map(|&i| entries[i].2)
        .min()
        .unwrap_or(usize::MAX);
    for &i in &open {
        if entries[i].1 > barrier {
            continue;
        }
        if let Some(next) = model.step(state, &entries[i].0) {
            used[i] = true;
            let ok = brute(model, entries, used, &next);
            used[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

fn reference<M: Model>(model: &M, ops: &[Op]) -> bool {
    let entries = prepare(model, ops);
    brute(
        model,
        &entries,
        &mut vec![false; entries.len()],
        &model.init(),
    )
}

/// Above this many states the checker does not summarise the ops before a core's window
/// (its `START_STATES_MAX`).
const START_STATES_MAX: usize = 512;

/// Every state reachable from the initial one by `ops` in any order, any number of times;
/// `None` past `START_STATES_MAX`.
fn closure<M: Model>(model: &M, ops: &[&M::Op]) -> Option<Vec<M::State>> {
    let mut states = vec![model.init()];
    let mut k = 0;
    while k < states.len() {
        for op in ops {
            if let Some(next) = model.step(&states[k], op) {
                if !states.contains(&next) {
                    if states.len() >= START_STATES_MAX {
                        return None;
                    }
                    states.push(next);
                }
            }
        }
        k += 1;
    }
    Some(states)
}

/// An op under the relaxation: must it take effect, and until when may it.
struct Relaxed<'a, O> {
    op: &'a O,
    call: usize,
    /// `None`: any time after the invoke (info).
    ret: Option<usize>,
    mandatory: bool,
}

/// Tries every order of `ops` in which every mandatory op takes effect within its
/// interval, every optional op with a completion within its interval or never, every
/// other optional op after its invoke or never, consistently with real time.
fn brute_relaxed<M: Model>(
    model: &M,
    ops: &[Relaxed<'_, M::Op>],
    used: &mut Vec<bool>,
    state: &M::State,
    last_call: Option<usize>,
) -> bool {
    if ops.iter().zip(used.iter()).all(|(o, &u)| u || !o.mandatory) {
        return true;
    }
    let barrier = (0..ops.len())
        .filter(|&i| !used[i] && ops[i].mandatory)
        .filter_map(|i| ops[i].ret)
        .min()
        .unwrap_or(usize::MAX);
    for i in 0..ops.len() {
        if used[i] || ops[i].call > barrier {
            continue;
        }
        // An op placed earlier was invoked after this one completed: too late for it.
        if let (Some(r), Some(c)) = (ops[i].ret, last_call) {
            if r < c {
                continue;
            }
        }
        if let Some(next) = model.step(state, ops[i].op) {
            used[i] = true;
            let last = Some(last_call.map_or(ops[i].call, |c| c.max(ops[i].call)));
            let ok = brute_relaxed(model, ops, used, &next, last);
            used[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

/// How the checker's stated relaxation summarises the ops before a core's window.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Form {
    /// Every op invoked before the core's first invoke is summarised; those still
    /// running then (and info ones) also stay optional ops of the window.
    Invoked,
    /// The window's start pulled back until no completed op straddles it; the ops that
    /// completed before it, and the info ops invoked before the first core op completed,
    /// are summarised.
    Completed,
    /// No summary.
    None,
}

impl Form {
    /// The form a counterexample's relaxation text states.
    fn of(relaxation: &str) -> Form {
        if relaxation.contains("invoked before the first of these was invoked") {
            Form::Invoked
        } else if relaxation.contains("any number of times") {
            Form::Completed
        } else {
            Form::None
        }
    }
}

/// Whether the ops of `core` (positions in `entries`) can be ordered under the relaxation
/// the checker states, brute-forced from its definition: other ops optional, ops invoked
/// after the core's last completion left out, and the ops before the window summarised
/// as `form` says, taken as any state they could produce, in any order and any number
/// of times.
fn relaxed_linearizable<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    core: &[usize],
    form: Form,
) -> bool {
    let ret = |i: usize| entries[i].2.unwrap_or(usize::MAX);
    let cut = core.iter().map(|&i| ret(i)).max().unwrap();
    let others: Vec<usize> = (0..entries.len())
        .filter(|i| !core.contains(i) && entries[*i].1 < cut)
        .collect();
    let first_call = core.iter().map(|&i| entries[i].1).min().unwrap();
    let (inits, window): (Vec<M::State>, Vec<usize>) = match form {
        Form::Invoked => {
            let early: Vec<&M::Op> = others
                .iter()
                .filter(|&&i| entries[i].1 < first_call)
                .map(|&i| &entries[i].0)
                .collect();
            // Completed before the first core invoke: summarised only.
            let window = others
                .iter()
                .copied()
                .filter(|&i| ret(i) >= first_call)
                .collect();
            (closure(model, &early).unwrap(), window)
        }
        Form::Completed => {
            // The window's start: no completed op ending after it began before it.
            let mut start = first_call;
            loop {
                let earlier = core
                    .iter()
                    .chain(others.iter().filter(|&&i| entries[i].2.is_some()))
                    .filter(|&&i| ret(i) >= start)
                    .map(|&i| entries[i].1)
                    .min()
                    .unwrap_or(start);
                if earlier >= start {
                    break;
                }
                start = earlier;
            }
            let before = |i: usize| entries[i].2.is_some_and(|r| r < start);
            let first_ret = core.iter().map(|&i| ret(i)).min().unwrap();
            let early: Vec<&M::Op> = others
                .iter()
                .filter(|&&i| before(i) || (entries[i].2.is_none() && entries[i].1 < first_ret))
                .map(|&i| &entries[i].0)
                .collect();
            let window = others.iter().copied().filter(|&i| !before(i)).collect();
            (closure(model, &early).unwrap(), window)
        }
        Form::None => (vec![model.init()], others.clone()),
    };
    let relaxed: Vec<Relaxed<'_, M::Op>> = core
        .iter()
        .chain(window.iter())
        .map(|&i| Relaxed {
            op: &entries[i].0,
            call: entries[i].1,
            ret: entries[i].2,
            mandatory: core.contains(&i),
        })
        .collect();
    inits
        .iter()
        .any(|s| brute_relaxed(model, &relaxed, &mut vec![false; relaxed.len()], s, None))
}

/// Wrong reads and flipped cas outcomes, so that many histories are invalid.
fn mutate(ops: &mut [Op], rng: &mut ChaCha8Rng) {
    for op in ops.iter_mut() {
        if op.kind == OpType::Ok && op.f == "read" && rng.random_bool(0.25) {
            op.value = if rng.random_bool(0.2) {
                json!(null)
            } else {
                json!(rng.random_range(0..3))
            };
        }
        if op.f == "cas"
            && op.kind != OpType::Invoke
            && op.kind != OpType::Info
            && rng.random_bool(0.15)
        {
            op.kind = if op.kind == OpType::Ok {
                OpType::Fail
            } else {
                OpType::Ok
            };
        }
    }
}

/// Drops the completions of a few ops, leaving them pending at the end.
fn truncate_some(ops: &mut Vec<Op>, rng: &mut ChaCha8Rng) {
    if rng.random_bool(0.3) {
        let cut = rng.random_range(ops.len() / 2..=ops.len());
        // Everything after the cut is lost: ops invoked before it stay pending.
        ops.truncate(cut);
    }
}

fn limits() -> Limits {
    Limits {
        threads: Some(1),
        ..Limits::default()
    }
}

fn compare<M: Model>(model: &M, ops: &[Op], seed: u64, agree: &mut [usize; 2]) {
    compare_with(model, model, ops, seed, agree);
}

/// `truth`: the model the brute force runs, for a checker model that splits by key (the
/// brute force does not), e.g. `kv-map` as the truth for `kv`.
fn compare_with<M: Model, T: Model>(
    model: &M,
    truth: &T,
    ops: &[Op],
    seed: u64,
    agree: &mut [usize; 2],
) {
    let reference = |ops: &[Op]| reference(truth, ops);
    let want = reference(ops);
    let got = check_linearizable(model, ops, &limits());
    assert_ne!(
        got.valid,
        Validity::Unknown,
        "seed {seed}: unknown on a tiny history"
    );
    assert_eq!(
        got.valid == Validity::Valid,
        want,
        "seed {seed} model {}: checker says {:?}, brute force says {want}\n{}",
        model.name(),
        got.valid,
        ops.iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
    agree[usize::from(want)] += 1;
    if !want {
        check_core(truth, ops, &got, seed);
        // The counterexample's ops, alone, must still be non-linearizable.
        let key = got
            .keys
            .iter()
            .find(|k| k.valid == Validity::Invalid)
            .unwrap();
        let cx = key.counterexample.as_ref().unwrap();
        let keep: std::collections::HashSet<u64> = cx
            .ops
            .iter()
            .flat_map(|r| [Some(r.invoke_index), r.complete_index])
            .flatten()
            .collect();
        let sub: Vec<Op> = ops
            .iter()
            .filter(|o| keep.contains(&o.index))
            .cloned()
            .collect();
        assert!(
            !reference(&sub),
            "seed {seed}: counterexample is linearizable alone: {cx:#?}"
        );
    }
}

/// The core printed for the invalid key is non-linearizable under the stated relaxation,
/// and 1-minimal under it.
fn check_core<T: Model>(truth: &T, ops: &[Op], got: &LinearizableResult, seed: u64) {
    for key in got.keys.iter().filter(|k| k.valid == Validity::Invalid) {
        // The brute force works on the key's ops alone (`truth` does not split by key).
        let key_ops: Vec<Op> = ops
            .iter()
            .filter(|o| o.key == key.key || key.key.is_none())
            .cloned()
            .collect();
        let entries = prepare(truth, &key_ops);
        let cx = key.counterexample.as_ref().unwrap();
        let core: Vec<usize> = cx
            .ops
            .iter()
            .map(|r| {
                entries
                    .iter()
                    .position(|e| key_ops[e.1].index == r.invoke_index)
                    .expect("core op is one of the key's ops")
            })
            .collect();
        let show = || {
            format!(
                "seed {seed} key {:?}\n{}\n{}",
                key.key,
                cx.explanation,
                key_ops
                    .iter()
                    .map(|o| serde_json::to_string(o).unwrap())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        };
        assert!(!core.is_empty(), "no core: {}", show());
        assert!(
            cx.minimal,
            "a tiny history's core not shown minimal: {}",
            show()
        );
        assert!(!cx.relaxation.is_empty());
        // The checker says which relaxation it used.
        let form = Form::of(&cx.relaxation);
        assert!(
            !relaxed_linearizable(truth, &entries, &core, form),
            "core is linearizable under its relaxation: {}",
            show()
        );
        for k in 0..core.len() {
            let mut fewer = core.clone();
            let dropped = fewer.remove(k);
            assert!(
                fewer.is_empty() || relaxed_linearizable(truth, &entries, &fewer, form),
                "core is not 1-minimal: without op #{} it is still non-linearizable: {}",
                key_ops[entries[dropped].1].index,
                show()
            );
        }
    }
}

#[test]
fn registers_agree_with_brute_force() {
    let mut agree = [0usize; 2];
    for seed in 0..3000u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let p = Params {
            seed,
            ops: rng.random_range(3..=9),
            keys: 1,
            processes: rng.random_range(2..=5),
            // Many indeterminate ops: their handling is where the search prunes most.
            info_fraction: [0.1, 0.3, 0.5][seed as usize % 3],
            fail_fraction: 0.15,
            values: 3,
            corrupt: 0.2,
        };
        let mut ops = register_history(&p);
        mutate(&mut ops, &mut rng);
        truncate_some(&mut ops, &mut rng);
        let conv = [
            Convention::Faultline,
            Convention::Knossos,
            Convention::Porcupine,
        ][seed as usize % 3];
        let initial = if rng.random_bool(0.5) {
            Val::Null
        } else {
            Val::Int(0)
        };
        compare(
            &RegisterModel::new(true, conv, initial),
            &ops,
            seed,
            &mut agree,
        );
    }
    // Both verdicts must be well represented, or the test proves little.
    assert!(
        agree[0] > 500 && agree[1] > 500,
        "valid/invalid split {agree:?}"
    );
}

/// Random histories of an arbitrary op mix, not from a simulation: mostly invalid, and
/// they exercise the mutex and kv models.
fn random_history(
    rng: &mut ChaCha8Rng,
    fs: &[&str],
    value: impl Fn(&mut ChaCha8Rng, &str) -> serde_json::Value,
) -> Vec<Op> {
    let processes = rng.random_range(2..=5u64);
    let n = rng.random_range(3..=7);
    let mut open: Vec<Option<String>> = vec![None; processes as usize];
    let mut ops = Vec::new();
    let mut next_proc = processes;
    let mut ids: Vec<u64> = (0..processes).collect();
    let mut invoked = 0;
    while invoked < n || open.iter().any(Option::is_some) {
        let c = rng.random_range(0..processes as usize);
        let (kind, f, v) = match &open[c] {
            None if invoked < n => {
                let f = fs[rng.random_range(0..fs.len())].to_string();
                invoked += 1;
                let v = value(rng, &f);
                (OpType::Invoke, f, v)
            }
            None => continue,
            Some(f) => {
                let kind = [
                    OpType::Ok,
                    OpType::Ok,
                    OpType::Ok,
                    OpType::Fail,
                    OpType::Info,
                ][rng.random_range(0..5)];
                let f = f.clone();
                let v = value(rng, &f);
                (kind, f, v)
            }
        };
        ops.push(serde_json::from_value::<Op>(json!({
            "index": ops.len(), "time": ops.len(), "type": kind, "process": ids[c], "f": f, "value": v
        })).unwrap());
        open[c] = if kind == OpType::Invoke {
            Some(ops.last().unwrap().f.clone())
        } else {
            None
        };
        if kind == OpType::Info {
            ids[c] = next_proc;
            next_proc += 1;
        }
    }
    ops
}

#[test]
fn mutex_and_kv_agree_with_brute_force() {
    let mut agree = [0usize; 2];
    for seed in 0..1500u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(1_000_000 + seed);
        let ops = random_history(&mut rng, &["acquire", "release"], |_, _| json!(null));
        compare(&MutexModel, &ops, seed, &mut agree);
        let ops = random_history(&mut rng, &["get", "put", "append"], |rng, _| {
            json!(["", "a", "b", "ab", "ba"][rng.random_range(0..5)])
        });
        compare(&KvModel::new(true, ""), &ops, seed, &mut agree);
    }
    assert!(
        agree[0] > 300 && agree[1] > 300,
        "valid/invalid split {agree:?}"
    );
}

/// A kv store run for real: clients append unique chunks, put, and get on one or two keys,
/// each op taking effect at a random point between its invoke and its completion; then a
/// few reads are corrupted (chunks reordered, one dropped or one added) and some ops end
/// `fail`, `info` or pending. Unlike `random_history`, half of these are valid, and reads
/// return long appended strings, which is what the search's look-ahead prunes on.
fn kv_history(rng: &mut ChaCha8Rng) -> Vec<Op> {
    #[derive(Clone)]
    enum Phase {
        Idle,
        /// (f, key, value written or read, applied yet, outcome: ok, fail or info)
        Open(String, u64, String, bool, OpType),
    }
    let processes = rng.random_range(2..=5usize);
    let n = rng.random_range(4..=9);
    let keys = rng.random_range(1..=2u64);
    let mut store = vec![String::new(); keys as usize];
    let mut clients = vec![Phase::Idle; processes];
    let mut ids: Vec<u64> = (0..processes as u64).collect();
    let mut next_id = processes as u64;
    let mut ops: Vec<Op> = Vec::new();
    let mut invoked = 0;
    let mut chunk = 0u8;
    let emit =
        |ops: &mut Vec<Op>, kind: OpType, id: u64, f: &str, key: u64, v: serde_json::Value| {
            ops.push(
                serde_json::from_value(json!({
                    "index": ops.len(), "time": ops.len(), "type": kind, "process": id,
                    "f": f, "key": key, "value": v
                }))
                .unwrap(),
            );
        };
    while invoked < n || clients.iter().any(|c| matches!(c, Phase::Open(..))) {
        let c = rng.random_range(0..processes);
        match clients[c].clone() {
            Phase::Idle if invoked < n => {
                invoked += 1;
                let key = rng.random_range(0..keys);
                let f = ["get", "get", "append", "append", "append", "put"][rng.random_range(0..6)];
                let value = if f == "get" {
                    String::new()
                } else {
                    chunk += 1;
                    // Unique chunks, so a read tells which writes precede it and in what order.
                    format!("{}", (b'a' + chunk % 26) as char)
                };
                let outcome = match rng.random_range(0..20) {
                    0 | 1 if f != "get" => OpType::Info,
                    2 => OpType::Fail,
                    _ => OpType::Ok,
                };
                let v = if f == "get" {
                    json!(null)
                } else {
                    json!(value)
                };
                emit(&mut ops, OpType::Invoke, ids[c], f, key, v);
                clients[c] = Phase::Open(f.to_string(), key, value, false, outcome);
            }
            Phase::Idle => {}
            Phase::Open(f, key, value, false, outcome) => {
                // The op takes effect now (a failed one never does; an info one may not).
                let takes_effect = match outcome {
                    OpType::Fail => false,
                    OpType::Info => rng.random_bool(0.5),
                    _ => true,
                };
                let slot = &mut store[key as usize];
                let value = match f.as_str() {
                    "get" => slot.clone(),
                    "put" if takes_effect => {
                        slot.clone_from(&value);
                        value
                    }
                    "append" if takes_effect => {
                        slot.push_str(&value);
                        value
                    }
                    _ => value,
                };
                clients[c] = Phase::Open(f, key, value, true, outcome);
            }
            Phase::Open(f, key, value, true, outcome) => {
                let v = if f == "get" && outcome == OpType::Ok {
                    json!(value)
                } else if f == "get" {
                    json!(null)
                } else {
                    json!(value)
                };
                emit(&mut ops, outcome, ids[c], &f, key, v);
                if outcome == OpType::Info {
                    ids[c] = next_id;
                    next_id += 1;
                }
                clients[c] = Phase::Idle;
            }
        }
    }
    // Corrupt a read now and then: a plausible wrong order or a lost or extra chunk.
    if rng.random_bool(0.4) {
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].f == "get" && ops[i].kind == OpType::Ok)
            .collect();
        if !reads.is_empty() {
            let i = reads[rng.random_range(0..reads.len())];
            let mut v: Vec<char> = ops[i].value.as_str().unwrap_or("").chars().collect();
            match rng.random_range(0..3) {
                0 if v.len() >= 2 => {
                    let j = rng.random_range(0..v.len() - 1);
                    v.swap(j, j + 1);
                }
                1 if !v.is_empty() => {
                    v.remove(rng.random_range(0..v.len()));
                }
                _ => v.push((b'a' + rng.random_range(1..=chunk.max(1)) % 26) as char),
            }
            ops[i].value = json!(v.into_iter().collect::<String>());
        }
    }
    truncate_some(&mut ops, rng);
    ops
}

#[test]
fn kv_runs_agree_with_brute_force() {
    let mut agree = [0usize; 2];
    for seed in 0..3000u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(2_000_000 + seed);
        let ops = kv_history(&mut rng);
        let truth = KvModel::new(false, "");
        compare_with(&KvModel::new(true, ""), &truth, &ops, seed, &mut agree);
        compare_with(&KvModel::new(false, ""), &truth, &ops, seed, &mut agree);
    }
    assert!(
        agree[0] > 1000 && agree[1] > 1000,
        "valid/invalid split {agree:?}"
    );
}

/// Every core the stale-op check gives is non-linearizable under each relaxation form (its
/// soundness argument covers all three), and its history under the brute force; `hits`
/// counts the histories it gave one for.
fn check_fenced<M: Model>(model: &M, ops: &[Op], seed: u64, hits: &mut usize) {
    let Some(found) = fenced_core(model, ops) else {
        return;
    };
    *hits += 1;
    let show = || {
        format!(
            "seed {seed} model {} core {found:?}\n{}",
            model.name(),
            ops.iter()
                .map(|o| serde_json::to_string(o).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    assert!(
        !reference(model, ops),
        "fenced a linearizable history: {}",
        show()
    );
    let entries = prepare(model, ops);
    let core: Vec<usize> = found
        .iter()
        .map(|&ix| {
            entries
                .iter()
                .position(|e| ops[e.1].index == ix)
                .expect("core op is one of the history's ops")
        })
        .collect();
    for form in [Form::Invoked, Form::Completed, Form::None] {
        assert!(
            !relaxed_linearizable(model, &entries, &core, form),
            "fenced core linearizable under {form:?}: {}",
            show()
        );
    }
}

/// A register history with one read made stale: it returns the value of a write that
/// completed before another write began that completed before the read began (as
/// verdict-bench's hard histories are made), or, half the time, of any earlier write.
fn stale_history(rng: &mut ChaCha8Rng, seed: u64) -> Vec<Op> {
    let p = Params {
        seed,
        ops: rng.random_range(4..=11),
        keys: 1,
        processes: rng.random_range(2..=5),
        // Many info ops too: a pending cas can then serve a read through a chain.
        info_fraction: [0.0, 0.1, 0.3, 0.5][seed as usize % 4],
        fail_fraction: 0.1,
        values: [3, 5, 1000][(seed / 4) as usize % 3],
        corrupt: 0.0,
    };
    let mut ops = register_history(&p);
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].kind == OpType::Ok && ops[i].f == "read")
        .collect();
    if let Some(&r) = reads.last() {
        let writes: Vec<usize> = (0..r)
            .filter(|&i| ops[i].kind == OpType::Ok && ops[i].f == "write")
            .collect();
        if !writes.is_empty() {
            let w = writes[rng.random_range(0..writes.len())];
            ops[r].value = ops[w].value.clone();
        }
    }
    truncate_some(&mut ops, rng);
    ops
}

#[test]
fn fenced_cores_are_non_linearizable() {
    let mut hits = [0usize; 3];
    for seed in 0..4000u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(3_000_000 + seed);
        let conv = [
            Convention::Faultline,
            Convention::Knossos,
            Convention::Porcupine,
        ][seed as usize % 3];
        let initial = if rng.random_bool(0.5) {
            Val::Null
        } else {
            Val::Int(0)
        };
        let model = RegisterModel::new(true, conv, initial);
        let ops = stale_history(&mut rng, seed);
        check_fenced(&model, &ops, seed, &mut hits[0]);
        let p = Params {
            seed,
            ops: rng.random_range(3..=9),
            keys: 1,
            processes: rng.random_range(2..=5),
            info_fraction: [0.1, 0.3, 0.5][seed as usize % 3],
            fail_fraction: 0.15,
            values: 3,
            corrupt: 0.2,
        };
        let mut ops = register_history(&p);
        mutate(&mut ops, &mut rng);
        truncate_some(&mut ops, &mut rng);
        check_fenced(&model, &ops, seed, &mut hits[1]);
        if seed < 1500 {
            let ops = random_history(&mut rng, &["acquire", "release"], |_, _| json!(null));
            check_fenced(&MutexModel, &ops, seed, &mut hits[2]);
            let ops = random_history(&mut rng, &["get", "put", "append"], |rng, _| {
                json!(["", "a", "b", "ab", "ba"][rng.random_range(0..5)])
            });
            check_fenced(&KvModel::new(true, ""), &ops, seed, &mut hits[2]);
        }
    }
    // Stale reads, mutated registers, mutex and kv: each must give the check work.
    assert!(
        hits[0] > 300 && hits[1] > 300 && hits[2] > 100,
        "fenced cores found {hits:?}"
    );
}
