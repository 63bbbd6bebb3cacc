//! The lock-set workload on faultline's own lock services: redis-lock (one server, a primary
//! with its replica, or Redlock) and zk-lock. Each stores the set in the system itself:
//! redis-lock under its own key (`GET`/`SET`; Redlock's servers are independent, so the set
//! lives on the first of them, the store a Redlock user keeps beside the lock), zk-lock in
//! its data keys (`/data/get`, `/data/put`), where `--fencing` is the store's own check of
//! the grant's token.

use crate::lock::{LockMode, RedisLockSettings};
use crate::lock_set::{decode_set, encode_set, Grant, GuardedSet, GuardedSetFactory, StepError};
use async_trait::async_trait;
use faultline_redis_lock::client::{random_token, ClientError, RedisLockClient};
use faultline_redis_lock::redlock::{Redlock, RedlockGrant, DRIFT_FACTOR, DRIFT_FIXED_MS};
use faultline_redis_lock::resp::Frame;
use faultline_zk_lock::client::{SessionKeeper, ZkError, ZkLockClient};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long an acquire retries a held lock before it gives up (`fail`), as on Redis.
const ACQUIRE_WAIT: Duration = Duration::from_millis(1000);
/// Between two tries of a held lock.
const RETRY_GAP: Duration = Duration::from_millis(20);

/// redis-lock's lock-set processes. `store_timeout` bounds each read and write of the set;
/// `settings.request_timeout` the lock's commands (Redlock's per-server bound).
pub struct RedisLockSetFactory {
    pub settings: RedisLockSettings,
    pub store_timeout: Duration,
}

impl GuardedSetFactory for RedisLockSetFactory {
    fn open(&self, _worker: usize, _process: u64) -> anyhow::Result<Box<dyn GuardedSet>> {
        let s = &self.settings;
        anyhow::ensure!(
            !s.servers.is_empty(),
            "redis-lock needs at least one server"
        );
        let redlock = (s.mode == LockMode::Redlock).then(|| {
            Redlock::new(
                s.servers.iter().map(|(_, a)| a.clone()).collect(),
                s.request_timeout,
            )
        });
        Ok(Box::new(RedisLockSet {
            settings: s.clone(),
            store_timeout: self.store_timeout,
            redlock,
            conn: None,
            node: None,
            held: None,
        }))
    }
}

/// What the client knows of its grant: Redlock's own, or a single server's TTL measured
/// from before the `SET` was sent, less the same drift allowance Redlock makes.
enum Held {
    Redlock(RedlockGrant),
    Ttl {
        acquired_at: Instant,
        validity: Duration,
    },
}

impl Held {
    fn left(&self) -> Option<Duration> {
        let (at, validity) = match self {
            Held::Redlock(g) => (g.acquired_at, g.validity),
            Held::Ttl {
                acquired_at,
                validity,
            } => (*acquired_at, *validity),
        };
        validity.checked_sub(at.elapsed()).filter(|d| !d.is_zero())
    }
}

struct RedisLockSet {
    settings: RedisLockSettings,
    store_timeout: Duration,
    redlock: Option<Redlock>,
    /// The connection to the server holding the set (the primary; Redlock: the first).
    conn: Option<RedisLockClient>,
    node: Option<String>,
    held: Option<Held>,
}

impl RedisLockSet {
    /// The server that stores the set and, outside Redlock, grants the lock.
    fn store(&self) -> (String, String) {
        let i = match self.settings.mode {
            LockMode::Redlock => 0,
            _ => self.settings.primary.load(Ordering::SeqCst) % self.settings.servers.len(),
        };
        self.settings.servers[i].clone()
    }

    /// One request of redis-lock's own client (`acquire`, `release`, `get`, `call`) on the
    /// store server, bounded by `timeout`; a dropped request takes its connection with it,
    /// so a late reply never answers the next command.
    async fn on_store<T, F, Fut>(&mut self, timeout: Duration, request: F) -> Result<T, StepError>
    where
        F: FnOnce(RedisLockClient) -> Fut,
        Fut: std::future::Future<Output = (RedisLockClient, Result<T, ClientError>)>,
    {
        let (host, addr) = self.store();
        self.node = Some(host);
        crate::lock::bounded_call(&mut self.conn, &addr, timeout, request)
            .await
            .map_err(|f| StepError::classified(f.definite, f.why))
    }

