//! Jepsen/Elle transactional EDN histories: op maps one after another (Elle's
//! `histories/`), or inside one vector or list, with `:value [[:append 1 2] [:r 1 [1 2]]]`.
//! Elle's examples sometimes leave out `:process`, `:f` and `:time`: a missing process is a
//! fresh one per transaction, a missing `:f` is `:txn`, a missing time is the op's position.

use super::edn::{Edn, Reader};
use crate::history::{HistoryError, Op, OpType, Process};
use serde_json::Value;

/// Whether text looks like an Elle transactional history.
pub fn looks_like(text: &str) -> bool {
    let head = &text[..text.len().min(64 * 1024)];
    let start = head.trim_start();
    (start.starts_with('{')
        || start.starts_with('[')
        || start.starts_with(';')
        || start.starts_with('('))
        && (head.contains("[:append ") || head.contains("[:r ") || head.contains("[:w "))
}

fn field<'a>(map: &'a [(Edn, Edn)], name: &str) -> Option<&'a Edn> {
    map.iter()
        .find(|(k, _)| matches!(k, Edn::Keyword(s) if s == name))
        .map(|(_, v)| v)
}

fn scalar(e: &Edn) -> Result<Value, String> {
    match e {
        Edn::Int(i) => Ok(Value::from(*i)),
        Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Ok(Value::String(s.clone())),
        Edn::Nil => Ok(Value::Null),
        other => Err(format!(
            "expected an integer, string or keyword, got {other:?}"
        )),
    }
}

fn mops(e: &Edn) -> Result<Value, String> {
    let items = match e {
        Edn::Nil => return Ok(Value::Null),
        Edn::Vector(v) | Edn::List(v) => v,
        other => {
            return Err(format!(
                "expected :value to be a vector of micro-ops, got {other:?}"
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let parts = match m {
            Edn::Vector(p) | Edn::List(p) if p.len() == 3 || p.len() == 4 => p,
            other => {
                return Err(format!(
                    "micro-op {i}: expected [f key value], got {other:?}"
                ))
            }
        };
        let mut json = Vec::with_capacity(parts.len());
        json.push(scalar(&parts[0]).map_err(|e| format!("micro-op {i}: f: {e}"))?);
        json.push(scalar(&parts[1]).map_err(|e| format!("micro-op {i}: key: {e}"))?);
        json.push(match &parts[2] {
            Edn::Vector(vs) | Edn::List(vs) => Value::Array(
                vs.iter()
                    .map(scalar)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("micro-op {i}: value: {e}"))?,
            ),
            v => scalar(v).map_err(|e| format!("micro-op {i}: value: {e}"))?,
        });
        if let Some(v) = parts.get(3) {
            json.push(scalar(v).map_err(|e| format!("micro-op {i}: version: {e}"))?);
        }
        out.push(Value::Array(json));
    }
    Ok(Value::Array(out))
}

/// Each non-blank line read as one whole form, as Elle writes histories; `None` when some
/// line is not a whole form (a history spread over lines).
fn forms_by_line(text: &str, file: &str) -> Option<Vec<(usize, Edn)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut r = Reader::new(line, file, n + 1);
        if r.at_end().ok()? {
            continue;
        }
        let form = r.read().ok()?;
        if !r.at_end().ok()? {
            return None;
        }
        out.push((n + 1, form));
    }
    Some(out)
}

