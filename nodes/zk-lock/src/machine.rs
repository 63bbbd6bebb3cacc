//! The replicated lock state: sessions, ephemeral sequential nodes per lock, grants.
//!
//! Pure and deterministic: every replica applies the same committed operations at the same
//! log indexes and reaches the same state. Time never enters here; a session expires only
//! when the leader decides so and commits an `Expire` operation.
//!
//! The lock recipe is ZooKeeper's: an acquire creates an ephemeral sequential node under the
//! lock; the session whose node has the lowest sequence number holds the lock; the others wait
//! for their predecessor to disappear (released, cancelled, or its session gone). The fencing
//! token of a grant is the log index of the operation that made the node the lowest, so tokens
//! increase strictly per lock, across leader changes too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest lock name accepted, in bytes.
pub const LOCK_NAME_BYTES_MAX: usize = 256;
/// Most sessions open at once.
pub const SESSIONS_MAX: usize = 10_000;
/// Most nodes (holder and waiters) under one lock.
pub const WAITERS_MAX: usize = 1_000;
/// Session timeout bounds, milliseconds.
pub const SESSION_TIMEOUT_MS_MIN: u64 = 100;
pub const SESSION_TIMEOUT_MS_MAX: u64 = 600_000;
/// Data keys (the store beside the locks, `/data/*`): longest name, largest value, most
/// keys. A value fits in one request body with room for its JSON framing.
pub const DATA_KEY_BYTES_MAX: usize = 256;
pub const DATA_VALUE_BYTES_MAX: usize = 60 * 1024;
pub const DATA_KEYS_MAX: usize = 1_000;

/// A session id: the log index of the entry that opened it (unique, never reused).
pub type SessionId = u64;

/// One operation in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    OpenSession {
        timeout_ms: u64,
    },
    CloseSession {
        session: SessionId,
    },
    /// Proposed by the leader when a session missed its timeout.
    Expire {
        session: SessionId,
    },
    /// Creates the session's node under `lock`, or finds the one it already has (a retried
    /// acquire must not queue twice).
    Acquire {
        session: SessionId,
        lock: String,
    },
    /// Deletes the session's node under `lock`, held or waiting.
    Release {
        session: SessionId,
        lock: String,
    },
    /// Gives up waiting: deletes the node only if it does not hold the lock yet.
    Cancel {
        session: SessionId,
        lock: String,
    },
    /// Stores `value` under data key `key` (ZooKeeper's setData on a persistent node).
    /// With `fence`, only while that lock's holder has that token (the fencing check a
    /// store makes, as ZooKeeper's multi with a check on the lock node); otherwise nothing
    /// changes and the outcome is `Fenced`.
    Put {
        key: String,
        value: String,
        #[serde(default)]
        fence: Option<Fence>,
    },
}

/// A write's guard: the lock and the grant's fencing token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub lock: String,
    pub token: u64,
}

/// What an operation did, for the client that proposed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Opened {
        session: SessionId,
        timeout_ms: u64,
    },
    Closed,
    /// The session holds the lock with this fencing token.
    Held {
        token: u64,
    },
    /// The session's node waits behind `ahead` others.
    Waiting {
        ahead: usize,
    },
    /// Release or cancel of a node that existed.
    Released,
    /// Cancel found the lock already granted: the caller holds it.
    AlreadyHeld {
        token: u64,
    },
    /// Release or cancel of a lock the session has no node under.
    NotHeld,
    /// The session does not exist (never opened, closed, or expired).
    NoSession,
    /// Refused by a limit or invalid argument; nothing changed.
    Rejected(String),
    /// A put was stored.
    Written,
    /// A fenced put was refused: the lock's holder token now (`None`: nobody holds it).
    Fenced {
        holder: Option<u64>,
    },
}

/// An ephemeral sequential node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Node {
    session: SessionId,
    /// Set when the node became the lowest: the fencing token.
    token: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LockQueue {
    next_seq: u64,
    /// Sequence number → node; the first entry holds the lock.
    nodes: BTreeMap<u64, Node>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub timeout_ms: u64,
    /// Lock name → the sequence number of this session's node under it.
    pub nodes: BTreeMap<String, u64>,
}

/// A grant made while applying an entry, for watchers and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub lock: String,
    pub session: SessionId,
    pub token: u64,
}

/// The whole replicated state; serialised as the Raft snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    sessions: BTreeMap<SessionId, Session>,
    locks: BTreeMap<String, LockQueue>,
    /// The data keys; absent in snapshots written before the store existed.
    #[serde(default)]
    data: BTreeMap<String, String>,
}

