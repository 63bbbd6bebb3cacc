//! etcd's clients over its gRPC API (`etcd-client`): one connection per client process,
//! pointed at one host (the op's `node`). Errors are classified: a timeout or unavailable
//! server on a write is `info`, on a read `fail`; a compare that fails is `fail`.

use crate::lock::Holding;
use crate::lock_set::{decode_set, encode_set, Grant, GuardedSet, GuardedSetFactory, StepError};
use async_trait::async_trait;
use etcd_client::{
    Client as Etcd, Compare, CompareOp, ConnectOptions, GetOptions, LockOptions, PutOptions, Txn,
    TxnOp,
};
use faultline_checker::history::Key;
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::generator::Invocation;
use serde_json::{json, Value};
use std::time::Duration;

/// Why a request to etcd did not succeed.
#[derive(Debug, Clone)]
pub enum EtcdError {
    /// The server refused it before acting (a bad argument, no such lease): it did not happen.
    Refused(String),
    /// Unknown: timeout, lost connection, leader change under the request.
    Unknown(String),
    /// The controller's own bound on the request passed.
    Timeout,
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::Refused(s) | EtcdError::Unknown(s) => f.write_str(s),
            EtcdError::Timeout => f.write_str("timed out"),
        }
    }
}

impl From<etcd_client::Error> for EtcdError {
    fn from(err: etcd_client::Error) -> Self {
        use etcd_client::Error as E;
        match &err {
            E::GRpcStatus(status) => {
                use tonic_code::*;
                match status.code() as i32 {
                    INVALID_ARGUMENT | NOT_FOUND | ALREADY_EXISTS | PERMISSION_DENIED
                    | FAILED_PRECONDITION | OUT_OF_RANGE | UNIMPLEMENTED | UNAUTHENTICATED => {
                        EtcdError::Refused(format!("etcd refused: {}", status.message()))
                    }
                    _ => EtcdError::Unknown(format!(
                        "etcd: {:?}: {}",
                        status.code(),
                        status.message()
                    )),
                }
            }
            // Refused by the client library before anything was sent.
            E::InvalidArgs(_) | E::InvalidUri(_) => EtcdError::Refused(err.to_string()),
            _ => EtcdError::Unknown(err.to_string()),
        }
    }
}

/// gRPC status codes (tonic's `Code` as numbers), so this file need not name tonic.
mod tonic_code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const UNAUTHENTICATED: i32 = 16;
}

impl EtcdError {
    /// Certainly did not happen.
    pub fn is_definite(&self) -> bool {
        matches!(self, EtcdError::Refused(_))
    }

    fn step(self) -> StepError {
        if self.is_definite() {
            StepError::Definite(self.to_string())
        } else {
            StepError::Indefinite(self.to_string())
        }
    }
}

/// A connection to the member at `endpoint` only (no fail-over to other members: the op's
/// node is the member that served it).
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Etcd, EtcdError> {
    let options = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout);
    match tokio::time::timeout(timeout, Etcd::connect([endpoint], Some(options))).await {
        Ok(Ok(client)) => Ok(client),
        // Nothing was sent: whatever the op, it did not happen.
        Ok(Err(err)) => Err(EtcdError::Refused(format!(
            "connecting to {endpoint}: {err}"
        ))),
        Err(_) => Err(EtcdError::Refused(format!(
            "connecting to {endpoint} timed out"
        ))),
    }
}

/// Settings shared by every etcd client process.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// `(host name, client endpoint)` of every member; worker i talks to member i mod n.
    pub members: Vec<(String, String)>,
    pub request_timeout: Duration,
    /// Reads with `serializable` (served from the member's local state, no quorum).
    pub serializable: bool,
    /// The lease of every lock grant, in seconds (etcd's TTLs are whole seconds).
    pub lease_ttl_s: i64,
}

/// One process's connection, opened on its first request.
struct Conn {
    endpoint: String,
    node: String,
    timeout: Duration,
    client: Option<Etcd>,
}

impl Conn {
    fn new(settings: &EtcdSettings, worker: usize) -> Conn {
        let (node, endpoint) = settings.members[worker % settings.members.len()].clone();
        Conn {
            endpoint,
            node,
            timeout: settings.request_timeout,
            client: None,
        }
    }

