//! Redlock: one lock over N independent servers, granted by a majority within its validity time.
//!
//! The algorithm as redis.io describes it: try `SET NX PX` on every server in turn with a
//! short per-server timeout; the lock is held when a majority said yes and time is left —
//! validity = TTL − elapsed − drift, drift = TTL × drift factor + 2 ms. Otherwise release on
//! every server. Validity is measured with the client's monotonic clock; nothing here can see
//! a pause of the client process after the grant, which is exactly why a holder needs
//! fencing tokens (Kleppmann, "How to do distributed locking").

use std::time::{Duration, Instant};

use crate::client::{ClientError, RedisLockClient};

/// Part of the TTL reserved for clock drift between servers (redis.io uses 0.01).
pub const DRIFT_FACTOR: f64 = 0.01;
/// Fixed part of the drift allowance, for the servers' expiry granularity.
pub const DRIFT_FIXED_MS: u64 = 2;

/// A lock held on a majority of the servers.
#[derive(Debug, Clone)]
pub struct RedlockGrant {
    pub resource: String,
    pub token: String,
    /// How long from `acquired_at` the holder may assume it holds the lock.
    pub validity: Duration,
    /// When the first server was asked, by the client's monotonic clock.
    pub acquired_at: Instant,
    /// Indexes of the servers that granted it.
    pub granted_by: Vec<usize>,
}

impl RedlockGrant {
    /// Whether the client's own clock says the grant still holds; a client paused after this
    /// check still believes the answer it got.
    pub fn is_valid(&self) -> bool {
        self.acquired_at.elapsed() < self.validity
    }
}

/// Redlock over a fixed list of servers.
pub struct Redlock {
    servers: Vec<String>,
    clients: Vec<Option<RedisLockClient>>,
    request_timeout: Duration,
}

impl Redlock {
    /// `request_timeout` bounds each server's answer; it should be a small part of the TTL,
    /// so one dead server does not eat the validity time.
    pub fn new(servers: Vec<String>, request_timeout: Duration) -> Redlock {
        let clients = servers.iter().map(|_| None).collect();
        Redlock {
            servers,
            clients,
            request_timeout,
        }
    }

    pub fn quorum(&self) -> usize {
        self.servers.len() / 2 + 1
    }

    /// Acquires (`Some(ttl_ms)`) or releases (`None`) on server `i`, connecting on first
    /// use; a timeout counts as a "no" and discards that connection.
    async fn on_server(
        &mut self,
        i: usize,
        resource: &str,
        token: &str,
        acquire_ttl_ms: Option<u64>,
    ) -> Result<bool, ClientError> {
        let addr = self.servers[i].clone();
        let slot = &mut self.clients[i];
        let attempt = async {
            if slot.is_none() {
                *slot = Some(RedisLockClient::connect(&addr).await?);
            }
            let Some(client) = slot.as_mut() else {
                return Err(ClientError::Closed { addr: addr.clone() });
            };
            match acquire_ttl_ms {
                Some(ttl_ms) => client.acquire(resource, token, ttl_ms).await,
                None => client.release(resource, token).await,
            }
        };
        match tokio::time::timeout(self.request_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                addr,
                ms: self.request_timeout.as_millis() as u64,
            }),
        }
    }

    /// One attempt to take `resource` for `ttl_ms` with a unique `token`; `None` when no
    /// majority granted it in time (every partial grant is then released).
    pub async fn acquire(
        &mut self,
        resource: &str,
        token: &str,
        ttl_ms: u64,
    ) -> Option<RedlockGrant> {
        let start = Instant::now();
        let mut granted_by = Vec::new();
        for i in 0..self.servers.len() {
            match self.on_server(i, resource, token, Some(ttl_ms)).await {
                Ok(true) => granted_by.push(i),
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "redlock: server did not grant"),
            }
        }
        let drift = Duration::from_millis((ttl_ms as f64 * DRIFT_FACTOR) as u64 + DRIFT_FIXED_MS);
        let validity = Duration::from_millis(ttl_ms)
            .checked_sub(start.elapsed())
            .and_then(|v| v.checked_sub(drift));
        match validity {
            Some(validity) if granted_by.len() >= self.quorum() && !validity.is_zero() => {
                Some(RedlockGrant {
                    resource: resource.to_string(),
                    token: token.to_string(),
                    validity,
                    acquired_at: start,
                    granted_by,
                })
            }
            _ => {
                self.release(resource, token).await;
                None
            }
        }
    }

    /// Compare-and-delete on every server (also those that seemed to refuse: their reply may
    /// have been lost); returns how many deleted our lock.
    pub async fn release(&mut self, resource: &str, token: &str) -> usize {
        let mut released = 0;
        for i in 0..self.servers.len() {
            if let Ok(true) = self.on_server(i, resource, token, None).await {
                released += 1;
            }
        }
        released
    }
}
