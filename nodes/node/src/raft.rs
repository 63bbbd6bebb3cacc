//! `faultline-node raft`: the Raft key-value store.

use faultline_raft::http::{self, HttpConfig};
use faultline_raft::kv::KvStore;
use faultline_raft::server::{self, LeaseMode, ServerConfig};

use crate::common::NodeArgs;
use faultline_nodes_common::process;

/// Bugs `raft` can plant.
pub const BUGS: &[&str] = &[
    "stale-read",
    "lease-unsafe",
    "no-fsync",
    "ack-before-commit",
    "txn-early-reads",
];

/// Runs a Raft node until SIGTERM.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    args.check_bugs("raft", BUGS)?;
    let lease = match (args.read_mode.as_str(), args.has_bug("lease-unsafe")) {
        (_, true) => LeaseMode::WallClockUnsafe,
        ("readindex", false) => LeaseMode::Off,
        ("lease", false) => LeaseMode::Monotonic {
            drift_ms: args.clock_drift_ms,
        },
        (other, _) => anyhow::bail!("--read-mode {other:?}: expected readindex or lease"),
    };
    let read_mode = if lease == LeaseMode::Off {
        "readindex"
    } else {
        "lease"
    };
    let peers = args.member.peer_list()?;
    let client_peers = args.member.client_peer_map()?;
    process::init_logging(&args.member.log_file, &args.member.log_level)?;
    tracing::info!(id = %args.member.id, ?peers, bugs = ?args.bugs, read_mode, "starting raft node");
    let cfg = ServerConfig {
        id: args.member.id.clone(),
        peers,
        data_dir: args.member.data_dir.clone(),
        tick: args.member.tick(),
        election_ticks: args.member.election_ticks.max(2),
        heartbeat_ticks: args.member.heartbeat_ticks.max(1),
        lease,
        snapshot_entries: args.member.snapshot_entries,
        no_fsync: args.has_bug("no-fsync"),
        seed: rand::random(),
        link_filter: None,
    };
    let http_cfg = HttpConfig {
        id: args.member.id.clone(),
        client_peers,
        request_timeout: args.member.request_timeout(),
        stale_read: args.has_bug("stale-read"),
        ack_before_commit: args.has_bug("ack-before-commit"),
        txn_early_reads: args.has_bug("txn-early-reads"),
        read_mode: read_mode.to_string(),
        bugs: args.bugs.clone(),
    };
    // A PID file left by a killed run must not announce this one before it serves.
    let _ = std::fs::remove_file(&args.member.pid_file);
    let rt = process::runtime()?;
    rt.block_on(async {
        let (peer_listener, client_listener) = args.member.bind().await?;
        let (node, thread) =
            server::start(cfg, KvStore::default(), &tokio::runtime::Handle::current())?;
        let peers_node = node.clone();
        tokio::spawn(async move { peers_node.serve_peers(peer_listener).await });
        let app = http::router(node.clone(), http_cfg);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(client_listener, app).await {
                tracing::error!(error = %e, "client API server failed");
            }
        });
        let _pid_file = process::write_pid_file(&args.member.pid_file)?;
        tracing::info!(pid = std::process::id(), "serving");
        let stopped = tokio::task::spawn_blocking(move || thread.join());
        tokio::select! {
            r = process::terminated() => r?,
            r = stopped => {
                return match r {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(e.context("the raft loop failed")),
                    _ => Err(anyhow::anyhow!("the raft loop panicked")),
                };
            }
        }
        node.shutdown().await;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}
