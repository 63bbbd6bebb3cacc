//! Request frames → typed commands: arity, options and the recognised Lua scripts.

use crate::resp::Frame;

/// The standard compare-and-delete unlock script (redis.io's distributed-lock page).
pub const UNLOCK_SCRIPT: &str = r#"if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end"#;

/// The usual compare-and-extend script: renews a lock's TTL only while it is still ours.
pub const EXTEND_SCRIPT: &str = r#"if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("pexpire",KEYS[1],ARGV[2]) else return 0 end"#;

/// When a SET takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCond {
    Always,
    /// Only if the key does not exist: the lock acquire.
    Nx,
    /// Only if the key exists.
    Xx,
}

/// A SET's expiry option, still relative where the client gave it relative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    None,
    KeepTtl,
    Ex(u64),
    Px(u64),
    ExAt(u64),
    PxAt(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ping(Option<Vec<u8>>),
    Echo(Vec<u8>),
    Get(Vec<u8>),
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        cond: SetCond,
        expiry: Expiry,
        get: bool,
    },
    Del(Vec<Vec<u8>>),
    Exists(Vec<Vec<u8>>),
    /// PTTL (`millis` = true) or TTL.
    Ttl {
        key: Vec<u8>,
        millis: bool,
    },
    Incr(Vec<u8>),
    Pexpire {
        key: Vec<u8>,
        ms: u64,
    },
    /// EVAL of `UNLOCK_SCRIPT`.
    CompareAndDelete {
        key: Vec<u8>,
        token: Vec<u8>,
    },
    /// EVAL of `EXTEND_SCRIPT`.
    CompareAndPexpire {
        key: Vec<u8>,
        token: Vec<u8>,
        ms: u64,
    },
    /// `REPLICAOF host port` (Some) or `REPLICAOF NO ONE` (None).
    ReplicaOf(Option<(String, u16)>),
    Info,
    Role,
    DbSize,
    FlushAll,
    Select(i64),
    /// Replies that keep generic clients happy (COMMAND, CLIENT SETNAME, …).
    Noop(Frame),
    Quit,
    /// A replica asks for the full data set and then the stream of writes.
    Sync,
}

impl Command {
    /// Whether the command changes the data set: rejected on a replica, sent to replicas.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Command::Set { .. }
                | Command::Del(_)
                | Command::Incr(_)
                | Command::Pexpire { .. }
                | Command::CompareAndDelete { .. }
                | Command::CompareAndPexpire { .. }
                | Command::FlushAll
        )
    }

    /// Parses a request; `Err` holds the error reply to send (the connection stays open).
    pub fn from_frame(frame: Frame) -> Result<Command, Frame> {
        let Frame::Array(items) = frame else {
            return Err(Frame::error(
                "ERR Protocol error: expected an array of bulk strings",
            ));
        };
        let mut args = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Frame::Bulk(b) => args.push(b),
                _ => {
                    return Err(Frame::error(
                        "ERR Protocol error: expected an array of bulk strings",
                    ))
                }
            }
        }
        let Some(name) = args.first() else {
            return Err(Frame::error("ERR empty command"));
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let mut rest: Vec<Vec<u8>> = args.into_iter().skip(1).collect();
        let arity = |ok: bool| -> Result<(), Frame> {
            if ok {
                Ok(())
            } else {
                Err(Frame::error(format!(
                    "ERR wrong number of arguments for '{}' command",
                    name.to_ascii_lowercase()
                )))
            }
        };
        match name.as_str() {
            "PING" => {
                arity(rest.len() <= 1)?;
                Ok(Command::Ping(rest.pop()))
            }
            "ECHO" => {
                arity(rest.len() == 1)?;
                Ok(Command::Echo(rest.remove(0)))
            }
            "GET" => {
                arity(rest.len() == 1)?;
                Ok(Command::Get(rest.remove(0)))
            }
            "SET" => {
                arity(rest.len() >= 2)?;
                parse_set(rest)
            }
            "DEL" | "UNLINK" => {
                arity(!rest.is_empty())?;
                Ok(Command::Del(rest))
            }
            "EXISTS" => {
                arity(!rest.is_empty())?;
                Ok(Command::Exists(rest))
            }
            "PTTL" | "TTL" => {
                arity(rest.len() == 1)?;
                Ok(Command::Ttl {
                    key: rest.remove(0),
                    millis: name == "PTTL",
                })
            }
            "INCR" => {
                arity(rest.len() == 1)?;
                Ok(Command::Incr(rest.remove(0)))
            }
            "PEXPIRE" => {
                arity(rest.len() == 2)?;
                let ms = positive(&rest[1], "pexpire")?;
                Ok(Command::Pexpire {
                    key: rest.remove(0),
                    ms,
                })
            }
            "EVAL" => {
                arity(rest.len() >= 2)?;
                parse_eval(rest)
            }
            "EVALSHA" => {
                arity(rest.len() >= 2)?;
                // Clients fall back from EVALSHA to EVAL on NOSCRIPT, so this keeps them working.
                Err(Frame::error(
                    "NOSCRIPT No matching script. Please use EVAL.",
                ))
            }
            "REPLICAOF" | "SLAVEOF" => {
                arity(rest.len() == 2)?;
                parse_replicaof(&rest[0], &rest[1])
            }
            "INFO" => Ok(Command::Info),
            "ROLE" => Ok(Command::Role),
            "DBSIZE" => Ok(Command::DbSize),
            "FLUSHALL" | "FLUSHDB" => Ok(Command::FlushAll),
            "SELECT" => {
                arity(rest.len() == 1)?;
                let db = std::str::from_utf8(&rest[0])
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| Frame::error("ERR value is not an integer or out of range"))?;
                Ok(Command::Select(db))
            }
            "COMMAND" => Ok(Command::Noop(Frame::Array(Vec::new()))),
            "CLIENT" | "READONLY" | "READWRITE" => Ok(Command::Noop(Frame::ok())),
            "QUIT" => Ok(Command::Quit),
            "SYNC" | "PSYNC" => Ok(Command::Sync),
            _ => Err(Frame::error(format!(
                "ERR unknown command '{}'",
                String::from_utf8_lossy(name.as_bytes())
            ))),
        }
    }
}

