//! The ZooKeeper clients (zookeeper-client, async): one session per client process, bound
//! to one server, for the register workload (a znode per key) and the lock recipe
//! (ephemeral sequential children, the predecessor watched, the sequence number as token).

use crate::lock::{lock_name, Holding};
use crate::lock_set::{decode_set, encode_set, Grant, GuardedSet, GuardedSetFactory, StepError};
use async_trait::async_trait;
use faultline_checker::history::Key;
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::generator::Invocation;
use serde_json::{json, Value};
use std::time::Duration;
use zookeeper_client as zk;

/// How the register workload reads (`--read-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// getData on the connected server: sequentially consistent, may be stale.
    Plain,
    /// sync, then getData: the server first catches up with the leader.
    Sync,
}

impl ReadMode {
    pub const NAMES: [&'static str; 2] = ["plain", "sync"];

    pub fn name(self) -> &'static str {
        match self {
            ReadMode::Plain => "plain",
            ReadMode::Sync => "sync",
        }
    }
}

impl std::str::FromStr for ReadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(ReadMode::Plain),
            "sync" => Ok(ReadMode::Sync),
            other => Err(format!(
                "--read-mode {other:?} is not one of {} for zookeeper",
                ReadMode::NAMES.join(", ")
            )),
        }
    }
}

/// Settings shared by the register and lock clients.
#[derive(Debug, Clone)]
pub struct ZkSettings {
    /// `(host name, "ip:port")` of every server; worker i talks to server i mod n only.
    pub servers: Vec<(String, String)>,
    /// Bound on one request (an acquire also waits `acquire_wait`).
    pub request_timeout: Duration,
    /// The session timeout asked of the server (it clamps it to 2–20 ticks).
    pub session_timeout: Duration,
}

/// Whether the server certainly did not apply a request that ended in `err`: it answered
/// with an error code. Connection loss, our own timeout and an expired session leave a sent
/// write's fate unknown.
pub fn definite(err: &zk::Error) -> bool {
    matches!(
        err,
        zk::Error::NoNode
            | zk::Error::NoAuth
            | zk::Error::BadVersion
            | zk::Error::NoChildrenForEphemerals
            | zk::Error::NodeExists
            | zk::Error::NotEmpty
            | zk::Error::InvalidAcl
            | zk::Error::AuthFailed
            | zk::Error::NotReadOnly
            | zk::Error::QuotaExceeded
            | zk::Error::Throttled
            | zk::Error::MarshallingError
            | zk::Error::Unimplemented
            | zk::Error::BadArguments(_)
    )
}

/// What went wrong with one request.
#[derive(Debug)]
enum Failure {
    /// The server answered with this error.
    Zk(zk::Error),
    /// No answer within the request timeout.
    Timeout(Duration),
}

impl Failure {
    fn definite(&self) -> bool {
        matches!(self, Failure::Zk(e) if definite(e))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Zk(e) => write!(f, "{e}"),
            Failure::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
        }
    }
}

async fn bounded<T>(
    timeout: Duration,
    request: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Zk(e)),
        Err(_) => Err(Failure::Timeout(timeout)),
    }
}

/// One process's session with its server, opened on first use and again after it expired.
struct Session {
    address: String,
    timeout: Duration,
    connect_timeout: Duration,
    client: Option<zk::Client>,
}

impl Session {
    fn new(address: String, settings: &ZkSettings) -> Session {
        Session {
            address,
            timeout: settings.session_timeout,
            connect_timeout: settings.request_timeout,
            client: None,
        }
    }

    /// The live session's client. Opening one changes no data: its failure is a `fail`.
    async fn client(&mut self) -> Result<zk::Client, String> {
        if let Some(client) = &self.client {
            if !matches!(
                client.state(),
                zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
            ) {
                return Ok(client.clone());
            }
        }
        self.client = None;
        let connect = zk::Client::connector()
            .with_session_timeout(self.timeout)
            .with_server_version(3, 8, 0)
            .with_fail_eagerly()
            .connect(&self.address);
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(client)) => {
                self.client = Some(client.clone());
                Ok(client)
            }
            Ok(Err(e)) => Err(format!("opening a session with {}: {e}", self.address)),
            Err(_) => Err(format!(
                "opening a session with {}: no answer within {} ms",
                self.address,
                self.connect_timeout.as_millis()
            )),
        }
    }

    /// Drops the session: once every clone is gone the client closes it, and the server
    /// deletes its ephemeral nodes.
    fn close(&mut self) {
        self.client = None;
    }
}

