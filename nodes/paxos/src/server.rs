//! The CASPaxos node: an acceptor thread that batches Prepare/Accept requests and fsyncs
//! once per batch before answering (group commit), async proposers (one round per client
//! operation, serialized per key on this node, retried with higher ballots and jittered
//! backoff on conflict), and the HTTP/JSON client API of `nodes/API.md`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faultline_nodes_common::api::{self, ApiError, CasRequest, ReadRequest, Status, WriteRequest};
use faultline_nodes_common::codec;
use faultline_nodes_common::transport::{self, Outbox};
use rand::Rng;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc as tmpsc;

use crate::core::{
    Acceptor, Ballot, Body, Change, Message, NodeId, Outcome, Progress, Register, Round,
};
use crate::storage::{AcceptorStore, BallotStore};

/// Requests the acceptor handles per batch before one fsync.
pub const BATCH_REQUESTS_MAX: usize = 8192;
/// Longest backoff between attempts after a conflict, in ms.
pub const BACKOFF_MS_MAX: u64 = 50;

/// Tests only: `(from, to) -> may send`.
pub type LinkFn = dyn Fn(&str, &str) -> bool + Send + Sync;

/// Settings of one Paxos node.
#[derive(Clone)]
pub struct PaxosConfig {
    pub id: NodeId,
    /// Every member's peer address (`host:port`), this node included.
    pub peers: Vec<(NodeId, String)>,
    pub data_dir: PathBuf,
    /// Bound on one client request.
    pub request_timeout: Duration,
    /// Bound on one round attempt before retrying with a new ballot.
    pub round_timeout: Duration,
    /// The `skip-prepare` bug.
    pub skip_prepare: bool,
    pub bugs: Vec<String>,
    /// Tests only: drops peer messages for which it answers false.
    pub link_filter: Option<Arc<LinkFn>>,
}

/// A running node; cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: PaxosConfig,
    peer_ids: Vec<NodeId>,
    outbox: Outbox,
    acceptor_tx: Mutex<mpsc::Sender<AcceptorEvent>>,
    pending: Mutex<HashMap<u64, tmpsc::UnboundedSender<(NodeId, Body)>>>,
    next_op: AtomicU64,
    ballots: Mutex<BallotStore>,
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    cache: Mutex<HashMap<String, Register>>,
    rounds_done: AtomicU64,
}

enum AcceptorEvent {
    Request(NodeId, Body),
    Shutdown(std::sync::mpsc::Sender<()>),
}

