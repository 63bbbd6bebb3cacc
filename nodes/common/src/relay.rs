//! A follower relays a client request to its leader, and the leader's answer back unchanged
//! (raft's and zk-lock's HTTP APIs; `nodes/API.md`). One hop only: a relayed request carries
//! [`api::FORWARDED_HEADER`] and is never relayed again.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::{self, ApiError};

/// How one node relays: its client, its own id and its peers' client addresses.
pub struct Relay<'a> {
    pub client: &'a reqwest::Client,
    /// This node's id: a leader that is this node is "unknown", never relayed to.
    pub own_id: &'a str,
    /// Every member's id to its client (HTTP) address (`--client-peers`).
    pub client_peers: &'a HashMap<String, String>,
    /// What is left of the request's time budget.
    pub timeout: Duration,
    /// Whether a relay that failed after sending certainly changed nothing (a read).
    pub definite_on_failure: bool,
}

impl Relay<'_> {
    /// Relays `body` to `path` on `leader`. Without a leader to relay to (unknown, this node,
    /// no address, refused, or the request was relayed already) it answers 503 naming the
    /// leader it knows, definite: the op was not sent anywhere.
    pub async fn to_leader(
        &self,
        headers: &HeaderMap,
        path: &str,
        body: Bytes,
        leader: Option<String>,
    ) -> Response {
        let not_leader = |why: &str| {
            ApiError::unavailable(format!("not the leader: {why}"), leader.clone()).into_response()
        };
        if headers.contains_key(api::FORWARDED_HEADER) {
            return not_leader("a forwarded request is not forwarded again");
        }
        let Some(leader_id) = leader.clone().filter(|l| l != self.own_id) else {
            return not_leader("the leader is unknown");
        };
        let Some(addr) = self.client_peers.get(&leader_id) else {
            return not_leader("the leader has no client address in --client-peers");
        };
        let sent = self
            .client
            .post(format!("http://{addr}{path}"))
            .header(api::FORWARDED_HEADER, "1")
            .header("content-type", "application/json")
            .timeout(self.timeout)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return not_leader(&format!("forwarding to {leader_id} failed to connect: {e}"))
            }
            Err(e) => {
                let err = ApiError::new(
                    500,
                    format!("forwarding to {leader_id} failed: {e}"),
                    self.definite_on_failure,
                );
                return ApiError { leader, ..err }.into_response();
            }
        };
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        match resp.bytes().await {
            Ok(bytes) => (status, [("content-type", "application/json")], bytes).into_response(),
            Err(e) => {
                let err = ApiError::new(
                    500,
                    format!("reading the leader's answer failed: {e}"),
                    self.definite_on_failure,
                );
                ApiError { leader, ..err }.into_response()
            }
        }
    }
}
