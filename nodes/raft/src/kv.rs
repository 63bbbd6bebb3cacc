//! The key-value state machine: `put` and `cas` commands with exactly-once request ids
//! (a retried request id is answered with its first outcome and not applied again).

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
        }
    }
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
}