impl Machine {
    pub fn new() -> Machine {
        Machine::default()
    }

    pub fn sessions(&self) -> &BTreeMap<SessionId, Session> {
        &self.sessions
    }

    /// The holder of `lock` and its token.
    pub fn holder(&self, lock: &str) -> Option<(SessionId, u64)> {
        let (_, node) = self.locks.get(lock)?.nodes.iter().next()?;
        Some((node.session, node.token?))
    }

    /// The token `session` holds `lock` with, if it holds it.
    pub fn held_by(&self, session: SessionId, lock: &str) -> Option<u64> {
        self.holder(lock)
            .filter(|(s, _)| *s == session)
            .map(|(_, token)| token)
    }

    /// The value stored under data key `key`.
    pub fn data(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// Whether `session` has a node (held or waiting) under `lock`.
    pub fn has_node(&self, session: SessionId, lock: &str) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.nodes.contains_key(lock))
    }

    /// Applies the committed operation at log `index`; returns its outcome and the grants it
    /// caused (a release or expiry can pass several locks on).
    pub fn apply(&mut self, index: u64, op: &Op) -> (Outcome, Vec<Grant>) {
        let mut grants = Vec::new();
        let outcome = match op {
            Op::OpenSession { timeout_ms } => {
                if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(timeout_ms) {
                    Outcome::Rejected(format!(
                        "timeout_ms must be between {SESSION_TIMEOUT_MS_MIN} and {SESSION_TIMEOUT_MS_MAX}"
                    ))
                } else if self.sessions.len() >= SESSIONS_MAX {
                    Outcome::Rejected(format!("too many sessions (limit {SESSIONS_MAX})"))
                } else {
                    self.sessions.insert(
                        index,
                        Session {
                            timeout_ms: *timeout_ms,
                            nodes: BTreeMap::new(),
                        },
                    );
                    Outcome::Opened {
                        session: index,
                        timeout_ms: *timeout_ms,
                    }
                }
            }
            Op::CloseSession { session } | Op::Expire { session } => {
                match self.sessions.remove(session) {
                    None => Outcome::NoSession,
                    Some(s) => {
                        for (lock, seq) in s.nodes {
                            self.remove_node(index, &lock, seq, &mut grants);
                        }
                        Outcome::Closed
                    }
                }
            }
            Op::Acquire { session, lock } => self.acquire(index, *session, lock, &mut grants),
            Op::Release { session, lock } => {
                self.release(index, *session, lock, false, &mut grants)
            }
            Op::Cancel { session, lock } => self.release(index, *session, lock, true, &mut grants),
            Op::Put { key, value, fence } => self.put(key, value, fence.as_ref()),
        };
        (outcome, grants)
    }

    fn acquire(
        &mut self,
        index: u64,
        session: SessionId,
        lock: &str,
        grants: &mut Vec<Grant>,
    ) -> Outcome {
        if lock.is_empty() || lock.len() > LOCK_NAME_BYTES_MAX {
            return Outcome::Rejected(format!(
                "lock name must be 1 to {LOCK_NAME_BYTES_MAX} bytes"
            ));
        }
        let Some(s) = self.sessions.get_mut(&session) else {
            return Outcome::NoSession;
        };
        let queue = self.locks.entry(lock.to_string()).or_default();
        let seq = match s.nodes.get(lock) {
            Some(&seq) => seq,
            None => {
                if queue.nodes.len() >= WAITERS_MAX {
                    return Outcome::Rejected(format!(
                        "too many waiters on {lock:?} (limit {WAITERS_MAX})"
                    ));
                }
                let seq = queue.next_seq;
                queue.next_seq += 1;
                queue.nodes.insert(
                    seq,
                    Node {
                        session,
                        token: None,
                    },
                );
                s.nodes.insert(lock.to_string(), seq);
                seq
            }
        };
        self.promote(index, lock, grants);
        let queue = &self.locks[lock];
        match queue.nodes.get(&seq).and_then(|n| n.token) {
            Some(token) => Outcome::Held { token },
            None => Outcome::Waiting {
                ahead: queue.nodes.range(..seq).count(),
            },
        }
    }

    fn put(&mut self, key: &str, value: &str, fence: Option<&Fence>) -> Outcome {
        if key.is_empty() || key.len() > DATA_KEY_BYTES_MAX {
            return Outcome::Rejected(format!("key must be 1 to {DATA_KEY_BYTES_MAX} bytes"));
        }
        if value.len() > DATA_VALUE_BYTES_MAX {
            return Outcome::Rejected(format!(
                "value must be at most {DATA_VALUE_BYTES_MAX} bytes"
            ));
        }
        if !self.data.contains_key(key) && self.data.len() >= DATA_KEYS_MAX {
            return Outcome::Rejected(format!("too many data keys (limit {DATA_KEYS_MAX})"));
        }
        if let Some(fence) = fence {
            let holder = self.holder(&fence.lock).map(|(_, token)| token);
            if holder != Some(fence.token) {
                return Outcome::Fenced { holder };
            }
        }
        self.data.insert(key.to_string(), value.to_string());
        Outcome::Written
    }

    fn release(
        &mut self,
        index: u64,
        session: SessionId,
        lock: &str,
        only_if_waiting: bool,
        grants: &mut Vec<Grant>,
    ) -> Outcome {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Outcome::NoSession;
        };
        let Some(&seq) = s.nodes.get(lock) else {
            return Outcome::NotHeld;
        };
        if only_if_waiting {
            if let Some(token) = self.held_by(session, lock) {
                return Outcome::AlreadyHeld { token };
            }
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.nodes.remove(lock);
        }
        self.remove_node(index, lock, seq, grants);
        Outcome::Released
    }

    /// Deletes node `seq` under `lock` (the session's record is the caller's business) and
    /// passes the lock on if the holder went.
    fn remove_node(&mut self, index: u64, lock: &str, seq: u64, grants: &mut Vec<Grant>) {
        let Some(queue) = self.locks.get_mut(lock) else {
            return;
        };
        queue.nodes.remove(&seq);
        if queue.nodes.is_empty() {
            // Keep no empty queues around: lock names are client-chosen and unbounded.
            // Sequence numbers may restart; tokens (log indexes) never do.
            self.locks.remove(lock);
            return;
        }
        self.promote(index, lock, grants);
    }

    /// Grants `lock` to its lowest node if that node has no token yet.
    fn promote(&mut self, index: u64, lock: &str, grants: &mut Vec<Grant>) {
        let Some(queue) = self.locks.get_mut(lock) else {
            return;
        };
        if let Some((_, node)) = queue.nodes.iter_mut().next() {
            if node.token.is_none() {
                node.token = Some(index);
                grants.push(Grant {
                    lock: lock.to_string(),
                    session: node.session,
                    token: index,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies ops at consecutive indexes starting from 1, like a log.
    struct Log {
        m: Machine,
        index: u64,
    }

    impl Log {
        fn new() -> Log {
            Log {
                m: Machine::new(),
                index: 0,
            }
        }

        fn apply(&mut self, op: Op) -> Outcome {
            self.index += 1;
            self.m.apply(self.index, &op).0
        }

        fn open(&mut self) -> SessionId {
            match self.apply(Op::OpenSession { timeout_ms: 1000 }) {
                Outcome::Opened { session, .. } => session,
                other => panic!("open: {other:?}"),
            }
        }

        fn acquire(&mut self, session: SessionId, lock: &str) -> Outcome {
            self.apply(Op::Acquire {
                session,
                lock: lock.into(),
            })
        }
    }

    #[test]
    fn the_lowest_node_holds_and_the_next_is_granted_on_release() {
        let mut log = Log::new();
        let (a, b, c) = (log.open(), log.open(), log.open());
        assert_eq!(log.acquire(a, "l"), Outcome::Held { token: 4 });
        assert_eq!(log.acquire(b, "l"), Outcome::Waiting { ahead: 1 });
        assert_eq!(log.acquire(c, "l"), Outcome::Waiting { ahead: 2 });
        // A retried acquire finds its node instead of queueing again.
        assert_eq!(log.acquire(b, "l"), Outcome::Waiting { ahead: 1 });
        assert_eq!(log.acquire(a, "l"), Outcome::Held { token: 4 });
        assert_eq!(
            log.apply(Op::Release {
                session: a,
                lock: "l".into()
            }),
            Outcome::Released
        );
        assert_eq!(log.m.holder("l"), Some((b, 9)));
        assert_eq!(
            log.apply(Op::Release {
                session: a,
                lock: "l".into()
            }),
            Outcome::NotHeld
        );
    }

    #[test]
    fn expiry_deletes_ephemeral_nodes_and_passes_every_lock_on() {
        let mut log = Log::new();
        let (a, b) = (log.open(), log.open());
        log.acquire(a, "x");
        log.acquire(a, "y");
        log.acquire(b, "x");
        log.acquire(b, "y");
        log.index += 1;
        let (outcome, grants) = log.m.apply(log.index, &Op::Expire { session: a });
        assert_eq!(outcome, Outcome::Closed);
        assert_eq!(grants.len(), 2);
        assert_eq!(log.m.held_by(b, "x"), Some(log.index));
        assert_eq!(log.m.held_by(b, "y"), Some(log.index));
        assert_eq!(log.acquire(a, "x"), Outcome::NoSession);
        assert!(!log.m.sessions().contains_key(&a));
    }

    #[test]
    fn a_waiter_that_cancels_leaves_the_queue_but_a_holder_keeps_the_lock() {
        let mut log = Log::new();
        let (a, b, c) = (log.open(), log.open(), log.open());
        log.acquire(a, "l");
        log.acquire(b, "l");
        log.acquire(c, "l");
        assert_eq!(
            log.apply(Op::Cancel {
                session: b,
                lock: "l".into()
            }),
            Outcome::Released
        );
        assert_eq!(
            log.apply(Op::Cancel {
                session: a,
                lock: "l".into()
            }),
            Outcome::AlreadyHeld { token: 4 }
        );
        log.apply(Op::CloseSession { session: a });
        assert_eq!(log.m.holder("l"), Some((c, 9)));
    }

    #[test]
    fn tokens_increase_strictly_per_lock() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut log = Log::new();
        let mut sessions: Vec<SessionId> = (0..4).map(|_| log.open()).collect();
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for _ in 0..2_000 {
            let lock = format!("l{}", rng.random_range(0..3));
            let s = sessions[rng.random_range(0..sessions.len())];
            let op = match rng.random_range(0..10) {
                0..=4 => Op::Acquire { session: s, lock },
                5..=7 => Op::Release { session: s, lock },
                8 => Op::Cancel { session: s, lock },
                _ => {
                    sessions.retain(|&x| x != s);
                    Op::Expire { session: s }
                }
            };
            if sessions.len() < 2 {
                sessions.push(log.open());
            }
            log.index += 1;
            let (_, grants) = log.m.apply(log.index, &op);
            for g in grants {
                let prev = last.insert(g.lock.clone(), g.token);
                assert!(prev.is_none_or(|p| p < g.token), "{g:?} after {prev:?}");
                assert!(log.m.sessions().contains_key(&g.session));
            }
        }
    }

    #[test]
    fn a_fenced_put_is_stored_only_while_its_token_holds_the_lock() {
        let mut log = Log::new();
        let (a, b) = (log.open(), log.open());
        let Outcome::Held { token: first } = log.acquire(a, "l") else {
            panic!("a holds l");
        };
        let put = |value: &str, token| Op::Put {
            key: "k".into(),
            value: value.into(),
            fence: Some(Fence {
                lock: "l".into(),
                token,
            }),
        };
        assert_eq!(log.apply(put("[1]", first)), Outcome::Written);
        assert_eq!(log.m.data("k"), Some("[1]"));
        log.acquire(b, "l");
        log.apply(Op::Expire { session: a });
        let second = log.m.holder("l").map(|(_, t)| t);
        assert!(second.is_some_and(|t| t > first));
        // The expired holder's fenced write is refused; an unfenced one is not checked.
        assert_eq!(
            log.apply(put("[2]", first)),
            Outcome::Fenced { holder: second }
        );
        assert_eq!(log.m.data("k"), Some("[1]"));
        let unfenced = Op::Put {
            key: "k".into(),
            value: "[3]".into(),
            fence: None,
        };
        assert_eq!(log.apply(unfenced), Outcome::Written);
        assert_eq!(log.m.data("k"), Some("[3]"));
        log.apply(Op::CloseSession { session: b });
        assert_eq!(log.apply(put("[4]", 0)), Outcome::Fenced { holder: None });
        let before = log.m.clone();
        let huge = Op::Put {
            key: "k".into(),
            value: "x".repeat(DATA_VALUE_BYTES_MAX + 1),
            fence: None,
        };
        assert!(matches!(log.apply(huge), Outcome::Rejected(_)));
        let nameless = Op::Put {
            key: String::new(),
            value: "1".into(),
            fence: None,
        };
        assert!(matches!(log.apply(nameless), Outcome::Rejected(_)));
        assert_eq!(log.m, before);
    }

    #[test]
    fn limits_and_bad_arguments_are_rejected_without_change() {
        let mut log = Log::new();
        assert!(matches!(
            log.apply(Op::OpenSession { timeout_ms: 1 }),
            Outcome::Rejected(_)
        ));
        let a = log.open();
        let before = log.m.clone();
        assert!(matches!(log.acquire(a, ""), Outcome::Rejected(_)));
        assert!(matches!(
            log.acquire(a, &"x".repeat(300)),
            Outcome::Rejected(_)
        ));
        assert_eq!(log.acquire(999, "l"), Outcome::NoSession);
        assert_eq!(log.m, before);
    }
}
