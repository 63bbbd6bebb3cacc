//! An HTTP client of the zk-lock API for the harness: sessions, a keepalive task that knows
//! when the session may have been lost, acquire and release with classified errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long to wait for a connection to a node before trying the next one.
const CONNECT_TIMEOUT_MS: u64 = 500;

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZkError {
    /// The operation certainly did not take effect (history: `fail`).
    #[error("{node}: {status} {error}")]
    Definite {
        node: String,
        status: u16,
        error: String,
    },
    /// It may have taken effect (history: `info`).
    #[error("{node}: outcome unknown: {error}")]
    Indefinite { node: String, error: String },
}

impl ZkError {
    pub fn is_definite(&self) -> bool {
        matches!(self, ZkError::Definite { .. })
    }

    /// The HTTP status of a definite error (408 acquire timed out, 409 session gone, …).
    pub fn status(&self) -> Option<u16> {
        match self {
            ZkError::Definite { status, .. } => Some(*status),
            ZkError::Indefinite { .. } => None,
        }
    }
}

/// A client of one zk-lock cluster; cheap to clone. Requests go to one node at a time (any
/// node forwards to the leader); a node that refuses the connection is skipped.
#[derive(Clone)]
pub struct ZkLockClient {
    http: reqwest::Client,
    nodes: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    request_timeout: Duration,
}

