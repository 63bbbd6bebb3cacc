//! Clients of real Redis on the `redis` crate: the register (GET / SET / compare-and-set by
//! Lua script) and the lock (`SET NX PX`, compare-and-delete by script), talking to a fixed
//! primary or to whichever primary the Sentinels name. Errors classify as the history
//! needs: an error the server sent back (`READONLY`, a script error) means the command did
//! not take effect (`fail`); a lost connection or a timeout leaves a write's fate unknown
//! (`info`); a read that did not answer changed nothing (`fail`).

use super::SENTINEL_MASTER;
use crate::lock::{lock_name, Holding};
use crate::lock_set::{decode_set, encode_set, Grant, GuardedSet, GuardedSetFactory, StepError};
use async_trait::async_trait;
use faultline_checker::history::Key;
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::generator::Invocation;
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use std::time::Duration;

/// Sets `key` to ARGV[2] only if it holds ARGV[1]: Redis runs a script atomically.
const CAS_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";
/// Deletes the lock only if it still holds this client's token (the documented release).
const UNLOCK_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) else return 0 end";

/// How clients find the primary.
#[derive(Debug, Clone)]
pub enum Route {
    /// Always this server: `(host, "ip:port")`.
    Fixed(String, String),
    /// Ask the Sentinels (`"ip:port"` each, first answer wins) for the current primary
    /// before every command; `hosts` maps a server's address back to its host name.
    Sentinel {
        sentinels: Vec<String>,
        hosts: Vec<(String, String)>,
    },
}

/// The connection of one client process, opened on first use and dropped after any error
/// that may have left it in an unknown state.
struct Connection {
    route: Route,
    timeout: Duration,
    /// `(host, connection)` to the server commands go to.
    open: Option<(String, MultiplexedConnection)>,
    /// `(index in the Sentinel list, connection)` to the Sentinel that answered last.
    sentinel: Option<(usize, MultiplexedConnection)>,
}

/// A multiplexed connection to `addr` (`"ip:port"`).
async fn open(addr: &str) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(format!("redis://{addr}/"))?
        .get_multiplexed_async_connection()
        .await
}

/// An outcome of one command: the value, or how the op ended.
type Answer<T> = Result<T, Completion>;

impl Connection {
    /// The primary this process's Sentinels name now, `"ip:port"`: the first Sentinel (in
    /// the worker's order) that answers. A Sentinel cut off with the old primary keeps
    /// naming it, so its clients keep writing there, as application servers on that side
    /// of a partition do.
    async fn primary_from_sentinels(&mut self) -> Result<String, String> {
        let Route::Sentinel { sentinels, .. } = &self.route else {
            return Err("not a Sentinel route".into());
        };
        let mut why = String::from("no Sentinel");
        for (i, addr) in sentinels.iter().enumerate() {
            let conn = match &mut self.sentinel {
                Some((at, conn)) if *at == i => conn,
                _ => match open(addr).await {
                    Ok(conn) => &mut self.sentinel.insert((i, conn)).1,
                    Err(e) => {
                        why = format!("Sentinel {addr}: {e}");
                        continue;
                    }
                },
            };
            let asked = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(SENTINEL_MASTER)
                .query_async::<Option<(String, String)>>(conn)
                .await;
            match asked {
                Ok(Some((ip, port))) => return Ok(format!("{ip}:{port}")),
                Ok(None) => why = format!("Sentinel {addr} knows no primary"),
                Err(e) => {
                    self.sentinel = None;
                    why = format!("Sentinel {addr}: {e}");
                }
            }
        }
        Err(why)
    }

    /// The host and address to send the next command to.
    async fn target(&mut self) -> Result<(String, String), String> {
        match &self.route {
            Route::Fixed(host, addr) => Ok((host.clone(), addr.clone())),
            Route::Sentinel { .. } => {
                let addr = self.primary_from_sentinels().await?;
                let Route::Sentinel { hosts, .. } = &self.route else {
                    unreachable!("matched above");
                };
                let host = hosts
                    .iter()
                    .find(|(_, a)| *a == addr)
                    .map(|(h, _)| h.clone())
                    .unwrap_or_else(|| addr.clone());
                Ok((host, addr))
            }
        }
    }