/// The znode of a register key.
pub fn register_path(key: &Key) -> String {
    match key {
        Key::Int(k) => format!("/faultline-register-{k}"),
        Key::Str(s) => format!("/faultline-register-{}", s.replace('/', "_")),
    }
}

/// Opens register clients.
pub struct ZkRegisterFactory {
    settings: ZkSettings,
    read_mode: ReadMode,
}

impl ZkRegisterFactory {
    pub fn new(settings: ZkSettings, read_mode: ReadMode) -> anyhow::Result<Self> {
        anyhow::ensure!(!settings.servers.is_empty(), "zookeeper needs a server");
        Ok(ZkRegisterFactory {
            settings,
            read_mode,
        })
    }
}

fn server_of(settings: &ZkSettings, worker: usize) -> (String, String) {
    settings.servers[worker % settings.servers.len()].clone()
}

impl ClientFactory for ZkRegisterFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        let (node, address) = server_of(&self.settings, worker);
        Ok(Box::new(ZkRegister {
            node,
            session: Session::new(address, &self.settings),
            timeout: self.settings.request_timeout,
            read_mode: self.read_mode,
        }))
    }
}

/// One register client process.
struct ZkRegister {
    node: String,
    session: Session,
    timeout: Duration,
    read_mode: ReadMode,
}

/// A register's znode holds its value as JSON text; a missing znode is the initial `null`.
fn decode(data: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(data).map_err(|e| {
        format!(
            "the znode holds {:?}, not a JSON value: {e}",
            String::from_utf8_lossy(data)
        )
    })
}

impl ZkRegister {
    /// The value and version now, as the connected server has them.
    async fn get(
        &self,
        client: &zk::Client,
        path: &str,
    ) -> Result<Option<(Value, i32)>, Result<Failure, String>> {
        if self.read_mode == ReadMode::Sync {
            bounded(self.timeout, client.sync(path)).await.map_err(Ok)?;
        }
        match bounded(self.timeout, client.get_data(path)).await {
            Ok((data, stat)) => Ok(Some((decode(&data).map_err(Err)?, stat.version))),
            Err(Failure::Zk(zk::Error::NoNode)) => Ok(None),
            Err(e) => Err(Ok(e)),
        }
    }

    async fn read(&mut self, path: &str) -> Completion {
        let client = match self.session.client().await {
            Ok(c) => c,
            Err(why) => return Completion::fail(why),
        };
        match self.get(&client, path).await {
            Ok(found) => Completion::ok(Some(found.map_or(Value::Null, |(v, _)| v))),
            // A read changes nothing, so whatever stopped it, it certainly did not happen.
            Err(Ok(e)) => Completion::fail(e.to_string()),
            Err(Err(garbage)) => Completion::fail(garbage),
        }
    }