    async fn acquire_once(&mut self, lock: &str, token: &str) -> Result<Option<Held>, StepError> {
        let ttl = self.settings.ttl_ms;
        if let Some(redlock) = &mut self.redlock {
            return Ok(redlock.acquire(lock, token, ttl).await.map(Held::Redlock));
        }
        let acquired_at = Instant::now();
        let (l, t) = (lock.to_owned(), token.to_owned());
        let granted = self
            .on_store(self.settings.request_timeout, move |mut c| async move {
                let r = c.acquire(&l, &t, ttl).await;
                (c, r)
            })
            .await?;
        Ok(granted.then(|| {
            let drift = Duration::from_millis((ttl as f64 * DRIFT_FACTOR) as u64 + DRIFT_FIXED_MS);
            Held::Ttl {
                acquired_at,
                validity: Duration::from_millis(ttl).saturating_sub(drift),
            }
        }))
    }
}

#[async_trait]
impl GuardedSet for RedisLockSet {
    async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError> {
        let deadline = Instant::now() + ACQUIRE_WAIT;
        loop {
            // A fresh value per attempt: a failed Redlock attempt is released everywhere,
            // but a late grant of an old value must never pass for this one.
            let token = random_token();
            if let Some(held) = self.acquire_once(lock, &token).await? {
                self.held = Some(held);
                return Ok(Grant {
                    token: None,
                    handle: token.into_bytes(),
                });
            }
            if Instant::now() >= deadline {
                return Err(StepError::Definite(format!(
                    "not granted within {} ms: held by another client",
                    ACQUIRE_WAIT.as_millis()
                )));
            }
            tokio::time::sleep(RETRY_GAP).await;
        }
    }

    async fn release(&mut self, lock: &str, grant: &Grant) -> Result<(), StepError> {
        self.held = None;
        let token = String::from_utf8_lossy(&grant.handle).into_owned();
        if let Some(redlock) = &mut self.redlock {
            return match redlock.release(lock, &token).await {
                0 => Err(StepError::Definite(
                    "no server deleted it: the lock had expired".into(),
                )),
                _ => Ok(()),
            };
        }
        let l = lock.to_owned();
        let released = self
            .on_store(self.settings.request_timeout, move |mut c| async move {
                let r = c.release(&l, &token).await;
                (c, r)
            })
            .await?;
        match released {
            true => Ok(()),
            false => Err(StepError::Definite(
                "not ours any more: the lock had expired".into(),
            )),
        }
    }

    async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError> {
        let key = set.to_owned();
        let stored = self
            .on_store(self.store_timeout, move |mut c| async move {
                let r = c.get(&key).await;
                (c, r)
            })
            .await;
        match stored {
            Ok(bytes) => decode_set(bytes.as_deref()).map_err(StepError::Definite),
            // A read changes nothing.
            Err(e) => Err(StepError::Definite(e.to_string())),
        }
    }

    async fn write(
        &mut self,
        set: &str,
        elements: &[i64],
        _fence: Option<(&str, &Grant)>,
    ) -> Result<(), StepError> {
        let (key, bytes) = (set.as_bytes().to_vec(), encode_set(elements));
        let reply = self
            .on_store(self.store_timeout, move |mut c| async move {
                let r = c.call(&[&b"SET"[..], &key, &bytes]).await;
                (c, r)
            })
            .await?;
        match reply {
            Frame::Simple(s) if s == "OK" => Ok(()),
            other => Err(StepError::Indefinite(format!(
                "unexpected reply to SET: {other:?}"
            ))),
        }
    }

    /// Redlock's check (`RedlockGrant::is_valid`), and the same for a single server's TTL:
    /// the last thing the client does before it writes.
    fn check_valid(&mut self, _lock: &str, _grant: &Grant) -> Result<(), StepError> {
        match self.held.as_ref().map(Held::left) {
            Some(Some(_)) => Ok(()),
            Some(None) => Err(StepError::Definite(
                "its validity time has passed by the client's clock".into(),
            )),
            None => Err(StepError::Definite("no grant is held".into())),
        }
    }

    /// redis-lock issues no fencing token: a value per grant, but nothing the store can
    /// order or compare a write against.
    fn can_fence(&self) -> bool {
        false
    }

    fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

/// zk-lock's lock-set processes: a session per process (kept alive in the background), the
/// set in a data key, a fenced write checked against the lock's holder token by the store.
pub struct ZkLockSetFactory {
    /// Client addresses `(host, "ip:port")` of every node.
    pub nodes: Vec<(String, String)>,
    pub request_timeout: Duration,
    pub session_timeout_ms: u64,
    pub acquire_wait_ms: u64,
}

impl GuardedSetFactory for ZkLockSetFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn GuardedSet>> {
        anyhow::ensure!(!self.nodes.is_empty(), "zk-lock needs at least one node");
        let n = self.nodes.len();
        let mut addrs: Vec<String> = self.nodes.iter().map(|(_, a)| a.clone()).collect();
        addrs.rotate_left(worker % n);
        Ok(Box::new(ZkLockSet {
            client: ZkLockClient::new(addrs, self.request_timeout),
            node: self.nodes[worker % n].0.clone(),
            session: None,
            session_timeout_ms: self.session_timeout_ms,
            acquire_wait_ms: self.acquire_wait_ms,
        }))
    }
}

struct ZkLockSet {
    client: ZkLockClient,
    node: String,
    session: Option<(u64, SessionKeeper)>,
    session_timeout_ms: u64,
    acquire_wait_ms: u64,
}

fn zk_step(err: ZkError) -> StepError {
    StepError::classified(err.is_definite(), err)
}

impl ZkLockSet {
    async fn session(&mut self) -> Result<u64, StepError> {
        crate::lock::live_session(&self.client, &mut self.session, self.session_timeout_ms)
            .await
            .map_err(StepError::Definite)
    }
}

#[async_trait]
impl GuardedSet for ZkLockSet {
    async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError> {
        let session = self.session().await?;
        match self
            .client
            .acquire(session, lock, self.acquire_wait_ms)
            .await
        {
            Ok(token) => Ok(Grant {
                token: i64::try_from(token).ok(),
                handle: Vec::new(),
            }),
            Err(err) => {
                if err.status() == Some(409) || !err.is_definite() {
                    // Gone, or a grant may land later: a new session next time, and this
                    // one's nodes go with its expiry.
                    self.session = None;
                }
                Err(zk_step(err))
            }
        }
    }

    async fn release(&mut self, lock: &str, _grant: &Grant) -> Result<(), StepError> {
        let Some((session, _)) = &self.session else {
            return Err(StepError::Definite("the session is gone".into()));
        };
        let session = *session;
        let released = self.client.release(session, lock).await;
        if released.is_err() {
            // Whatever it holds passes on when the session expires.
            self.session = None;
        }
        released.map_err(zk_step)
    }

    async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError> {
        match self.client.get(set).await {
            Ok(value) => {
                decode_set(value.as_deref().map(str::as_bytes)).map_err(StepError::Definite)
            }
            Err(e) => Err(StepError::Definite(e.to_string())),
        }
    }

    async fn write(
        &mut self,
        set: &str,
        elements: &[i64],
        fence: Option<(&str, &Grant)>,
    ) -> Result<(), StepError> {
        let value = String::from_utf8(encode_set(elements))
            .map_err(|e| StepError::Definite(format!("the set is not text: {e}")))?;
        let fence = match fence {
            None => None,
            Some((lock, grant)) => {
                let Some(token) = grant.token.and_then(|t| u64::try_from(t).ok()) else {
                    return Err(StepError::Definite(
                        "the grant has no token to fence with".into(),
                    ));
                };
                Some((lock, token))
            }
        };
        self.client.put(set, &value, fence).await.map_err(zk_step)
    }

    /// zk-lock's own rule (`nodes/LOCKS.md`): locks are lost once a session timeout has
    /// passed since the last successful keepalive was sent.
    fn check_valid(&mut self, _lock: &str, _grant: &Grant) -> Result<(), StepError> {
        match &self.session {
            Some((_, keeper)) if keeper.is_alive() => Ok(()),
            _ => Err(StepError::Definite(
                "no keepalive succeeded within the session timeout".into(),
            )),
        }
    }

    /// A paused process sends no keepalives: the keeper stops for the pause and a new one
    /// takes over the same session after it (finding it expired if the pause was long).
    async fn pause(&mut self, pause: Duration) {
        let id = self.session.take().map(|(id, keeper)| {
            drop(keeper);
            id
        });
        tokio::time::sleep(pause).await;
        if let Some(id) = id {
            let keeper = self.client.keep_alive(id, self.session_timeout_ms);
            self.session = Some((id, keeper));
        }
    }

    fn can_fence(&self) -> bool {
        true
    }

    fn node(&self) -> Option<&str> {
        Some(&self.node)
    }
}
