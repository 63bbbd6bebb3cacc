//! The transactional checker on small hand-written histories, one per anomaly class: each
//! row is a history (one txn per line: `process outcome micro-ops`, run one after another
//! unless marked concurrent) and the anomaly classes it must report under a model.

use faultline_checker::txn::{self, TxnOptions};
use faultline_checker::Validity;

/// `p:ok [append 1 2] [r 1 [1 2]]`-style lines → jsonl. Lines starting with `|` are invoked
/// before the previous txn completes (the two overlap in real time).
fn history(spec: &str) -> String {
    let mut out = String::new();
    let mut index = 0;
    let txns: Vec<&str> = spec
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // Events: (invoke or complete, txn); concurrent txns invoke before the previous completes.
    let mut events: Vec<(bool, usize)> = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        if t.starts_with('|') && i > 0 {
            let at = events.iter().rposition(|e| *e == (true, i - 1)).unwrap();
            events.insert(at, (false, i));
        } else {
            events.push((false, i));
        }
        events.push((true, i));
    }
    for (complete, i) in events {
        let t = txns[i].trim_start_matches('|').trim();
        let (head, mops) = t.split_once(' ').unwrap();
        let (p, outcome) = head.split_once(':').unwrap();
        let mops: Vec<String> = mops
            .split("] [")
            .map(|m| m.trim_matches(|c| c == '[' || c == ']'))
            .map(|m| {
                let mut parts = m.splitn(3, ' ');
                let (f, k, v) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                let v = if v.starts_with('(') {
                    format!(
                        "[{}]",
                        v.trim_matches(|c| c == '(' || c == ')')
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                } else {
                    v.to_string()
                };
                let v = if !complete && f == "r" {
                    "null".to_string()
                } else {
                    v
                };
                format!("[\"{f}\",{k},{v}]")
            })
            .collect();
        let kind = if complete { outcome } else { "invoke" };
        out.push_str(&format!(
            "{{\"index\":{index},\"time\":{index},\"type\":\"{kind}\",\"process\":{p},\"f\":\"txn\",\"value\":[{}]}}\n",
            mops.join(",")
        ));
        index += 1;
    }
    out
}

