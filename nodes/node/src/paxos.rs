//! `faultline-node paxos`: the CASPaxos register store.

use std::time::Duration;

use faultline_paxos::server::{self, Node, PaxosConfig};

use crate::common::NodeArgs;
use faultline_nodes_common::process;

/// Bugs `paxos` can plant.
pub const BUGS: &[&str] = &["skip-prepare"];

/// Runs a Paxos node until SIGTERM.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    args.check_bugs("paxos", BUGS)?;
    anyhow::ensure!(
        args.read_mode == "readindex",
        "--read-mode {:?}: paxos reads are Paxos rounds; only readindex is accepted",
        args.read_mode
    );
    let peers = args.member.peer_list()?;
    args.member.client_peer_map()?;
    process::init_logging(&args.member.log_file, &args.member.log_level)?;
    tracing::info!(id = %args.member.id, ?peers, bugs = ?args.bugs, "starting paxos node");
    let cfg = PaxosConfig {
        id: args.member.id.clone(),
        peers,
        data_dir: args.member.data_dir.clone(),
        request_timeout: args.member.request_timeout(),
        round_timeout: Duration::from_millis((args.member.request_timeout_ms / 4).clamp(50, 500)),
        skip_prepare: args.has_bug("skip-prepare"),
        bugs: args.bugs.clone(),
        link_filter: None,
    };
    // A PID file left by a killed run must not announce this one before it serves.
    let _ = std::fs::remove_file(&args.member.pid_file);
    let rt = process::runtime()?;
    rt.block_on(async {
        let (peer_listener, client_listener) = args.member.bind().await?;
        let node = Node::start(cfg, &tokio::runtime::Handle::current())?;
        let peers_node = node.clone();
        tokio::spawn(async move { peers_node.serve_peers(peer_listener).await });
        let app = server::router(node.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(client_listener, app).await {
                tracing::error!(error = %e, "client API server failed");
            }
        });
        let _pid_file = process::write_pid_file(&args.member.pid_file)?;
        tracing::info!(pid = std::process::id(), "serving");
        process::terminated().await?;
        tokio::task::spawn_blocking(move || node.shutdown()).await?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}
