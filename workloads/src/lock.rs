//! The `lock` workload: every client alternates acquire and release of its group's lock,
//! holding it for the pacer's gap in between; clients of zk-lock (sessions, fencing tokens)
//! and of redis-lock (one server, a primary with a replica, or Redlock over several).

use async_trait::async_trait;
use faultline_checker::history::Key;
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::generator::{Invocation, OpGenerator};
use faultline_redis_lock::client::{random_token, ClientError, RedisLockClient};
use faultline_redis_lock::redlock::Redlock;
use faultline_zk_lock::client::{SessionKeeper, ZkError, ZkLockClient};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The lock name of a key of the run's key plan: one lock per group of workers.
pub fn lock_name(key: &Key) -> String {
    match key {
        Key::Int(k) => format!("lock-{k}"),
        Key::Str(s) => s.clone(),
    }
}

/// Which workers' clients hold a lock now: the clients write it, the generator reads it, so
/// a worker releases exactly when it holds (a fresh process after `info` holds nothing).
#[derive(Debug, Default, Clone)]
pub struct Holding(Arc<Mutex<HashMap<usize, bool>>>);

impl Holding {
    pub fn set(&self, worker: usize, holds: bool) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(worker, holds);
    }

    fn get(&self, worker: usize) -> bool {
        let table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        table.get(&worker).copied().unwrap_or(false)
    }
}

/// Acquire when the worker's client holds nothing, release when it holds its lock. A
/// worker is told apart by its rng's stream, which `faultline_core::generator::worker_rng`
/// sets to the worker's number + 1: the generator has no other per-worker handle, and the
/// choice must follow the worker (not the key, which a whole group shares). How long a lock
/// is held is the pacer's gap between a worker's ops (uniform in `[0, 2·concurrency/rate)`).
#[derive(Debug, Default)]
pub struct LockGenerator {
    holding: Holding,
}

impl LockGenerator {
    /// A generator that follows what the clients sharing `holding` hold.
    pub fn new(holding: Holding) -> Self {
        LockGenerator { holding }
    }
}

impl OpGenerator for LockGenerator {
    fn next_op(&self, key: &Key, rng: &mut ChaCha8Rng) -> Invocation {
        let worker = rng.get_stream().saturating_sub(1) as usize;
        let f = if self.holding.get(worker) {
            "release"
        } else {
            "acquire"
        };
        Invocation {
            f,
            key: Some(Key::Str(lock_name(key))),
            value: Value::Null,
        }
    }

    /// Nothing to read back: a lock's history is complete without a final op.
    fn final_op(&self, _key: &Key) -> Option<Invocation> {
        None
    }
}

fn key_of(op: &Invocation) -> String {
    op.key
        .as_ref()
        .map(lock_name)
        .unwrap_or_else(|| "lock-0".into())
}

/// Settings of the zk-lock clients.
#[derive(Debug, Clone)]
pub struct ZkLockSettings {
    /// Client addresses `(host name, "ip:port")` of every node.
    pub nodes: Vec<(String, String)>,
    /// Bound on one request (an acquire also waits `acquire_wait_ms`).
    pub request_timeout: Duration,
    /// The session timeout: the lease every grant carries.
    pub session_timeout_ms: u64,
    /// How long an acquire waits in the lock's queue before it is cancelled (408 → fail).
    pub acquire_wait_ms: u64,
}

/// Opens zk-lock clients; worker i starts at node i mod n (the library moves on by itself
/// when a node refuses or knows no leader).
pub struct ZkLockClientFactory {
    settings: ZkLockSettings,
    holding: Holding,
}

impl ZkLockClientFactory {
    pub fn new(settings: ZkLockSettings, holding: Holding) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.nodes.is_empty(),
            "zk-lock needs at least one node"
        );
        Ok(ZkLockClientFactory { settings, holding })
    }
}

impl ClientFactory for ZkLockClientFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        let n = self.settings.nodes.len();
        let mut addrs: Vec<String> = self.settings.nodes.iter().map(|(_, a)| a.clone()).collect();
        addrs.rotate_left(worker % n);
        self.holding.set(worker, false);
        Ok(Box::new(ZkLockProcess {
            worker,
            holding: self.holding.clone(),
            client: ZkLockClient::new(addrs, self.settings.request_timeout),
            node: self.settings.nodes[worker % n].0.clone(),
            session: None,
            held: None,
            session_timeout_ms: self.settings.session_timeout_ms,
            acquire_wait_ms: self.settings.acquire_wait_ms,
        }))
    }
}

