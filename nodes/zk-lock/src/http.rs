//! The HTTP/JSON client API of `nodes/LOCKS.md`: sessions, blocking acquire, release,
//! status; forwarding to the leader; errors that say whether the operation certainly did
//! not happen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faultline_nodes_common::api::{self, ApiError};
use faultline_nodes_common::relay::Relay;
use faultline_raft::message::NodeId;
use faultline_raft::server::{self, Handle, ProposeError, Proposed};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::liveness::Liveness;
use crate::machine::{Fence, Op, Outcome, SessionId, DATA_KEY_BYTES_MAX, LOCK_NAME_BYTES_MAX};
use crate::replicated::{encode, ZkStateMachine};

/// Longest acquire wait a client may ask for.
pub const ACQUIRE_TIMEOUT_MS_MAX: u64 = 60_000;
/// Largest request body read.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// How often a waiting acquire re-checks and refreshes its session, even with no news.
const WAIT_POLL_MS: u64 = 100;

/// Which clock measures session silence.
#[derive(Clone, Debug)]
pub enum LivenessClock {
    /// Monotonic (correct): clock faults do not expire sessions.
    Monotonic(Instant),
    /// The `wall-clock-expiry` bug: `SystemTime`, so a clock bumped forward on the leader
    /// expires every session at once while their clients still believe they hold locks.
    /// `skew_ms` is added to it: an in-process stand-in for libfaketime in tests (0 in a
    /// real node, where libfaketime moves `SystemTime` itself).
    Wall { skew_ms: Arc<AtomicI64> },
}

impl LivenessClock {
    pub fn now_ms(&self) -> u64 {
        match self {
            LivenessClock::Monotonic(start) => start.elapsed().as_millis() as u64,
            LivenessClock::Wall { skew_ms } => {
                api::wall_clock_ms().saturating_add_signed(skew_ms.load(Ordering::Relaxed))
            }
        }
    }
}

/// Settings of the client API.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub id: NodeId,
    /// Every member's client address, for forwarding to the leader.
    pub client_peers: HashMap<NodeId, String>,
    /// Bound on one request other than the wait of an acquire.
    pub request_timeout: Duration,
    pub bugs: Vec<String>,
}

/// What the handlers and the expiry task share.
#[derive(Clone)]
pub struct App {
    pub node: Handle<ZkStateMachine>,
    pub cfg: Arc<HttpConfig>,
    pub applied: watch::Receiver<u64>,
    pub liveness: Arc<Mutex<Liveness>>,
    pub clock: LivenessClock,
    client: reqwest::Client,
}

impl App {
    pub fn new(
        node: Handle<ZkStateMachine>,
        cfg: HttpConfig,
        applied: watch::Receiver<u64>,
        clock: LivenessClock,
    ) -> App {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .connect_timeout(Duration::from_millis(500))
            .build()
            .expect("HTTP client builds");
        App {
            node,
            cfg: Arc::new(cfg),
            applied,
            liveness: Arc::new(Mutex::new(Liveness::new())),
            clock,
            client,
        }
    }

    fn touch(&self, session: SessionId) {
        let now = self.clock.now_ms();
        let st = self.node.status();
        let leader_term = server::is_leader(&st).then_some(st.term);
        self.liveness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .touch(session, now, leader_term);
    }
}

/// The router serving `/session/*`, `/lock/*` and `/status`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/session/open", post(open))
        .route("/session/keepalive", post(keepalive))
        .route("/session/close", post(close))
        .route("/lock/acquire", post(acquire))
        .route("/lock/release", post(release))
        .route("/data/get", post(data_get))
        .route("/data/put", post(data_put))
        .route("/status", get(status))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(app)
}