fn number(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse::<i64>().ok()
}

fn positive(arg: &[u8], cmd: &str) -> Result<u64, Frame> {
    match number(arg) {
        Some(n) if n > 0 => Ok(n as u64),
        Some(_) => Err(Frame::error(format!(
            "ERR invalid expire time in '{cmd}' command"
        ))),
        None => Err(Frame::error("ERR value is not an integer or out of range")),
    }
}

fn parse_set(args: Vec<Vec<u8>>) -> Result<Command, Frame> {
    let mut it = args.into_iter();
    let (Some(key), Some(value)) = (it.next(), it.next()) else {
        return Err(Frame::error(
            "ERR wrong number of arguments for 'set' command",
        ));
    };
    let syntax = || Frame::error("ERR syntax error");
    let mut cond = SetCond::Always;
    let mut expiry = Expiry::None;
    let mut get = false;
    while let Some(opt) = it.next() {
        let opt = String::from_utf8_lossy(&opt).to_ascii_uppercase();
        match opt.as_str() {
            "NX" if cond == SetCond::Always => cond = SetCond::Nx,
            "XX" if cond == SetCond::Always => cond = SetCond::Xx,
            "GET" => get = true,
            "KEEPTTL" if expiry == Expiry::None => expiry = Expiry::KeepTtl,
            "EX" | "PX" | "EXAT" | "PXAT" if expiry == Expiry::None => {
                let n = positive(&it.next().ok_or_else(syntax)?, "set")?;
                expiry = match opt.as_str() {
                    "EX" => Expiry::Ex(n),
                    "PX" => Expiry::Px(n),
                    "EXAT" => Expiry::ExAt(n),
                    _ => Expiry::PxAt(n),
                };
            }
            _ => return Err(syntax()),
        }
    }
    Ok(Command::Set {
        key,
        value,
        cond,
        expiry,
        get,
    })
}

