//! The keyspace: string values with absolute expiry times, applied with an explicit `now`.
//!
//! Pure: no clock, no I/O. Every write also yields the frames to send to replicas, which state
//! the key's resulting value with an absolute expiry (`SET k v PXAT t` or `DEL k`), as Redis
//! rewrites relative expiries before propagating, so a replica applying late sets the same
//! deadline.

use std::collections::HashMap;

use crate::cmd::{Command, Expiry, SetCond};
use crate::resp::Frame;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: Vec<u8>,
    /// Milliseconds since the epoch by the clock of the primary that set it.
    expires_at_ms: Option<u64>,
}

/// The outcome of one command: the client's reply and what replicas must apply.
#[derive(Debug, PartialEq, Eq)]
pub struct Applied {
    pub reply: Frame,
    pub propagate: Vec<Frame>,
}

impl Applied {
    fn read(reply: Frame) -> Applied {
        Applied {
            reply,
            propagate: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Db {
    map: HashMap<Vec<u8>, Entry>,
}

impl Db {
    pub fn new() -> Db {
        Db::default()
    }

    /// Keys stored, counting expired keys not yet swept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The live entry for `key`, dropping it first if it has expired (lazy expiry, as Redis).
    fn live(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let expired = self
            .map
            .get(key)
            .is_some_and(|e| e.expires_at_ms.is_some_and(|t| t <= now_ms));
        if expired {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    /// Removes every expired key (the active expiry cycle); returns how many.
    pub fn sweep(&mut self, now_ms: u64) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, e| e.expires_at_ms.is_none_or(|t| t > now_ms));
        before - self.map.len()
    }

    /// The frame that makes a replica's copy of `key` equal to ours.
    fn state_of(&self, key: &[u8]) -> Frame {
        match self.map.get(key) {
            Some(e) => set_frame(key, e),
            None => Frame::command([b"DEL".as_slice(), key]),
        }
    }

    /// The whole data set as the writes that rebuild it on an empty replica.
    pub fn snapshot(&mut self, now_ms: u64) -> Vec<Frame> {
        self.sweep(now_ms);
        self.map.iter().map(|(k, e)| set_frame(k, e)).collect()
    }

    /// Applies a data command. Server commands (REPLICAOF, INFO, SYNC, …) are answered by the
    /// server, not here, and get an error reply if they arrive.
    pub fn apply(&mut self, cmd: &Command, now_ms: u64) -> Applied {
        match cmd {
            Command::Ping(None) => Applied::read(Frame::Simple("PONG".into())),
            Command::Ping(Some(msg)) | Command::Echo(msg) => {
                Applied::read(Frame::Bulk(msg.clone()))
            }
            Command::Get(key) => Applied::read(match self.live(key, now_ms) {
                Some(e) => Frame::Bulk(e.value.clone()),
                None => Frame::Null,
            }),
            Command::Exists(keys) => {
                let n = keys
                    .iter()
                    .filter(|k| self.live(k, now_ms).is_some())
                    .count();
                Applied::read(Frame::Integer(n as i64))
            }
            Command::Ttl { key, millis } => {
                Applied::read(Frame::Integer(match self.live(key, now_ms) {
                    None => -2,
                    Some(Entry {
                        expires_at_ms: None,
                        ..
                    }) => -1,
                    Some(Entry {
                        expires_at_ms: Some(t),
                        ..
                    }) => {
                        let left = t.saturating_sub(now_ms);
                        let left = if *millis { left } else { left.div_ceil(1000) };
                        i64::try_from(left).unwrap_or(i64::MAX)
                    }
                }))
            }
            Command::DbSize => {
                self.sweep(now_ms);
                Applied::read(Frame::Integer(self.map.len() as i64))
            }
            Command::Set {
                key,
                value,
                cond,
                expiry,
                get,
            } => self.set(key, value, *cond, *expiry, *get, now_ms),
            Command::Del(keys) => {
                let mut removed = 0;
                let mut propagate = Vec::new();
                for key in keys {
                    if self.live(key, now_ms).is_some() {
                        self.map.remove(key.as_slice());
                        removed += 1;
                        propagate.push(self.state_of(key));
                    }
                }
                Applied {
                    reply: Frame::Integer(removed),
                    propagate,
                }
            }
            Command::Incr(key) => self.incr(key, now_ms),
            Command::Pexpire { key, ms } => self.pexpire(key, *ms, now_ms),
            Command::CompareAndDelete { key, token } => {
                if self.live(key, now_ms).is_some_and(|e| &e.value == token) {
                    self.map.remove(key.as_slice());
                    Applied {
                        reply: Frame::Integer(1),
                        propagate: vec![self.state_of(key)],
                    }
                } else {
                    Applied::read(Frame::Integer(0))
                }
            }
            Command::CompareAndPexpire { key, token, ms } => {
                if self.live(key, now_ms).is_some_and(|e| &e.value == token) {
                    self.pexpire(key, *ms, now_ms)
                } else {
                    Applied::read(Frame::Integer(0))
                }
            }
            Command::FlushAll => {
                self.map.clear();
                Applied {
                    reply: Frame::ok(),
                    propagate: vec![Frame::command(["FLUSHALL"])],
                }
            }
            Command::Select(0) => Applied::read(Frame::ok()),
            Command::Select(_) => Applied::read(Frame::error("ERR DB index is out of range")),
            Command::Noop(reply) => Applied::read(reply.clone()),
            other => Applied::read(Frame::error(format!(
                "ERR {other:?} is not a keyspace command"
            ))),
        }
    }

    fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        cond: SetCond,
        expiry: Expiry,
        get: bool,
        now_ms: u64,
    ) -> Applied {
        let old = self.live(key, now_ms).cloned();
        let proceed = match cond {
            SetCond::Always => true,
            SetCond::Nx => old.is_none(),
            SetCond::Xx => old.is_some(),
        };
        let old_reply = match &old {
            Some(e) => Frame::Bulk(e.value.clone()),
            None => Frame::Null,
        };
        if !proceed {
            return Applied::read(if get { old_reply } else { Frame::Null });
        }
        let deadline = match expiry {
            Expiry::None => None,
            Expiry::KeepTtl => old.and_then(|e| e.expires_at_ms).map(Some),
            Expiry::Ex(s) => Some(s.checked_mul(1000).and_then(|ms| now_ms.checked_add(ms))),
            Expiry::Px(ms) => Some(now_ms.checked_add(ms)),
            Expiry::ExAt(s) => Some(s.checked_mul(1000)),
            Expiry::PxAt(ms) => Some(Some(ms)),
        };
        let expires_at_ms = match deadline.map(valid_deadline) {
            None => None,
            Some(Some(t)) => Some(t),
            Some(None) => return Applied::read(invalid_expire("set")),
        };
        self.map.insert(
            key.to_vec(),
            Entry {
                value: value.to_vec(),
                expires_at_ms,
            },
        );
        // A deadline already past deletes the key, as SET … PXAT <past> does in Redis.
        self.live(key, now_ms);
        Applied {
            reply: if get { old_reply } else { Frame::ok() },
            propagate: vec![self.state_of(key)],
        }
    }

    fn incr(&mut self, key: &[u8], now_ms: u64) -> Applied {
        let (current, expires_at_ms) = match self.live(key, now_ms) {
            None => (0, None),
            Some(e) => match std::str::from_utf8(&e.value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(n) => (n, e.expires_at_ms),
                None => {
                    return Applied::read(Frame::error(
                        "ERR value is not an integer or out of range",
                    ))
                }
            },
        };
        let Some(next) = current.checked_add(1) else {
            return Applied::read(Frame::error("ERR increment or decrement would overflow"));
        };
        self.map.insert(
            key.to_vec(),
            Entry {
                value: next.to_string().into_bytes(),
                expires_at_ms,
            },
        );
        Applied {
            reply: Frame::Integer(next),
            propagate: vec![self.state_of(key)],
        }
    }

    fn pexpire(&mut self, key: &[u8], ms: u64, now_ms: u64) -> Applied {
        match self.live(key, now_ms) {
            None => Applied::read(Frame::Integer(0)),
            Some(e) => {
                let Some(t) = valid_deadline(now_ms.checked_add(ms)) else {
                    return Applied::read(invalid_expire("pexpire"));
                };
                e.expires_at_ms = Some(t);
                Applied {
                    reply: Frame::Integer(1),
                    propagate: vec![self.state_of(key)],
                }
            }
        }
    }
}

/// The latest deadline a key may have: replicas parse `PXAT` as an i64, as Redis does, so a
/// larger one (`SET k v EX 10000000000000000` saturated to u64::MAX) was refused by every
/// replica and blocked the replication stream behind it.
const DEADLINE_MS_MAX: u64 = i64::MAX as u64;

fn valid_deadline(t: Option<u64>) -> Option<u64> {
    t.filter(|&t| t <= DEADLINE_MS_MAX)
}

/// Redis's answer to an expiry that overflows.
fn invalid_expire(cmd: &str) -> Frame {
    Frame::error(format!("ERR invalid expire time in '{cmd}' command"))
}

fn set_frame(key: &[u8], e: &Entry) -> Frame {
    match e.expires_at_ms {
        Some(t) => Frame::command([
            b"SET".as_slice(),
            key,
            &e.value,
            b"PXAT",
            t.to_string().as_bytes(),
        ]),
        None => Frame::command([b"SET".as_slice(), key, &e.value]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(db: &mut Db, now: u64, parts: &[&str]) -> Frame {
        let cmd = Command::from_frame(Frame::command(parts)).expect("valid command");
        db.apply(&cmd, now).reply
    }

    #[test]
    fn keys_expire_by_the_clock_passed_in() {
        let mut db = Db::new();
        assert_eq!(
            run(&mut db, 1000, &["SET", "lock", "a", "NX", "PX", "100"]),
            Frame::ok()
        );
        assert_eq!(
            run(&mut db, 1050, &["SET", "lock", "b", "NX", "PX", "100"]),
            Frame::Null
        );
        assert_eq!(run(&mut db, 1099, &["GET", "lock"]), Frame::bulk("a"));
        assert_eq!(run(&mut db, 1099, &["PTTL", "lock"]), Frame::Integer(1));
        assert_eq!(run(&mut db, 1100, &["GET", "lock"]), Frame::Null);
        assert_eq!(run(&mut db, 1100, &["PTTL", "lock"]), Frame::Integer(-2));
        assert_eq!(
            run(&mut db, 1100, &["SET", "lock", "b", "NX", "PX", "100"]),
            Frame::ok()
        );
        assert_eq!(run(&mut db, 1100, &["TTL", "lock"]), Frame::Integer(1));
    }

    #[test]
    fn a_clock_jumping_forward_expires_a_lock_early() {
        let mut db = Db::new();
        run(&mut db, 1000, &["SET", "lock", "a", "NX", "PX", "30000"]);
        // The same server, its clock stepped forward by a minute (an NTP step, or faketime).
        assert_eq!(
            run(&mut db, 61_000, &["SET", "lock", "b", "NX", "PX", "30000"]),
            Frame::ok()
        );
    }

    #[test]
    fn compare_and_delete_only_deletes_the_callers_lock() {
        let mut db = Db::new();
        let unlock = |db: &mut Db, now, token: &str| {
            run(
                db,
                now,
                &["EVAL", crate::cmd::UNLOCK_SCRIPT, "1", "lock", token],
            )
        };
        run(&mut db, 0, &["SET", "lock", "a", "NX", "PX", "100"]);
        assert_eq!(unlock(&mut db, 10, "b"), Frame::Integer(0));
        assert_eq!(run(&mut db, 10, &["GET", "lock"]), Frame::bulk("a"));
        // a's lock expires and b takes it; a's late release must not free b's lock.
        run(&mut db, 200, &["SET", "lock", "b", "NX", "PX", "100"]);
        assert_eq!(unlock(&mut db, 210, "a"), Frame::Integer(0));
        assert_eq!(run(&mut db, 210, &["GET", "lock"]), Frame::bulk("b"));
        assert_eq!(unlock(&mut db, 220, "b"), Frame::Integer(1));
        assert_eq!(run(&mut db, 220, &["GET", "lock"]), Frame::Null);
    }

    #[test]
    fn extend_renews_only_the_callers_lock() {
        let mut db = Db::new();
        let extend = |db: &mut Db, now, token: &str| {
            run(
                db,
                now,
                &["EVAL", crate::cmd::EXTEND_SCRIPT, "1", "lock", token, "500"],
            )
        };
        run(&mut db, 0, &["SET", "lock", "a", "PX", "100"]);
        assert_eq!(extend(&mut db, 50, "b"), Frame::Integer(0));
        assert_eq!(extend(&mut db, 50, "a"), Frame::Integer(1));
        assert_eq!(run(&mut db, 500, &["GET", "lock"]), Frame::bulk("a"));
        assert_eq!(run(&mut db, 550, &["GET", "lock"]), Frame::Null);
    }

    #[test]
    fn writes_propagate_absolute_deadlines() {
        let mut db = Db::new();
        let cmd = Command::from_frame(Frame::command(["SET", "k", "v", "PX", "100"])).unwrap();
        let applied = db.apply(&cmd, 5000);
        assert_eq!(
            applied.propagate,
            vec![Frame::command(["SET", "k", "v", "PXAT", "5100"])]
        );
        // A replica applying it 30 ms late (by its own clock) keeps the same deadline.
        let mut replica = Db::new();
        for frame in applied.propagate {
            replica.apply(&Command::from_frame(frame).unwrap(), 5030);
        }
        assert_eq!(run(&mut replica, 5099, &["GET", "k"]), Frame::bulk("v"));
        assert_eq!(run(&mut replica, 5100, &["GET", "k"]), Frame::Null);
        let failed = db.apply(
            &Command::from_frame(Frame::command(["SET", "k", "w", "NX"])).unwrap(),
            5001,
        );
        assert!(failed.propagate.is_empty());
    }

    #[test]
    fn deadlines_past_i64_are_refused_so_every_propagated_write_applies_on_a_replica() {
        let mut db = Db::new();
        let now = 1_700_000_000_000;
        for parts in [
            &["SET", "k", "v", "EX", "10000000000000000"][..],
            &["SET", "k", "v", "PX", &i64::MAX.to_string()][..],
            &["SET", "k", "v", "EXAT", &i64::MAX.to_string()][..],
        ] {
            let cmd = Command::from_frame(Frame::command(parts)).unwrap();
            let applied = db.apply(&cmd, now);
            assert!(
                matches!(&applied.reply, Frame::Error(e) if e.contains("invalid expire time")),
                "{parts:?}: {:?}",
                applied.reply
            );
            assert!(applied.propagate.is_empty(), "{parts:?}");
        }
        run(&mut db, now, &["SET", "k", "v"]);
        let cmd = Command::from_frame(Frame::command(["PEXPIRE", "k", &i64::MAX.to_string()]));
        let applied = db.apply(&cmd.unwrap(), now);
        assert!(
            matches!(applied.reply, Frame::Error(_)),
            "{:?}",
            applied.reply
        );
        // The largest deadline accepted still reaches a replica as a command it parses.
        let cmd = Frame::command(["SET", "k", "v", "PXAT", &i64::MAX.to_string()]);
        let applied = db.apply(&Command::from_frame(cmd).unwrap(), now);
        assert_eq!(applied.reply, Frame::ok());
        for frame in applied.propagate {
            Command::from_frame(frame).expect("a replica parses what is propagated");
        }
    }

    #[test]
    fn incr_counts_and_rejects_non_numbers() {
        let mut db = Db::new();
        assert_eq!(run(&mut db, 0, &["INCR", "n"]), Frame::Integer(1));
        assert_eq!(run(&mut db, 0, &["INCR", "n"]), Frame::Integer(2));
        run(&mut db, 0, &["SET", "s", "x"]);
        assert!(matches!(run(&mut db, 0, &["INCR", "s"]), Frame::Error(_)));
        run(&mut db, 0, &["SET", "m", &i64::MAX.to_string()]);
        assert!(matches!(run(&mut db, 0, &["INCR", "m"]), Frame::Error(_)));
    }

    #[test]
    fn sweep_drops_only_expired_keys() {
        let mut db = Db::new();
        run(&mut db, 0, &["SET", "a", "1", "PX", "10"]);
        run(&mut db, 0, &["SET", "b", "1", "PX", "20"]);
        run(&mut db, 0, &["SET", "c", "1"]);
        assert_eq!(db.sweep(15), 1);
        assert_eq!(db.len(), 2);
    }
}
