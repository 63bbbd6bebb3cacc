//! The transactional checker against a brute-force oracle on thousands of small random
//! list-append histories: whenever the checker reports an anomaly that serializability
//! (or strict serializability) forbids, no serial order of the transactions (with each
//! `info` one included or not) explains every read — no false alarm, ever. And on histories
//! of a store that applies each transaction atomically inside its real-time interval,
//! nothing at all is reported.

use faultline_checker::txn::history::{History, Mop, Outcome};
use faultline_checker::txn::{self, generate, TxnOptions};
use faultline_checker::Validity;

fn history(p: &generate::Params) -> History {
    let mut text = Vec::new();
    generate::write_history(p, &mut text).unwrap();
    txn::history::read_jsonl(std::io::Cursor::new(text), "gen.jsonl").unwrap()
}

/// Whether some serial order of the committed txns explains all ok reads; `realtime`: the
/// order must also respect real time.
fn serializable(h: &History, realtime: bool) -> bool {
    let n = h.txns.len();
    let candidates: Vec<u32> = (0..n as u32)
        .filter(|t| h.txns[*t as usize].outcome != Outcome::Fail)
        .collect();
    let must: usize = candidates
        .iter()
        .filter(|t| h.txns[**t as usize].outcome == Outcome::Ok)
        .count();
    let before = |a: u32, b: u32| {
        let (ta, tb) = (&h.txns[a as usize], &h.txns[b as usize]);
        ta.complete_index.is_some_and(|c| c < tb.invoke_index) && ta.outcome == Outcome::Ok
    };
    let mut lists: Vec<Vec<i64>> = vec![Vec::new(); h.keys.len()];
    let mut placed = vec![false; n];
    fn dfs(
        h: &History,
        candidates: &[u32],
        must_left: usize,
        placed: &mut Vec<bool>,
        lists: &mut Vec<Vec<i64>>,
        realtime: bool,
        before: &dyn Fn(u32, u32) -> bool,
    ) -> bool {
        if must_left == 0 {
            return true;
        }
        for &t in candidates {
            if placed[t as usize] {
                continue;
            }
            // Every ok txn that finished before t began must already be placed.
            if realtime
                && candidates
                    .iter()
                    .any(|&u| !placed[u as usize] && u != t && before(u, t))
            {
                continue;
            }
            let ok = h.txns[t as usize].outcome == Outcome::Ok;
            let saved: Vec<(u32, usize)> = h
                .mops_of(t)
                .iter()
                .filter_map(|m| match *m {
                    Mop::Append { key, .. } => Some((key, lists[key as usize].len())),
                    _ => None,
                })
                .collect();
            let mut fits = true;
            for m in h.mops_of(t) {
                match *m {
                    Mop::Append { key, val } => lists[key as usize].push(val),
                    Mop::ReadList { key, seen: Some(r) } if ok => {
                        if h.list_read(key, r) != lists[key as usize].as_slice() {
                            fits = false;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if fits {
                placed[t as usize] = true;
                let left = must_left - usize::from(ok);
                if dfs(h, candidates, left, placed, lists, realtime, before) {
                    return true;
                }
                placed[t as usize] = false;
            }
            for &(key, len) in saved.iter().rev() {
                lists[key as usize].truncate(len);
            }
        }
        false
    }
    dfs(
        h,
        &candidates,
        must,
        &mut placed,
        &mut lists,
        realtime,
        &before,
    )
}

fn small(seed: u64) -> generate::Params {
    generate::Params {
        seed,
        txns: 3 + (seed % 5) as usize,
        processes: 3,
        active_keys: 2,
        appends_per_key_max: 3,
        mops_max: 3,
        info_fraction: 0.1,
        fail_fraction: 0.1,
        stale_read_p: 0.3,
        dirty_fail_p: 0.5,
    }
}

fn check(h: &History, model: &str) -> txn::TxnResult {
    txn::check(
        h,
        &TxnOptions {
            consistency_model: model.into(),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn every_reported_anomaly_is_confirmed_by_brute_force() {
    let (mut reported, mut missed) = (0, 0);
    for seed in 0..3000 {
        let h = history(&small(seed));
        for (model, realtime) in [("serializable", false), ("strict-serializable", true)] {
            let r = check(&h, model);
            let exists = serializable(&h, realtime);
            if r.valid == Validity::Invalid {
                reported += 1;
                assert!(
                    !exists,
                    "seed {seed}, {model}: the checker reports {:?} but a serial order exists: {:#?}",
                    r.forbidden, r.anomalies
                );
            } else if !exists {
                missed += 1;
            }
        }
    }
    // The random store must actually produce anomalies, or the test proves nothing.
    assert!(reported > 1000, "only {reported} invalid histories");
    // Misses are allowed (appends no read observed leave orders unknown, as in Elle) but
    // counted, so that a regression in inference shows: measured 255 against 2322 reports.
    eprintln!("{reported} invalid verdicts confirmed; {missed} non-serializable histories the checker did not flag");
    assert!(
        missed * 5 <= reported,
        "{missed} misses against {reported} reports"
    );
}

#[test]
fn histories_of_a_serial_store_report_nothing() {
    for seed in 0..2000 {
        let p = generate::Params {
            stale_read_p: 0.0,
            dirty_fail_p: 0.0,
            txns: 5 + (seed % 40) as usize,
            fail_fraction: 0.1,
            info_fraction: 0.1,
            ..small(seed)
        };
        let h = history(&p);
        let r = check(&h, "strict-serializable");
        assert!(
            r.anomaly_types.is_empty() && r.valid != Validity::Invalid,
            "seed {seed}: {:#?}",
            r.anomalies
        );
        assert!(
            serializable(&h, true),
            "seed {seed}: the oracle disagrees with the store"
        );
    }
}
