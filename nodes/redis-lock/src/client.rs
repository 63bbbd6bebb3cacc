//! A RESP lock client that works unchanged against this server and real Redis.
//!
//! Acquire is `SET key token NX PX ttl`; release is `EVAL` of the standard compare-and-delete
//! script, so a client never deletes a lock that expired and went to someone else.

use std::time::Duration;

use rand::Rng;
use tokio::net::TcpStream;

use crate::cmd::{EXTEND_SCRIPT, UNLOCK_SCRIPT};
use crate::connection::{ConnError, Connection};
use crate::resp::Frame;

/// How long a connect may take before the server counts as unreachable.
pub const CONNECT_TIMEOUT_MS: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {addr}: timed out after {CONNECT_TIMEOUT_MS} ms")]
    ConnectTimeout { addr: String },
    /// The request may or may not have been applied.
    #[error("connection to {addr} failed mid-request: {source}")]
    Connection { addr: String, source: ConnError },
    /// No reply within the caller's deadline; the request may have been applied.
    #[error("{addr} did not answer within {ms} ms")]
    Timeout { addr: String, ms: u64 },
    #[error("{addr} closed the connection before replying")]
    Closed { addr: String },
    /// The server refused the command (it was not applied), e.g. `READONLY` on a replica.
    #[error("{addr} replied with an error: {message}")]
    Server { addr: String, message: String },
    #[error("{addr} sent an unexpected reply to {command}: {reply:?}")]
    Unexpected {
        addr: String,
        command: String,
        reply: Frame,
    },
}

impl ClientError {
    /// True when the command certainly did not take effect; false when it may have (the
    /// history must then record the operation as indeterminate).
    pub fn is_definite(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::ConnectTimeout { .. }
                | ClientError::Server { .. }
        )
    }
}

/// A random lock value, unique per acquire, as the Redis lock recipe requires.
pub fn random_token() -> String {
    let mut rng = rand::rng();
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

/// One connection to one server; reconnects by itself after a request was interrupted.
pub struct RedisLockClient {
    addr: String,
    conn: Option<Connection>,
}

impl RedisLockClient {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Result<RedisLockClient, ClientError> {
        let mut client = RedisLockClient {
            addr: addr.to_string(),
            conn: None,
        };
        client.ensure_connected().await?;
        Ok(client)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn ensure_connected(&mut self) -> Result<(), ClientError> {
        // A connection the server closed while it sat unused (its idle timeout) is replaced
        // before anything is sent on it, so the command's outcome stays definite.
        if self
            .conn
            .as_mut()
            .is_some_and(Connection::closed_while_idle)
        {
            self.conn = None;
        }
        if self.conn.is_none() {
            let stream = tokio::time::timeout(
                Duration::from_millis(CONNECT_TIMEOUT_MS),
                TcpStream::connect(&self.addr),
            )
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                addr: self.addr.clone(),
            })?
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
            self.conn = Some(Connection::new(stream));
        }
        Ok(())
    }

    /// Sends one command and returns its reply; an error reply becomes `ClientError::Server`.
    /// If this future is dropped mid-request (a caller's timeout), the connection is discarded,
    /// so a late reply can never be read as the answer to the next command.
    pub async fn call<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Result<Frame, ClientError> {
        let addr = self.addr.clone();
        self.ensure_connected().await?;
        let request = Frame::command(args.iter().map(|a| a.as_ref()));
        // Taken out while in flight: only a completed exchange puts the connection back.
        let Some(mut conn_owned) = self.conn.take() else {
            return Err(ClientError::Closed { addr });
        };
        let result = async {
            conn_owned.write_frame(&request).await?;
            conn_owned.read_frame().await
        }
        .await;
        match result {
            Ok(Some(Frame::Error(message))) => {
                self.conn = Some(conn_owned);
                Err(ClientError::Server { addr, message })
            }
            Ok(Some(reply)) => {
                self.conn = Some(conn_owned);
                Ok(reply)
            }
            Ok(None) => Err(ClientError::Closed { addr }),
            Err(source) => Err(ClientError::Connection { addr, source }),
        }
    }

    fn unexpected(&self, command: &str, reply: Frame) -> ClientError {
        ClientError::Unexpected {
            addr: self.addr.clone(),
            command: command.to_string(),
            reply,
        }
    }

    pub async fn ping(&mut self) -> Result<(), ClientError> {
        match self.call(&["PING"]).await? {
            Frame::Simple(s) if s == "PONG" => Ok(()),
            other => Err(self.unexpected("PING", other)),
        }
    }

    /// `SET key token NX PX ttl_ms`: true when this client now holds the lock.
    pub async fn acquire(
        &mut self,
        key: &str,
        token: &str,
        ttl_ms: u64,
    ) -> Result<bool, ClientError> {
        let ttl = ttl_ms.to_string();
        match self.call(&["SET", key, token, "NX", "PX", &ttl]).await? {
            Frame::Simple(s) if s == "OK" => Ok(true),
            Frame::Null => Ok(false),
            other => Err(self.unexpected("SET NX PX", other)),
        }
    }

    /// Compare-and-delete: true when the lock was ours and is now gone.
    pub async fn release(&mut self, key: &str, token: &str) -> Result<bool, ClientError> {
        match self.call(&["EVAL", UNLOCK_SCRIPT, "1", key, token]).await? {
            Frame::Integer(n) => Ok(n == 1),
            other => Err(self.unexpected("EVAL unlock", other)),
        }
    }

    /// Compare-and-extend: true when the lock was still ours and now lives `ttl_ms` more.
    pub async fn extend(
        &mut self,
        key: &str,
        token: &str,
        ttl_ms: u64,
    ) -> Result<bool, ClientError> {
        let ttl = ttl_ms.to_string();
        match self
            .call(&["EVAL", EXTEND_SCRIPT, "1", key, token, &ttl])
            .await?
        {
            Frame::Integer(n) => Ok(n == 1),
            other => Err(self.unexpected("EVAL extend", other)),
        }
    }

    pub async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call(&["GET", key]).await? {
            Frame::Bulk(b) => Ok(Some(b)),
            Frame::Null => Ok(None),
            other => Err(self.unexpected("GET", other)),
        }
    }

    /// `REPLICAOF host port`, or `REPLICAOF NO ONE` (promote) for `None`.
    pub async fn replicaof(&mut self, primary: Option<(&str, u16)>) -> Result<(), ClientError> {
        let reply = match primary {
            Some((host, port)) => self.call(&["REPLICAOF", host, &port.to_string()]).await?,
            None => self.call(&["REPLICAOF", "NO", "ONE"]).await?,
        };
        match reply {
            Frame::Simple(s) if s.starts_with("OK") => Ok(()),
            other => Err(self.unexpected("REPLICAOF", other)),
        }
    }

    /// One field of `INFO` (e.g. `role`, `master_link_status`, `master_repl_offset`).
    pub async fn info_field(&mut self, field: &str) -> Result<Option<String>, ClientError> {
        let text = match self.call(&["INFO"]).await? {
            Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(self.unexpected("INFO", other)),
        };
        Ok(text.lines().find_map(|l| {
            l.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        }))
    }
}