/// A txn's micro-ops as its invoke shows them: reads' values unknown.
fn unread(v: &Edn) -> Edn {
    match v {
        Edn::Vector(mops) => Edn::Vector(
            mops.iter()
                .map(|m| match m {
                    Edn::Vector(p)
                        if p.len() >= 3 && matches!(&p[0], Edn::Keyword(f) if f == "r") =>
                    {
                        Edn::Vector(vec![p[0].clone(), p[1].clone(), Edn::Nil])
                    }
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Parses an Elle transactional history into faultline ops (`f: "txn"`).
pub fn parse(text: &str, file: &str) -> Result<Vec<Op>, HistoryError> {
    let maps = match forms_by_line(text, file) {
        Some(maps) => maps,
        None => {
            // Not one form per line: read the whole text (errors still name the line).
            let mut r = Reader::new(text, file, 1);
            let mut maps = Vec::new();
            while !r.at_end()? {
                maps.push((0, r.read()?));
            }
            maps
        }
    };
    let mut flat: Vec<(usize, Edn)> = Vec::with_capacity(maps.len());
    for (line, form) in maps {
        match form {
            Edn::Vector(items) | Edn::List(items) => {
                flat.extend(items.into_iter().map(|m| (line, m)))
            }
            m => flat.push((line, m)),
        }
    }
    // Elle's test histories often hold completions only; each then gets an invoke just
    // before it (with its reads unknown), as if the txns ran one after another.
    let maps = if flat
        .iter()
        .any(|(_, m)| matches!(m, Edn::Map(fields) if matches!(field(fields, "type"), Some(Edn::Keyword(t)) if t == "invoke")))
    {
        flat
    } else {
        let mut out = Vec::with_capacity(flat.len() * 2);
        for (line, m) in flat {
            if let Edn::Map(fields) = &m {
                let invoke: Vec<(Edn, Edn)> = fields
                    .iter()
                    .map(|(k, v)| match k {
                        Edn::Keyword(n) if n == "type" => (k.clone(), Edn::Keyword("invoke".into())),
                        Edn::Keyword(n) if n == "value" => (k.clone(), unread(v)),
                        _ => (k.clone(), v.clone()),
                    })
                    .collect();
                out.push((line, Edn::Map(invoke)));
            }
            out.push((line, m));
        }
        out
    };
    let mut ops = Vec::with_capacity(maps.len());
    // Anonymous processes: each invoke opens a fresh one, its completion is the next
    // anonymous completion.
    let mut anon_next = u64::MAX / 2;
    let mut anon_open: Vec<u64> = Vec::new();
    for (pos, (line, m)) in maps.iter().enumerate() {
        let err = |msg: String| {
            if *line > 0 {
                HistoryError::parse(file, *line, msg)
            } else {
                HistoryError::parse(file, 0, format!("op {pos}: {msg}"))
            }
        };
        let Edn::Map(map) = m else {
            return Err(err("expected an op map".into()));
        };
        let kind = match field(map, "type") {
            Some(Edn::Keyword(t)) => match t.as_str() {
                "invoke" => OpType::Invoke,
                "ok" => OpType::Ok,
                "fail" => OpType::Fail,
                "info" => OpType::Info,
                other => return Err(err(format!("unknown :type :{other}"))),
            },
            _ => return Err(err("expected a :type keyword".into())),
        };
        let process = match field(map, "process") {
            Some(Edn::Int(p)) if *p >= 0 => Process::Client(*p as u64),
            Some(Edn::Keyword(k)) if k == "nemesis" => Process::Nemesis,
            None => {
                let p = if kind == OpType::Invoke {
                    anon_next += 1;
                    anon_open.push(anon_next);
                    anon_next
                } else {
                    anon_open.pop().ok_or_else(|| {
                        err("a completion with no :process and no open invoke".into())
                    })?
                };
                Process::Client(p)
            }
            Some(other) => return Err(err(format!("bad :process {other:?}"))),
        };
        let f = match field(map, "f") {
            None => "txn".to_string(),
            Some(Edn::Keyword(f)) | Some(Edn::Symbol(f)) | Some(Edn::Str(f)) => f.clone(),
            Some(other) => return Err(err(format!("bad :f {other:?}"))),
        };
        let value = if f == "txn" && process != Process::Nemesis {
            mops(field(map, "value").unwrap_or(&Edn::Nil)).map_err(err)?
        } else {
            Value::Null
        };
        let time = match field(map, "time") {
            Some(Edn::Int(t)) if *t >= 0 => *t as u64,
            _ => pos as u64,
        };
        ops.push(Op {
            index: pos as u64,
            time,
            kind,
            process,
            f,
            key: None,
            value,
            node: None,
            error: None,
        });
    }
    // Elle's hand-written examples often give every op :time 0; file order is then the
    // only real-time order there is.
    if ops.windows(2).any(|w| w[1].time < w[0].time) || ops.iter().all(|o| o.time == 0) {
        for (i, op) in ops.iter_mut().enumerate() {
            op.time = i as u64;
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elle_histories_with_and_without_processes() {
        let text = "; comment\n{:index 0 :type :invoke :value [[:append 1 2] [:r 1 nil]]}\n{:index 1 :type :ok :value [[:append 1 2] [:r 1 [2]]]}\n{:type :invoke, :f :txn, :value [[:w :x 3]], :process 4, :time 10}\n{:type :info, :f :txn, :value [[:w :x 3]], :process 4, :time 12}\n";
        assert!(looks_like(text));
        let ops = parse(text, "h.edn").unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].process, ops[1].process);
        assert_eq!(
            ops[1].value,
            serde_json::json!([["append", 1, 2], ["r", 1, [2]]])
        );
        assert_eq!(ops[3].value, serde_json::json!([["w", "x", 3]]));
        let err = parse("{:type :ok :value [[:append 1]]}", "x.edn")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.edn") && err.contains("micro-op 0"), "{err}");
    }
}
