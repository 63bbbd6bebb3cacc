//! The one in-process loopback cluster the nodes' tests run (dev-only, never published).
//!
//! A node kind plugs in through [`Kind`]: start one member from a [`MemberSpec`] (its id, every
//! member's peer and client address, its data directory, the link filter and its two bound
//! listeners) and stop it. [`Cluster`] does the rest once for every kind: loopback listeners
//! on free ports, N members with data directories in one temporary directory, stop / restart
//! on the same addresses and data directory (and wiping it), cutting and healing links one way
//! or both through the shared link filter, the HTTP API with a timeout ([`Http`]: status and
//! JSON body, or an [`HttpError`] a test can assert on, never a panic), the agreed leader where
//! the kind reports one in `GET /status`, and [`wait_until`], a bounded poll that names what it
//! waited for when it gives up.
//!
//! Dependency direction: the nodes' tests depend on this crate; it depends on no node crate.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// `(from, to) -> may send`: the shape of the nodes' link filter hooks (raft's
/// `ServerConfig::link_filter`, paxos's `PaxosConfig::link_filter`).
pub type LinkFn = dyn Fn(&str, &str) -> bool + Send + Sync;

/// How often [`wait_until`] polls.
const POLL: Duration = Duration::from_millis(20);
/// One `GET /status` while polling: short, so a stuck member does not eat the wait.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`Cluster::leader_of`] waits for an election.
const LEADER_WAIT: Duration = Duration::from_secs(15);
/// How long a restart retries binding a member's old address: a client connection of a
/// parallel test may hold that port number for a moment.
const REBIND_WAIT: Duration = Duration::from_secs(2);

/// What a kind needs to start one member.
pub struct MemberSpec {
    /// 0-based position in the cluster.
    pub index: usize,
    /// `n1`, `n2`, ...
    pub id: String,
    /// Every member's `(id, peer address)`, this one included.
    pub peers: Vec<(String, String)>,
    /// Every member's id to its client (HTTP) address, this one included.
    pub client_peers: HashMap<String, String>,
    /// Kept across restarts; absent after [`Cluster::wipe`] (the node creates it).
    pub data_dir: PathBuf,
    /// Answers false for the links the test has cut.
    pub link_filter: Arc<LinkFn>,
    /// Already bound to this member's peer address.
    pub peer_listener: TcpListener,
    /// Already bound to this member's client address.
    pub client_listener: TcpListener,
}

/// One kind of node (raft, paxos, zk-lock): how to start and stop one member.
pub trait Kind {
    /// A running member; tests reach it through [`Cluster::member`].
    type Member;
    fn start(&self, spec: MemberSpec) -> impl Future<Output = anyhow::Result<Self::Member>>;
    /// Stops the member; on return its listeners are closed.
    fn stop(&self, member: Self::Member) -> impl Future<Output = anyhow::Result<()>>;
    /// Bound on one API request (a kind whose requests may wait long raises it).
    fn http_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

/// The tasks a member's kind spawned (peer accept loop, HTTP server), stopped together.
#[derive(Default)]
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }

    /// Serves `app` on `listener` until stopped.
    pub fn serve_http(&mut self, listener: TcpListener, app: axum::Router) {
        self.spawn(async move {
            // An accept error ends the server; the test then sees refused connections.
            let _ = axum::serve(listener, app).await;
        });
    }

    /// Aborts every task and waits until each is dropped, so its listener is closed.
    pub async fn stop(self) {
        for t in &self.0 {
            t.abort();
        }
        for t in self.0 {
            let _ = t.await;
        }
    }
}

struct Slot<M> {
    id: String,
    peer_addr: String,
    client_addr: String,
    running: Option<M>,
}

/// N members of one kind on loopback, in this process.
pub struct Cluster<K: Kind> {
    kind: K,
    members: Vec<Slot<K::Member>>,
    /// Directed `(from, to)` pairs whose messages the link filter drops.
    cut: Arc<Mutex<HashSet<(String, String)>>>,
    dir: tempfile::TempDir,
    http: Http,
}