/// A zk-lock process's live session in `slot`, opened (with its keepalive task) when there
/// is none or the keeper lost it.
pub(crate) async fn live_session(
    client: &ZkLockClient,
    slot: &mut Option<(u64, SessionKeeper)>,
    timeout_ms: u64,
) -> Result<u64, String> {
    if let Some((id, keeper)) = slot {
        if keeper.is_alive() {
            return Ok(*id);
        }
    }
    *slot = None;
    // An open whose answer was lost creates a session that holds nothing and expires: the
    // step that needed it certainly did not happen either way.
    let id = client
        .open_session(timeout_ms)
        .await
        .map_err(|e| format!("opening a session: {e}"))?;
    *slot = Some((id, client.keep_alive(id, timeout_ms)));
    Ok(id)
}

/// One client process of zk-lock: its own session (kept alive in the background while the
/// process lives) and the lock it holds.
pub struct ZkLockProcess {
    worker: usize,
    holding: Holding,
    client: ZkLockClient,
    node: String,
    session: Option<(u64, SessionKeeper)>,
    held: Option<String>,
    session_timeout_ms: u64,
    acquire_wait_ms: u64,
}

impl ZkLockProcess {
    async fn session(&mut self) -> Result<u64, String> {
        live_session(&self.client, &mut self.session, self.session_timeout_ms).await
    }

    async fn acquire(&mut self, lock: &str) -> Completion {
        if let Some(held) = &self.held {
            return Completion::fail(format!("this process already holds {held}"));
        }
        let session = match self.session().await {
            Ok(id) => id,
            Err(why) => return Completion::fail(why),
        };
        match self
            .client
            .acquire(session, lock, self.acquire_wait_ms)
            .await
        {
            Ok(token) => {
                self.held = Some(lock.to_owned());
                Completion::ok(Some(
                    json!({"token": token, "lease_ms": self.session_timeout_ms}),
                ))
            }
            Err(err) if err.is_definite() => {
                if err.status() == Some(409) {
                    self.session = None;
                }
                Completion::fail(err.to_string())
            }
            // The process is retired and its keeper dropped: a late grant ends with the
            // session's expiry.
            Err(err) => Completion::info(err.to_string()),
        }
    }

    async fn release(&mut self, lock: &str) -> Completion {
        if self.held.as_deref() != Some(lock) {
            return Completion::fail("this process holds no lock to release");
        }
        self.held = None;
        let Some((session, _)) = &self.session else {
            return Completion::fail("the session is gone");
        };
        match self.client.release(*session, lock).await {
            Ok(()) => Completion::ok(None),
            Err(ZkError::Definite { status, .. }) if status == 409 || status == 412 => {
                // Expired or already handed on: certainly not released by us now.
                self.session = None;
                Completion::fail("the session no longer held the lock")
            }
            Err(err) if err.is_definite() => {
                // Still held on the server: drop the session so it expires and hands the
                // lock on, instead of blocking the others for good.
                self.session = None;
                Completion::fail(err.to_string())
            }
            Err(err) => Completion::info(err.to_string()),
        }
    }
}

#[async_trait]
impl Client for ZkLockProcess {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let lock = key_of(op);
        let done = match op.f {
            "acquire" => self.acquire(&lock).await,
            "release" => self.release(&lock).await,
            other => Completion::fail(format!("the zk-lock client has no op {other:?}")),
        };
        self.holding.set(self.worker, self.held.is_some());
        done
    }

    fn node(&self) -> Option<&str> {
        Some(&self.node)
    }
}

/// How redis-lock is deployed (`--lock-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// One server on the first host.
    Single,
    /// A primary on the first host and an asynchronous replica on the second.
    Replica,
    /// Independent servers on every host (up to five), locked by majority (Redlock).
    Redlock,
}

impl LockMode {
    pub const NAMES: [&'static str; 3] = ["single", "replica", "redlock"];

    pub fn name(self) -> &'static str {
        match self {
            LockMode::Single => "single",
            LockMode::Replica => "replica",
            LockMode::Redlock => "redlock",
        }
    }
}

