//! The key-value state machine: `put`, `cas` and `txn` commands with exactly-once request
//! ids (a retried request id is answered with its first outcome and not applied again). A
//! `txn` is a list of micro-ops (append to a list, write a register, read) applied as one
//! log entry, so every replica applies all of it or none, with no other entry in between.

use std::collections::{BTreeMap, HashMap, VecDeque};

use faultline_nodes_common::codec;
use serde::{Deserialize, Serialize};

use crate::state_machine::StateMachine;

/// Request ids remembered for deduplication; the oldest are forgotten first. Deterministic
/// (by apply order), so every replica forgets the same ones.
pub const REQUEST_IDS_MAX: usize = 100_000;

/// A command in the log. Values are canonical JSON text; the text `null` deletes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Put {
        key: String,
        value: String,
    },
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
    Txn {
        ops: Vec<MicroOp>,
    },
}

/// One micro-op of a transaction. Values are canonical JSON text, as in [`Command`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MicroOp {
    /// Appends `value` to the JSON list stored at `key` (an absent key is the empty list).
    Append { key: String, value: String },
    /// Sets the register `key`; the text `null` deletes.
    Write { key: String, value: String },
    /// Reads `key` as the transaction has it so far.
    Read { key: String },
}

impl MicroOp {
    pub fn is_read(&self) -> bool {
        matches!(self, MicroOp::Read { .. })
    }
}

/// What a transaction would do to the store: one answer per micro-op (`Some` value for
/// reads, `None` for absent keys and for writes) and the keys it changes.
#[derive(Debug, Default)]
pub struct TxnEffect {
    pub results: Vec<Option<String>>,
    writes: BTreeMap<String, Option<String>>,
}

/// One client request as proposed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub request_id: Option<String>,
    pub command: Command,
}

/// What applying a request answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Written,
    Cas {
        ok: bool,
        current: Option<String>,
    },
    /// A transaction applied: one answer per micro-op (see [`TxnEffect::results`]).
    Txn(Vec<Option<String>>),
    /// A transaction that changed nothing, and why (an append to a key that holds no list).
    TxnAborted(String),
    /// The entry did not decode (never expected: the leader encodes every entry).
    Invalid(String),
}

/// The replicated map.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KvStore {
    data: BTreeMap<String, String>,
    outcomes: HashMap<String, Outcome>,
    outcome_order: VecDeque<String>,
}

impl KvStore {
    /// The value of `key` as JSON text, if present.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.data.get(key)
    }

    /// Runs `ops` against the current state without changing it. The state machine commits
    /// the effect in the same step; the `txn-early-reads` bug answers a client from it
    /// long before its writes are applied.
    pub fn preview_txn(&self, ops: &[MicroOp]) -> Result<TxnEffect, String> {
        let mut effect = TxnEffect::default();
        for op in ops {
            let current = |effect: &TxnEffect, key: &String| match effect.writes.get(key) {
                Some(staged) => staged.clone(),
                None => self.data.get(key).cloned(),
            };
            match op {
                MicroOp::Read { key } => {
                    let v = current(&effect, key);
                    effect.results.push(v);
                }
                MicroOp::Write { key, value } => {
                    let v = (value != "null").then(|| value.clone());
                    effect.writes.insert(key.clone(), v);
                    effect.results.push(None);
                }
                MicroOp::Append { key, value } => {
                    let list = append_text(current(&effect, key).as_deref(), value)
                        .map_err(|e| format!("append to {key:?}: {e}"))?;
                    effect.writes.insert(key.clone(), Some(list));
                    effect.results.push(None);
                }
            }
        }
        Ok(effect)
    }

    fn set(&mut self, key: String, value: String) {
        if value == "null" {
            self.data.remove(&key);
        } else {
            self.data.insert(key, value);
        }
    }

    fn execute(&mut self, command: Command) -> Outcome {
        match command {
            Command::Put { key, value } => {
                self.set(key, value);
                Outcome::Written
            }
            Command::Cas { key, expected, new } => {
                let current = self.data.get(&key).cloned();
                if current == expected {
                    self.set(key, new);
                    Outcome::Cas {
                        ok: true,
                        current: None,
                    }
                } else {
                    Outcome::Cas { ok: false, current }
                }
            }
            Command::Txn { ops } => match self.preview_txn(&ops) {
                Ok(effect) => {
                    for (key, value) in effect.writes {
                        match value {
                            Some(v) => self.data.insert(key, v),
                            None => self.data.remove(&key),
                        };
                    }
                    Outcome::Txn(effect.results)
                }
                Err(e) => Outcome::TxnAborted(e),
            },
        }
    }
}

/// The JSON text of the list `current` (absent: empty) with `value` appended.
fn append_text(current: Option<&str>, value: &str) -> Result<String, String> {
    let mut list = match current {
        None => Vec::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Array(items)) => items,
            Ok(other) => return Err(format!("the key holds {other}, not a list")),
            Err(e) => return Err(format!("the key holds unreadable JSON: {e}")),
        },
    };
    let value: serde_json::Value =
        serde_json::from_str(value).map_err(|e| format!("unreadable value: {e}"))?;
    list.push(value);
    Ok(serde_json::Value::Array(list).to_string())
}

impl StateMachine for KvStore {
    type Output = Outcome;