    /// setData, creating the znode on first use.
    async fn write(&mut self, path: &str, value: &Value) -> Completion {
        let client = match self.session.client().await {
            Ok(c) => c,
            Err(why) => return Completion::fail(why),
        };
        let data = value.to_string().into_bytes();
        let mut created = false;
        loop {
            let outcome = bounded(self.timeout, client.set_data(path, &data, None)).await;
            let err = match outcome {
                Ok(_) => return Completion::ok(None),
                Err(Failure::Zk(zk::Error::NoNode)) if !created => {
                    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                    match bounded(self.timeout, client.create(path, &data, &options)).await {
                        Ok(_) => return Completion::ok(None),
                        // Someone else created it first: set it now.
                        Err(Failure::Zk(zk::Error::NodeExists)) => {
                            created = true;
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            return write_failure(err);
        }
    }

    /// getData, compare, then setData with the version read: ZooKeeper's compare-and-set.
    async fn cas(&mut self, path: &str, expected: &Value, new: &Value) -> Completion {
        let client = match self.session.client().await {
            Ok(c) => c,
            Err(why) => return Completion::fail(why),
        };
        let version = match self.get(&client, path).await {
            Ok(Some((current, version))) if current == *expected => version,
            Ok(Some((current, _))) => {
                return Completion::fail(format!("the value is {current}, not {expected}"))
            }
            Ok(None) => return Completion::fail("the znode does not exist yet"),
            // Nothing was written yet.
            Err(Ok(e)) => return Completion::fail(e.to_string()),
            Err(Err(garbage)) => return Completion::fail(garbage),
        };
        let data = new.to_string().into_bytes();
        match bounded(self.timeout, client.set_data(path, &data, Some(version))).await {
            Ok(_) => Completion::ok(None),
            Err(e) => write_failure(e),
        }
    }
}

fn write_failure(err: Failure) -> Completion {
    if err.definite() {
        Completion::fail(err.to_string())
    } else {
        Completion::info(err.to_string())
    }
}

#[async_trait]
impl Client for ZkRegister {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let Some(key) = &op.key else {
            return Completion::fail("a register op needs a key");
        };
        let path = register_path(key);
        let done = match op.f {
            "read" => self.read(&path).await,
            "write" => self.write(&path, &op.value).await,
            "cas" => match op.value.as_array().map(Vec::as_slice) {
                Some([expected, new]) => self.cas(&path, expected, new).await,
                _ => Completion::fail(format!("cas needs [expected, new], not {}", op.value)),
            },
            other => Completion::fail(format!("the zookeeper register has no op {other:?}")),
        };
        if matches!(done.error.as_deref(), Some(e) if e.contains("session expired")) {
            self.session.close();
        }
        done
    }

    fn node(&self) -> Option<&str> {
        Some(&self.node)
    }
}

/// The parent znode of a lock's contenders.
pub fn lock_dir(lock: &str) -> String {
    format!("/faultline-locks/{}", lock.replace('/', "_"))
}

/// The fencing token of a lock node: its sequence number, the last ten digits of its name,
/// which ZooKeeper's parent counter hands out in creation order.
pub fn sequence_of(lock_path: &str) -> Option<i64> {
    let tail = lock_path.get(lock_path.len().checked_sub(10)?..)?;
    tail.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| tail.parse().ok())?
}

/// Opens lock clients.
pub struct ZkLockFactory {
    settings: ZkSettings,
    holding: Holding,
    /// How long an acquire waits for its predecessors.
    acquire_wait: Duration,
}

impl ZkLockFactory {
    pub fn new(
        settings: ZkSettings,
        holding: Holding,
        acquire_wait: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!settings.servers.is_empty(), "zookeeper needs a server");
        Ok(ZkLockFactory {
            settings,
            holding,
            acquire_wait,
        })
    }
}

impl ClientFactory for ZkLockFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        let (node, address) = server_of(&self.settings, worker);
        self.holding.set(worker, false);
        Ok(Box::new(ZkLock {
            worker,
            holding: self.holding.clone(),
            node,
            session: Session::new(address, &self.settings),
            timeout: self.settings.request_timeout,
            acquire_wait: self.acquire_wait,
            held: None,
        }))
    }
}

/// One lock client process: its session, and the lock node it holds.
struct ZkLock {
    worker: usize,
    holding: Holding,
    node: String,
    session: Session,
    timeout: Duration,
    acquire_wait: Duration,
    held: Option<(String, zk::OwnedLockClient)>,
}