impl std::str::FromStr for LockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single" => Ok(LockMode::Single),
            "replica" => Ok(LockMode::Replica),
            "redlock" => Ok(LockMode::Redlock),
            other => Err(format!(
                "unknown lock mode {other:?}; expected one of {}",
                LockMode::NAMES.join(", ")
            )),
        }
    }
}

/// Settings of the redis-lock clients.
#[derive(Debug, Clone)]
pub struct RedisLockSettings {
    pub mode: LockMode,
    /// Single/replica: the servers that can be primary, `(host, "ip:port")`, with the index
    /// of the current one in `primary`. Redlock: every server.
    pub servers: Vec<(String, String)>,
    /// Which of `servers` takes writes now; the failover fault moves it (as Sentinel tells
    /// clients of a new primary).
    pub primary: Arc<AtomicUsize>,
    pub ttl_ms: u64,
    /// Bound on one request (Redlock: on each server's answer).
    pub request_timeout: Duration,
}

pub struct RedisLockClientFactory {
    settings: RedisLockSettings,
    holding: Holding,
}

impl RedisLockClientFactory {
    pub fn new(settings: RedisLockSettings, holding: Holding) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.servers.is_empty(),
            "redis-lock needs at least one server"
        );
        Ok(RedisLockClientFactory { settings, holding })
    }
}

impl ClientFactory for RedisLockClientFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        let s = &self.settings;
        self.holding.set(worker, false);
        let backend = match s.mode {
            LockMode::Redlock => Backend::Redlock(Redlock::new(
                s.servers.iter().map(|(_, a)| a.clone()).collect(),
                s.request_timeout,
            )),
            LockMode::Single | LockMode::Replica => Backend::Primary {
                conn: None,
                primary: s.primary.clone(),
            },
        };
        Ok(Box::new(RedisLockProcess {
            worker,
            holding: self.holding.clone(),
            servers: s.servers.clone(),
            backend,
            held: None,
            ttl_ms: s.ttl_ms,
            request_timeout: s.request_timeout,
            node: None,
        }))
    }
}

enum Backend {
    Primary {
        conn: Option<RedisLockClient>,
        primary: Arc<AtomicUsize>,
    },
    Redlock(Redlock),
}

/// One client process of redis-lock: a fresh random value per acquire, released with the
/// compare-and-delete script.
pub struct RedisLockProcess {
    worker: usize,
    holding: Holding,
    servers: Vec<(String, String)>,
    backend: Backend,
    /// The lock held and its value.
    held: Option<(String, String)>,
    ttl_ms: u64,
    request_timeout: Duration,
    node: Option<String>,
}

/// Why a bounded call to a redis-lock server did not answer: `definite` when the request
/// certainly had no effect (refused, never connected), false when it may have been applied.
pub(crate) struct CallFailed {
    pub definite: bool,
    pub why: String,
}

/// One request of redis-lock's own client on `addr`, reusing `conn` when it is to `addr`,
/// with connecting and answering each bounded by `timeout`. A cancelled request takes its
/// connection with it, so a late reply never answers the next command.
pub(crate) async fn bounded_call<T, F>(
    conn: &mut Option<RedisLockClient>,
    addr: &str,
    timeout: Duration,
    call: impl FnOnce(RedisLockClient) -> F,
) -> Result<T, CallFailed>
where
    F: std::future::Future<Output = (RedisLockClient, Result<T, ClientError>)>,
{
    let failed = |err: ClientError| CallFailed {
        definite: err.is_definite(),
        why: err.to_string(),
    };
    let client = match conn.take() {
        Some(c) if c.addr() == addr => c,
        _ => match tokio::time::timeout(timeout, RedisLockClient::connect(addr)).await {
            Ok(Ok(c)) => c,
            Ok(Err(err)) => return Err(failed(err)),
            Err(_) => {
                return Err(CallFailed {
                    definite: true,
                    why: format!("connecting to {addr} timed out"),
                })
            }
        },
    };
    match tokio::time::timeout(timeout, call(client)).await {
        Ok((client, answer)) => {
            *conn = Some(client);
            answer.map_err(failed)
        }
        Err(_) => Err(CallFailed {
            definite: false,
            why: format!("{addr} did not answer within {} ms", timeout.as_millis()),
        }),
    }
}