    fn apply(&mut self, _index: u64, data: &[u8]) -> Outcome {
        let request: Request = match codec::decode(data) {
            Ok(r) => r,
            Err(e) => return Outcome::Invalid(e.to_string()),
        };
        if let Some(id) = &request.request_id {
            if let Some(first) = self.outcomes.get(id) {
                return first.clone();
            }
        }
        let outcome = self.execute(request.command);
        if let Some(id) = request.request_id {
            if self.outcome_order.len() >= REQUEST_IDS_MAX {
                if let Some(old) = self.outcome_order.pop_front() {
                    self.outcomes.remove(&old);
                }
            }
            self.outcomes.insert(id.clone(), outcome.clone());
            self.outcome_order.push_back(id);
        }
        outcome
    }

    fn snapshot(&self) -> Vec<u8> {
        codec::encode(self)
    }

    fn restore(&mut self, data: &[u8]) -> anyhow::Result<()> {
        *self = if data.is_empty() {
            Self::default()
        } else {
            codec::decode(data)?
        };
        Ok(())
    }

    fn check_snapshot(&self, data: &[u8]) -> anyhow::Result<()> {
        if !data.is_empty() {
            codec::decode::<KvStore>(data)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, command: Command) -> Vec<u8> {
        codec::encode(&Request {
            request_id: Some(id.into()),
            command,
        })
    }

    fn put(k: &str, v: &str) -> Command {
        Command::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    fn cas(k: &str, e: Option<&str>, n: &str) -> Command {
        Command::Cas {
            key: k.into(),
            expected: e.map(Into::into),
            new: n.into(),
        }
    }

    #[test]
    fn put_cas_and_exactly_once_request_ids() {
        let mut kv = KvStore::default();
        assert_eq!(
            kv.apply(1, &req("a", cas("k", None, "1"))),
            Outcome::Cas {
                ok: true,
                current: None
            }
        );
        assert_eq!(
            kv.apply(2, &req("b", cas("k", None, "2"))),
            Outcome::Cas {
                ok: false,
                current: Some("1".into())
            }
        );
        assert_eq!(kv.apply(3, &req("c", put("k", "5"))), Outcome::Written);
        // A retry of "a" must neither apply again nor change its answer.
        assert_eq!(
            kv.apply(4, &req("a", cas("k", None, "1"))),
            Outcome::Cas {
                ok: true,
                current: None
            }
        );
        assert_eq!(kv.get("k").map(String::as_str), Some("5"));
        // A retried put must not overwrite a later write.
        assert_eq!(kv.apply(5, &req("d", put("k", "6"))), Outcome::Written);
        assert_eq!(kv.apply(6, &req("c", put("k", "5"))), Outcome::Written);
        assert_eq!(kv.get("k").map(String::as_str), Some("6"));
        assert_eq!(kv.apply(7, &req("e", put("k", "null"))), Outcome::Written);
        assert_eq!(kv.get("k"), None);
        assert!(matches!(kv.apply(8, b"\xff\xff\xff"), Outcome::Invalid(_)));
        let snap = kv.snapshot();
        let mut other = KvStore::default();
        other.restore(&snap).unwrap();
        assert_eq!(
            other.apply(9, &req("a", cas("k", None, "1"))),
            Outcome::Cas {
                ok: true,
                current: None
            }
        );
        assert_eq!(other.get("k"), None, "dedup table survives the snapshot");
    }

    fn append(k: &str, v: &str) -> MicroOp {
        MicroOp::Append {
            key: k.into(),
            value: v.into(),
        }
    }

    fn read(k: &str) -> MicroOp {
        MicroOp::Read { key: k.into() }
    }

    #[test]
    fn a_txn_sees_its_own_writes_and_applies_all_or_nothing() {
        let mut kv = KvStore::default();
        let txn = |ops| Command::Txn { ops };
        assert_eq!(
            kv.apply(
                1,
                &req(
                    "a",
                    txn(vec![
                        read("x"),
                        append("x", "1"),
                        append("x", "2"),
                        read("x")
                    ])
                )
            ),
            Outcome::Txn(vec![None, None, None, Some("[1,2]".into())])
        );
        let w = MicroOp::Write {
            key: "r".into(),
            value: "7".into(),
        };
        assert_eq!(
            kv.apply(2, &req("b", txn(vec![w, read("r"), read("x")]))),
            Outcome::Txn(vec![None, Some("7".into()), Some("[1,2]".into())])
        );
        // An append to a register aborts the whole txn: its first append is not applied.
        let out = kv.apply(3, &req("c", txn(vec![append("x", "3"), append("r", "4")])));
        assert!(
            matches!(&out, Outcome::TxnAborted(e) if e.contains("not a list")),
            "{out:?}"
        );
        assert_eq!(kv.get("x").map(String::as_str), Some("[1,2]"));
        // A retried txn answers its first reads, not the current state.
        kv.apply(4, &req("d", txn(vec![append("x", "5")])));
        assert_eq!(
            kv.apply(5, &req("b", txn(vec![read("x")]))),
            Outcome::Txn(vec![None, Some("7".into()), Some("[1,2]".into())])
        );
        // A preview changes nothing.
        let effect = kv.preview_txn(&[append("x", "9"), read("x")]).unwrap();
        assert_eq!(effect.results[1].as_deref(), Some("[1,2,5,9]"));
        assert_eq!(kv.get("x").map(String::as_str), Some("[1,2,5]"));
    }
}
