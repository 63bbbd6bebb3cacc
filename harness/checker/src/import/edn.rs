//! A small EDN reader (maps, vectors, lists, keywords, integers, strings, nil, booleans,
//! comments, `#_` discard) and the two formats built on it: Knossos EDN histories and
//! Porcupine's kv logs (one EDN map per line).

use crate::history::{HistoryError, Key, Op, OpType, Process};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    List(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

impl Edn {
    /// JSON for an op value: keywords and symbols become strings without the colon.
    fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::from(*i),
            Edn::Float(f) => Value::from(*f),
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s.clone()),
            Edn::Vector(v) | Edn::List(v) => Value::Array(v.iter().map(Edn::to_json).collect()),
            Edn::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let key = match k.to_json() {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }

    fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Forms nested inside one another at most (collections and `#_` discards). The reader
/// recurses per level; 20,000 levels overflowed the stack. Histories nest a few levels.
pub(crate) const NESTING_DEPTH_MAX: usize = 512;

pub(crate) struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    file: &'a str,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str, file: &'a str, first_line: usize) -> Self {
        Reader {
            text: text.as_bytes(),
            pos: 0,
            line: first_line,
            file,
            depth: 0,
        }
    }

    fn err(&self, msg: impl Into<String>) -> HistoryError {
        HistoryError::parse(self.file, self.line, msg)
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    /// Skips whitespace, commas, comments and `#_` discarded forms.
    fn skip(&mut self) -> Result<(), HistoryError> {
        while let Some(c) = self.peek() {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                b'#' if self.text.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.read()?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    pub fn at_end(&mut self) -> Result<bool, HistoryError> {
        self.skip()?;
        Ok(self.peek().is_none())
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|c| {
            !matches!(
                c,
                b' ' | b'\t'
                    | b'\r'
                    | b'\n'
                    | b','
                    | b'{'
                    | b'}'
                    | b'['
                    | b']'
                    | b'('
                    | b')'
                    | b'"'
                    | b';'
            )
        }) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("")
    }

    /// Reads a sequence's elements up to `close`; the opener is already consumed.
    fn seq(&mut self, close: u8) -> Result<Vec<Edn>, HistoryError> {
        let mut out = Vec::new();
        loop {
            self.skip()?;
            match self.peek() {
                None => {
                    return Err(self.err(format!(
                        "expected `{}` before the end of the file",
                        close as char
                    )))
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(_) => out.push(self.read()?),
            }
        }
    }

    /// Reads one form.
    pub fn read(&mut self) -> Result<Edn, HistoryError> {
        if self.depth >= NESTING_DEPTH_MAX {
            return Err(self.err(format!("forms nested more than {NESTING_DEPTH_MAX} deep")));
        }
        self.depth += 1;
        let form = self.read_form();
        self.depth -= 1;
        form
    }

    fn read_form(&mut self) -> Result<Edn, HistoryError> {
        self.skip()?;
        let Some(c) = self.peek() else {
            return Err(self.err("expected an EDN value, found the end of the file"));
        };
        match c {
            b'{' => {
                self.pos += 1;
                let items = self.seq(b'}')?;
                if items.len() % 2 != 0 {
                    return Err(self.err("expected a map with an even number of forms"));
                }
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Ok(Edn::Map(pairs))
            }
            b'[' => {
                self.pos += 1;
                Ok(Edn::Vector(self.seq(b']')?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Edn::List(self.seq(b')')?))
            }
            b'"' => {
                self.pos += 1;
                let mut s = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(self.err("expected a closing `\"` of a string")),
                        Some(b'"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let e = self.text.get(self.pos + 1).copied();
                            s.push(match e {
                                Some(b'n') => b'\n',
                                Some(b't') => b'\t',
                                Some(b'r') => b'\r',
                                Some(other) => other,
                                None => return Err(self.err("expected a character after `\\`")),
                            });
                            self.pos += 2;
                        }
                        Some(b) => {
                            if b == b'\n' {
                                self.line += 1;
                            }
                            s.push(b);
                            self.pos += 1;
                        }
                    }
                }
                String::from_utf8(s)
                    .map(Edn::Str)
                    .map_err(|_| self.err("expected a UTF-8 string"))
            }
            b':' => {
                self.pos += 1;
                let name = self.token();
                if name.is_empty() {
                    return Err(self.err("expected a keyword name after `:`"));
                }
                Ok(Edn::Keyword(name.to_string()))
            }
            b'}' | b']' | b')' => Err(self.err(format!("unexpected `{}`", c as char))),
            _ => {
                let tok = self.token();
                if tok.is_empty() {
                    return Err(self.err(format!("unexpected character {:?}", c as char)));
                }
                Ok(match tok {
                    "nil" => Edn::Nil,
                    "true" => Edn::Bool(true),
                    "false" => Edn::Bool(false),
                    t => {
                        let digits = t.trim_end_matches(['N', 'M']);
                        if let Ok(i) = digits.parse::<i64>() {
                            Edn::Int(i)
                        } else if let Ok(f) = digits.parse::<f64>() {
                            Edn::Float(f)
                        } else if t.starts_with(|c: char| c.is_ascii_digit()) {
                            return Err(self.err(format!("expected a number, got {t:?}")));
                        } else {
                            Edn::Symbol(t.to_string())
                        }
                    }
                })
            }
        }
    }
}

/// One op map → `Op`. `Ok(None)` for ops of no client that Knossos drops (nemesis).
fn op_of(map: &Edn, index: u64, reader: &Reader) -> Result<Op, HistoryError> {
    if !matches!(map, Edn::Map(_)) {
        return Err(reader.err("expected an op map {:process … :type … :f …}"));
    }
    let process = match map.get("process") {
        Some(Edn::Int(p)) if *p >= 0 => Process::Client(*p as u64),
        Some(Edn::Keyword(k)) if k == "nemesis" => Process::Nemesis,
        Some(other) => {
            return Err(reader.err(format!(
                "expected :process to be a non-negative integer or :nemesis, got {other:?}"
            )))
        }
        None => return Err(reader.err("expected a :process key in the op map")),
    };
    let kind = match map.get("type") {
        Some(Edn::Keyword(t)) => match t.as_str() {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            other => {
                return Err(reader.err(format!(
                    "expected :type :invoke/:ok/:fail/:info, got :{other}"
                )))
            }
        },
        _ => return Err(reader.err("expected a :type keyword in the op map")),
    };
    let f = match map.get("f") {
        Some(Edn::Keyword(f)) | Some(Edn::Symbol(f)) | Some(Edn::Str(f)) => f.clone(),
        _ => return Err(reader.err("expected an :f keyword in the op map")),
    };
    let key = match map.get("key") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Int(k)) => Some(Key::Int(*k)),
        Some(Edn::Str(k)) | Some(Edn::Keyword(k)) => Some(Key::Str(k.clone())),
        Some(other) => Some(Key::Str(other.to_json().to_string())),
    };
    let time = match map.get("time") {
        Some(Edn::Int(t)) if *t >= 0 => *t as u64,
        _ => 0,
    };
    let error = map.get("error").map(|e| match e.to_json() {
        Value::String(s) => s,
        other => other.to_string(),
    });
    Ok(Op {
        index,
        time,
        kind,
        process,
        f,
        key,
        value: map.get("value").map_or(Value::Null, Edn::to_json),
        node: None,
        error,
    })
}

