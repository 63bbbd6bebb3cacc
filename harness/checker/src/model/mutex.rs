//! `mutex`: one lock, as Knossos models it (acquire legal iff free, release iff held).

use super::{Model, Prepared};
use crate::history::{Op, OpType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutexOp {
    Acquire,
    Release,
}

#[derive(Debug, Clone, Default)]
pub struct MutexModel;

impl Model for MutexModel {
    type Op = MutexOp;
    /// Whether the lock is held.
    type State = bool;

    fn name(&self) -> String {
        "mutex".into()
    }

    fn prepare(&self, invoke: &Op, completion: Option<&Op>) -> Result<Prepared<MutexOp>, String> {
        let op = match invoke.f.as_str() {
            "acquire" => MutexOp::Acquire,
            "release" => MutexOp::Release,
            other => return Err(format!("expected f acquire or release, got {other:?}")),
        };
        Ok(match completion.map(|c| c.kind) {
            Some(OpType::Ok) => Prepared::Known(op),
            Some(OpType::Fail) => Prepared::Skip,
            _ => Prepared::Unknown(op),
        })
    }

    fn init(&self) -> bool {
        false
    }

    fn step(&self, held: &bool, op: &MutexOp) -> Option<bool> {
        match (op, held) {
            (MutexOp::Acquire, false) => Some(true),
            (MutexOp::Release, true) => Some(false),
            _ => None,
        }
    }

    fn state_json(&self, held: &bool) -> serde_json::Value {
        serde_json::Value::String(if *held { "locked" } else { "unlocked" }.into())
    }

    fn why_illegal(&self, held: &bool, op: &MutexOp) -> String {
        match (op, held) {
            (MutexOp::Acquire, true) => "it acquired the lock while it was held".into(),
            _ => "it released the lock while nobody held it".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_needs_free_release_needs_held() {
        let m = MutexModel;
        assert_eq!(m.step(&false, &MutexOp::Acquire), Some(true));
        assert_eq!(m.step(&true, &MutexOp::Acquire), None);
        assert_eq!(m.step(&true, &MutexOp::Release), Some(false));
        assert_eq!(m.step(&false, &MutexOp::Release), None);
    }
}
