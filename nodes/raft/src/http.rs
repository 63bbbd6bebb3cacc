//! The HTTP/JSON client API of `nodes/API.md` over the Raft key-value store: validation,
//! forwarding to the leader, the server-side time bound, and error classification
//! (`definite: true` only when the operation certainly did not happen).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faultline_nodes_common::api::{self, ApiError, CasRequest, ReadRequest, Status, WriteRequest};
use faultline_nodes_common::codec;
use faultline_nodes_common::relay::Relay;
use serde_json::json;

use crate::kv::{self, KvStore, Outcome};
use crate::message::NodeId;
use crate::server::{Handle, ProposeError, Proposed, ReadError};

/// Settings of the client API.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub id: NodeId,
    /// Every member's client address, for forwarding to the leader.
    pub client_peers: HashMap<NodeId, String>,
    pub request_timeout: Duration,
    /// The `stale-read` bug: answer reads from local state on any node.
    pub stale_read: bool,
    /// The `ack-before-commit` bug: answer writes once in the leader's own log.
    pub ack_before_commit: bool,
    /// The `txn-early-reads` bug: a transaction's reads are answered from the leader's
    /// state when the request arrives; only its writes go through the log.
    pub txn_early_reads: bool,
    pub read_mode: String,
    pub bugs: Vec<String>,
}

#[derive(Clone)]
struct App {
    node: Handle<KvStore>,
    cfg: Arc<HttpConfig>,
    client: reqwest::Client,
}

/// Micro-ops one transaction may hold.
pub const TXN_OPS_MAX: usize = 64;

/// The router serving `/read`, `/write`, `/cas`, `/txn` and `/status`.
pub fn router(node: Handle<KvStore>, cfg: HttpConfig) -> Router {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .expect("HTTP client builds");
    let app = App {
        node,
        cfg: Arc::new(cfg),
        client,
    };
    Router::new()
        .route("/read", post(read))
        .route("/write", post(write))
        .route("/cas", post(cas))
        .route("/txn", post(txn))
        .route("/status", get(status))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(api::BODY_BYTES_MAX))
        .with_state(app)
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::bad_request(format!("unreadable request body: {e}")))
}

async fn status(State(app): State<App>) -> Json<Status> {
    let s = app.node.status();
    Json(Status {
        id: app.cfg.id.clone(),
        role: s.role,
        term: s.term,
        leader: s.leader,
        commit_index: s.commit_index,
        applied_index: s.applied_index,
        wall_clock_ms: api::wall_clock_ms(),
        read_mode: app.cfg.read_mode.clone(),
        bugs: app.cfg.bugs.clone(),
    })
}