    async fn client(&mut self) -> Result<Etcd, EtcdError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = connect(&self.endpoint, self.timeout).await?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// One request, bounded by the request timeout.
    async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, EtcdError>
    where
        F: FnOnce(Etcd) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.client().await?;
        match tokio::time::timeout(self.timeout, f(client)).await {
            Ok(r) => r.map_err(EtcdError::from),
            Err(_) => Err(EtcdError::Timeout),
        }
    }
}

fn register_key(key: &Key) -> String {
    format!("faultline/register/{key}")
}

fn parse_register(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the register holds {:?}, not JSON: {e}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// The register workload's clients.
pub struct EtcdRegisterFactory {
    pub settings: EtcdSettings,
}

impl ClientFactory for EtcdRegisterFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(EtcdRegister {
            conn: Conn::new(&self.settings, worker),
            serializable: self.settings.serializable,
        }))
    }
}

struct EtcdRegister {
    conn: Conn,
    serializable: bool,
}

/// A write's failure: `fail` only when it certainly did not happen.
fn write_failed(err: EtcdError) -> Completion {
    if err.is_definite() {
        Completion::fail(err.to_string())
    } else {
        Completion::info(err.to_string())
    }
}

impl EtcdRegister {
    async fn read(&mut self, key: String) -> Completion {
        let options = if self.serializable {
            GetOptions::new().with_serializable()
        } else {
            GetOptions::new()
        };
        match self
            .conn
            .call(|mut c| async move { c.get(key, Some(options)).await })
            .await
        {
            Ok(answer) => match answer.kvs().first() {
                None => Completion::ok(Some(Value::Null)),
                Some(kv) => match parse_register(kv.value()) {
                    Ok(v) => Completion::ok(Some(v)),
                    Err(why) => Completion::fail(why),
                },
            },
            // A read changes nothing: whatever went wrong, it did not happen.
            Err(err) => Completion::fail(err.to_string()),
        }
    }

    async fn write(&mut self, key: String, value: &Value) -> Completion {
        let bytes = value.to_string();
        match self
            .conn
            .call(|mut c| async move { c.put(key, bytes, None).await })
            .await
        {
            Ok(_) => Completion::ok(None),
            Err(err) => write_failed(err),
        }
    }

    /// A txn that puts `new` only if the value is `expected` (absent for `null`).
    async fn cas(&mut self, key: String, value: &Value) -> Completion {
        let Some([expected, new]) = value
            .as_array()
            .map(Vec::as_slice)
            .and_then(|a| <&[Value; 2]>::try_from(a).ok())
        else {
            return Completion::fail(format!("cas needs [expected, new], got {value}"));
        };
        let compare = if expected.is_null() {
            Compare::create_revision(key.clone(), CompareOp::Equal, 0)
        } else {
            Compare::value(key.clone(), CompareOp::Equal, expected.to_string())
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, new.to_string(), None)]);
        match self
            .conn
            .call(|mut c| async move { c.txn(txn).await })
            .await
        {
            Ok(answer) if answer.succeeded() => Completion::ok(None),
            Ok(_) => Completion::fail("the compare failed: the value was not the expected one"),
            Err(err) => write_failed(err),
        }
    }
}

#[async_trait]
impl Client for EtcdRegister {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let Some(key) = &op.key else {
            return Completion::fail("a register op needs a key");
        };
        let key = register_key(key);
        match op.f {
            "read" => self.read(key).await,
            "write" => self.write(key, &op.value).await,
            "cas" => self.cas(key, &op.value).await,
            other => Completion::fail(format!("the etcd register client has no op {other:?}")),
        }
    }

    fn node(&self) -> Option<&str> {
        Some(&self.conn.node)
    }
}

/// A process's lease, kept alive in the background while the process lives.
struct Lease {
    id: i64,
    keeper: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Without keep-alives the lease, and every lock key on it, expires after its TTL.
        self.keeper.abort();
    }
}

/// etcd's Lock API for one process: a lease with keep-alive, `Lock` on it, `Unlock` by
/// the returned key. The grant's token is the lock key's create revision (etcd grants in
/// that order), and fencing compares it.
struct EtcdLocker {
    conn: Conn,
    ttl_s: i64,
    lease: Option<Lease>,
}

