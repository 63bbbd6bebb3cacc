//! The one history.jsonl reader against what a crash, a bad tool or a hostile file leaves:
//! each test fails on the reader this one replaced.

use faultline_checker::history::{read_history, HistoryReader};
use faultline_checker::import;
use std::io::Write;

fn event(index: u64) -> String {
    format!(
        "{{\"index\":{index},\"time\":{},\"type\":\"{}\",\"process\":0,\"f\":\"write\",\"key\":1,\"value\":{}}}\n",
        index * 10,
        if index % 2 == 0 { "invoke" } else { "ok" },
        index / 2
    )
}

fn history(n: u64) -> String {
    (0..n).map(event).collect()
}

#[test]
fn a_torn_last_line_is_skipped_and_reported_with_the_lines_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let torn = "{\"index\":6,\"time\":60,\"type\":\"inv";
    std::fs::write(&path, history(6) + torn).unwrap();
    let read = read_history(&path).unwrap();
    assert_eq!(read.ops.len(), 6);
    assert_eq!(read.summary.lines, 6);
    let tail = read
        .summary
        .torn_tail
        .clone()
        .expect("the torn line is reported");
    assert_eq!((tail.line, tail.bytes), (7, torn.len()));
    let warning = read.summary.warning("history.jsonl").unwrap();
    assert!(warning.starts_with("history.jsonl:7:"), "{warning}");
    assert!(warning.contains("6 line(s)"), "{warning}");
    // A torn line cut inside a multi-byte character is torn too, not "not UTF-8".
    std::fs::write(
        &path,
        history(2) + "{\"index\":2,\"f\":\"\u{e9}".trim_end_matches('\u{e9}'),
    )
    .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(0xc3);
    std::fs::write(&path, bytes).unwrap();
    let read = read_history(&path).unwrap();
    assert_eq!(read.ops.len(), 2);
    assert_eq!(read.summary.torn_tail.unwrap().line, 3);
}

#[test]
fn a_bad_line_that_is_not_the_last_is_an_error_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    std::fs::write(&path, history(2) + "{\"index\":2,\"ti\n" + &event(3)).unwrap();
    let err = read_history(&path).unwrap_err().to_string();
    assert!(err.contains("history.jsonl:3:"), "{err}");
    // A last line that parses needs no newline.
    std::fs::write(&path, history(3).trim_end()).unwrap();
    let read = read_history(&path).unwrap();
    assert_eq!((read.ops.len(), read.summary.torn_tail), (3, None));
}

#[test]
fn duplicate_event_indexes_are_refused_naming_the_line() {
    let text = history(3) + &event(1) + &event(4);
    let mut reader = HistoryReader::new(text.as_bytes(), "h.jsonl");
    let got: Vec<_> = reader.by_ref().collect();
    assert_eq!(got.len(), 4, "the reader stops at the error");
    let err = got[3].as_ref().unwrap_err().to_string();
    assert!(err.starts_with("h.jsonl:4:"), "{err}");
    assert!(err.contains("index 1 appears twice"), "{err}");
    // Far-apart indexes (an imported file) are tracked too.
    let far = event(u64::MAX / 2) + &event(7) + &event(u64::MAX / 2);
    let err = HistoryReader::new(far.as_bytes(), "h")
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("h:3:"), "{err}");
}

#[test]
fn non_utf8_names_the_line_and_says_it_once() {
    let mut text = history(2).into_bytes();
    text.extend_from_slice(b"{\"index\":2,\"f\":\"\xff\xfe\"}\n");
    text.extend_from_slice(event(3).as_bytes());
    let err = HistoryReader::new(&text[..], "h.jsonl")
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err();
    let shown = format!("{:#}", anyhow::Error::from(err));
    assert!(shown.starts_with("h.jsonl:3: not UTF-8"), "{shown}");
    assert_eq!(shown.matches("UTF-8").count(), 1, "{shown}");
}

/// `faultline check` reads a history.jsonl as a stream: the first event is parsed before
/// the writer has written the rest. A reader that reads the whole file first would wait
/// for the writer forever (here: the test's 20 s bound).
#[test]
fn check_streams_history_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("history.jsonl");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let (first_read_tx, first_read_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            f.write_all(history(1).as_bytes()).unwrap();
            f.flush().unwrap();
            // The rest only once the reader has the first event.
            let streamed = first_read_rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .is_ok();
            let rest: String = (1..4).map(event).collect();
            let _ = f.write_all(rest.as_bytes());
            streamed
        })
    };
    let file = std::fs::File::open(&fifo).unwrap();
    let mut reader = HistoryReader::new(std::io::BufReader::new(file), "fifo");
    let first = reader.next().unwrap().unwrap();
    assert_eq!(first.index, 0);
    first_read_tx.send(()).unwrap();
    assert_eq!(reader.count(), 3);
    assert!(
        writer.join().unwrap(),
        "the first event came only after the whole file"
    );
    // And `faultline check`'s entry point reads through this reader.
    let path = dir.path().join("h.jsonl");
    std::fs::write(&path, history(4) + "{\"ind").unwrap();
    let read = import::read_history_file(&path, None).unwrap();
    assert_eq!(read.format, import::Format::Jsonl);
    assert_eq!(read.history.ops.len(), 4);
    assert_eq!(read.history.summary.torn_tail.unwrap().line, 5);
}
