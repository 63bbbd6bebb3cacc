//! `register` (read/write) and `cas-register` (read/write/cas) over one value.

use super::{Model, Prepared, Val};
use crate::history::{Op, OpType};

/// How a history's `fail` and nil reads are meant; the three sources differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// faultline's own histories (DESIGN §2): `fail` did not happen; a read of `null`
    /// means the register holds nothing (the key is absent). Initial state `null`.
    Faultline,
    /// Knossos: `fail` did not happen; an `ok` read of nil is a wildcard ("we don't know
    /// what was read"). Initial state `0` in its test sweep.
    Knossos,
    /// Porcupine's etcd model: a failed cas completed and returned false (so the value
    /// differed from `expected` at that point); a read of nil means the key is absent.
    Porcupine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegOp {
    /// `None`: any value may have been read.
    Read(Option<Val>),
    Write(Val),
    /// `ok`: `Some(true)` succeeded, `Some(false)` completed but did not swap,
    /// `None` unknown.
    Cas {
        from: Val,
        to: Val,
        ok: Option<bool>,
    },
}

#[derive(Debug, Clone)]
pub struct RegisterModel {
    pub cas: bool,
    pub convention: Convention,
    pub initial: Val,
}

impl RegisterModel {
    pub fn new(cas: bool, convention: Convention, initial: Val) -> Self {
        RegisterModel {
            cas,
            convention,
            initial,
        }
    }
}

fn cas_pair(v: &serde_json::Value) -> Result<(Val, Val), String> {
    match v.as_array().map(Vec::as_slice) {
        Some([from, to]) => Ok((from.into(), to.into())),
        _ => Err(format!("cas value must be [expected, new], got {v}")),
    }
}

impl Model for RegisterModel {
    type Op = RegOp;
    type State = Val;

    fn name(&self) -> String {
        let base = if self.cas { "cas-register" } else { "register" };
        match self.convention {
            Convention::Faultline => base.to_string(),
            Convention::Knossos => format!("{base}:knossos"),
            Convention::Porcupine => format!("{base}:porcupine"),
        }
    }

    fn prepare(&self, invoke: &Op, completion: Option<&Op>) -> Result<Prepared<RegOp>, String> {
        let kind = completion.map(|c| c.kind).unwrap_or(OpType::Info);
        let f = invoke.f.as_str();
        let op = match (f, kind) {
            (_, OpType::Invoke) => return Err("a completion cannot be an invoke".into()),
            ("read", OpType::Ok) => {
                let v = &completion.expect("ok has a completion").value;
                if v.is_null() && self.convention == Convention::Knossos {
                    RegOp::Read(None)
                } else {
                    RegOp::Read(Some(v.into()))
                }
            }
            // A read with unknown outcome changes nothing and observes nothing.
            ("read", _) => return Ok(Prepared::Skip),
            ("write", OpType::Fail) => return Ok(Prepared::Skip),
            ("write", _) => RegOp::Write((&invoke.value).into()),
            ("cas", _) if !self.cas => {
                return Err("cas is not an op of the register model (use cas-register)".into())
            }
            ("cas", OpType::Fail) if self.convention != Convention::Porcupine => {
                return Ok(Prepared::Skip)
            }
            ("cas", kind) => {
                let (from, to) = cas_pair(&invoke.value)?;
                let ok = match kind {
                    OpType::Ok => Some(true),
                    OpType::Fail => Some(false),
                    _ => None,
                };
                RegOp::Cas { from, to, ok }
            }
            (other, _) => {
                return Err(format!(
                    "expected f read, write{}, got {other:?}",
                    if self.cas { " or cas" } else { "" }
                ))
            }
        };
        Ok(match kind {
            OpType::Ok | OpType::Fail => Prepared::Known(op),
            _ => Prepared::Unknown(op),
        })
    }

    fn init(&self) -> Val {
        self.initial.clone()
    }

    fn step(&self, state: &Val, op: &RegOp) -> Option<Val> {
        match op {
            RegOp::Read(None) => Some(state.clone()),
            RegOp::Read(Some(v)) => (v == state).then(|| state.clone()),
            RegOp::Write(v) => Some(v.clone()),
            RegOp::Cas { from, to, ok } => match (from == state, ok) {
                (true, Some(true) | None) => Some(to.clone()),
                (false, Some(false) | None) => Some(state.clone()),
                _ => None,
            },
        }
    }