impl EtcdLocker {
    fn new(settings: &EtcdSettings, worker: usize) -> Self {
        EtcdLocker {
            conn: Conn::new(settings, worker),
            ttl_s: settings.lease_ttl_s,
            lease: None,
        }
    }

    async fn lease(&mut self) -> Result<i64, EtcdError> {
        if let Some(l) = &self.lease {
            if !l.keeper.is_finished() {
                return Ok(l.id);
            }
        }
        self.lease = None;
        let ttl = self.ttl_s;
        let granted = self
            .conn
            .call(|mut c| async move { c.lease_grant(ttl, None).await })
            .await?;
        let id = granted.id();
        let mut client = self.conn.client().await?;
        // Keep-alives every third of the TTL, as etcd's own clients send them; the task
        // ends (and the lease lapses) when a keep-alive cannot be sent or is refused.
        let period = Duration::from_millis((ttl.max(1) as u64 * 1000) / 3);
        let keeper = tokio::spawn(async move {
            let Ok((mut keeper, mut stream)) = client.lease_keep_alive(id).await else {
                return;
            };
            loop {
                if keeper.keep_alive().await.is_err() {
                    return;
                }
                match tokio::time::timeout(period * 2, stream.message()).await {
                    Ok(Ok(Some(answer))) if answer.ttl() > 0 => {}
                    // Expired, refused, stream closed: this lease is gone.
                    Ok(Ok(_)) | Ok(Err(_)) => return,
                    // No answer yet (a paused or cut-off member): keep trying.
                    Err(_) => {}
                }
                tokio::time::sleep(period).await;
            }
        });
        self.lease = Some(Lease { id, keeper });
        Ok(id)
    }

    /// Locks `name`; the lock key and its create revision.
    async fn lock(&mut self, name: &str) -> Result<(Vec<u8>, i64), EtcdError> {
        let lease = self.lease().await?;
        let name = format!("faultline/lock/{name}");
        let answer = self
            .conn
            .call(|mut c| async move {
                c.lock(name, Some(LockOptions::new().with_lease(lease)))
                    .await
            })
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(err) => {
                // An acquire whose answer was lost may be granted later: drop the lease so
                // such a grant lapses with it.
                self.lease = None;
                return Err(err);
            }
        };
        let key = answer.key().to_vec();
        let probe = key.clone();
        let revision = self
            .conn
            .call(|mut c| async move { c.get(probe, None).await })
            .await
            .ok()
            .and_then(|g| g.kvs().first().map(|kv| kv.create_revision()))
            .unwrap_or(0);
        Ok((key, revision))
    }

    async fn unlock(&mut self, key: Vec<u8>) -> Result<(), EtcdError> {
        self.conn
            .call(|mut c| async move { c.unlock(key).await })
            .await
            .map(|_| ())
    }
}

/// The lock workload's clients: acquire / release alternating per worker.
pub struct EtcdLockFactory {
    pub settings: EtcdSettings,
    pub holding: Holding,
}

impl ClientFactory for EtcdLockFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        self.holding.set(worker, false);
        Ok(Box::new(EtcdLock {
            worker,
            holding: self.holding.clone(),
            locker: EtcdLocker::new(&self.settings, worker),
            held: None,
            lease_ms: self.settings.lease_ttl_s as u64 * 1000,
        }))
    }
}

struct EtcdLock {
    worker: usize,
    holding: Holding,
    locker: EtcdLocker,
    /// The lock name held and its key.
    held: Option<(String, Vec<u8>)>,
    lease_ms: u64,
}

impl EtcdLock {
    async fn acquire(&mut self, lock: &str) -> Completion {
        if let Some((held, _)) = &self.held {
            return Completion::fail(format!("this process already holds {held}"));
        }
        match self.locker.lock(lock).await {
            Ok((key, token)) => {
                self.held = Some((lock.to_owned(), key));
                let token = (token > 0).then_some(token);
                Completion::ok(Some(json!({"token": token, "lease_ms": self.lease_ms})))
            }
            Err(err) if err.is_definite() => Completion::fail(err.to_string()),
            Err(err) => Completion::info(err.to_string()),
        }
    }

