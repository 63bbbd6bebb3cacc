//! The hot path of reading `history.jsonl` for the transaction checker: a byte scanner for
//! the lines faultline writes (integers, strings without escapes, null, nested lists), with
//! no intermediate values and one allocation per list read. Anything it does not expect
//! (an escape, a float, a duplicate field, a malformed micro-op) makes it give up on that
//! line, and serde's parser (`history::parse_line`) reads it instead, so both agree on every
//! line and errors are always serde's.

use super::history::{MopF, ParsedLine, RawMop, RawVal, Scalar};
use crate::history::{Key, OpType};

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes (an escape gives up: serde decodes those).
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let end = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[end] != b'"' {
            return None;
        }
        self.i = start + end + 1;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// An integer that is not followed by a fraction or exponent.
    fn int(&mut self) -> Option<i64> {
        self.ws();
        let neg = self.b.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(&c) = self.b.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(if neg { -v } else { v })
    }

    fn null(&mut self) -> Option<()> {
        self.ws();
        self.b[self.i..].starts_with(b"null").then(|| self.i += 4)
    }

    fn scalar(&mut self) -> Option<Scalar> {
        match self.peek()? {
            b'"' => self.str().map(|s| Scalar::Str(s.to_string())),
            _ => self.int().map(Scalar::Int),
        }
    }

    /// Skips any JSON value (for fields the txn checker does not read).
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => break,
                        b'\\' => self.i += 2,
                        _ => self.i += 1,
                    }
                }
                self.i += 1;
            }
            open @ (b'[' | b'{') => {
                let close = if open == b'[' { b']' } else { b'}' };
                self.i += 1;
                if self.eat(close).is_some() {
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.str()?;
                        self.eat(b':')?;
                    }
                    self.skip()?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        c if c == close => {
                            self.i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            b'n' => self.null()?,
            b't' if self.b[self.i..].starts_with(b"true") => self.i += 4,
            b'f' if self.b[self.i..].starts_with(b"false") => self.i += 5,
            _ => {
                self.int()?;
            }
        }
        Some(())
    }

    /// `[item, ...]`, each item read by `item`.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b'[')?;
        let mut out = Vec::with_capacity(4);
        if self.eat(b']').is_some() {
            return Some(out);
        }
        loop {
            out.push(item(self)?);
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    /// `[f, key, value]` or `[f, key, value, version]`.
    fn mop(&mut self) -> Option<RawMop> {
        self.eat(b'[')?;
        let f = match self.str()? {
            "append" => MopF::Append,
            "r" => MopF::Read,
            "w" => MopF::Write,
            _ => return None,
        };
        self.eat(b',')?;
        let key = match self.scalar()? {
            Scalar::Int(k) => Key::Int(k),
            Scalar::Str(k) => Key::Str(k),
        };
        self.eat(b',')?;
        let value = match self.peek()? {
            b'n' => {
                self.null()?;
                RawVal::Nil
            }
            b'[' => RawVal::List(self.list(Self::scalar)?),
            _ => RawVal::One(self.scalar()?),
        };
        let version = match self.peek()? {
            b',' => {
                self.i += 1;
                match self.peek()? {
                    b'n' => {
                        self.null()?;
                        None
                    }
                    _ => Some(self.int()?),
                }
            }
            _ => None,
        };
        self.eat(b']')?;
        Some(RawMop {
            f,
            key,
            value,
            version,
        })
    }

    /// A `value` field: `Some(None)` for null, `Some(Some(mops))`, or `None` (anything else
    /// gives the line to serde, which says whether it is an error).
    fn mops(&mut self) -> Option<Option<Vec<RawMop>>> {
        match self.peek()? {
            b'n' => {
                self.null()?;
                Some(None)
            }
            b'[' => Some(Some(self.list(Self::mop)?)),
            _ => None,
        }
    }
}