async fn read(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body_bytes(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req: ReadRequest = match api::parse_body(&body)
        .and_then(|r: ReadRequest| api::validate_key(&r.key).map(|_| r))
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let key = req.key.clone();
    let work = async {
        let result = app
            .node
            .read(app.cfg.stale_read, move |sm| sm.get(&key).cloned())
            .await;
        match result {
            Ok(v) => Json(json!({ "value": api::decode_value(v.as_deref()) })).into_response(),
            Err(ReadError::NotLeader(leader)) => {
                forward(&app, &headers, "/read", body, leader, started, true).await
            }
            Err(e) => {
                ApiError::unavailable(e.to_string(), app.node.status().leader).into_response()
            }
        }
    };
    bounded(&app, work, true).await
}

async fn write(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = body_bytes(body).and_then(|b| {
        let r: WriteRequest = api::parse_body(&b)?;
        api::validate_key(&r.key)?;
        let value = api::encode_value(&r.value)?;
        Ok((
            b,
            kv::Request {
                request_id: r.request_id,
                command: kv::Command::Put { key: r.key, value },
            },
        ))
    });
    match parsed {
        Ok((body, request)) => propose(app, headers, "/write", body, request).await,
        Err(e) => e.into_response(),
    }
}

async fn cas(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = body_bytes(body).and_then(|b| {
        let r: CasRequest = api::parse_body(&b)?;
        api::validate_key(&r.key)?;
        let expected = if r.expected.is_null() {
            None
        } else {
            Some(api::encode_value(&r.expected)?)
        };
        let new = api::encode_value(&r.new)?;
        Ok((
            b,
            kv::Request {
                request_id: r.request_id,
                command: kv::Command::Cas {
                    key: r.key,
                    expected,
                    new,
                },
            },
        ))
    });
    match parsed {
        Ok((body, request)) => propose(app, headers, "/cas", body, request).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /txn` `{"txn": [["append", k, v], ["r", k, null], ["w", k, v], ...]}`: the
/// micro-ops applied as one log entry; the answer echoes them with every read's value.
async fn txn(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = body_bytes(body).and_then(|b| {
        let r: TxnRequest = api::parse_body(&b)?;
        let ops = parse_micro_ops(&r.txn)?;
        Ok((b, r.request_id, ops))
    });
    let (body, request_id, ops) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if app.cfg.txn_early_reads {
        return txn_early_reads(app, headers, body, request_id, ops).await;
    }
    let request = kv::Request {
        request_id,
        command: kv::Command::Txn { ops: ops.clone() },
    };
    propose_then(app, headers, "/txn", body, request, move |outcome| {
        txn_answer(&ops, outcome)
    })
    .await
}

#[derive(serde::Deserialize)]
struct TxnRequest {
    txn: Vec<serde_json::Value>,
    #[serde(default)]
    request_id: Option<String>,
}

/// `[f, key, value]` triples to micro-ops; anything else is a 400 naming the micro-op.
fn parse_micro_ops(items: &[serde_json::Value]) -> Result<Vec<kv::MicroOp>, ApiError> {
    if items.is_empty() || items.len() > TXN_OPS_MAX {
        return Err(ApiError::bad_request(format!(
            "a txn holds 1 to {TXN_OPS_MAX} micro-ops, not {}",
            items.len()
        )));
    }
    let mut ops = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let bad = |why: &str| ApiError::bad_request(format!("micro-op {i}: {why}"));
        let Some([f, key, value]) = item.as_array().map(Vec::as_slice) else {
            return Err(bad("expected [f, key, value]"));
        };
        let key = key
            .as_str()
            .ok_or_else(|| bad("the key must be a string"))?;
        api::validate_key(key).map_err(|e| bad(&e.error))?;
        let key = key.to_string();
        ops.push(match f.as_str() {
            Some("r") => kv::MicroOp::Read { key },
            Some("append") => kv::MicroOp::Append {
                key,
                value: api::encode_value(value).map_err(|e| bad(&e.error))?,
            },
            Some("w") => kv::MicroOp::Write {
                key,
                value: api::encode_value(value).map_err(|e| bad(&e.error))?,
            },
            _ => return Err(bad("f must be \"r\", \"append\" or \"w\"")),
        });
    }
    Ok(ops)
}

/// The micro-ops with each read's value filled in.
fn txn_json(ops: &[kv::MicroOp], results: &[Option<String>]) -> serde_json::Value {
    let mops: Vec<serde_json::Value> = ops
        .iter()
        .zip(results)
        .map(|(op, read)| match op {
            kv::MicroOp::Read { key } => json!(["r", key, api::decode_value(read.as_deref())]),
            kv::MicroOp::Append { key, value } => {
                json!(["append", key, api::decode_value(Some(value))])
            }
            kv::MicroOp::Write { key, value } => json!(["w", key, api::decode_value(Some(value))]),
        })
        .collect();
    json!({ "txn": mops })
}

fn txn_answer(ops: &[kv::MicroOp], outcome: Outcome) -> Response {
    match outcome {
        Outcome::Txn(results) => Json(txn_json(ops, &results)).into_response(),
        // Aborted before it changed anything: certainly not applied.
        Outcome::TxnAborted(e) => ApiError::new(409, e, true).into_response(),
        other => ApiError::new(500, format!("unexpected outcome {other:?}"), false).into_response(),
    }
}

/// The bug: reads from the state at arrival, writes through the log later, with nothing
/// checking that what was read is still current when the writes apply.
async fn txn_early_reads(
    app: App,
    headers: HeaderMap,
    body: Bytes,
    request_id: Option<String>,
    ops: Vec<kv::MicroOp>,
) -> Response {
    let started = Instant::now();
    let status = app.node.status();
    if status.role != "leader" {
        return forward(&app, &headers, "/txn", body, status.leader, started, false).await;
    }
    let preview_ops = ops.clone();
    let preview = match app
        .node
        .read(true, move |sm| sm.preview_txn(&preview_ops))
        .await
    {
        Ok(Ok(effect)) => effect,
        Ok(Err(e)) => return ApiError::new(409, e, true).into_response(),
        Err(e) => return ApiError::unavailable(e.to_string(), status.leader).into_response(),
    };
    let writes: Vec<kv::MicroOp> = ops.iter().filter(|o| !o.is_read()).cloned().collect();
    if writes.is_empty() {
        return Json(txn_json(&ops, &preview.results)).into_response();
    }
    let request = kv::Request {
        request_id,
        command: kv::Command::Txn { ops: writes },
    };
    propose_then(
        app,
        headers,
        "/txn",
        body,
        request,
        move |outcome| match outcome {
            Outcome::Txn(_) => Json(txn_json(&ops, &preview.results)).into_response(),
            other => txn_answer(&ops, other),
        },
    )
    .await
}

async fn propose(
    app: App,
    headers: HeaderMap,
    path: &'static str,
    body: Bytes,
    request: kv::Request,
) -> Response {
    propose_then(app, headers, path, body, request, |outcome| match outcome {
        Outcome::Written => Json(json!({})).into_response(),
        Outcome::Cas { ok: true, .. } => Json(json!({ "ok": true })).into_response(),
        Outcome::Cas { ok: false, current } => {
            Json(json!({ "ok": false, "current": api::decode_value(current.as_deref()) }))
                .into_response()
        }
        Outcome::Invalid(e) => {
            ApiError::new(500, format!("the log entry did not decode: {e}"), true).into_response()
        }
        other => ApiError::new(500, format!("unexpected outcome {other:?}"), false).into_response(),
    })
    .await
}

/// Proposes `request` (forwarding to the leader when this node is not it) and answers
/// with `answer` of its applied outcome.
async fn propose_then(
    app: App,
    headers: HeaderMap,
    path: &'static str,
    body: Bytes,
    request: kv::Request,
    answer: impl FnOnce(Outcome) -> Response,
) -> Response {
    let started = Instant::now();
    // The bug answers plain writes early; a cas or txn needs the applied outcome to answer.
    let early = app.cfg.ack_before_commit && matches!(request.command, kv::Command::Put { .. });
    let data = codec::encode(&request);
    let work = async {
        match app.node.propose(data, early).await {
            Ok(Proposed::Appended) => Json(json!({})).into_response(),
            Ok(Proposed::Applied(outcome)) => answer(outcome),
            Err(ProposeError::NotLeader(leader)) => {
                forward(&app, &headers, path, body, leader, started, false).await
            }
            Err(e @ ProposeError::Overwritten) => {
                ApiError::unavailable(e.to_string(), None).into_response()
            }
            Err(e) => ApiError::new(503, e.to_string(), false).into_response(),
        }
    };
    bounded(&app, work, false).await
}

/// Answers 504 once the server-side bound has passed.
async fn bounded(
    app: &App,
    work: impl std::future::Future<Output = Response>,
    is_read: bool,
) -> Response {
    let leader = || app.node.status().leader;
    api::bounded(app.cfg.request_timeout, is_read, leader, work).await
}

/// Relays a request to the leader and its answer back, unchanged, within what is left of the
/// request's time; a failed read relay certainly changed nothing.
async fn forward(
    app: &App,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
    leader: Option<NodeId>,
    started: Instant,
    is_read: bool,
) -> Response {
    let relay = Relay {
        client: &app.client,
        own_id: &app.cfg.id,
        client_peers: &app.cfg.client_peers,
        timeout: app.cfg.request_timeout.saturating_sub(started.elapsed()),
        definite_on_failure: is_read,
    };
    relay.to_leader(headers, path, body, leader).await
}