fn check(spec: &str, model: &str) -> txn::TxnResult {
    let text = history(spec);
    let h = txn::history::read_jsonl(std::io::Cursor::new(text.as_bytes()), "t.jsonl").unwrap();
    txn::check(
        &h,
        &TxnOptions {
            consistency_model: model.into(),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn each_anomaly_class_is_found_and_explained() {
    // (what, model, history, the anomaly classes expected, exactly)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "serial appends and reads",
            "strict-serializable",
            "
            0:ok [append 1 1] [r 1 (1)]
            1:ok [r 1 (1)] [append 1 2]
            0:ok [r 1 (1 2)]",
            &[],
        ),
        (
            "G0: write cycle",
            "serializable",
            "
            0:ok [append 1 1] [append 2 2]
            |1:ok [append 1 3] [append 2 4]
            2:ok [r 1 (1 3)] [r 2 (4 2)]",
            &["G0"],
        ),
        (
            "G1a: aborted read",
            "read-committed",
            "
            0:fail [append 1 1]
            1:ok [r 1 (1)]",
            &["G1a"],
        ),
        (
            "G1b: intermediate read",
            "read-committed",
            "
            0:ok [append 1 1] [append 1 2]
            1:ok [r 1 (1)]
            2:ok [r 1 (1 2)]",
            &["G1b"],
        ),
        (
            "G1c: circular information flow",
            "read-committed",
            "
            0:ok [append 1 1] [r 2 (2)]
            |1:ok [append 2 2] [r 1 (1)]",
            &["G1c"],
        ),
        (
            "G-single: read skew",
            "snapshot-isolation",
            "
            0:ok [append 1 1] [append 2 1]
            1:ok [r 1 ()] [r 2 (1)]",
            &["G-single"],
        ),
        (
            "G2-item: write skew, allowed by SI",
            "snapshot-isolation",
            "
            0:ok [r 1 ()] [append 2 1]
            |1:ok [r 2 ()] [append 1 1]
            2:ok [r 1 (1)] [r 2 (1)]",
            &[],
        ),
        (
            "G2-item: write skew, forbidden by serializable",
            "serializable",
            "
            0:ok [r 1 ()] [append 2 1]
            |1:ok [r 2 ()] [append 1 1]
            2:ok [r 1 (1)] [r 2 (1)]",
            &["G2-item"],
        ),
        (
            "stale read: G-single-realtime",
            "strict-serializable",
            "
            0:ok [append 1 1]
            1:ok [r 1 ()]
            2:ok [r 1 (1)]",
            &["G-single-realtime"],
        ),
        (
            "stale read is serializable",
            "serializable",
            "
            0:ok [append 1 1]
            1:ok [r 1 ()]
            2:ok [r 1 (1)]",
            &[],
        ),
        (
            "not reading your own write: G-single-process",
            "strong-session-serializable",
            "
            0:ok [append 1 1]
            0:ok [r 1 ()]
            1:ok [r 1 (1)]",
            &["G-single-process"],
        ),
        (
            "internal",
            "serializable",
            "
            0:ok [append 1 1]
            1:ok [r 1 (1)] [append 1 2] [r 1 (1)]",
            &["internal"],
        ),
        (
            "incompatible order",
            "read-committed",
            "
            0:ok [append 1 1]
            1:ok [append 1 2]
            2:ok [r 1 (1 2)]
            3:ok [r 1 (2 1)]",
            &["incompatible-order"],
        ),
        (
            "duplicate elements",
            "read-uncommitted",
            "
            0:ok [append 1 1]
            1:ok [r 1 (1 1)]",
            &["duplicate-elements"],
        ),
        (
            "garbage read",
            "read-uncommitted",
            "
            0:ok [append 1 1]
            1:ok [r 1 (1 9)]",
            &["garbage-read"],
        ),
        (
            "lost update",
            "snapshot-isolation",
            "
            0:ok [r 1 ()] [append 1 1]
            |1:ok [r 1 ()] [append 1 2]
            2:ok [r 1 (1 2)]",
            &["G-single", "lost-update"],
        ),
        (
            "rw-register G-single",
            "serializable",
            "
            0:ok [w 1 1] [w 2 1]
            1:ok [r 1 null] [r 2 1]",
            &["G-single"],
        ),
        (
            "rw-register G1a",
            "read-committed",
            "
            0:fail [w 1 5]
            1:ok [r 1 5]",
            &["G1a"],
        ),
    ];
    for (what, model, spec, expected) in cases {
        let r = check(spec, model);
        let found: Vec<&str> = r.forbidden.iter().map(String::as_str).collect();
        assert_eq!(&found, expected, "{what}: {:#?}", r.anomalies);
        let want = if expected.is_empty() {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        assert_eq!(r.valid, want, "{what}");
        for a in &r.anomalies {
            assert!(!a.explanation.is_empty(), "{what}");
            for s in &a.steps {
                assert!(
                    s.explanation.contains(&format!("T{}", s.from)),
                    "{what}: {}",
                    s.explanation
                );
                assert!(
                    !s.explanation.contains(" a value ")
                        && !s.explanation.contains(" a version ")
                        && !s.explanation.contains("precedes"),
                    "{what}: a generic sentence: {}",
                    s.explanation
                );
            }
        }
    }
}

#[test]
fn a_witness_sentence_names_keys_values_and_the_read() {
    let r = check(
        "
        0:ok [append 7 3]
        1:ok [r 2 ()] [append 7 4]
        2:ok [append 2 5] [r 7 (3)]
        3:ok [r 7 (3 4)] [r 2 (5)]",
        "serializable",
    );
    assert_eq!(r.forbidden, vec!["G2-item"], "{:#?}", r.anomalies);
    let text: Vec<&str> = r.anomalies[0]
        .steps
        .iter()
        .map(|s| s.explanation.as_str())
        .collect();
    assert!(
        text.iter()
            .any(|s| s.contains("read key 2 as [], before T2's append of 5")),
        "{text:?}"
    );
}

#[test]
fn unknown_when_nothing_can_be_told() {
    let r = check(
        "
        0:ok [append 1 1]
        |1:ok [append 2 1]",
        "serializable",
    );
    assert_eq!(r.valid, Validity::Unknown, "{r:?}");
    assert!(r.reason.is_some());
}
