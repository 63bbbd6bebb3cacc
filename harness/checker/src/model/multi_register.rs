//! `multi-register`: named registers read and written by transactions (`f: "txn"`, value a
//! list of `[f, k, v]` micro-ops applied left to right), as Knossos models it.

use super::{Model, Prepared, Val};
use crate::history::{Op, OpType};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Micro {
    /// `None`: any value may have been read.
    Read(Arc<str>, Option<Val>),
    Write(Arc<str>, Val),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOp(pub Vec<Micro>);

/// State: register name → value, sorted by name. A name not in the state holds `default`.
#[derive(Debug, Clone)]
pub struct MultiRegisterModel {
    initial: Vec<(Arc<str>, Val)>,
    default: Val,
}

impl MultiRegisterModel {
    /// `initial`: a JSON object of register → value (Knossos' tests: `{"x": 0, "y": 0}`);
    /// registers not named start as `null`.
    pub fn new(initial: &serde_json::Value) -> Result<Self, String> {
        let mut regs = Vec::new();
        match initial {
            serde_json::Value::Null => {}
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    regs.push((Arc::from(k.as_str()), Val::from(v)));
                }
            }
            other => {
                return Err(format!(
                    "multi-register initial must be an object, got {other}"
                ))
            }
        }
        regs.sort();
        Ok(MultiRegisterModel {
            initial: regs,
            default: Val::Null,
        })
    }
}

fn name_of(v: &serde_json::Value) -> Option<Arc<str>> {
    match v {
        serde_json::Value::String(s) => Some(s.as_str().into()),
        serde_json::Value::Number(n) => Some(n.to_string().into()),
        _ => None,
    }
}

fn parse_txn(v: &serde_json::Value, reads_known: bool) -> Result<TxnOp, String> {
    let Some(list) = v.as_array() else {
        return Err(format!("txn value must be a list of [f, k, v], got {v}"));
    };
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let (f, k, val) = match m.as_array().map(Vec::as_slice) {
            Some([f, k, val]) => (f, k, val),
            _ => return Err(format!("txn micro-op must be [f, k, v], got {m}")),
        };
        let Some(k) = name_of(k) else {
            return Err(format!("txn register name must be a string, got {k}"));
        };
        match f.as_str() {
            Some("read" | "r") => {
                let seen = (reads_known && !val.is_null()).then(|| Val::from(val));
                out.push(Micro::Read(k, seen));
            }
            Some("write" | "w") => out.push(Micro::Write(k, val.into())),
            _ => return Err(format!("txn micro-op f must be read or write, got {f}")),
        }
    }
    Ok(TxnOp(out))
}

impl Model for MultiRegisterModel {
    type Op = TxnOp;
    type State = Vec<(Arc<str>, Val)>;

    fn name(&self) -> String {
        "multi-register".into()
    }

    fn prepare(&self, invoke: &Op, completion: Option<&Op>) -> Result<Prepared<TxnOp>, String> {
        if invoke.f != "txn" {
            return Err(format!("expected f txn, got {:?}", invoke.f));
        }
        Ok(match completion.map(|c| c.kind) {
            Some(OpType::Ok) => {
                let c = completion.expect("ok has a completion");
                Prepared::Known(parse_txn(&c.value, true)?)
            }
            Some(OpType::Fail) => Prepared::Skip,
            _ => Prepared::Unknown(parse_txn(&invoke.value, false)?),
        })
    }

    fn init(&self) -> Self::State {
        self.initial.clone()
    }

    fn step(&self, state: &Self::State, op: &TxnOp) -> Option<Self::State> {
        let mut next: Option<Self::State> = None;
        for m in &op.0 {
            let cur = next.as_ref().unwrap_or(state);
            match m {
                Micro::Read(_, None) => {}
                Micro::Read(k, Some(v)) => {
                    let held = match cur.binary_search_by(|(n, _)| n.cmp(k)) {
                        Ok(i) => &cur[i].1,
                        Err(_) => &self.default,
                    };
                    if held != v {
                        return None;
                    }
                }
                Micro::Write(k, v) => {
                    let s = next.get_or_insert_with(|| state.clone());
                    match s.binary_search_by(|(n, _)| n.cmp(k)) {
                        Ok(i) => s[i].1 = v.clone(),
                        Err(i) => s.insert(i, (k.clone(), v.clone())),
                    }
                }
            }
        }
        Some(next.unwrap_or_else(|| state.clone()))
    }

    fn is_read_only(&self, op: &TxnOp) -> bool {
        op.0.iter().all(|m| matches!(m, Micro::Read(..)))
    }

    fn state_json(&self, state: &Self::State) -> serde_json::Value {
        serde_json::Value::Object(
            state
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_json()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn txn_reads_see_earlier_writes_of_the_same_txn() {
        let m = MultiRegisterModel::new(&json!({"x": 0, "y": 0})).unwrap();
        let t = parse_txn(
            &json!([["write", "x", 1], ["read", "x", 1], ["read", "y", 0]]),
            true,
        )
        .unwrap();
        let s = m.step(&m.init(), &t).unwrap();
        assert_eq!(m.state_json(&s), json!({"x": 1, "y": 0}));
        let bad = parse_txn(&json!([["read", "x", 0]]), true).unwrap();
        assert!(m.step(&s, &bad).is_none());
        let wildcard = parse_txn(&json!([["read", "x", null]]), true).unwrap();
        assert!(m.step(&s, &wildcard).is_some());
        assert!(parse_txn(&json!([["cas", "x", 1]]), true).is_err());
    }
}
