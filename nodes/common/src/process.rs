//! What every node process shares around its system: the command line that places it in a
//! cluster, logging to a file, binding its two ports, the PID file, and waiting for SIGTERM.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpListener;

/// The options of every Raft- or Paxos-based node (see `nodes/API.md`): who it is, its peers,
/// where it binds, where it keeps state, where its PID and log go, and its timing.
#[derive(clap::Args, Clone, Debug)]
pub struct MemberArgs {
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
    /// Directory for the write-ahead log, snapshots and acceptor state.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Written with this process's PID once both ports are bound.
    #[arg(long)]
    pub pid_file: PathBuf,
    /// Structured log file (appended to).
    #[arg(long)]
    pub log_file: PathBuf,
    /// Length of one logical tick in ms.
    #[arg(long, default_value_t = 50)]
    pub tick_ms: u64,
    /// Minimum election timeout in ticks.
    #[arg(long, default_value_t = 10)]
    pub election_ticks: u32,
    /// Leader heartbeat interval in ticks.
    #[arg(long, default_value_t = 2)]
    pub heartbeat_ticks: u32,
    /// Server-side bound on one client request, in ms.
    #[arg(long, default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// Compact the log once this many entries are applied past the last snapshot.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_entries: u64,
    /// Tracing filter.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl MemberArgs {
    /// `--peers` as ordered (id, address) pairs, this node's id among them.
    pub fn peer_list(&self) -> anyhow::Result<Vec<(String, String)>> {
        let peers = parse_peers("--peers", &self.peers)?;
        if !peers.iter().any(|(id, _)| *id == self.id) {
            bail!("--id {:?} is not one of the names in --peers", self.id);
        }
        Ok(peers)
    }

    /// `--client-peers` as a map.
    pub fn client_peer_map(&self) -> anyhow::Result<HashMap<String, String>> {
        Ok(parse_peers("--client-peers", &self.client_peers)?
            .into_iter()
            .collect())
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(1))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// Binds both ports, naming the flag on failure.
    pub async fn bind(&self) -> anyhow::Result<(TcpListener, TcpListener)> {
        let peer = TcpListener::bind(&self.listen_peer)
            .await
            .with_context(|| format!("--listen-peer {}", self.listen_peer))?;
        let client = TcpListener::bind(&self.listen_client)
            .await
            .with_context(|| format!("--listen-client {}", self.listen_client))?;
        Ok((peer, client))
    }
}

/// Refuses a `--bug` the subcommand does not know.
pub fn check_bugs(subcommand: &str, bugs: &[String], known: &[&str]) -> anyhow::Result<()> {
    for bug in bugs {
        if !known.contains(&bug.as_str()) {
            bail!(
                "unknown --bug {bug:?} for {subcommand}; known: {}",
                known.join(", ")
            );
        }
    }
    Ok(())
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

/// Creates the folder a PID or log file goes in.
fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Sends tracing output to `path` (appending), one line per event with its fields.
pub fn init_logging(path: &Path, level: &str) -> anyhow::Result<()> {
    create_parent(path)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("--log-level {level:?}"))?;
    // A subscriber may already be set (a test running several nodes in one process); then
    // the logs go there.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_thread_names(true)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(())
}

/// Writes the PID file (after the ports are bound, so its presence means "serving"); the
/// returned guard removes it when the node stops, on every path out of its serving loop.
pub fn write_pid_file(path: &Path) -> anyhow::Result<PidFile> {
    create_parent(path)?;
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing PID file {}", path.display()))?;
    Ok(PidFile(path.to_path_buf()))
}

/// A written PID file, removed on drop.
#[must_use = "the PID file is removed when this guard is dropped"]
pub struct PidFile(PathBuf);

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn terminated() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    Ok(())
}

/// The runtime every node runs on: two workers, as the test hosts have two cores.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_lists_name_the_flag() {
        let p = parse_peers("--peers", "n1=127.0.0.1:7001, n2=h:7002").unwrap();
        assert_eq!(p[1], ("n2".to_string(), "h:7002".to_string()));
        for bad in ["", "n1", "n1=nohostport", "n1=a:1,n1=b:2", "=a:1"] {
            let err = parse_peers("--peers", bad).unwrap_err().to_string();
            assert!(err.starts_with("--peers"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_bugs_are_refused_by_name() {
        let known = ["stale-read"];
        assert!(check_bugs("raft", &["stale-read".into()], &known).is_ok());
        let err = check_bugs("raft", &["nope".into()], &known).unwrap_err();
        assert!(err.to_string().contains("\"nope\" for raft"), "{err}");
    }
}
