//! `faultline-node zk-lock`: the member options every node shares, the planted bugs, and
//! running one node until SIGTERM.

use anyhow::Context;
use faultline_nodes_common::process::{self, MemberArgs};
use faultline_raft::server::{LeaseMode, ServerConfig};

use crate::http::HttpConfig;
use crate::service::{self, NodeConfig};

/// Arguments of `faultline-node zk-lock` (the member options mean what they mean for `raft`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub member: MemberArgs,
    /// Plant a known bug (repeatable): wall-clock-expiry.
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
}

impl Args {
    /// The node's configuration, every flag checked.
    pub fn config(&self) -> anyhow::Result<NodeConfig> {
        let m = &self.member;
        let peers = m.peer_list()?;
        let client_peers = m.client_peer_map()?;
        process::check_bugs("zk-lock", &self.bugs, service::BUGS)?;
        Ok(NodeConfig {
            server: ServerConfig {
                id: m.id.clone(),
                peers,
                data_dir: m.data_dir.clone(),
                tick: m.tick(),
                election_ticks: m.election_ticks.max(2),
                heartbeat_ticks: m.heartbeat_ticks.max(1),
                lease: LeaseMode::Off,
                snapshot_entries: m.snapshot_entries,
                no_fsync: false,
                link_filter: None,
                seed: rand::random(),
            },
            http: HttpConfig {
                id: m.id.clone(),
                client_peers,
                request_timeout: m.request_timeout(),
                bugs: self.bugs.clone(),
            },
            expiry_check: m.tick(),
            wall_skew_ms: Default::default(),
        })
    }
}

/// Runs a node until SIGTERM/SIGINT on a runtime of its own.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let m = &args.member;
    std::fs::create_dir_all(&m.data_dir)
        .with_context(|| format!("creating data dir {}", m.data_dir.display()))?;
    process::init_logging(&m.log_file, &m.log_level)?;
    tracing::info!(id = %m.id, bugs = ?args.bugs, "starting zk-lock node");
    process::runtime()?.block_on(async {
        let (peer, client) = m.bind().await?;
        let mut node = service::start(cfg, peer, client).await?;
        let _pid_file = process::write_pid_file(&m.pid_file)?;
        tracing::info!(pid = std::process::id(), "serving");
        let outcome = tokio::select! {
            r = process::terminated() => r.and(node.stop().await),
            r = node.join() => r.context("the raft loop stopped"),
        };
        tracing::info!("stopped");
        outcome
    })
}
