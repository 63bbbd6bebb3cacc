//! One zk-lock node: the Raft server with the lock machine, the HTTP API, the expiry task.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_raft::server::{self, Handle, ServerConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http::{self, App, HttpConfig, LivenessClock};
use crate::replicated::ZkStateMachine;

/// Bugs `zk-lock` can plant.
pub const BUGS: &[&str] = &["wall-clock-expiry"];

/// Everything one node needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub server: ServerConfig,
    pub http: HttpConfig,
    /// How often the leader looks for sessions past their timeout.
    pub expiry_check: Duration,
    /// Added to the wall clock under `wall-clock-expiry`: lets in-process tests skew one
    /// node's clock as libfaketime does for a real node. Zero in `faultline-node`.
    pub wall_skew_ms: Arc<AtomicI64>,
}

/// A running node; `stop` shuts it down cleanly.
pub struct Running {
    pub handle: Handle<ZkStateMachine>,
    tasks: Vec<JoinHandle<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

/// Starts a node on already bound listeners, inside a tokio runtime.
pub async fn start(
    cfg: NodeConfig,
    peer: TcpListener,
    client: TcpListener,
) -> anyhow::Result<Running> {
    for bug in &cfg.http.bugs {
        anyhow::ensure!(
            BUGS.contains(&bug.as_str()),
            "unknown --bug {bug:?} for zk-lock; known: {}",
            BUGS.join(", ")
        );
    }
    let clock = if cfg.http.bugs.iter().any(|b| b == "wall-clock-expiry") {
        LivenessClock::Wall {
            skew_ms: Arc::clone(&cfg.wall_skew_ms),
        }
    } else {
        LivenessClock::Monotonic(Instant::now())
    };
    let (sm, applied) = ZkStateMachine::new();
    let (handle, thread) = server::start(cfg.server, sm, &tokio::runtime::Handle::current())?;
    let app = App::new(handle.clone(), cfg.http, applied, clock);
    let mut tasks = Vec::new();
    let peers = handle.clone();
    tasks.push(tokio::spawn(async move { peers.serve_peers(peer).await }));
    let router = http::router(app.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(client, router).await {
            tracing::error!(error = %e, "client API server failed");
        }
    }));
    tasks.push(tokio::spawn(http::expire_sessions(app, cfg.expiry_check)));
    Ok(Running {
        handle,
        tasks,
        thread: Some(thread),
    })
}

impl Running {
    /// Stops serving clients and peers, then stops the Raft loop after syncing its log.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for t in &self.tasks {
            t.abort();
        }
        // Wait until the aborted tasks are dropped, so the listeners are closed on return.
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.handle.shutdown().await;
        self.join().await
    }

    /// Waits for the Raft loop thread to end (it ends on its own only on a disk error).
    pub async fn join(&mut self) -> anyhow::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(r)) => r,
            _ => Err(anyhow::anyhow!("the raft loop panicked")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