/// A Knossos EDN history: one vector or list of op maps.
pub(crate) fn parse_knossos(text: &str, file: &str) -> Result<Vec<Op>, HistoryError> {
    let mut r = Reader::new(text, file, 1);
    if r.at_end()? {
        return Ok(Vec::new());
    }
    r.skip()?;
    let close = match r.peek() {
        Some(b'[') => b']',
        Some(b'(') => b')',
        _ => return Err(r.err("expected the history to be one `[...]` or `(...)` of op maps")),
    };
    r.pos += 1;
    let mut ops = Vec::new();
    loop {
        r.skip()?;
        match r.peek() {
            None => return Err(r.err(format!("expected `{}` closing the history", close as char))),
            Some(c) if c == close => {
                r.pos += 1;
                break;
            }
            Some(_) => {
                let form = r.read()?;
                let op = op_of(&form, ops.len() as u64, &r)?;
                ops.push(op);
            }
        }
    }
    if !r.at_end()? {
        return Err(r.err("expected nothing after the history's closing bracket"));
    }
    Ok(ops)
}

/// Porcupine's kv log: one EDN op map per line.
pub(crate) fn parse_kv(text: &str, file: &str) -> Result<Vec<Op>, HistoryError> {
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut r = Reader::new(line, file, n + 1);
        let form = r.read()?;
        if !r.at_end()? {
            return Err(r.err("expected one op map per line"));
        }
        let index = ops.len() as u64;
        let mut op = op_of(&form, index, &r)?;
        op.time = index;
        ops.push(op);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knossos_list_with_comments_and_missing_commas() {
        let text = "; a comment\n({:process 0 :type :invoke, :f :cas, :value [1 2]}\n ; between\n {:process 0, :type :fail, :f :cas, :value [1 2] :error [:not-found \"x \\\"y\\\"\"]}\n {:process :nemesis, :type :info, :f :start}\n {:type :ok, :f :txn, :value [[:read :x nil] [:write :y 2]], :process 2, :time 77})\n";
        let ops = parse_knossos(text, "h.edn").unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].value, serde_json::json!([1, 2]));
        assert_eq!(ops[1].kind, OpType::Fail);
        assert_eq!(ops[2].process, Process::Nemesis);
        assert_eq!(ops[2].value, Value::Null);
        assert_eq!(
            ops[3].value,
            serde_json::json!([["read", "x", null], ["write", "y", 2]])
        );
        assert_eq!(ops[3].time, 77);
    }

    #[test]
    fn kv_line() {
        let ops = parse_kv(
            "{:process 4, :type :invoke, :f :get, :key \"3\", :value nil}\n{:process 4, :type :ok, :f :get, :key \"3\", :value \"\"}\n",
            "kv.txt",
        )
        .unwrap();
        assert_eq!(ops[1].key, Some(Key::Str("3".into())));
        assert_eq!(ops[1].value, serde_json::json!(""));
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_knossos(
            "[{:process 1, :type :invoke, :f :read}\n {:process 1, :type :done, :f :read}]",
            "x.edn",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("x.edn:2:"), "{err}");
        assert!(err.contains(":type"), "{err}");
        let err = parse_knossos("[{:process 1\n", "y.edn")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("y.edn:2:"), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_naming_the_line_not_a_stack_overflow() {
        for (open, close) in [("[", "]"), ("(", ")"), ("{:a ", "}"), ("#_", "")] {
            let text = format!("\n{}1{}", open.repeat(20_000), close.repeat(20_000));
            let err = Reader::new(&text, "deep.edn", 1)
                .read()
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("deep.edn:2:"), "{open}: {err}");
            assert!(err.contains("nested"), "{open}: {err}");
        }
        let text = format!("\n{}1{}", "[".repeat(20_000), "]".repeat(20_000));
        let err = parse_knossos(&text, "deep.edn").unwrap_err().to_string();
        assert!(err.starts_with("deep.edn:2:"), "{err}");
        // Real histories nest a few levels; well below the limit still reads.
        let text = format!(
            "[{{:process 1, :type :invoke, :f :read, :value {}1{}}}]",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(parse_knossos(&text, "ok.edn").unwrap().len(), 1);
    }
}