/// Takes `lock` by ZooKeeper's lock recipe (an ephemeral sequential node; first in line
/// holds it): the held lock, its fencing token (the node's sequence number) and the lease
/// (the session timeout). An `Err` is the op's `fail` or `info`.
async fn take_lock(
    session: &mut Session,
    lock: &str,
    timeout: Duration,
    acquire_wait: Duration,
) -> Result<(zk::OwnedLockClient, i64, u64), Completion> {
    let client = session.client().await.map_err(Completion::fail)?;
    let dir = lock_dir(lock);
    let prefix = zk::LockPrefix::new_curator(&dir, "lock-")
        .map_err(|e| Completion::fail(format!("lock path {dir}: {e}")))?;
    let parents = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let options = zk::LockOptions::new(zk::Acls::anyone_all())
        .with_ancestor_options(parents)
        .map_err(|e| Completion::fail(format!("lock options: {e}")))?;
    let lease_ms = client.session_timeout().as_millis() as u64;
    // The recipe is cancellation safe: a timed-out acquire deletes its node.
    let granted = bounded(timeout + acquire_wait, async {
        client
            .lock(prefix, b"", options)
            .await
            .map(zk::LockClient::into_owned)
    })
    .await;
    match granted {
        Ok(locked) => match sequence_of(locked.lock_path()) {
            Some(token) => Ok((locked, token, lease_ms)),
            None => Err(Completion::info(format!(
                "granted {} whose name ends in no sequence number",
                locked.lock_path()
            ))),
        },
        Err(e) if e.definite() => Err(Completion::fail(e.to_string())),
        // It may have been first in line for a moment before the node was deleted, or
        // the create may have landed without an answer: unknown. The process retires
        // and its session closes, which deletes whatever node it left.
        Err(e) => Err(Completion::info(e.to_string())),
    }
}

/// Releases a held lock by deleting its node.
async fn give_up_lock(
    session: &mut Session,
    locked: zk::OwnedLockClient,
    timeout: Duration,
) -> Completion {
    let outcome = bounded(timeout, locked.client().delete(locked.lock_path(), None)).await;
    match outcome {
        Ok(()) => Completion::ok(None),
        Err(Failure::Zk(zk::Error::NoNode | zk::Error::SessionExpired)) => {
            // The session expired and the server deleted the node itself.
            session.close();
            Completion::fail("the lock node was already gone: the session had expired")
        }
        Err(e) if e.definite() => {
            // Still held on the server: closing the session hands the lock on.
            session.close();
            Completion::fail(e.to_string())
        }
        Err(e) => Completion::info(e.to_string()),
    }
}

impl ZkLock {
    async fn acquire(&mut self, lock: &str) -> Completion {
        if let Some((held, _)) = &self.held {
            return Completion::fail(format!("this process already holds {held}"));
        }
        match take_lock(&mut self.session, lock, self.timeout, self.acquire_wait).await {
            Ok((locked, token, lease_ms)) => {
                self.held = Some((lock.to_owned(), locked));
                Completion::ok(Some(json!({"token": token, "lease_ms": lease_ms})))
            }
            Err(done) => done,
        }
    }

    async fn release(&mut self, lock: &str) -> Completion {
        let Some((held, locked)) = self.held.take() else {
            return Completion::fail("this process holds no lock to release");
        };
        if held != lock {
            self.held = Some((held, locked));
            return Completion::fail(format!("this process holds another lock than {lock}"));
        }
        give_up_lock(&mut self.session, locked, self.timeout).await
    }
}

/// The lock-set workload on ZooKeeper: the lock recipe, the set a JSON list in its own
/// znode. Fenced writes are ZooKeeper's own: a multi that checks the lock node still exists
/// and sets the set's znode, refused whole once the holder's session lost the lock.
pub struct ZkSetFactory {
    pub settings: ZkSettings,
    pub acquire_wait: Duration,
    /// The client pause is asked for: each process reaches its server through a relay it
    /// can freeze (see [`Freezer`]).
    pub pausable: bool,
}

impl GuardedSetFactory for ZkSetFactory {
    fn open(&self, worker: usize, _process: u64) -> anyhow::Result<Box<dyn GuardedSet>> {
        let (node, address) = server_of(&self.settings, worker);
        Ok(Box::new(ZkSet {
            node,
            server: address.clone(),
            session: Session::new(address, &self.settings),
            timeout: self.settings.request_timeout,
            acquire_wait: self.acquire_wait,
            held: None,
            pausable: self.pausable,
            freezer: None,
        }))
    }
}

