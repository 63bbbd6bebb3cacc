//! The hot path of reading `history.jsonl` for the transaction checker: a byte scanner for
//! the lines faultline writes (integers, strings without escapes, null, nested lists), with
//! no intermediate values and one allocation per list read. Anything it does not expect
//! (an escape, a float, a duplicate field, a malformed micro-op) makes it give up on that
//! line, and serde's parser (`history::parse_line`) reads it instead, so both agree on every
//! line and errors are always serde's.

use super::history::{
    FlatBuf, FlatMop, FlatVal, Head, LineMops, MopF, ParsedLine, RawMop, RawVal, Scalar,
};
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

    /// A string without escapes (an escape gives up: serde decodes those), as bytes: the
    /// names compared against known ones need no UTF-8 check (one that matches is UTF-8);
    /// see [`Cur::str`] for the others.
    fn bytes(&mut self) -> Option<&'a [u8]> {
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
        Some(&rest[..end])
    }

    /// A string without escapes, valid UTF-8.
    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
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
        let f = mop_f(self.bytes()?)?;
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
        let version = self.version()?;
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

    /// [`Cur::mops`] of integers only, into `buf`: `Some(Some((start, len)))` of
    /// `buf.mops`. `None` also for a string key or value (the caller then reads the line
    /// with [`parse`]); what it pushed before giving up is the caller's to drop.
    fn flat_mops(&mut self, buf: &mut FlatBuf) -> Option<Option<(u32, u32)>> {
        match self.peek()? {
            b'n' => {
                self.null()?;
                Some(None)
            }
            b'[' => {
                self.i += 1;
                let start = buf.mops.len();
                if self.eat(b']').is_none() {
                    loop {
                        let m = self.flat_mop(&mut buf.vals)?;
                        buf.mops.push(m);
                        match self.peek()? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                Some(Some((start as u32, (buf.mops.len() - start) as u32)))
            }
            _ => None,
        }
    }

    /// [`Cur::mop`] of integers only; a list read's elements go to `vals`.
    fn flat_mop(&mut self, vals: &mut Vec<i64>) -> Option<FlatMop> {
        self.eat(b'[')?;
        let f = mop_f(self.bytes()?)?;
        self.eat(b',')?;
        let key = self.int()?;
        self.eat(b',')?;
        let value = match self.peek()? {
            b'n' => {
                self.null()?;
                FlatVal::Nil
            }
            b'[' => {
                self.i += 1;
                let start = vals.len();
                if self.eat(b']').is_none() {
                    loop {
                        vals.push(self.int()?);
                        match self.peek()? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                FlatVal::List(start as u32, (vals.len() - start) as u32)
            }
            _ => FlatVal::One(self.int()?),
        };
        let version = self.version()?;
        self.eat(b']')?;
        Some(FlatMop {
            f,
            key,
            value,
            version,
        })
    }

    /// A micro-op's optional fourth element (after its value).
    fn version(&mut self) -> Option<Option<i64>> {
        Some(match self.peek()? {
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
        })
    }
}

fn mop_f(name: &[u8]) -> Option<MopF> {
    match name {
        b"append" => Some(MopF::Append),
        b"r" => Some(MopF::Read),
        b"w" => Some(MopF::Write),
        _ => None,
    }
}

/// The fields of a line the checker reads; `mops` as its value reader found them.
struct Fields<M> {
    kind: OpType,
    process: Option<u64>,
    index: u64,
    time: u64,
    txn: bool,
    mops: Option<M>,
}

/// Reads a line's fields, its `value` with `value` (`Some(None)`: null; `None`: not
/// micro-ops, skipped — an error on a txn line, which serde then reports).
fn fields<'a, M>(
    text: &'a [u8],
    mut value: impl FnMut(&mut Cur<'a>) -> Option<Option<M>>,
) -> Option<Fields<M>> {
    let mut c = Cur { b: text, i: 0 };
    c.eat(b'{')?;
    let (mut index, mut time, mut kind, mut process, mut txn) = (None, None, None, None, None);
    let mut mops: Option<Option<M>> = None;
    let mut value_seen = false;
    if c.eat(b'}').is_none() {
        loop {
            let field = c.bytes()?;
            c.eat(b':')?;
            // A field given twice is an error for serde; let it say so.
            match field {
                b"index" if index.is_none() => index = Some(u64::try_from(c.int()?).ok()?),
                b"time" if time.is_none() => time = Some(u64::try_from(c.int()?).ok()?),
                b"type" if kind.is_none() => {
                    kind = Some(match c.bytes()? {
                        b"invoke" => OpType::Invoke,
                        b"ok" => OpType::Ok,
                        b"fail" => OpType::Fail,
                        b"info" => OpType::Info,
                        _ => return None,
                    })
                }
                b"process" if process.is_none() => {
                    process = Some(match c.peek()? {
                        b'"' => match c.bytes()? {
                            b"nemesis" => None,
                            _ => return None,
                        },
                        _ => Some(u64::try_from(c.int()?).ok()?),
                    })
                }
                b"f" if txn.is_none() => txn = Some(c.str()? == "txn"),
                b"value" if !value_seen => {
                    value_seen = true;
                    let start = c.i;
                    mops = match value(&mut c) {
                        Some(v) => Some(v),
                        None => {
                            // Not micro-ops: fine on a non-txn line, known once `f` is.
                            c.i = start;
                            c.skip()?;
                            None
                        }
                    };
                }
                b"index" | b"time" | b"type" | b"process" | b"f" | b"value" => return None,
                // serde wants every field name to be UTF-8.
                other => {
                    std::str::from_utf8(other).ok()?;
                    c.skip()?
                }
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
    let mops = match (value_seen, mops) {
        (false, _) => None,
        (true, Some(v)) => v,
        // A value that is not micro-ops: serde's error on a txn, ignored otherwise.
        (true, None) if txn => return None,
        (true, None) => None,
    };
    Some(Fields {
        kind: kind?,
        process: process?,
        index: index?,
        time: time?,
        txn,
        mops,
    })
}

/// Parses one line as `history::parse_line` would, or `None` to leave it to that.
pub fn parse(text: &[u8]) -> Option<ParsedLine> {
    let f = fields(text, Cur::mops)?;
    Some(ParsedLine {
        kind: f.kind,
        process: f.process,
        index: f.index,
        time: f.time,
        txn: f.txn,
        mops: f.mops,
    })
}

/// [`parse`] for a line whose keys and values are all integers (what faultline's
/// workloads write), its micro-ops pushed flat into `buf` instead of a vector each.
/// `None` for any other line (and then what it pushed is the caller's to drop): the
/// caller reads it with [`parse`] or serde.
pub fn parse_flat(text: &[u8], buf: &mut FlatBuf) -> Option<Head> {
    let f = fields(text, |c| c.flat_mops(buf))?;
    Some(Head {
        kind: f.kind,
        process: f.process,
        index: f.index,
        time: f.time,
        txn: f.txn,
        mops: match f.mops {
            Some((start, len)) => LineMops::Flat(start, len),
            None => LineMops::Absent,
        },
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
