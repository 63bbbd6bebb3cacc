//! The HTTP/JSON client of our nodes (`nodes/API.md`), shared by the raft and paxos systems:
//! turns every answer and error into `ok`, `fail` (certainly not applied) or `info`.

use async_trait::async_trait;
use faultline_checker::history::Key;
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::generator::Invocation;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// One node's client address, e.g. `("n1", "http://10.77.0.11:8001")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    pub name: String,
    pub base_url: String,
}

/// Opens one client per process, bound to one node (process i talks to node i mod n, as
/// Jepsen binds clients), all sharing one connection pool.
#[derive(Clone)]
pub struct NodeClientFactory {
    http: reqwest::Client,
    nodes: Vec<NodeEndpoint>,
}

impl NodeClientFactory {
    /// `timeout` bounds one request; past it a write or cas is `info`, a read `fail`.
    pub fn new(nodes: Vec<NodeEndpoint>, timeout: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(!nodes.is_empty(), "the client needs at least one node");
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(NodeClientFactory { http, nodes })
    }
}

impl ClientFactory for NodeClientFactory {
    fn open(&self, worker: usize, process: u64) -> anyhow::Result<Box<dyn Client>> {
        let node = self.nodes[worker % self.nodes.len()].clone();
        Ok(Box::new(NodeClient {
            http: self.http.clone(),
            node,
            process,
            sequence: 0,
        }))
    }
}

/// A client process bound to one node.
pub struct NodeClient {
    http: reqwest::Client,
    node: NodeEndpoint,
    process: u64,
    sequence: u64,
}

/// Every non-200 answer's body (nodes/API.md "Errors").
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    definite: bool,
    #[serde(default)]
    leader: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReadBody {
    value: Value,
}

#[derive(Debug, Deserialize)]
struct CasBody {
    ok: bool,
    #[serde(default)]
    current: Value,
}

/// The node API's keys are strings; the history keeps the workload's own key.
fn key_text(key: Option<&Key>) -> String {
    match key {
        Some(Key::Int(k)) => k.to_string(),
        Some(Key::Str(k)) => k.clone(),
        None => "0".to_owned(),
    }
}

impl NodeClient {
    async fn post(&self, path: &str, body: Value) -> Result<Value, Completion> {
        let read = path == "/read";
        let url = format!("{}{path}", self.node.base_url);
        let response = match self.http.post(&url).json(&body).send().await {
            Ok(response) => response,
            // Not connected: the request never left, so nothing happened.
            Err(err) if err.is_connect() => {
                return Err(Completion::fail(format!("cannot connect: {err}")))
            }
            // A read changes nothing, so a lost read certainly did not happen either.
            Err(err) if read => return Err(Completion::fail(describe(&err))),
            Err(err) => return Err(Completion::info(describe(&err))),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(err) if read => return Err(Completion::fail(describe(&err))),
            Err(err) => return Err(Completion::info(describe(&err))),
        };
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => {
                    let text = match body.leader {
                        Some(leader) => format!("{} ({status}, leader {leader})", body.error),
                        None => format!("{} ({status})", body.error),
                    };
                    if body.definite || read {
                        Completion::fail(text)
                    } else {
                        Completion::info(text)
                    }
                }
                Err(_) => {
                    let text = format!("{status}: {}", String::from_utf8_lossy(&bytes));
                    if read {
                        Completion::fail(text)
                    } else {
                        Completion::info(text)
                    }
                }
            });
        }
        serde_json::from_slice(&bytes).map_err(|err| {
            let text = format!(
                "unreadable answer ({err}): {}",
                String::from_utf8_lossy(&bytes)
            );
            if read {
                Completion::fail(text)
            } else {
                Completion::info(text)
            }
        })
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else {
        // The source chain says why (reset, refused, …); reqwest's top line does not.
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

#[async_trait]
impl Client for NodeClient {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        self.sequence += 1;
        let request_id = format!("p{}-{}", self.process, self.sequence);
        let key = key_text(op.key.as_ref());
        let outcome = match op.f {
            "read" => self
                .post("/read", json!({"key": key, "request_id": request_id}))
                .await
                .and_then(|body| {
                    serde_json::from_value::<ReadBody>(body)
                        .map(|b| Completion::ok(Some(b.value)))
                        .map_err(|err| Completion::fail(format!("bad read answer: {err}")))
                }),
            "write" => self
                .post(
                    "/write",
                    json!({"key": key, "value": op.value, "request_id": request_id}),
                )
                .await
                .map(|_| Completion::ok(None)),
            "cas" => {
                let (expected, new) = match op.value.as_array().map(Vec::as_slice) {
                    Some([expected, new]) => (expected.clone(), new.clone()),
                    _ => {
                        return Completion::fail(format!(
                            "cas value must be [expected, new], got {}",
                            op.value
                        ))
                    }
                };
                self.post(
                    "/cas",
                    json!({"key": key, "expected": expected, "new": new, "request_id": request_id}),
                )
                .await
                .and_then(|body| match serde_json::from_value::<CasBody>(body) {
                    Ok(CasBody { ok: true, .. }) => Ok(Completion::ok(None)),
                    // A failed compare certainly changed nothing.
                    Ok(CasBody { ok: false, current }) => Ok(Completion::fail(format!(
                        "compare failed: current value {current}"
                    ))),
                    Err(err) => Err(Completion::info(format!("bad cas answer: {err}"))),
                })
            }
            "txn" => self
                .post("/txn", crate::txn::request_body(&op.value, &request_id))
                .await
                .map(|body| crate::txn::completion(&op.value, &body)),
            other => Err(Completion::fail(format!(
                "the node client has no op {other:?}"
            ))),
        };
        match outcome {
            Ok(done) | Err(done) => done,
        }
    }

    fn node(&self) -> Option<&str> {
        Some(&self.node.name)
    }
}