    /// A connection to the current primary: the open one if it still goes there.
    async fn connection(&mut self) -> Result<(), String> {
        let (host, addr) = self.target().await?;
        if self.open.as_ref().is_some_and(|(h, _)| *h == host) {
            return Ok(());
        }
        let conn = open(&addr)
            .await
            .map_err(|e| format!("connecting to {host}: {e}"))?;
        self.open = Some((host, conn));
        Ok(())
    }

    /// Runs one command. Nothing was sent when no connection could be opened, so that is
    /// `fail`; after sending, only the server's own error reply is certain.
    async fn run<T: redis::FromRedisValue>(
        &mut self,
        node: &mut Option<String>,
        writes: bool,
        cmd: &redis::Cmd,
    ) -> Answer<T> {
        {
            match tokio::time::timeout(self.timeout, self.connection()).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(Completion::fail(why)),
                Err(_) => {
                    return Err(Completion::fail(format!(
                        "no connection within {} ms",
                        self.timeout.as_millis()
                    )))
                }
            }
        }
        let Some((host, conn)) = self.open.as_mut() else {
            return Err(Completion::fail("no connection"));
        };
        let host = host.clone();
        *node = Some(host.clone());
        let result = tokio::time::timeout(self.timeout, cmd.query_async::<T>(conn)).await;
        let unknown = |why: String| {
            if writes {
                Completion::info(why)
            } else {
                Completion::fail(why)
            }
        };
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(err)) if matches!(err.kind(), redis::ErrorKind::Server(_)) => {
                // The server refused it (READONLY, a script error, …): it did not happen.
                // A replica refuses every write: ask the Sentinels again next time, as
                // clients that follow failovers do.
                if err.code() == Some("READONLY") {
                    self.open = None;
                }
                Err(Completion::fail(err.to_string()))
            }
            Ok(Err(err)) => {
                self.open = None;
                Err(unknown(err.to_string()))
            }
            Err(_) => {
                self.open = None;
                Err(unknown(format!(
                    "{host} did not answer within {} ms",
                    self.timeout.as_millis()
                )))
            }
        }
    }
}

/// Which workload the clients serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Register,
    Lock { ttl_ms: u64 },
}

/// Opens register or lock clients; worker `i` starts its Sentinel list at the `i`-th
/// Sentinel, so different clients may trust different Sentinels, as different application
/// servers do.
pub struct RedisClientFactory {
    route: Route,
    timeout: Duration,
    workload: Workload,
    holding: Holding,
}

impl RedisClientFactory {
    pub fn new(route: Route, timeout: Duration, workload: Workload, holding: Holding) -> Self {
        RedisClientFactory {
            route,
            timeout,
            workload,
            holding,
        }
    }
}

/// Worker `worker`'s route: its Sentinel list starts at the `worker`-th Sentinel.
fn route_of(route: &Route, worker: usize) -> Route {
    match route {
        Route::Sentinel { sentinels, hosts } => {
            let mut sentinels = sentinels.clone();
            if !sentinels.is_empty() {
                let n = sentinels.len();
                sentinels.rotate_left(worker % n);
            }
            Route::Sentinel {
                sentinels,
                hosts: hosts.clone(),
            }
        }
        fixed => fixed.clone(),
    }
}

impl ClientFactory for RedisClientFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        let route = route_of(&self.route, worker);
        self.holding.set(worker, false);
        Ok(Box::new(RedisProcess {
            worker,
            conn: Connection {
                route,
                timeout: self.timeout,
                open: None,
                sentinel: None,
            },
            workload: self.workload,
            holding: self.holding.clone(),
            held: None,
            node: None,
        }))
    }
}