impl ZkLockClient {
    /// `nodes` are client addresses (`host:port`); `request_timeout` bounds every request
    /// except an acquire, which also waits its own `timeout_ms`.
    pub fn new(nodes: Vec<String>, request_timeout: Duration) -> ZkLockClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .build()
            .expect("HTTP client builds");
        ZkLockClient {
            http,
            nodes: Arc::new(nodes),
            next: Arc::new(AtomicUsize::new(0)),
            request_timeout,
        }
    }

    /// POSTs `body` to `path`; moves to the next node on connection refusal or a 503 that
    /// certainly did nothing (no leader known there), up to one round over the nodes.
    async fn post(&self, path: &str, body: Value, timeout: Duration) -> Result<Value, ZkError> {
        let mut last = None;
        for _ in 0..self.nodes.len().max(1) {
            let i = self.next.load(Ordering::Relaxed) % self.nodes.len().max(1);
            let Some(node) = self.nodes.get(i) else {
                break;
            };
            let sent = self
                .http
                .post(format!("http://{node}{path}"))
                .json(&body)
                .timeout(timeout)
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if e.is_connect() => {
                    self.next.fetch_add(1, Ordering::Relaxed);
                    last = Some(ZkError::Definite {
                        node: node.clone(),
                        status: 0,
                        error: format!("connect: {e}"),
                    });
                    continue;
                }
                Err(e) => {
                    self.next.fetch_add(1, Ordering::Relaxed);
                    return Err(ZkError::Indefinite {
                        node: node.clone(),
                        error: e.to_string(),
                    });
                }
            };
            let status = resp.status().as_u16();
            let answer: Value = match resp.json().await {
                Ok(v) => v,
                Err(e) => {
                    return Err(ZkError::Indefinite {
                        node: node.clone(),
                        error: format!("unreadable answer (status {status}): {e}"),
                    })
                }
            };
            if status == 200 {
                return Ok(answer);
            }
            let error = answer["error"]
                .as_str()
                .unwrap_or("no error text")
                .to_string();
            let definite = answer["definite"].as_bool().unwrap_or(false);
            if !definite {
                return Err(ZkError::Indefinite {
                    node: node.clone(),
                    error: format!("{status} {error}"),
                });
            }
            let err = ZkError::Definite {
                node: node.clone(),
                status,
                error,
            };
            if status != 503 {
                return Err(err);
            }
            self.next.fetch_add(1, Ordering::Relaxed);
            last = Some(err);
        }
        Err(last.unwrap_or(ZkError::Definite {
            node: String::new(),
            status: 0,
            error: "no nodes configured".into(),
        }))
    }

    fn field(answer: &Value, name: &str) -> Result<u64, ZkError> {
        answer[name].as_u64().ok_or_else(|| ZkError::Indefinite {
            node: String::new(),
            error: format!("answer has no {name:?}: {answer}"),
        })
    }

    pub async fn open_session(&self, timeout_ms: u64) -> Result<u64, ZkError> {
        let answer = self
            .post(
                "/session/open",
                json!({ "timeout_ms": timeout_ms }),
                self.request_timeout,
            )
            .await?;
        Self::field(&answer, "session")
    }

    pub async fn keepalive(&self, session: u64) -> Result<(), ZkError> {
        self.post(
            "/session/keepalive",
            json!({ "session": session }),
            self.request_timeout,
        )
        .await
        .map(|_| ())
    }

    pub async fn close_session(&self, session: u64) -> Result<(), ZkError> {
        self.post(
            "/session/close",
            json!({ "session": session }),
            self.request_timeout,
        )
        .await
        .map(|_| ())
    }

    /// Blocks up to `timeout_ms` for the lock; the fencing token on success. A definite 408
    /// means not granted within the wait.
    pub async fn acquire(&self, session: u64, lock: &str, timeout_ms: u64) -> Result<u64, ZkError> {
        let body = json!({ "session": session, "lock": lock, "timeout_ms": timeout_ms });
        let limit = Duration::from_millis(timeout_ms) + self.request_timeout * 2;
        let answer = self.post("/lock/acquire", body, limit).await?;
        Self::field(&answer, "token")
    }

    pub async fn release(&self, session: u64, lock: &str) -> Result<(), ZkError> {
        let body = json!({ "session": session, "lock": lock });
        self.post("/lock/release", body, self.request_timeout)
            .await
            .map(|_| ())
    }

    /// The value of data key `key` (a linearizable read on the leader); `None` when unset.
    pub async fn get(&self, key: &str) -> Result<Option<String>, ZkError> {
        let answer = self
            .post("/data/get", json!({ "key": key }), self.request_timeout)
            .await?;
        match &answer["value"] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(ZkError::Indefinite {
                node: String::new(),
                error: format!("answer's value is not a string: {other}"),
            }),
        }
    }

    /// Stores `value` under data key `key`; with `fence = Some((lock, token))` only while
    /// that token holds the lock (a refusal is a definite 412).
    pub async fn put(
        &self,
        key: &str,
        value: &str,
        fence: Option<(&str, u64)>,
    ) -> Result<(), ZkError> {
        let fence = fence.map(|(lock, token)| json!({ "lock": lock, "token": token }));
        let body = json!({ "key": key, "value": value, "fence": fence });
        self.post("/data/put", body, self.request_timeout)
            .await
            .map(|_| ())
    }

    /// Starts sending keepalives for `session` every `timeout_ms / 3`; the returned keeper
    /// says whether the session can still be trusted.
    pub fn keep_alive(&self, session: u64, timeout_ms: u64) -> SessionKeeper {
        let last_ok = Arc::new(Mutex::new(Some(Instant::now())));
        let client = self.clone();
        let seen = Arc::clone(&last_ok);
        let task = tokio::spawn(async move {
            let every = Duration::from_millis((timeout_ms / 3).max(10));
            loop {
                tokio::time::sleep(every).await;
                let sent_at = Instant::now();
                match client.keepalive(session).await {
                    Ok(()) => *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(sent_at),
                    Err(ZkError::Definite { status: 409, .. }) => {
                        *seen.lock().unwrap_or_else(|p| p.into_inner()) = None;
                        return;
                    }
                    Err(_) => {}
                }
            }
        });
        SessionKeeper {
            last_ok,
            timeout: Duration::from_millis(timeout_ms),
            task,
        }
    }
}

/// A running keepalive loop for one session; stops when dropped.
pub struct SessionKeeper {
    /// When the last successful keepalive was sent; `None` once the server said it is gone.
    last_ok: Arc<Mutex<Option<Instant>>>,
    timeout: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl SessionKeeper {
    /// Whether the session is certainly still alive: a keepalive sent less than one timeout
    /// ago succeeded. Past that the server may have expired it and handed its locks on.
    pub fn is_alive(&self) -> bool {
        self.last_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < self.timeout)
    }
}

impl Drop for SessionKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