/// Ends sessions that missed their timeout, while this node leads; runs until aborted.
pub async fn expire_sessions(app: App, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let st = app.node.status();
        let leader_term = server::is_leader(&st).then_some(st.term);
        let sessions = if leader_term.is_some() {
            match app.node.read(true, |sm| sm.session_timeouts()).await {
                Ok(s) => s,
                Err(_) => continue,
            }
        } else {
            Vec::new()
        };
        let now = app.clock.now_ms();
        let due = app
            .liveness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(leader_term, &sessions, now);
        for session in due {
            tracing::info!(session, "session missed its timeout; expiring it");
            let app = app.clone();
            tokio::spawn(async move {
                let proposed = app
                    .node
                    .propose(encode(&Op::Expire { session }), false)
                    .await;
                if !matches!(proposed, Ok(Proposed::Applied(_))) {
                    app.liveness
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .expiry_failed(session);
                }
            });
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    timeout_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    session: SessionId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockRequest {
    session: SessionId,
    lock: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetRequest {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    key: String,
    value: String,
    #[serde(default)]
    fence: Option<Fence>,
}

fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > DATA_KEY_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "key must be 1 to {DATA_KEY_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<(Bytes, T), ApiError> {
    let body = body.map_err(|e| ApiError::bad_request(format!("unreadable request body: {e}")))?;
    let req = api::parse_body(&body)?;
    Ok((body, req))
}

fn validate_lock(lock: &str) -> Result<(), ApiError> {
    if lock.is_empty() || lock.len() > LOCK_NAME_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "lock must be 1 to {LOCK_NAME_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

fn no_session(session: SessionId) -> ApiError {
    ApiError::new(
        409,
        format!("session {session} does not exist (never opened, closed or expired)"),
        true,
    )
}

/// A proposal that did not produce an outcome here.
enum Failed {
    NotLeader(Option<NodeId>),
    Error(ApiError),
}

async fn propose(app: &App, op: &Op) -> Result<Outcome, Failed> {
    match app.node.propose(encode(op), false).await {
        Ok(Proposed::Applied(outcome)) => Ok(outcome),
        Ok(Proposed::Appended) => Err(Failed::Error(ApiError::new(
            500,
            "appended but not applied",
            false,
        ))),
        Err(ProposeError::NotLeader(leader)) => Err(Failed::NotLeader(leader)),
        Err(e @ ProposeError::Overwritten) => {
            Err(Failed::Error(ApiError::unavailable(e.to_string(), None)))
        }
        Err(e @ ProposeError::Unknown(_)) => {
            Err(Failed::Error(ApiError::new(500, e.to_string(), false)))
        }
        Err(e @ ProposeError::Shutdown) => {
            Err(Failed::Error(ApiError::new(503, e.to_string(), false)))
        }
    }
}

/// Runs `work`, bounded by `limit`; a request past it may still take effect.
async fn bounded(
    app: &App,
    limit: Duration,
    work: impl std::future::Future<Output = Response>,
) -> Response {
    api::bounded(limit, false, || app.node.status().leader, work).await
}

/// Answers a failed proposal: forward when another node leads, else the error.
async fn failed(
    app: &App,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
    f: Failed,
    limit: Duration,
) -> Response {
    match f {
        Failed::NotLeader(leader) => forward(app, headers, path, body, leader, limit).await,
        Failed::Error(e) => ApiError {
            leader: app.node.status().leader,
            ..e
        }
        .into_response(),
    }
}

/// What a handler makes of its proposal's outcome: the answer, or the outcome handed back
/// when this request cannot produce it (answered 500).
type Answer = Result<Response, Outcome>;

/// Proposes `op` and answers with `answer(outcome)`, all within `limit`: a failed proposal
/// is relayed to the leader or answered as its error ([`failed`]).
async fn propose_then_answer<F, Fut>(
    app: &App,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
    op: Op,
    limit: Duration,
    answer: F,
) -> Response
where
    F: FnOnce(Outcome) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let work = async {
        match propose(app, &op).await {
            Ok(outcome) => answer(outcome).await.unwrap_or_else(|other| {
                ApiError::new(500, format!("unexpected outcome {other:?}"), false).into_response()
            }),
            Err(f) => failed(app, headers, path, body, f, limit).await,
        }
    };
    bounded(app, limit, work).await
}

async fn status(State(app): State<App>) -> Response {
    let s = app.node.status();
    let sessions = app
        .node
        .read(true, |sm| sm.machine().sessions().len())
        .await
        .unwrap_or(0);
    Json(json!({
        "id": app.cfg.id,
        "role": s.role,
        "term": s.term,
        "leader": s.leader,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "wall_clock_ms": api::wall_clock_ms(),
        "sessions": sessions,
        "bugs": app.cfg.bugs,
    }))
    .into_response()
}

async fn open(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, req): (_, OpenRequest) = match parse(body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let app = &app;
    let op = Op::OpenSession {
        timeout_ms: req.timeout_ms,
    };
    let limit = app.cfg.request_timeout;
    let answer = |outcome: Outcome| async move {
        match outcome {
            Outcome::Opened {
                session,
                timeout_ms,
            } => {
                app.touch(session);
                Ok(Json(json!({ "session": session, "timeout_ms": timeout_ms })).into_response())
            }
            Outcome::Rejected(why) => Ok(ApiError::bad_request(why).into_response()),
            other => Err(other),
        }
    };
    propose_then_answer(app, &headers, "/session/open", body, op, limit, answer).await
}

async fn keepalive(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, req): (_, SessionRequest) = match parse(body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let limit = app.cfg.request_timeout;
    let session = req.session;
    let work = async {
        // A linearizable read: only a current leader answers, and it has applied every
        // committed entry, so a session it does not know is really gone.
        match app
            .node
            .read(false, move |sm| {
                sm.machine().sessions().contains_key(&session)
            })
            .await
        {
            Ok(true) => {
                app.touch(session);
                Json(json!({})).into_response()
            }
            Ok(false) => no_session(session).into_response(),
            Err(server::ReadError::NotLeader(leader)) => {
                forward(&app, &headers, "/session/keepalive", body, leader, limit).await
            }
            Err(e) => {
                ApiError::unavailable(e.to_string(), app.node.status().leader).into_response()
            }
        }
    };
    bounded(&app, limit, work).await
}

async fn close(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, req): (_, SessionRequest) = match parse(body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let session = req.session;
    let op = Op::CloseSession { session };
    let limit = app.cfg.request_timeout;
    let answer = |outcome: Outcome| async move {
        match outcome {
            Outcome::Closed => Ok(Json(json!({})).into_response()),
            Outcome::NoSession => Ok(no_session(session).into_response()),
            other => Err(other),
        }
    };
    propose_then_answer(&app, &headers, "/session/close", body, op, limit, answer).await
}

async fn release(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, req): (_, LockRequest) =
        match parse(body).and_then(|(b, r): (Bytes, LockRequest)| {
            validate_lock(&r.lock)?;
            Ok((b, r))
        }) {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
    let (app, req) = (&app, &req);
    let op = Op::Release {
        session: req.session,
        lock: req.lock.clone(),
    };
    let limit = app.cfg.request_timeout;
    let answer = |outcome: Outcome| async move {
        match outcome {
            Outcome::Released => {
                app.touch(req.session);
                Ok(Json(json!({})).into_response())
            }
            Outcome::NotHeld => Ok(ApiError::new(
                412,
                format!(
                    "session {} holds no node under lock {:?}",
                    req.session, req.lock
                ),
                true,
            )
            .into_response()),
            Outcome::NoSession => Ok(no_session(req.session).into_response()),
            other => Err(other),
        }
    };
    propose_then_answer(app, &headers, "/lock/release", body, op, limit, answer).await
}

async fn acquire(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = parse(body).and_then(|(b, r): (Bytes, LockRequest)| {
        validate_lock(&r.lock)?;
        let wait_ms = r
            .timeout_ms
            .unwrap_or(app.cfg.request_timeout.as_millis() as u64);
        if wait_ms > ACQUIRE_TIMEOUT_MS_MAX {
            return Err(ApiError::bad_request(format!(
                "timeout_ms must be at most {ACQUIRE_TIMEOUT_MS_MAX}"
            )));
        }
        Ok((b, r, Duration::from_millis(wait_ms)))
    });
    let (body, req, wait) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // The wait, then one more proposal (the cancel) within the ordinary bound.
    let limit = wait + app.cfg.request_timeout;
    let (app, req) = (&app, &req);
    let op = Op::Acquire {
        session: req.session,
        lock: req.lock.clone(),
    };
    let answer = |outcome: Outcome| async move {
        match outcome {
            Outcome::Held { token } => {
                app.touch(req.session);
                Ok(Json(json!({ "token": token })).into_response())
            }
            Outcome::Waiting { .. } => {
                app.touch(req.session);
                let deadline = Instant::now() + wait;
                Ok(wait_for_grant(app, req.session, &req.lock, deadline).await)
            }
            Outcome::NoSession => Ok(no_session(req.session).into_response()),
            Outcome::Rejected(why) => Ok(ApiError::new(429, why, true).into_response()),
            other => Err(other),
        }
    };
    propose_then_answer(app, &headers, "/lock/acquire", body, op, limit, answer).await
}

/// Reads a data key: a linearizable read on the leader, as keepalives are.
async fn data_get(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, req): (_, GetRequest) = match parse(body).and_then(|(b, r): (Bytes, GetRequest)| {
        validate_key(&r.key)?;
        Ok((b, r))
    }) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let limit = app.cfg.request_timeout;
    let work = async {
        let key = req.key.clone();
        match app
            .node
            .read(false, move |sm| sm.machine().data(&key).map(str::to_owned))
            .await
        {
            Ok(value) => Json(json!({ "value": value })).into_response(),
            Err(server::ReadError::NotLeader(leader)) => {
                forward(&app, &headers, "/data/get", body, leader, limit).await
            }
            Err(e) => {
                ApiError::unavailable(e.to_string(), app.node.status().leader).into_response()
            }
        }
    };
    bounded(&app, limit, work).await
}

/// Stores a data key through the log; a fenced put whose token no longer holds the lock is
/// refused with 412 (certainly not written).
async fn data_put(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, req): (_, PutRequest) = match parse(body).and_then(|(b, r): (Bytes, PutRequest)| {
        validate_key(&r.key)?;
        if let Some(fence) = &r.fence {
            validate_lock(&fence.lock)?;
        }
        Ok((b, r))
    }) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let limit = app.cfg.request_timeout;
    let work = async {
        let op = Op::Put {
            key: req.key.clone(),
            value: req.value.clone(),
            fence: req.fence.clone(),
        };
        match propose(&app, &op).await {
            Ok(Outcome::Written) => Json(json!({})).into_response(),
            Ok(Outcome::Fenced { holder }) => {
                let fence = req.fence.as_ref();
                ApiError::new(
                    412,
                    format!(
                        "fenced: token {} does not hold lock {:?} (holder's token: {})",
                        fence.map_or(0, |f| f.token),
                        fence.map_or("", |f| f.lock.as_str()),
                        holder.map_or("none".to_owned(), |t| t.to_string())
                    ),
                    true,
                )
                .into_response()
            }
            Ok(Outcome::Rejected(why)) => ApiError::bad_request(why).into_response(),
            Ok(other) => {
                ApiError::new(500, format!("unexpected outcome {other:?}"), false).into_response()
            }
            Err(f) => failed(&app, &headers, "/data/put", body, f, limit).await,
        }
    };
    bounded(&app, limit, work).await
}