impl<K: Kind> Cluster<K> {
    /// Starts `n` members (`n1`..`nN`) and returns once each one's `start` has returned.
    pub async fn start(n: usize, kind: K) -> Self {
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push((bind_loopback().await, bind_loopback().await));
        }
        let members = listeners
            .iter()
            .enumerate()
            .map(|(i, (peer, client))| Slot {
                id: format!("n{}", i + 1),
                peer_addr: peer.local_addr().unwrap().to_string(),
                client_addr: client.local_addr().unwrap().to_string(),
                running: None,
            })
            .collect();
        let http = Http::new(kind.http_timeout());
        let mut c = Self {
            kind,
            members,
            cut: Arc::default(),
            dir: tempfile::tempdir().expect("a temporary directory for the members' data"),
            http,
        };
        for (i, (peer, client)) in listeners.into_iter().enumerate() {
            c.start_on(i, peer, client).await;
        }
        c
    }

    async fn start_on(
        &mut self,
        i: usize,
        peer_listener: TcpListener,
        client_listener: TcpListener,
    ) {
        let cut = Arc::clone(&self.cut);
        let spec = MemberSpec {
            index: i,
            id: self.members[i].id.clone(),
            peers: self
                .members
                .iter()
                .map(|m| (m.id.clone(), m.peer_addr.clone()))
                .collect(),
            client_peers: self
                .members
                .iter()
                .map(|m| (m.id.clone(), m.client_addr.clone()))
                .collect(),
            data_dir: self.data_dir(i),
            link_filter: Arc::new(move |from: &str, to: &str| {
                !cut.lock()
                    .unwrap()
                    .contains(&(from.to_string(), to.to_string()))
            }),
            peer_listener,
            client_listener,
        };
        let member = self
            .kind
            .start(spec)
            .await
            .unwrap_or_else(|e| panic!("starting {}: {e:#}", self.members[i].id));
        self.members[i].running = Some(member);
    }

    /// Starts a stopped member again on its addresses and data directory.
    pub async fn restart(&mut self, i: usize) {
        assert!(!self.is_running(i), "{} is still running", self.id(i));
        let peer = bind_again(&self.members[i].peer_addr).await;
        let client = bind_again(&self.members[i].client_addr).await;
        self.start_on(i, peer, client).await;
    }

    /// Stops a member (its loop, listeners and connections), keeping its data directory.
    /// Stopping a stopped member does nothing.
    pub async fn stop(&mut self, i: usize) {
        if let Some(m) = self.members[i].running.take() {
            self.kind
                .stop(m)
                .await
                .unwrap_or_else(|e| panic!("stopping {}: {e:#}", self.members[i].id));
        }
    }

    /// Deletes a stopped member's data directory: it restarts as a new, empty member.
    pub fn wipe(&self, i: usize) {
        assert!(!self.is_running(i), "wipe {} after stopping it", self.id(i));
        match std::fs::remove_dir_all(self.data_dir(i)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("wiping {}: {e}", self.data_dir(i).display()),
        }
    }

    /// Stops every member.
    pub async fn shutdown(mut self) {
        for i in 0..self.members.len() {
            self.stop(i).await;
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn kind(&self) -> &K {
        &self.kind
    }

    pub fn id(&self, i: usize) -> &str {
        &self.members[i].id
    }

    pub fn peer_addr(&self, i: usize) -> &str {
        &self.members[i].peer_addr
    }

    pub fn client_addr(&self, i: usize) -> &str {
        &self.members[i].client_addr
    }

    /// Every member's client address, in order (for the kinds' client libraries).
    pub fn client_addrs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_addr.clone()).collect()
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].running.is_some()
    }

    /// The indexes of the running members.
    pub fn running(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_running(i)).collect()
    }

    /// A running member. Panics if it is stopped.
    pub fn member(&self, i: usize) -> &K::Member {
        self.members[i]
            .running
            .as_ref()
            .unwrap_or_else(|| panic!("{} is stopped", self.members[i].id))
    }

    /// Drops messages from `from` to `to` (one way).
    pub fn cut(&self, from: usize, to: usize) {
        let pair = (self.id(from).to_string(), self.id(to).to_string());
        self.cut.lock().unwrap().insert(pair);
    }

    /// Lets messages from `from` to `to` through again (one way).
    pub fn heal(&self, from: usize, to: usize) {
        let pair = (self.id(from).to_string(), self.id(to).to_string());
        self.cut.lock().unwrap().remove(&pair);
    }

    pub fn cut_both(&self, a: usize, b: usize) {
        self.cut(a, b);
        self.cut(b, a);
    }

    pub fn heal_both(&self, a: usize, b: usize) {
        self.heal(a, b);
        self.heal(b, a);
    }

    /// Cuts every link between a member of `a` and a member of `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.cut_both(x, y);
            }
        }
    }

    /// Cuts a member off from every other member, both ways (its link to itself stays: a
    /// paxos proposer reaches its own acceptor through the filter).
    pub fn isolate(&self, i: usize) {
        let others: Vec<usize> = (0..self.len()).filter(|&j| j != i).collect();
        self.partition(&[i], &others);
    }

    /// Heals every cut link.
    pub fn heal_all(&self) {
        self.cut.lock().unwrap().clear();
    }

    /// Whether the link filter drops messages from `from` to `to`.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        let pair = (self.id(from).to_string(), self.id(to).to_string());
        self.cut.lock().unwrap().contains(&pair)
    }

    /// The cluster's HTTP client (clone it into spawned tasks).
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// `POST path` with a JSON body to member `i`.
    pub async fn post(
        &self,
        i: usize,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), HttpError> {
        self.http.post(self.client_addr(i), path, body).await
    }

    /// `POST path` with raw bytes to member `i`; the answer's body as text.
    pub async fn post_bytes(
        &self,
        i: usize,
        path: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<(u16, String), HttpError> {
        self.http.post_bytes(self.client_addr(i), path, body).await
    }

    pub async fn get(&self, i: usize, path: &str) -> Result<(u16, Value), HttpError> {
        self.http.get(self.client_addr(i), path).await
    }

    /// Member `i`'s `GET /status`, or None if it does not answer 200 with JSON in time.
    pub async fn status(&self, i: usize) -> Option<Value> {
        match self
            .http
            .with_timeout(STATUS_TIMEOUT)
            .get(self.client_addr(i), "/status")
            .await
        {
            Ok((200, v)) => Some(v),
            _ => None,
        }
    }

    /// Waits for one leader among `among`, named in the `leader` field of every one's
    /// `/status` and itself one of `among`.
    pub async fn leader_of(&self, among: &[usize]) -> usize {
        let ids: Vec<&str> = among.iter().map(|&i| self.id(i)).collect();
        let what = format!("one leader agreed on by {}", ids.join(", "));
        wait_until(&what, LEADER_WAIT, || self.agreed_leader(among)).await
    }

    /// Waits for one leader agreed on by every running member.
    pub async fn leader(&self) -> usize {
        self.leader_of(&self.running()).await
    }

    async fn agreed_leader(&self, among: &[usize]) -> Option<usize> {
        let mut agreed: Option<String> = None;
        for &i in among {
            let status = self.status(i).await?;
            let leader = status["leader"].as_str()?;
            match &agreed {
                Some(l) if l != leader => return None,
                Some(_) => {}
                None => agreed = Some(leader.to_string()),
            }
        }
        let agreed = agreed?;
        among.iter().copied().find(|&i| self.id(i) == agreed)
    }
}