/// One client process.
pub struct RedisProcess {
    worker: usize,
    conn: Connection,
    workload: Workload,
    holding: Holding,
    /// The lock held and its token.
    held: Option<(String, String)>,
    node: Option<String>,
}

fn key_name(op: &Invocation) -> String {
    match &op.key {
        Some(Key::Int(k)) => format!("k{k}"),
        Some(Key::Str(s)) => s.clone(),
        None => "k".into(),
    }
}

/// A register value as Redis stores it (a decimal string) back to JSON.
fn parse_value(stored: Option<String>) -> Result<Value, String> {
    match stored {
        None => Ok(Value::Null),
        Some(text) => text
            .parse::<i64>()
            .map(|v| json!(v))
            .map_err(|_| format!("the register holds {text:?}, not a number")),
    }
}

impl RedisProcess {
    async fn register(&mut self, op: &Invocation) -> Completion {
        let key = key_name(op);
        let node = &mut self.node;
        match op.f {
            "read" => {
                let cmd = redis::cmd("GET").arg(&key).to_owned();
                match self.conn.run::<Option<String>>(node, false, &cmd).await {
                    Ok(stored) => match parse_value(stored) {
                        Ok(v) => Completion::ok(Some(v)),
                        Err(why) => Completion::fail(why),
                    },
                    Err(done) => done,
                }
            }
            "write" => {
                let cmd = redis::cmd("SET")
                    .arg(&key)
                    .arg(op.value.to_string())
                    .to_owned();
                match self.conn.run::<String>(node, true, &cmd).await {
                    Ok(_) => Completion::ok(None),
                    Err(done) => done,
                }
            }
            "cas" => {
                let (Some(old), Some(new)) = (op.value.get(0), op.value.get(1)) else {
                    return Completion::fail("cas needs [expected, new]");
                };
                let cmd = redis::cmd("EVAL")
                    .arg(CAS_SCRIPT)
                    .arg(1)
                    .arg(&key)
                    .arg(old.to_string())
                    .arg(new.to_string())
                    .to_owned();
                match self.conn.run::<i64>(node, true, &cmd).await {
                    Ok(1) => Completion::ok(None),
                    Ok(_) => Completion::fail("compare failed: the register held another value"),
                    Err(done) => done,
                }
            }
            other => Completion::fail(format!("the register client has no op {other:?}")),
        }
    }

    async fn acquire(&mut self, lock: &str, ttl_ms: u64) -> Completion {
        if let Some((held, _)) = &self.held {
            return Completion::fail(format!("this process already holds {held}"));
        }
        let token = faultline_redis_lock::client::random_token();
        let cmd = redis::cmd("SET")
            .arg(lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .to_owned();
        match self
            .conn
            .run::<Option<String>>(&mut self.node, true, &cmd)
            .await
        {
            Ok(Some(_)) => {
                self.held = Some((lock.to_owned(), token));
                Completion::ok(Some(json!({"lease_ms": ttl_ms})))
            }
            Ok(None) => Completion::fail("not granted: held by another client"),
            Err(done) => done,
        }
    }

    async fn release(&mut self, lock: &str) -> Completion {
        let token = match self.held.take() {
            Some((held, token)) if held == lock => token,
            _ => return Completion::fail("this process holds no lock to release"),
        };
        let cmd = redis::cmd("EVAL")
            .arg(UNLOCK_SCRIPT)
            .arg(1)
            .arg(lock)
            .arg(&token)
            .to_owned();
        match self.conn.run::<i64>(&mut self.node, true, &cmd).await {
            Ok(1) => Completion::ok(None),
            Ok(_) => Completion::fail("not ours any more: the lock had expired"),
            Err(done) => done,
        }
    }
}

/// The lock-set workload on Redis: the lock as the lock workload takes it (`SET NX PX`,
/// compare-and-delete), the set a JSON list under its own key. Redis issues no fencing
/// token, so writes cannot be fenced: a holder whose lock expired, or a second holder after
/// a failover, overwrites the set.
pub struct RedisSetFactory {
    pub route: Route,
    pub timeout: Duration,
    pub ttl_ms: u64,
}

/// How long an acquire retries a held lock before it gives up (`fail`).
const SET_ACQUIRE_WAIT: Duration = Duration::from_millis(1000);

impl GuardedSetFactory for RedisSetFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn GuardedSet>> {
        Ok(Box::new(RedisSet {
            conn: Connection {
                route: route_of(&self.route, worker),
                timeout: self.timeout,
                open: None,
                sentinel: None,
            },
            ttl_ms: self.ttl_ms,
            node: None,
        }))
    }
}