/// Scripts compare equal when they differ only in whitespace, quote style and letter case.
fn normalise_script(script: &[u8]) -> Vec<u8> {
    script
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|&b| {
            if b == b'\'' {
                b'"'
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect()
}

fn parse_eval(args: Vec<Vec<u8>>) -> Result<Command, Frame> {
    let script = normalise_script(&args[0]);
    let numkeys = number(&args[1])
        .filter(|&n| n >= 0 && (n as usize) <= args.len() - 2)
        .ok_or_else(|| Frame::error("ERR Number of keys can't be greater than number of args"))?
        as usize;
    let keys = &args[2..2 + numkeys];
    let argv = &args[2 + numkeys..];
    if script == normalise_script(UNLOCK_SCRIPT.as_bytes()) {
        if keys.len() != 1 || argv.is_empty() {
            return Err(Frame::error(
                "ERR the unlock script takes 1 key and 1 argument",
            ));
        }
        return Ok(Command::CompareAndDelete {
            key: keys[0].clone(),
            token: argv[0].clone(),
        });
    }
    if script == normalise_script(EXTEND_SCRIPT.as_bytes()) {
        if keys.len() != 1 || argv.len() < 2 {
            return Err(Frame::error(
                "ERR the extend script takes 1 key and 2 arguments",
            ));
        }
        return Ok(Command::CompareAndPexpire {
            key: keys[0].clone(),
            token: argv[0].clone(),
            ms: positive(&argv[1], "pexpire")?,
        });
    }
    Err(Frame::error(
        "ERR unsupported script: this server recognises only the standard unlock and extend scripts",
    ))
}

fn parse_replicaof(host: &[u8], port: &[u8]) -> Result<Command, Frame> {
    if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
        return Ok(Command::ReplicaOf(None));
    }
    let host = String::from_utf8(host.to_vec()).map_err(|_| Frame::error("ERR invalid host"))?;
    let port = number(port)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| Frame::error("ERR Invalid master port"))?;
    Ok(Command::ReplicaOf(Some((host, port))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(parts: &[&str]) -> Result<Command, Frame> {
        Command::from_frame(Frame::command(parts))
    }

    #[test]
    fn set_options_parse_like_redis() {
        assert_eq!(
            cmd(&["set", "k", "v", "nx", "px", "30000"]),
            Ok(Command::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                cond: SetCond::Nx,
                expiry: Expiry::Px(30000),
                get: false
            })
        );
        for bad in [
            &["SET", "k", "v", "NX", "XX"][..],
            &["SET", "k", "v", "PX"],
            &["SET", "k", "v", "PX", "0"],
            &["SET", "k", "v", "PX", "-5"],
            &["SET", "k", "v", "PX", "ten"],
            &["SET", "k", "v", "EX", "1", "PX", "1"],
            &["SET", "k", "v", "BOGUS"],
            &["SET", "k"],
        ] {
            assert!(matches!(cmd(bad), Err(Frame::Error(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_unlock_script_is_recognised_in_any_spacing_or_quoting() {
        let variants = [
            UNLOCK_SCRIPT.to_string(),
            "if redis.call('get', KEYS[1]) == ARGV[1] then\n  return redis.call('del', KEYS[1])\nelse\n  return 0\nend".to_string(),
        ];
        for script in variants {
            assert_eq!(
                cmd(&["EVAL", &script, "1", "lock", "tok"]),
                Ok(Command::CompareAndDelete {
                    key: b"lock".to_vec(),
                    token: b"tok".to_vec()
                })
            );
        }
        assert!(cmd(&["EVAL", "return 1", "0"]).is_err());
        assert!(cmd(&["EVAL", UNLOCK_SCRIPT, "5", "k"]).is_err());
        assert!(cmd(&["EVAL", UNLOCK_SCRIPT, "-1"]).is_err());
        assert!(cmd(&["EVAL", UNLOCK_SCRIPT, "1", "k"]).is_err());
    }

    #[test]
    fn replicaof_takes_no_one_or_host_and_port() {
        assert_eq!(
            cmd(&["REPLICAOF", "NO", "ONE"]),
            Ok(Command::ReplicaOf(None))
        );
        assert_eq!(
            cmd(&["replicaof", "127.0.0.1", "6380"]),
            Ok(Command::ReplicaOf(Some(("127.0.0.1".into(), 6380))))
        );
        assert!(cmd(&["REPLICAOF", "h", "70000"]).is_err());
    }

    #[test]
    fn non_bulk_requests_are_errors_not_panics() {
        assert!(Command::from_frame(Frame::Integer(3)).is_err());
        assert!(Command::from_frame(Frame::Array(vec![Frame::Null])).is_err());
        assert!(Command::from_frame(Frame::Array(vec![])).is_err());
        assert!(cmd(&["NOSUCH"]).is_err());
    }
}
