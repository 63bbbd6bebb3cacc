//! `faultline-node redis-lock`: command line, PID file, log file and SIGTERM around the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;

use crate::clock::SystemClock;
use crate::server::{Config, Server};

/// `HOST:PORT` of a primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<HostPort, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{s:?}: port {port:?} is not a number from 1 to 65535"))?;
        if host.is_empty() || port == 0 {
            return Err(format!("{s:?} is not HOST:PORT"));
        }
        Ok(HostPort {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        })
    }
}

/// Arguments of `faultline-node redis-lock`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to serve RESP on, e.g. 10.0.0.1:6379.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Created if missing. The server keeps its data in memory only (Redis with persistence
    /// off): a restarted server has forgotten every lock.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Written with this process's PID at start, removed at a clean exit.
    #[arg(long)]
    pub pid_file: PathBuf,
    /// Tracing log, appended to (level from RUST_LOG, default info).
    #[arg(long)]
    pub log_file: PathBuf,
    /// Start as an asynchronous replica of this primary (HOST:PORT).
    #[arg(long)]
    pub replica_of: Option<HostPort>,
}

struct PidFile(PathBuf);

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates the folder a PID or log file goes in.
fn create_parent(path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

fn init_logging(path: &PathBuf) -> anyhow::Result<()> {
    create_parent(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Another subscriber may already be set by the binary; then logs go there.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop me with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}

/// Runs the server until SIGTERM/SIGINT, inside the caller's tokio runtime.
pub async fn serve(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    init_logging(&args.log_file)?;
    let config = Config {
        listen: args.listen,
        replica_of: args.replica_of.map(|hp| (hp.host, hp.port)),
    };
    let server = Server::bind(config, Arc::new(SystemClock))
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    // Written once the port is bound, so its presence means "serving".
    create_parent(&args.pid_file)?;
    std::fs::write(&args.pid_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing PID file {}", args.pid_file.display()))?;
    let _pid = PidFile(args.pid_file.clone());
    server.run(termination()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Runs the server on a runtime of its own; for a binary whose `main` is not async.
pub fn run(args: Args) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()
        .context("starting the tokio runtime")?
        .block_on(serve(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parses_and_rejects() {
        assert_eq!(
            "10.0.0.2:6379".parse::<HostPort>(),
            Ok(HostPort {
                host: "10.0.0.2".into(),
                port: 6379
            })
        );
        assert_eq!(
            "[::1]:6380".parse::<HostPort>().map(|h| h.host),
            Ok("::1".into())
        );
        for bad in ["6379", ":6379", "h:0", "h:99999", "h:x"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }
}