    async fn release(&mut self, lock: &str) -> Completion {
        let key = match self.held.take() {
            Some((held, key)) if held == lock => key,
            _ => return Completion::fail("this process holds no lock to release"),
        };
        match self.locker.unlock(key).await {
            Ok(()) => Completion::ok(None),
            Err(err) if err.is_definite() => Completion::fail(err.to_string()),
            Err(err) => {
                // Unknown: the lease goes, so the lock is free within the TTL either way.
                self.locker.lease = None;
                Completion::info(err.to_string())
            }
        }
    }
}

#[async_trait]
impl Client for EtcdLock {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let lock = op
            .key
            .as_ref()
            .map(crate::lock::lock_name)
            .unwrap_or_else(|| "lock-0".into());
        let done = match op.f {
            "acquire" => self.acquire(&lock).await,
            "release" => self.release(&lock).await,
            other => Completion::fail(format!("the etcd lock client has no op {other:?}")),
        };
        self.holding.set(self.worker, self.held.is_some());
        done
    }

    fn node(&self) -> Option<&str> {
        Some(&self.locker.conn.node)
    }
}

/// The lock-set workload's processes on etcd: the set under `faultline/set/<key>`; a
/// fenced write is a txn on the lock key's create revision.
pub struct EtcdSetFactory {
    pub settings: EtcdSettings,
}

impl GuardedSetFactory for EtcdSetFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn GuardedSet>> {
        Ok(Box::new(EtcdSet {
            locker: EtcdLocker::new(&self.settings, worker),
            serializable: self.settings.serializable,
        }))
    }
}

struct EtcdSet {
    locker: EtcdLocker,
    serializable: bool,
}

fn set_key(set: &str) -> String {
    format!("faultline/{set}")
}

#[async_trait]
impl GuardedSet for EtcdSet {
    async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError> {
        let (key, token) = self.locker.lock(lock).await.map_err(EtcdError::step)?;
        Ok(Grant {
            token: (token > 0).then_some(token),
            handle: key,
        })
    }

    async fn release(&mut self, _lock: &str, grant: &Grant) -> Result<(), StepError> {
        let result = self.locker.unlock(grant.handle.clone()).await;
        if result.as_ref().is_err_and(|e| !e.is_definite()) {
            self.locker.lease = None;
        }
        result.map_err(EtcdError::step)
    }

    async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError> {
        let key = set_key(set);
        let options = if self.serializable {
            GetOptions::new().with_serializable()
        } else {
            GetOptions::new()
        };
        let answer = self
            .locker
            .conn
            .call(|mut c| async move { c.get(key, Some(options)).await })
            .await
            .map_err(EtcdError::step)?;
        decode_set(answer.kvs().first().map(|kv| kv.value())).map_err(StepError::Definite)
    }

    async fn write(
        &mut self,
        set: &str,
        elements: &[i64],
        fence: Option<(&str, &Grant)>,
    ) -> Result<(), StepError> {
        let key = set_key(set);
        let bytes = encode_set(elements);
        match fence {
            None => self
                .locker
                .conn
                .call(|mut c| async move { c.put(key, bytes, None::<PutOptions>).await })
                .await
                .map(|_| ())
                .map_err(EtcdError::step),
            Some((_, grant)) => {
                let Some(token) = grant.token else {
                    return Err(StepError::Definite(
                        "the grant has no token to fence with".into(),
                    ));
                };
                // The lock key exists with this create revision only while the grant holds.
                let txn = Txn::new()
                    .when([Compare::create_revision(
                        grant.handle.clone(),
                        CompareOp::Equal,
                        token,
                    )])
                    .and_then([TxnOp::put(key, bytes, None)]);
                let answer = self
                    .locker
                    .conn
                    .call(|mut c| async move { c.txn(txn).await })
                    .await
                    .map_err(EtcdError::step)?;
                if answer.succeeded() {
                    Ok(())
                } else {
                    Err(StepError::Definite(format!(
                        "fenced: the lock key of token {token} no longer exists"
                    )))
                }
            }
        }
    }

    /// A paused process sends no keep-alives: the lease's keeper stops (the lease, and the
    /// lock key on it, lapse after the TTL) and the next acquire takes a fresh lease.
    async fn pause(&mut self, pause: Duration) {
        self.locker.lease = None;
        tokio::time::sleep(pause).await;
    }

    fn can_fence(&self) -> bool {
        true
    }

    fn node(&self) -> Option<&str> {
        Some(&self.locker.conn.node)
    }
}