/// Polls `poll` every 20 ms until it answers `Some`, for at most `limit` (it polls at least
/// once); then panics naming `what` was awaited.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut poll: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = poll().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("waited {limit:?} for {what}, in vain");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn bind_loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port")
}

async fn bind_again(addr: &str) -> TcpListener {
    let what = format!("{addr} to be free again");
    wait_until(&what, REBIND_WAIT, || async {
        TcpListener::bind(addr).await.ok()
    })
    .await
}

/// A JSON-over-HTTP client with one timeout per request.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

impl Http {
    pub fn new(timeout: Duration) -> Self {
        Self {
            client: reqwest::Client::new(),
            timeout,
        }
    }

    /// The same client (connection pool) with another timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            client: self.client.clone(),
            timeout,
        }
    }

    /// `POST http://addr{path}` with a JSON body; the status and the JSON answer.
    pub async fn post(
        &self,
        addr: &str,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), HttpError> {
        let request = format!("POST {path} to {addr}");
        let req = self.client.post(format!("http://{addr}{path}")).json(body);
        let answer = self.send(req, &request).await?;
        json_answer(request, answer)
    }

    /// `GET http://addr{path}`; the status and the JSON answer.
    pub async fn get(&self, addr: &str, path: &str) -> Result<(u16, Value), HttpError> {
        let request = format!("GET {path} from {addr}");
        let req = self.client.get(format!("http://{addr}{path}"));
        let answer = self.send(req, &request).await?;
        json_answer(request, answer)
    }

    /// `POST http://addr{path}` with raw bytes; the status and the body as text (lossy).
    pub async fn post_bytes(
        &self,
        addr: &str,
        path: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<(u16, String), HttpError> {
        let req = self
            .client
            .post(format!("http://{addr}{path}"))
            .body(body.into());
        let (status, bytes) = self.send(req, &format!("POST {path} to {addr}")).await?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        request: &str,
    ) -> Result<(u16, Vec<u8>), HttpError> {
        let fail = |source| HttpError::NoAnswer {
            request: request.to_string(),
            source,
        };
        let resp = req.timeout(self.timeout).send().await.map_err(fail)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(fail)?;
        Ok((status, bytes.to_vec()))
    }
}

