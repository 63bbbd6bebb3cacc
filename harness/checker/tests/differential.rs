//! Differential test: thousands of small random histories (seeded; 2–5 processes; ok, fail,
//! info and pending ops) checked by the search and by a brute-force reference that tries
//! every order. They must agree on every history, and every counterexample's op set must
//! itself be non-linearizable according to the reference.

use faultline_checker::generate::{register_history, Params};
use faultline_checker::history::{pair_operations, Op, OpType};
use faultline_checker::model::{
    Convention, KvModel, Model, MutexModel, Prepared, RegisterModel, Val,
};
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
    let want = reference(model, ops);
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
            !reference(model, &sub),
            "seed {seed}: counterexample is linearizable"
        );
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