impl Node {
    /// Recovers the acceptor and ballot counter from `cfg.data_dir` and starts the
    /// acceptor thread; peer connections run on `runtime`.
    pub fn start(cfg: PaxosConfig, runtime: &tokio::runtime::Handle) -> anyhow::Result<Self> {
        let peer_ids: Vec<NodeId> = cfg.peers.iter().map(|(id, _)| id.clone()).collect();
        anyhow::ensure!(
            peer_ids.contains(&cfg.id),
            "--id {} is not one of the peers {peer_ids:?}",
            cfg.id
        );
        let (store, keys) = AcceptorStore::open(&cfg.data_dir)?;
        let ballots = BallotStore::open(&cfg.data_dir)?;
        tracing::info!(
            keys = keys.len(),
            ballot = ballots.current(),
            "recovered acceptor state"
        );
        let others: Vec<(String, String)> = cfg
            .peers
            .iter()
            .filter(|(id, _)| *id != cfg.id)
            .cloned()
            .collect();
        let outbox = Outbox::start(runtime, &others);
        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            cfg,
            peer_ids,
            outbox,
            acceptor_tx: Mutex::new(tx),
            pending: Mutex::default(),
            next_op: AtomicU64::new(1),
            ballots: Mutex::new(ballots),
            key_locks: Mutex::default(),
            cache: Mutex::default(),
            rounds_done: AtomicU64::new(0),
        });
        let node = Self { inner };
        let worker = node.clone();
        let acceptor = Acceptor::restore(keys);
        std::thread::Builder::new()
            .name("paxos-acceptor".into())
            .spawn(move || worker.acceptor_loop(acceptor, store, rx))?;
        Ok(node)
    }

    /// Syncs and stops the acceptor thread.
    pub fn shutdown(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        let sent = self
            .inner
            .acceptor_tx
            .lock()
            .expect("acceptor lock")
            .send(AcceptorEvent::Shutdown(tx));
        if sent.is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }

    fn acceptor_loop(
        &self,
        mut acceptor: Acceptor,
        mut store: AcceptorStore,
        rx: mpsc::Receiver<AcceptorEvent>,
    ) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH_REQUESTS_MAX {
                match rx.try_recv() {
                    Ok(ev) => batch.push(ev),
                    Err(_) => break,
                }
            }
            let mut answers = Vec::new();
            let mut shutdown = None;
            for ev in batch {
                match ev {
                    AcceptorEvent::Request(from, body) => {
                        if let Some((answer, changed)) = acceptor.handle(body) {
                            if let Some(key) = changed {
                                let st = acceptor.state(&key).expect("changed key exists");
                                store.record(&key, st);
                            }
                            answers.push((from, answer));
                        }
                    }
                    AcceptorEvent::Shutdown(done) => shutdown = Some(done),
                }
            }
            // Nothing is answered before the states it promises are on disk.
            if let Err(e) = store.sync(acceptor.keys()) {
                tracing::error!(error = %e, "acceptor fsync failed; stopping the node");
                std::process::exit(3);
            }
            for (to, body) in answers {
                self.send(Message {
                    from: self.inner.cfg.id.clone(),
                    to,
                    body,
                });
            }
            if let Some(done) = shutdown {
                tracing::info!("acceptor stopped; state synced");
                let _ = done.send(());
                return;
            }
        }
    }

    /// Routes a message: to the local acceptor, a local round, or a peer.
    fn send(&self, m: Message) {
        if let Some(f) = &self.inner.cfg.link_filter {
            if !f(&m.from, &m.to) {
                return;
            }
        }
        if m.to == self.inner.cfg.id {
            self.deliver(m);
        } else {
            let to = m.to.clone();
            self.inner.outbox.send(&to, codec::encode(&m));
        }
    }

    /// Handles a message addressed to this node.
    fn deliver(&self, m: Message) -> bool {
        match m.body {
            Body::Prepare { .. } | Body::Accept { .. } => self
                .inner
                .acceptor_tx
                .lock()
                .expect("acceptor lock")
                .send(AcceptorEvent::Request(m.from, m.body))
                .is_ok(),
            Body::Promise { op, .. } | Body::Accepted { op, .. } => {
                if let Some(tx) = self.inner.pending.lock().expect("pending lock").get(&op) {
                    let _ = tx.send((m.from, m.body));
                }
                true
            }
        }
    }

    /// Feeds frames from the peer listener; garbage closes the connection.
    pub async fn serve_peers(&self, listener: TcpListener) {
        let node = self.clone();
        let handler = move |frame: Vec<u8>| match codec::decode::<Message>(&frame) {
            Ok(m) if m.to == node.inner.cfg.id && node.inner.peer_ids.contains(&m.from) => {
                node.deliver(m)
            }
            _ => false,
        };
        transport::serve(listener, Arc::new(handler)).await;
    }

    /// Runs one client operation to completion: rounds until one is chosen or the
    /// request's time bound passes.
    pub async fn run(&self, key: &str, change: Change) -> Result<Outcome, ApiError> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.cfg.request_timeout;
        let lock = inner
            .key_locks
            .lock()
            .expect("key locks")
            .entry(key.to_string())
            .or_default()
            .clone();
        let Ok(_guard) = tokio::time::timeout_at(deadline.into(), lock.lock()).await else {
            return Err(ApiError::timeout(true));
        };
        let mut accept_sent = false;
        let mut seen = 0;
        for attempt in 0u32.. {
            if Instant::now() >= deadline {
                break;
            }
            let counter = inner
                .ballots
                .lock()
                .expect("ballots")
                .next_above(seen)
                .map_err(|e| {
                    ApiError::new(
                        500,
                        format!("could not reserve a ballot durably: {e}"),
                        !accept_sent,
                    )
                })?;
            let ballot = Ballot {
                counter,
                node: inner.cfg.id.clone(),
            };
            let op = inner.next_op.fetch_add(1, Ordering::Relaxed);
            let (tx, mut rx) = tmpsc::unbounded_channel();
            inner.pending.lock().expect("pending lock").insert(op, tx);
            let cached = if inner.cfg.skip_prepare && attempt == 0 {
                inner.cache.lock().expect("cache").get(key).cloned()
            } else {
                None
            };
            let (mut round, msgs) = match cached {
                Some(assumed) => Round::accept_directly(
                    &inner.cfg.id,
                    op,
                    key,
                    ballot,
                    change.clone(),
                    &inner.peer_ids,
                    &assumed,
                ),
                None => Round::prepare(
                    &inner.cfg.id,
                    op,
                    key,
                    ballot,
                    change.clone(),
                    &inner.peer_ids,
                ),
            };
            accept_sent |= round.accept_sent();
            msgs.into_iter().for_each(|m| self.send(m));
            let round_deadline = (Instant::now() + inner.cfg.round_timeout).min(deadline);
            let result = loop {
                match tokio::time::timeout_at(round_deadline.into(), rx.recv()).await {
                    Ok(Some((from, body))) => match round.on_message(&from, body) {
                        Progress::Wait => {}
                        Progress::Send(msgs) => {
                            accept_sent = true;
                            msgs.into_iter().for_each(|m| self.send(m));
                        }
                        Progress::Done(register, outcome) => break Some(Ok((register, outcome))),
                        Progress::Conflict { seen } => break Some(Err(seen)),
                    },
                    _ => break None,
                }
            };
            inner.pending.lock().expect("pending lock").remove(&op);
            match result {
                Some(Ok((register, outcome))) => {
                    if inner.cfg.skip_prepare {
                        inner
                            .cache
                            .lock()
                            .expect("cache")
                            .insert(key.to_string(), register);
                    }
                    inner.rounds_done.fetch_add(1, Ordering::Relaxed);
                    return Ok(outcome);
                }
                Some(Err(higher)) => {
                    inner
                        .ballots
                        .lock()
                        .expect("ballots")
                        .observe(higher.counter);
                    seen = higher.counter;
                }
                None => {}
            }
            // Once this attempt's accepts are out, its value may be chosen yet unknown to
            // us, and another client may overwrite it before a retry looks. A retry would
            // then see a foreign value and either apply the change a second time (a write
            // taking effect twice) or report a cas as certainly failed although it
            // happened. So the outcome is unknown, and the client must be told so.
            // A read's accepts only re-write the value it found, so a read may retry.
            if round.accept_sent() && change != Change::Read {
                return Err(ApiError::new(
                    504,
                    "the accept phase was cut short: the operation may have taken effect",
                    false,
                ));
            }
            inner.cache.lock().expect("cache").remove(key);
            let cap = (2u64 << attempt.min(5)).min(BACKOFF_MS_MAX);
            let pause = Duration::from_millis(rand::rng().random_range(0..=cap));
            tokio::time::sleep_until((Instant::now() + pause).min(deadline).into()).await;
        }
        Err(ApiError::timeout(!accept_sent))
    }

    fn status(&self) -> Status {
        let done = self.inner.rounds_done.load(Ordering::Relaxed);
        Status {
            id: self.inner.cfg.id.clone(),
            role: "acceptor".into(),
            term: self.inner.ballots.lock().expect("ballots").current(),
            leader: None,
            commit_index: done,
            applied_index: done,
            wall_clock_ms: api::wall_clock_ms(),
            read_mode: "readindex".into(),
            bugs: self.inner.cfg.bugs.clone(),
        }
    }

    fn request_id(&self, given: Option<String>) -> String {
        // Retries inside one request must carry one id, so it is fixed here, before them.
        given.unwrap_or_else(|| {
            format!(
                "{}-auto-{}",
                self.inner.cfg.id,
                self.inner.next_op.fetch_add(1, Ordering::Relaxed)
            )
        })
    }
}