/// Long-polls until the session's node is the lowest, its node vanishes, or the deadline;
/// at the deadline, cancels the wait through the log (a grant that raced it is returned).
async fn wait_for_grant(app: &App, session: SessionId, lock: &str, deadline: Instant) -> Response {
    let mut applied = app.applied.clone();
    loop {
        applied.borrow_and_update();
        let l = lock.to_string();
        let state = app
            .node
            .read(true, move |sm| {
                (
                    sm.machine().held_by(session, &l),
                    sm.machine().has_node(session, &l),
                )
            })
            .await;
        match state {
            Ok((Some(token), _)) => return Json(json!({ "token": token })).into_response(),
            Ok((None, false)) => {
                return ApiError::new(
                    409,
                    format!(
                        "session {session} lost its place for {lock:?} (session expired or closed)"
                    ),
                    true,
                )
                .into_response()
            }
            Ok((None, true)) => {}
            Err(e) => return ApiError::new(503, e.to_string(), false).into_response(),
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        // A client blocked here cannot send keepalives on this connection: the wait itself
        // counts as hearing from it.
        app.touch(session);
        let nap = (deadline - now).min(Duration::from_millis(WAIT_POLL_MS));
        let _ = tokio::time::timeout(nap, applied.changed()).await;
    }
    let cancel = Op::Cancel {
        session,
        lock: lock.to_string(),
    };
    match propose(app, &cancel).await {
        Ok(Outcome::Released) => ApiError::new(
            408,
            format!("lock {lock:?} not granted within timeout_ms"),
            true,
        )
        .into_response(),
        Ok(Outcome::AlreadyHeld { token }) => Json(json!({ "token": token })).into_response(),
        Ok(Outcome::NotHeld) | Ok(Outcome::NoSession) => no_session(session).into_response(),
        Ok(other) => {
            ApiError::new(500, format!("unexpected outcome {other:?}"), false).into_response()
        }
        // The node may still be queued and granted later: the outcome is unknown.
        Err(Failed::NotLeader(leader)) => ApiError {
            leader,
            ..ApiError::new(
                503,
                "leadership lost while waiting; the node may still be granted",
                false,
            )
        }
        .into_response(),
        Err(Failed::Error(e)) => ApiError {
            definite: false,
            ..e
        }
        .into_response(),
    }
}

/// Relays a request to the leader and its answer back, unchanged; a failed relay is not
/// definite (the relayed ops but keepalive are writes).
async fn forward(
    app: &App,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
    leader: Option<NodeId>,
    limit: Duration,
) -> Response {
    let relay = Relay {
        client: &app.client,
        own_id: &app.cfg.id,
        client_peers: &app.cfg.client_peers,
        timeout: limit,
        definite_on_failure: false,
    };
    relay.to_leader(headers, path, body, leader).await
}