struct ZkSet {
    node: String,
    /// The server's own address (the session may go through the freezer instead).
    server: String,
    session: Session,
    timeout: Duration,
    acquire_wait: Duration,
    held: Option<zk::OwnedLockClient>,
    pausable: bool,
    freezer: Option<Freezer>,
}

impl ZkSet {
    /// Starts the freezer on first use when pauses are asked for; the session then
    /// connects through it.
    async fn prepare(&mut self) -> Result<(), StepError> {
        if self.pausable && self.freezer.is_none() {
            let freezer = Freezer::start(self.server.clone())
                .await
                .map_err(|e| StepError::Definite(format!("starting the pause relay: {e}")))?;
            self.session.address = freezer.addr.clone();
            self.session.close();
            self.freezer = Some(freezer);
        }
        Ok(())
    }
}

/// A loopback relay between one client process and its server that can be frozen: while
/// frozen it moves no byte either way and opens no new connection, so the zookeeper-client
/// session sends no pings the server hears, as when the whole process is stopped (the
/// library's tasks cannot be stopped from outside). The server expires the session after
/// its timeout; the library finds out when the relay thaws.
struct Freezer {
    addr: String,
    frozen: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Freezer {
    async fn start(server: String) -> std::io::Result<Freezer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            // Dropping the set (when the task is aborted) aborts every pump.
            let mut pumps = tokio::task::JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut thawed = watch.clone();
                let server = server.clone();
                pumps.spawn(async move {
                    wait_thawed(&mut thawed).await;
                    let Ok(outbound) = tokio::net::TcpStream::connect(&server).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pump(ri, wo, thawed.clone()), pump(ro, wi, thawed));
                });
                while pumps.try_join_next().is_some() {}
            }
        });
        Ok(Freezer { addr, frozen, task })
    }

    fn set_frozen(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_thawed(frozen: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = frozen.wait_for(|f| !*f).await;
}

/// Copies one direction, holding bytes back while frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        wait_thawed(&mut frozen).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Bytes read just as the freeze began wait for the thaw too.
        wait_thawed(&mut frozen).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The znode of a set.
fn set_path(set: &str) -> String {
    format!("/faultline-{}", set.replace('/', "_"))
}

fn step_failure(err: Failure) -> StepError {
    match err {
        // A fenced write whose lock node was gone: the multi was refused whole.
        Failure::Zk(zk::Error::RuntimeInconsistent) => {
            StepError::Definite("refused: the lock node is gone (the lock was lost)".into())
        }
        e if e.definite() => StepError::Definite(e.to_string()),
        e => StepError::Indefinite(e.to_string()),
    }
}

#[async_trait]
impl GuardedSet for ZkSet {
    async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError> {
        self.prepare().await?;
        let (locked, token, _) =
            take_lock(&mut self.session, lock, self.timeout, self.acquire_wait)
                .await
                .map_err(StepError::from_completion)?;
        let handle = locked.lock_path().as_bytes().to_vec();
        self.held = Some(locked);
        Ok(Grant {
            token: Some(token),
            handle,
        })
    }

    async fn release(&mut self, _lock: &str, _grant: &Grant) -> Result<(), StepError> {
        let Some(locked) = self.held.take() else {
            return Err(StepError::Definite("this process holds no lock".into()));
        };
        let done = give_up_lock(&mut self.session, locked, self.timeout).await;
        match done.kind {
            faultline_checker::history::OpType::Ok => Ok(()),
            _ => Err(StepError::from_completion(done)),
        }
    }

    async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError> {
        self.prepare().await?;
        let client = self.session.client().await.map_err(StepError::Definite)?;
        match bounded(self.timeout, client.get_data(&set_path(set))).await {
            Ok((data, _)) => decode_set(Some(&data)).map_err(StepError::Definite),
            Err(Failure::Zk(zk::Error::NoNode)) => Ok(Vec::new()),
            // A read changes nothing.
            Err(e) => Err(StepError::Definite(e.to_string())),
        }
    }

    async fn write(
        &mut self,
        set: &str,
        elements: &[i64],
        fence: Option<(&str, &Grant)>,
    ) -> Result<(), StepError> {
        self.prepare().await?;
        let path = set_path(set);
        let data = encode_set(elements);
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        if fence.is_some() {
            let Some(locked) = &self.held else {
                return Err(StepError::Definite(
                    "a fenced write needs the lock held".into(),
                ));
            };
            return match bounded(self.timeout, locked.set_data(&path, &data, None)).await {
                Ok(_) => Ok(()),
                Err(Failure::Zk(zk::Error::NoNode)) => {
                    bounded(self.timeout, locked.create(&path, &data, &options))
                        .await
                        .map(|_| ())
                        .map_err(step_failure)
                }
                Err(e) => Err(step_failure(e)),
            };
        }
        let client = self.session.client().await.map_err(StepError::Definite)?;
        match bounded(self.timeout, client.set_data(&path, &data, None)).await {
            Ok(_) => Ok(()),
            Err(Failure::Zk(zk::Error::NoNode)) => {
                match bounded(self.timeout, client.create(&path, &data, &options)).await {
                    Ok(_) => Ok(()),
                    // Created by another client meanwhile: nothing of ours was written.
                    Err(Failure::Zk(zk::Error::NodeExists)) => Err(StepError::Definite(
                        "the set was created meanwhile; not written".into(),
                    )),
                    Err(e) => Err(step_failure(e)),
                }
            }
            Err(e) => Err(step_failure(e)),
        }
    }

    /// The process stops: no pings reach the server while the relay is frozen.
    async fn pause(&mut self, pause: Duration) {
        if let Some(f) = &self.freezer {
            f.set_frozen(true);
        }
        tokio::time::sleep(pause).await;
        if let Some(f) = &self.freezer {
            f.set_frozen(false);
        }
    }

    fn can_fence(&self) -> bool {
        true
    }

    fn node(&self) -> Option<&str> {
        Some(&self.node)
    }
}

#[async_trait]
impl Client for ZkLock {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let lock = op
            .key
            .as_ref()
            .map(lock_name)
            .unwrap_or_else(|| "lock-0".into());
        let done = match op.f {
            "acquire" => self.acquire(&lock).await,
            "release" => self.release(&lock).await,
            other => Completion::fail(format!("the zookeeper lock client has no op {other:?}")),
        };
        self.holding.set(self.worker, self.held.is_some());
        done
    }

    fn node(&self) -> Option<&str> {
        Some(&self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_from_the_server_are_definite() {
        assert!(definite(&zk::Error::BadVersion));
        assert!(definite(&zk::Error::NoNode));
        for unknown in [
            zk::Error::ConnectionLoss,
            zk::Error::SessionExpired,
            zk::Error::Timeout,
            zk::Error::ClientClosed,
        ] {
            assert!(!definite(&unknown), "{unknown:?}");
        }
        assert!(!Failure::Timeout(Duration::from_millis(5)).definite());
        let info = write_failure(Failure::Zk(zk::Error::ConnectionLoss));
        assert_eq!(info.kind, faultline_checker::history::OpType::Info);
        let fail = write_failure(Failure::Zk(zk::Error::BadVersion));
        assert_eq!(fail.kind, faultline_checker::history::OpType::Fail);
    }

    #[test]
    fn tokens_are_the_lock_nodes_sequence_numbers() {
        assert_eq!(
            sequence_of("/faultline-locks/lock-0/_c_0f3a-lock-0000000042"),
            Some(42)
        );
        assert_eq!(sequence_of("/faultline-locks/lock-0/lock-"), None);
        assert_eq!(sequence_of("short"), None);
        assert_eq!(register_path(&Key::Int(3)), "/faultline-register-3");
        assert_eq!(decode(b"4").unwrap(), json!(4));
        assert!(decode(b"\xff").is_err());
        assert_eq!("sync".parse::<ReadMode>(), Ok(ReadMode::Sync));
        assert!("linearizable".parse::<ReadMode>().is_err());
    }
}