/// The router serving `/read`, `/write`, `/cas` and `/status`.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/read", post(read))
        .route("/write", post(write))
        .route("/cas", post(cas))
        .route(
            "/status",
            get(|State(n): State<Node>| async move { Json(n.status()) }),
        )
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(api::BODY_BYTES_MAX))
        .with_state(node)
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| ApiError::bad_request(format!("unreadable request body: {e}")))
}

fn optional_value(v: &serde_json::Value) -> Result<Option<String>, ApiError> {
    if v.is_null() {
        Ok(None)
    } else {
        api::encode_value(v).map(Some)
    }
}

async fn read(State(node): State<Node>, b: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let r: ReadRequest = api::parse_body(&body(b)?)?;
        api::validate_key(&r.key)?;
        match node.run(&r.key, Change::Read).await {
            Ok(Outcome::Read(v)) => Ok(Json(json!({ "value": api::decode_value(v.as_deref()) }))),
            Ok(other) => Err(ApiError::new(
                500,
                format!("unexpected outcome {other:?}"),
                true,
            )),
            // A read changes nothing, whatever happened to its round.
            Err(e) => Err(ApiError {
                definite: true,
                ..e
            }),
        }
    };
    result.await.into_response()
}

async fn write(State(node): State<Node>, b: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let r: WriteRequest = api::parse_body(&body(b)?)?;
        api::validate_key(&r.key)?;
        let value = optional_value(&r.value)?;
        let change = Change::Write {
            value,
            request_id: node.request_id(r.request_id),
        };
        node.run(&r.key, change).await.map(|_| Json(json!({})))
    };
    result.await.into_response()
}

async fn cas(State(node): State<Node>, b: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let r: CasRequest = api::parse_body(&body(b)?)?;
        api::validate_key(&r.key)?;
        let expected = optional_value(&r.expected)?;
        let new = optional_value(&r.new)?;
        let change = Change::Cas {
            expected,
            new,
            request_id: node.request_id(r.request_id),
        };
        match node.run(&r.key, change).await? {
            Outcome::Cas { ok: true, .. } => Ok(Json(json!({ "ok": true }))),
            Outcome::Cas { ok: false, current } => Ok(Json(
                json!({ "ok": false, "current": api::decode_value(current.as_deref()) }),
            )),
            other => Err(ApiError::new(
                500,
                format!("unexpected outcome {other:?}"),
                false,
            )),
        }
    };
    result.await.into_response()
}