fn json_answer(
    request: String,
    (status, bytes): (u16, Vec<u8>),
) -> Result<(u16, Value), HttpError> {
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok((status, v)),
        Err(_) => Err(HttpError::NotJson {
            request,
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }),
    }
}

/// A request that got no usable answer.
pub enum HttpError {
    /// Refused, reset or timed out before the whole answer arrived.
    NoAnswer {
        request: String,
        source: reqwest::Error,
    },
    /// Answered, but the body is not JSON (every answer of the nodes' API is).
    NotJson {
        request: String,
        status: u16,
        body: String,
    },
}

impl HttpError {
    /// No answer at all: refused, reset, closed or timed out. What a stopped member gives;
    /// the first request after a stop may meet a pooled connection the member closed rather
    /// than a refused one.
    pub fn is_no_answer(&self) -> bool {
        matches!(self, HttpError::NoAnswer { .. })
    }

    /// The connection was refused (nothing listens on the address).
    pub fn is_connect(&self) -> bool {
        matches!(self, HttpError::NoAnswer { source, .. } if source.is_connect())
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, HttpError::NoAnswer { source, .. } if source.is_timeout())
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::NoAnswer { request, source } => {
                write!(f, "{request}: no answer: {source}")?;
                let mut cause = std::error::Error::source(source);
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
            HttpError::NotJson {
                request,
                status,
                body,
            } => {
                let short: String = body.chars().take(200).collect();
                write!(
                    f,
                    "{request}: {status} with a body that is not JSON: {short:?}"
                )
            }
        }
    }
}

/// As Display, so that a test's `unwrap()` prints the request and the cause.
impl fmt::Debug for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for HttpError {}
