//! Hostile and mistaken input to the `faultline` binary: every harness failure exits 3 with
//! a message naming the file, line, field or host; huge limits and escape sequences in a
//! history neither panic nor reach the terminal raw. No hosts needed.

mod common;

use common::{faultline, text};
use std::path::Path;

/// A valid history of one key: write 1, read 1.
const VALID: &str = concat!(
    r#"{"index":0,"time":1,"type":"invoke","process":0,"f":"write","key":"k","value":1}"#,
    "\n",
    r#"{"index":1,"time":2,"type":"ok","process":0,"f":"write","key":"k","value":1}"#,
    "\n",
    r#"{"index":2,"time":3,"type":"invoke","process":0,"f":"read","key":"k","value":null}"#,
    "\n",
    r#"{"index":3,"time":4,"type":"ok","process":0,"f":"read","key":"k","value":1}"#,
    "\n",
);

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn usage_errors_exit_3_not_the_unknown_verdicts_2() {
    for args in [
        &["chekc", "x"][..],
        &["check"][..],
        &["check", "--time-limit", "soon", "x"][..],
        &["check", "--no-such-flag", "x"][..],
        &["run", "--db"][..],
    ] {
        let out = faultline(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error"),
            "{args:?}: {}",
            text(&out)
        );
    }
    // Asking for help or the version is not an error.
    for args in [
        &["--help"][..],
        &["check", "--help"][..],
        &["--version"][..],
    ] {
        let out = faultline(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
}

#[test]
fn huge_time_limits_mean_no_limit_instead_of_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "h.jsonl", VALID);
    for limit in ["1e19", "1e300", "18446744073709551615"] {
        let out = faultline(&["check", "--time-limit", limit, &file]);
        assert_eq!(out.status.code(), Some(0), "{limit}: {}", text(&out));
    }
}

#[test]
fn malformed_and_unreadable_files_exit_3_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad_line = VALID.replacen(r#""type":"ok""#, r#""type":"okay""#, 1);
    let file = write(dir.path(), "bad.jsonl", &bad_line);
    let out = faultline(&["check", "--format", "jsonl", &file]);
    let msg = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(msg.contains("bad.jsonl"), "names the file: {msg}");
    assert!(msg.contains("bad.jsonl:2:"), "names the line: {msg}");
    assert!(
        msg.contains("okay") || msg.contains("type"),
        "names the field: {msg}"
    );

    let missing = dir.path().join("absent.jsonl");
    let out = faultline(&["check", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("absent.jsonl"), "{}", text(&out));

    // A folder where a file is expected is unreadable as a history.
    let out = faultline(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(dir.path().to_str().unwrap()),
        "{}",
        text(&out)
    );

    let nodes = write(dir.path(), "nodes.txt", "n1 10.0.0.1\n../../x 10.0.0.2\n");
    let out = faultline(&["run", "--db", "raft", "--nodes-file", &nodes]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("nodes.txt") && msg.contains("line 2") && msg.contains("../../x"),
        "{msg}"
    );
}

#[test]
fn a_missing_host_exits_3_naming_the_host() {
    // Nothing listens on port 1 of loopback: the SSH connection is refused at once.
    let out = faultline(&[
        "run",
        "--db",
        "raft",
        "--nodes",
        "ghost1=127.0.0.1:1",
        "--time-limit",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("ghost1"), "{}", text(&out));
}

#[test]
fn escape_sequences_and_bidi_overrides_in_keys_do_not_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    // Key: clear the screen, home the cursor, print a fake verdict; then a right-to-left
    // override. The history itself is invalid (a read of a value never written).
    let key = "\u{1b}[2J\u{1b}[Hverdict: VALID\u{202e}evil";
    let key_json = serde_json::to_string(key).unwrap();
    let history = VALID
        .replace(r#""key":"k""#, &format!(r#""key":{key_json}"#))
        .replace(
            &format!(r#""f":"read","key":{key_json},"value":1"#),
            &format!(r#""f":"read","key":{key_json},"value":7"#),
        );
    let file = write(dir.path(), "evil.jsonl", &history);
    let out = faultline(&["check", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    assert!(!all.contains(&0x1b), "a raw ESC reached the terminal");
    let shown = String::from_utf8_lossy(&all);
    assert!(
        !shown.contains('\u{202e}'),
        "a raw RLO reached the terminal"
    );
    assert!(shown.contains("\\u{1b}[2J"), "{shown}");
    assert!(shown.contains("\\u{202e}"), "{shown}");

    // A malformed line's error message quotes the line: escaped too.
    let bad = "{\"index\":0,\"type\":\"\u{1b}[2J\"}\n";
    let file = write(dir.path(), "evil2.jsonl", bad);
    let out = faultline(&["check", "--format", "jsonl", &file]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(!out.stderr.contains(&0x1b), "{}", text(&out));
}

/// The issue's 40 KB file of 20,000 nested vectors aborted `check` (exit 134, stack
/// overflow, no file or line); now it is a harness failure naming both, with the format
/// given or guessed.
#[test]
fn a_deeply_nested_edn_history_exits_3_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[{{:process 0, :type :invoke, :f :read, :value nil}}\n{}{}]\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let file = write(dir.path(), "deep.edn", &body);
    for args in [
        &["check", "--format", "knossos-edn", file.as_str()][..],
        &["check", file.as_str()],
    ] {
        let out = faultline(args);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {msg}");
        assert!(
            msg.contains("deep.edn:2"),
            "{args:?} names file and line: {msg}"
        );
    }
}

/// `repetitions = 4294967295` made `faultline campaign` plan four billion runs until it ran
/// out of memory and aborted (exit 134).
#[test]
fn a_campaign_of_billions_of_runs_is_refused_not_planned_until_memory_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "huge.toml",
        "name = \"x\"\nrepetitions = 4294967295\n[[matrix]]\ndb = [\"raft\"]\nworkload = [\"register\"]\n",
    );
    let out = faultline(&["campaign", "--dry-run", &file]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(
        msg.contains("huge.toml") || msg.contains("repetitions"),
        "{msg}"
    );
    assert!(msg.contains("4294967295"), "{msg}");
}

#[test]
fn a_reader_that_goes_away_leaves_the_verdict_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // An impossible read: the check fails (exit 1) and has a counterexample to print.
    let invalid = VALID.replace(
        r#""type":"ok","process":0,"f":"read","key":"k","value":1"#,
        r#""type":"ok","process":0,"f":"read","key":"k","value":7"#,
    );
    assert_ne!(invalid, VALID);
    let file = write(dir.path(), "h.jsonl", &invalid);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["check", &file])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run faultline");
    // Close the read end before the child has parsed its file, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for faultline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
