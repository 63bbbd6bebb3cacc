//! Every file of `tests/data/MANIFEST.tsv` gets the verdict its upstream tests
//! assert (Porcupine's and Knossos'), with their initial states and conventions.

use faultline_checker::bench_data::{default_dir, read_manifest};
use faultline_checker::{check_linearizable_named, import, Limits, Validity};
use std::time::Duration;

fn limits() -> Limits {
    Limits {
        time_limit: Some(Duration::from_secs(60)),
        ..Limits::default()
    }
}

#[test]
fn every_manifest_file_gets_its_expected_verdict() {
    let rows = read_manifest(&default_dir()).expect("MANIFEST.tsv");
    assert!(rows.len() >= 190, "only {} rows", rows.len());
    let mut wrong = Vec::new();
    for row in &rows {
        let (format, ops) = import::read_file(&row.path, None).expect("history parses");
        // An empty file has no format to guess.
        if !ops.is_empty() {
            assert_eq!(
                format,
                row.format,
                "guessed format of {}",
                row.path.display()
            );
        }
        let r = check_linearizable_named(&ops, row.model, row.initial.as_ref(), &limits()).unwrap();
        if r.valid != row.expected {
            wrong.push(format!(
                "{}: got {:?}, expected {:?}",
                row.path.display(),
                r.valid,
                row.expected
            ));
        }
        // Invalid verdicts come with a counterexample that is itself invalid.
        if r.valid == Validity::Invalid {
            let bad = r
                .keys
                .iter()
                .find(|k| k.valid == Validity::Invalid)
                .unwrap();
            let cx = bad.counterexample.as_ref().expect("counterexample");
            assert!(!cx.ops.is_empty() && !cx.explanation.is_empty());
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn kv_files_agree_unpartitioned() {
    let dir = default_dir();
    for (file, expected) in [
        ("c01-ok.txt", Validity::Valid),
        ("c01-bad.txt", Validity::Invalid),
        ("c10-ok.txt", Validity::Valid),
        ("c10-bad.txt", Validity::Invalid),
    ] {
        let path = dir.join("porcupine/test_data/kv").join(file);
        let (_, ops) = import::read_file(&path, None).unwrap();
        let r = check_linearizable_named(&ops, "kv-map", None, &limits()).unwrap();
        assert_eq!(r.valid, expected, "{file}");
        assert_eq!(r.keys.len(), 1);
    }
}

#[test]
fn knossos_files_asserted_with_initial_nil_are_invalid_too() {
    let dir = default_dir().join("knossos/data/cas-register/bad");
    for file in ["rethink-fail-minimal.edn", "cas-failure.edn"] {
        let (_, ops) = import::read_file(&dir.join(file), None).unwrap();
        let r = check_linearizable_named(
            &ops,
            "cas-register:knossos",
            Some(&serde_json::Value::Null),
            &limits(),
        )
        .unwrap();
        assert_eq!(r.valid, Validity::Invalid, "{file}");
    }
}

/// The unpartitioned c50 map is far beyond any search: both limits must end in `unknown`
/// with a reason, not in a crash or an endless run.
#[test]
fn limits_end_in_unknown() {
    let path = default_dir().join("porcupine/test_data/kv/c50-ok.txt");
    let (_, ops) = import::read_file(&path, None).unwrap();
    let tight_memory = Limits {
        memory_limit_bytes: 8 * 1024 * 1024,
        time_limit: Some(Duration::from_secs(60)),
        ..Limits::default()
    };
    let r = check_linearizable_named(&ops, "kv-map", None, &tight_memory).unwrap();
    assert_eq!(r.valid, Validity::Unknown);
    let reason = r.keys[0].reason.clone().unwrap();
    assert!(reason.contains("memory limit"), "{reason}");

    let tight_time = Limits {
        time_limit: Some(Duration::from_millis(300)),
        ..Limits::default()
    };
    let r = check_linearizable_named(&ops, "kv-map", None, &tight_time).unwrap();
    assert_eq!(r.valid, Validity::Unknown);
    let reason = r.keys[0].reason.clone().unwrap();
    assert!(reason.contains("time limit"), "{reason}");
}

/// kv c50-bad has an easy invalid key (4) and a hard one (0, its biggest, which no search
/// decides within these limits). On one thread the biggest key goes first; the check must
/// still find the invalid key rather than spend the whole time limit on key 0 and answer
/// `unknown`.
#[test]
fn a_hard_key_does_not_hide_an_easy_invalid_one() {
    let path = default_dir().join("porcupine/test_data/kv/c50-bad.txt");
    let (_, ops) = import::read_file(&path, None).unwrap();
    let one_thread = Limits {
        threads: Some(1),
        // Key 0 alone would run into this time limit before the memory limit.
        time_limit: Some(Duration::from_secs(2)),
        memory_limit_bytes: 1024 * 1024 * 1024,
        counterexamples: false,
        // First-invalid mode (what `faultline check` does by default): exhaustive, keys
        // 1-3 and 5-9 are found invalid too.
        exhaustive: false,
        ..Limits::default()
    };
    let r = check_linearizable_named(&ops, "kv", None, &one_thread).unwrap();
    assert_eq!(r.valid, Validity::Invalid);
    let invalid: Vec<String> = r
        .keys
        .iter()
        .filter(|k| k.valid == Validity::Invalid)
        .map(|k| format!("{:?}", k.key))
        .collect();
    assert_eq!(invalid, vec![r#"Some(Str("4"))"#.to_string()], "{r:?}");
    // Key 0 was set aside for key 4, not searched until the time limit.
    let key0 = r
        .keys
        .iter()
        .find(|k| format!("{:?}", k.key) == r#"Some(Str("0"))"#)
        .unwrap();
    let reason = key0.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("stopped at the first invalid key"),
        "{reason}"
    );
}