struct RedisSet {
    conn: Connection,
    ttl_ms: u64,
    node: Option<String>,
}

#[async_trait]
impl GuardedSet for RedisSet {
    async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError> {
        let token = faultline_redis_lock::client::random_token();
        let deadline = tokio::time::Instant::now() + SET_ACQUIRE_WAIT;
        loop {
            let cmd = redis::cmd("SET")
                .arg(lock)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(self.ttl_ms)
                .to_owned();
            match self
                .conn
                .run::<Option<String>>(&mut self.node, true, &cmd)
                .await
            {
                Ok(Some(_)) => {
                    return Ok(Grant {
                        token: None,
                        handle: token.into_bytes(),
                    })
                }
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => {
                    return Err(StepError::Definite(format!(
                        "not granted within {} ms: held by another client",
                        SET_ACQUIRE_WAIT.as_millis()
                    )))
                }
                Err(done) => return Err(StepError::from_completion(done)),
            }
        }
    }

    async fn release(&mut self, lock: &str, grant: &Grant) -> Result<(), StepError> {
        let cmd = redis::cmd("EVAL")
            .arg(UNLOCK_SCRIPT)
            .arg(1)
            .arg(lock)
            .arg(&grant.handle[..])
            .to_owned();
        match self.conn.run::<i64>(&mut self.node, true, &cmd).await {
            Ok(1) => Ok(()),
            Ok(_) => Err(StepError::Definite(
                "not ours any more: the lock had expired".into(),
            )),
            Err(done) => Err(StepError::from_completion(done)),
        }
    }

    async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError> {
        let cmd = redis::cmd("GET").arg(set).to_owned();
        let stored = self
            .conn
            .run::<Option<Vec<u8>>>(&mut self.node, false, &cmd)
            .await
            .map_err(StepError::from_completion)?;
        decode_set(stored.as_deref()).map_err(StepError::Definite)
    }

    async fn write(
        &mut self,
        set: &str,
        elements: &[i64],
        _fence: Option<(&str, &Grant)>,
    ) -> Result<(), StepError> {
        let cmd = redis::cmd("SET")
            .arg(set)
            .arg(encode_set(elements))
            .to_owned();
        self.conn
            .run::<String>(&mut self.node, true, &cmd)
            .await
            .map(|_| ())
            .map_err(StepError::from_completion)
    }

    fn can_fence(&self) -> bool {
        false
    }

    fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

#[async_trait]
impl Client for RedisProcess {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let done = match self.workload {
            Workload::Register => self.register(op).await,
            Workload::Lock { ttl_ms } => {
                let lock = op
                    .key
                    .as_ref()
                    .map(lock_name)
                    .unwrap_or_else(|| "lock-0".into());
                let done = match op.f {
                    "acquire" => self.acquire(&lock, ttl_ms).await,
                    "release" => self.release(&lock).await,
                    other => Completion::fail(format!("the lock client has no op {other:?}")),
                };
                self.holding.set(self.worker, self.held.is_some());
                done
            }
        };
        match &self.node {
            Some(node) => done.at_node(node.clone()),
            None => done,
        }
    }

    fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_parse_back_to_numbers_or_fail_with_the_text() {
        assert_eq!(parse_value(None).unwrap(), Value::Null);
        assert_eq!(parse_value(Some("3".into())).unwrap(), json!(3));
        let err = parse_value(Some("x".into())).unwrap_err();
        assert!(err.contains("\"x\""), "{err}");
    }
}
