//! `faultline-node zk-lock`: command line, PID file, log file and SIGTERM around one node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use faultline_raft::server::{LeaseMode, ServerConfig};
use tokio::net::TcpListener;

use crate::http::HttpConfig;
use crate::service::{self, NodeConfig};

/// Arguments of `faultline-node zk-lock` (the Raft options mean what they mean for `raft`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// This node's id; one of the names in --peers.
    #[arg(long)]
    pub id: String,
    /// Every member's peer address: n1=host:port,n2=host:port,...
    #[arg(long)]
    pub peers: String,
    /// Every member's client (HTTP) address, for forwarding: n1=host:port,...
    #[arg(long)]
    pub client_peers: String,
    /// Address to bind the peer port on.
    #[arg(long)]
    pub listen_peer: String,
    /// Address to bind the HTTP client API on.
    #[arg(long)]
    pub listen_client: String,
    /// Directory for the Raft log and snapshots.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Written with this process's PID once both ports are bound.
    #[arg(long)]
    pub pid_file: PathBuf,
    /// Tracing log file (appended to).
    #[arg(long)]
    pub log_file: PathBuf,
    /// Plant a known bug (repeatable): wall-clock-expiry.
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
    /// Length of one Raft tick in ms.
    #[arg(long, default_value_t = 50)]
    pub tick_ms: u64,
    /// Minimum election timeout in ticks.
    #[arg(long, default_value_t = 10)]
    pub election_ticks: u32,
    /// Leader heartbeat interval in ticks.
    #[arg(long, default_value_t = 2)]
    pub heartbeat_ticks: u32,
    /// Bound on one client request (an acquire waits its own timeout_ms on top), in ms.
    #[arg(long, default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// Compact the log once this many entries are applied past the last snapshot.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_entries: u64,
    /// Tracing filter.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// Parses `n1=host:port,n2=host:port` into ordered (id, address) pairs.
pub fn parse_peers(flag: &str, text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, addr)) = part.split_once('=') else {
            bail!("{flag}: {part:?} is not of the form id=host:port");
        };
        if id.is_empty() || !addr.contains(':') {
            bail!("{flag}: {part:?} is not of the form id=host:port");
        }
        if out.iter().any(|(i, _)| i == id) {
            bail!("{flag}: id {id:?} appears twice");
        }
        out.push((id.to_string(), addr.to_string()));
    }
    if out.is_empty() {
        bail!("{flag}: no peers given");
    }
    Ok(out)
}

impl Args {
    /// The node's configuration, every flag checked.
    pub fn config(&self) -> anyhow::Result<NodeConfig> {
        let peers = parse_peers("--peers", &self.peers)?;
        let client_peers: HashMap<String, String> =
            parse_peers("--client-peers", &self.client_peers)?
                .into_iter()
                .collect();
        if !peers.iter().any(|(id, _)| *id == self.id) {
            bail!("--id {:?} is not one of the names in --peers", self.id);
        }
        for bug in &self.bugs {
            if !service::BUGS.contains(&bug.as_str()) {
                bail!(
                    "unknown --bug {bug:?} for zk-lock; known: {}",
                    service::BUGS.join(", ")
                );
            }
        }
        let tick = Duration::from_millis(self.tick_ms.max(1));
        Ok(NodeConfig {
            server: ServerConfig {
                id: self.id.clone(),
                peers,
                data_dir: self.data_dir.clone(),
                tick,
                election_ticks: self.election_ticks.max(2),
                heartbeat_ticks: self.heartbeat_ticks.max(1),
                lease: LeaseMode::Off,
                snapshot_entries: self.snapshot_entries,
                no_fsync: false,
                link_filter: None,
                seed: rand::random(),
            },
            http: HttpConfig {
                id: self.id.clone(),
                client_peers,
                request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
                bugs: self.bugs.clone(),
            },
            expiry_check: tick,
            wall_skew_ms: Default::default(),
        })
    }
}

/// Creates the folder a PID or log file goes in.
fn create_parent(path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

fn init_logging(path: &Path, level: &str) -> anyhow::Result<()> {
    create_parent(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("--log-level {level:?}"))?;
    // Another subscriber may already be set by the binary; then logs go there.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_thread_names(true)
        .with_env_filter(filter)
        .try_init();
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    Ok(())
}

/// Runs a node until SIGTERM/SIGINT on a runtime of its own.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.config()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    init_logging(&args.log_file, &args.log_level)?;
    tracing::info!(id = %args.id, bugs = ?args.bugs, "starting zk-lock node");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let peer = TcpListener::bind(&args.listen_peer)
            .await
            .with_context(|| format!("--listen-peer {}", args.listen_peer))?;
        let client = TcpListener::bind(&args.listen_client)
            .await
            .with_context(|| format!("--listen-client {}", args.listen_client))?;
        let mut node = service::start(cfg, peer, client).await?;
        create_parent(&args.pid_file)?;
        std::fs::write(&args.pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing PID file {}", args.pid_file.display()))?;
        tracing::info!(pid = std::process::id(), "serving");
        let outcome = tokio::select! {
            r = terminated() => r.and(node.stop().await),
            r = node.join() => r.context("the raft loop stopped"),
        };
        let _ = std::fs::remove_file(&args.pid_file);
        tracing::info!("stopped");
        outcome
    })
}