    fn is_read_only(&self, op: &RegOp) -> bool {
        matches!(op, RegOp::Read(_))
    }

    fn state_json(&self, state: &Val) -> serde_json::Value {
        state.to_json()
    }

    fn why_illegal(&self, state: &Val, op: &RegOp) -> String {
        match op {
            RegOp::Read(Some(v)) => format!("it read {v}, but the register held {state}"),
            RegOp::Cas {
                from,
                ok: Some(true),
                ..
            } => {
                format!("its cas from {from} succeeded, but the register held {state}")
            }
            RegOp::Cas {
                from,
                ok: Some(false),
                ..
            } => {
                format!("its cas from {from} failed, but the register held {from}")
            }
            _ => format!("{op:?} is not legal when the register holds {state}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(conv: Convention) -> RegisterModel {
        RegisterModel::new(true, conv, Val::Int(0))
    }

    #[test]
    fn read_must_see_the_value() {
        let model = m(Convention::Faultline);
        assert_eq!(
            model.step(&Val::Int(1), &RegOp::Read(Some(Val::Int(1)))),
            Some(Val::Int(1))
        );
        assert_eq!(
            model.step(&Val::Int(1), &RegOp::Read(Some(Val::Int(2)))),
            None
        );
        assert_eq!(
            model.step(&Val::Int(1), &RegOp::Read(None)),
            Some(Val::Int(1))
        );
    }

    #[test]
    fn cas_outcomes() {
        let model = m(Convention::Porcupine);
        let cas = |ok| RegOp::Cas {
            from: Val::Int(1),
            to: Val::Int(2),
            ok,
        };
        assert_eq!(
            model.step(&Val::Int(1), &cas(Some(true))),
            Some(Val::Int(2))
        );
        assert_eq!(model.step(&Val::Int(3), &cas(Some(true))), None);
        assert_eq!(
            model.step(&Val::Int(3), &cas(Some(false))),
            Some(Val::Int(3))
        );
        assert_eq!(model.step(&Val::Int(1), &cas(Some(false))), None);
        assert_eq!(model.step(&Val::Int(1), &cas(None)), Some(Val::Int(2)));
        assert_eq!(model.step(&Val::Int(3), &cas(None)), Some(Val::Int(3)));
        assert_eq!(
            model.step(&Val::Int(9), &RegOp::Write(Val::Int(4))),
            Some(Val::Int(4))
        );
    }

    fn op(kind: OpType, f: &str, value: serde_json::Value) -> Op {
        serde_json::from_value(serde_json::json!({
            "index": 0, "time": 0, "type": kind, "process": 1, "f": f, "value": value
        }))
        .unwrap()
    }

    #[test]
    fn conventions_differ_on_fail_and_nil() {
        let inv = op(OpType::Invoke, "cas", serde_json::json!([1, 2]));
        let fail = op(OpType::Fail, "cas", serde_json::json!([1, 2]));
        assert_eq!(
            m(Convention::Knossos).prepare(&inv, Some(&fail)),
            Ok(Prepared::Skip)
        );
        assert_eq!(
            m(Convention::Porcupine).prepare(&inv, Some(&fail)),
            Ok(Prepared::Known(RegOp::Cas {
                from: Val::Int(1),
                to: Val::Int(2),
                ok: Some(false)
            }))
        );
        let rinv = op(OpType::Invoke, "read", serde_json::Value::Null);
        let rok = op(OpType::Ok, "read", serde_json::Value::Null);
        assert_eq!(
            m(Convention::Knossos).prepare(&rinv, Some(&rok)),
            Ok(Prepared::Known(RegOp::Read(None)))
        );
        assert_eq!(
            m(Convention::Faultline).prepare(&rinv, Some(&rok)),
            Ok(Prepared::Known(RegOp::Read(Some(Val::Null))))
        );
        let winv = op(OpType::Invoke, "write", serde_json::json!(5));
        assert_eq!(
            m(Convention::Faultline).prepare(&winv, None),
            Ok(Prepared::Unknown(RegOp::Write(Val::Int(5))))
        );
        let plain = RegisterModel::new(false, Convention::Faultline, Val::Null);
        assert!(plain.prepare(&inv, Some(&fail)).is_err());
    }
}