/// `ok`/`fail`/`info` of one call to the primary.
async fn on_primary<T, F>(
    process: &mut RedisLockProcess,
    call: impl FnOnce(RedisLockClient) -> F,
) -> Result<T, Completion>
where
    F: std::future::Future<Output = (RedisLockClient, Result<T, ClientError>)>,
{
    let Backend::Primary { conn, primary } = &mut process.backend else {
        return Err(Completion::fail("not a single-server client"));
    };
    let i = primary.load(Ordering::SeqCst) % process.servers.len();
    let (host, addr) = process.servers[i].clone();
    process.node = Some(host);
    bounded_call(conn, &addr, process.request_timeout, call)
        .await
        .map_err(|f| {
            if f.definite {
                Completion::fail(f.why)
            } else {
                Completion::info(f.why)
            }
        })
}

impl RedisLockProcess {
    async fn acquire(&mut self, lock: &str) -> Completion {
        if let Some((held, _)) = &self.held {
            return Completion::fail(format!("this process already holds {held}"));
        }
        let token = random_token();
        let ttl = self.ttl_ms;
        let granted = match &mut self.backend {
            Backend::Redlock(redlock) => {
                // Redlock releases a failed attempt everywhere itself; the client never
                // believes it holds the lock then.
                Ok(redlock.acquire(lock, &token, ttl).await.is_some())
            }
            Backend::Primary { .. } => {
                let (l, t) = (lock.to_owned(), token.clone());
                on_primary(self, move |mut c| async move {
                    let r = c.acquire(&l, &t, ttl).await;
                    (c, r)
                })
                .await
            }
        };
        match granted {
            Ok(true) => {
                self.held = Some((lock.to_owned(), token));
                Completion::ok(Some(json!({"lease_ms": ttl})))
            }
            Ok(false) => Completion::fail("not granted: held by another client"),
            Err(done) => done,
        }
    }

    async fn release(&mut self, lock: &str) -> Completion {
        let token = match self.held.take() {
            Some((held, token)) if held == lock => token,
            _ => return Completion::fail("this process holds no lock to release"),
        };
        let released = match &mut self.backend {
            Backend::Redlock(redlock) => Ok(redlock.release(lock, &token).await > 0),
            Backend::Primary { .. } => {
                let l = lock.to_owned();
                on_primary(self, move |mut c| async move {
                    let r = c.release(&l, &token).await;
                    (c, r)
                })
                .await
            }
        };
        match released {
            Ok(true) => Completion::ok(None),
            Ok(false) => Completion::fail("not ours any more: the lock had expired"),
            Err(done) => done,
        }
    }
}

#[async_trait]
impl Client for RedisLockProcess {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let lock = key_of(op);
        let done = match op.f {
            "acquire" => self.acquire(&lock).await,
            "release" => self.release(&lock).await,
            other => Completion::fail(format!("the redis-lock client has no op {other:?}")),
        };
        self.holding.set(self.worker, self.held.is_some());
        match &self.node {
            Some(node) => done.at_node(node.clone()),
            None => done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::generator::worker_rng;

    #[test]
    fn a_worker_releases_exactly_when_its_client_holds_a_lock() {
        let holding = Holding::default();
        let generator = LockGenerator::new(holding.clone());
        let mut a = worker_rng(9, 0);
        let mut b = worker_rng(9, 1);
        let key = Key::Int(1);
        assert_eq!(generator.next_op(&key, &mut a).f, "acquire");
        holding.set(0, true);
        assert_eq!(generator.next_op(&key, &mut a).f, "release");
        assert_eq!(generator.next_op(&key, &mut b).f, "acquire");
        holding.set(0, false);
        assert_eq!(generator.next_op(&key, &mut a).f, "acquire");
        let op = generator.next_op(&Key::Int(3), &mut a);
        assert_eq!(op.key, Some(Key::Str("lock-3".into())));
        assert!(generator.final_op(&key).is_none());
    }

    #[test]
    fn lock_modes_parse_by_name_only() {
        for name in LockMode::NAMES {
            assert_eq!(name.parse::<LockMode>().unwrap().name(), name);
        }
        assert!("sentinel".parse::<LockMode>().is_err());
    }
}
