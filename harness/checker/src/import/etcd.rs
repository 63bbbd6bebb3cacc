//! Porcupine's `porcupine-etcd-log` format: Jepsen log lines for one etcd key.
//!
//! As Porcupine's test parser reads them: `:fail :read :timed-out` has an unknown outcome
//! (imported as `info`); `:info` writes and cas are indeterminate (`info`); a `:fail :cas`
//! completed and returned false (kept as `fail`: the `cas-register:porcupine` convention
//! gives it that meaning); `:ok :read nil` read an absent key (`null`).

use crate::history::{HistoryError, Op, OpType, Process};
use serde_json::Value;

pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<Op>, HistoryError> {
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |what: &str| {
            HistoryError::parse(
                file,
                n + 1,
                format!("expected `INFO jepsen.util - PROCESS :TYPE :F VALUE`: {what}"),
            )
        };
        // The first six words in place, and the rest (the value) as one slice when it is one
        // word, as it always is in Porcupine's logs: no allocation per line. ASCII lines
        // without a vertical tab split the same by `split_ascii_whitespace` as by
        // `split_whitespace` (U+000B is the one ASCII char only the latter splits on).
        let mut head = [""; 6];
        let mut joined = String::new();
        let mut got = 0;
        let mut rest: &str = "";
        let fast = line.is_ascii() && !line.contains('\u{b}');
        let mut ascii = line.split_ascii_whitespace();
        let mut unicode = line.split_whitespace();
        while let Some(w) = if fast { ascii.next() } else { unicode.next() } {
            if got < 6 {
                head[got] = w;
            } else if got == 6 {
                rest = w;
            } else {
                if got == 7 {
                    joined.push_str(rest);
                }
                joined.push(' ');
                joined.push_str(w);
            }
            got += 1;
        }
        let rest = if got > 7 { joined.as_str() } else { rest };
        let words = head;
        if got < 7 || words[0] != "INFO" || words[1] != "jepsen.util" || words[2] != "-" {
            return Err(err(
                "the line does not start with `INFO jepsen.util -` and 4 fields",
            ));
        }
        let process: u64 = words[3]
            .parse()
            .map_err(|_| err(&format!("process {:?} is not an integer", words[3])))?;
        let kind = match words[4] {
            ":invoke" => OpType::Invoke,
            ":ok" => OpType::Ok,
            ":fail" => OpType::Fail,
            ":info" => OpType::Info,
            other => {
                return Err(err(&format!(
                    "type {other:?} is not :invoke/:ok/:fail/:info"
                )))
            }
        };
        let f = match words[5] {
            ":read" => "read",
            ":write" => "write",
            ":cas" => "cas",
            other => return Err(err(&format!("f {other:?} is not :read/:write/:cas"))),
        };
        let int = |s: &str| {
            s.parse::<i64>()
                .map(Value::from)
                .map_err(|_| err(&format!("value {s:?} is not an integer")))
        };
        let mut error = None;
        let value = match rest {
            "nil" => Value::Null,
            ":timed-out" => {
                error = Some("timed-out".to_string());
                Value::Null
            }
            r if r.starts_with('[') && r.ends_with(']') => {
                let inner: Vec<&str> = r[1..r.len() - 1].split_whitespace().collect();
                match inner.as_slice() {
                    [a, b] => Value::Array(vec![int(a)?, int(b)?]),
                    _ => return Err(err(&format!("cas value {r:?} is not [FROM TO]"))),
                }
            }
            r => int(r)?,
        };
        // Porcupine gives a timed-out read an unknown output: an `info` in faultline terms.
        let kind = if kind == OpType::Fail && error.is_some() {
            OpType::Info
        } else {
            kind
        };
        let index = ops.len() as u64;
        ops.push(Op {
            index,
            time: index,
            kind,
            process: Process::Client(process),
            f: f.to_string(),
            key: None,
            value,
            node: None,
            error,
        });
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tabs_and_spaces_and_every_value_kind() {
        let text = "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n\
                    INFO  jepsen.util - 3\t:ok\t:read\tnil\n\
                    INFO  jepsen.util - 1   :invoke :cas  [0 3]\n\
                    INFO  jepsen.util - 1   :fail :cas  [0 3]\n\
                    INFO  jepsen.util - 4\t:info\t:write\t:timed-out\n\
                    INFO  jepsen.util - 7\t:fail\t:read\t:timed-out\n";
        let ops = parse(text, "t.log").unwrap();
        assert_eq!(ops.len(), 6);
        assert_eq!(ops[2].value, serde_json::json!([0, 3]));
        assert_eq!(ops[3].kind, OpType::Fail);
        assert_eq!(ops[4].kind, OpType::Info);
        assert_eq!(ops[5].kind, OpType::Info);
        assert_eq!(ops[1].value, Value::Null);
    }

    #[test]
    fn a_value_of_several_words_is_read_whole() {
        // Spaces inside the brackets, a vertical tab and a non-ASCII space between fields.
        let text = "INFO jepsen.util - 1 :invoke :cas [ 0  3 ]\n\
                    INFO jepsen.util - 1\u{b}:ok :cas [0 3]\n\
                    INFO jepsen.util - 2\u{2003}:invoke :write 4\n";
        let ops = parse(text, "t.log").unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].value, serde_json::json!([0, 3]));
        assert_eq!(ops[1].kind, OpType::Ok);
        assert_eq!(ops[2].value, serde_json::json!(4));
        assert!(parse("INFO jepsen.util - 1 :invoke :cas [0 3 4]\n", "t.log").is_err());
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let err = parse(
            "INFO  jepsen.util - 3\t:invoke\t:read\tnil\nINFO jepsen.util - x :ok :read 1\n",
            "f.log",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("f.log:2:"), "{err}");
        assert!(err.contains("process"), "{err}");
    }
}