/// Parses one line as `history::parse_line` would, or `None` to leave it to that.
pub fn parse(text: &[u8]) -> Option<ParsedLine> {
    let mut c = Cur { b: text, i: 0 };
    c.eat(b'{')?;
    let (mut index, mut time, mut kind, mut process, mut txn) = (None, None, None, None, None);
    let mut value: Option<Option<Vec<RawMop>>> = None;
    let mut value_seen = false;
    if c.eat(b'}').is_none() {
        loop {
            let field = c.str()?;
            c.eat(b':')?;
            // A field given twice is an error for serde; let it say so.
            match field {
                "index" if index.is_none() => index = Some(u64::try_from(c.int()?).ok()?),
                "time" if time.is_none() => time = Some(u64::try_from(c.int()?).ok()?),
                "type" if kind.is_none() => {
                    kind = Some(match c.str()? {
                        "invoke" => OpType::Invoke,
                        "ok" => OpType::Ok,
                        "fail" => OpType::Fail,
                        "info" => OpType::Info,
                        _ => return None,
                    })
                }
                "process" if process.is_none() => {
                    process = Some(match c.peek()? {
                        b'"' => match c.str()? {
                            "nemesis" => None,
                            _ => return None,
                        },
                        _ => Some(u64::try_from(c.int()?).ok()?),
                    })
                }
                "f" if txn.is_none() => txn = Some(c.str()? == "txn"),
                "value" if !value_seen => {
                    value_seen = true;
                    let start = c.i;
                    value = match c.mops() {
                        Some(v) => Some(v),
                        None => {
                            // Not micro-ops: fine on a non-txn line, known once `f` is.
                            c.i = start;
                            c.skip()?;
                            None
                        }
                    };
                }
                "index" | "time" | "type" | "process" | "f" | "value" => return None,
                _ => c.skip()?,
            }
            match c.peek()? {
                b',' => c.i += 1,
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    c.ws();
    if c.i != text.len() {
        return None;
    }
    let txn = txn?;
    let mops = match (value_seen, value) {
        (false, _) => None,
        (true, Some(v)) => v,
        // A value that is not micro-ops: serde's error on a txn, ignored otherwise.
        (true, None) if txn => return None,
        (true, None) => None,
    };
    Some(ParsedLine {
        kind: kind?,
        process: process?,
        index: index?,
        time: time?,
        txn,
        mops,
    })
}

#[cfg(test)]
mod tests {
    use super::super::history::parse_line;
    use super::parse;

    #[test]
    fn agrees_with_serde_or_leaves_the_line_to_it() {
        let lines = [
            r#"{"index":3,"time":9,"type":"ok","process":2,"f":"txn","value":[["append",1,4],["r","x",[1,"a",3]],["w",2,5,7],["r",2,null]]}"#,
            r#"{"index":0,"time":1,"type":"invoke","process":0,"f":"txn","value":[["r",1,null]],"node":"n1"}"#,
            r#"{ "time" : 1 , "index" : 0, "type":"info","process":"nemesis","f":"start-partition","value":{"n1":["n2"],"x":[true,false,null,-3]}}"#,
            r#"{"index":0,"time":1,"type":"fail","process":4,"f":"txn","value":[],"error":"timed \"out\""}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"read","value":3}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn"}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":null}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":[["r",-1,[]]]}"#,
        ];
        for l in lines {
            let fast = parse(l.as_bytes()).unwrap_or_else(|| panic!("fast path gave up on {l}"));
            let slow = parse_line(l).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{l}");
        }
        // Each of these is serde's to read (an error, an escape, a float, a duplicate …).
        let leave = [
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":[["cas",1,2]]}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":[["r","a\"b",[]]]}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":[["w",1,2.5]]}"#,
            r#"{"index":0,"index":1,"time":1,"type":"ok","process":4,"f":"txn","value":[]}"#,
            r#"{"index":-1,"time":1,"type":"ok","process":4,"f":"txn","value":[]}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":{"a":1}}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":[["r",1,[1]],]}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":[["r",1,[99999999999999999999]]]}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":[]} x"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"value":[]}"#,
            r#"{"index":0,"time":1,"type":"ok","process":4,"f":"txn","value":[["r",1,[01]]]}"#,
        ];
        for l in leave {
            assert!(parse(l.as_bytes()).is_none(), "{l}");
        }
    }
}
