//! `faultline-node redis-lock`: command line, PID file, log file and SIGTERM around the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use faultline_nodes_common::process;

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
    /// Tracing log, appended to.
    #[arg(long)]
    pub log_file: PathBuf,
    /// Tracing filter.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Start as an asynchronous replica of this primary (HOST:PORT).
    #[arg(long)]
    pub replica_of: Option<HostPort>,
    /// Close a client that sends no whole command, or takes no reply, for this long; 0:
    /// never (Redis's `timeout 0`).
    #[arg(long, default_value_t = crate::server::IDLE_TIMEOUT_MS)]
    pub idle_timeout_ms: u64,
    /// Most client connections at once; more are refused (Redis's `maxclients`).
    #[arg(long, default_value_t = crate::server::CONNECTIONS_MAX)]
    pub max_clients: usize,
}

/// Runs the server until SIGTERM/SIGINT, inside the caller's tokio runtime.
pub async fn serve(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    process::init_logging(&args.log_file, &args.log_level)?;
    let config = Config {
        replica_of: args.replica_of.map(|hp| (hp.host, hp.port)),
        max_connections: args.max_clients,
        idle_timeout: (args.idle_timeout_ms > 0)
            .then(|| Duration::from_millis(args.idle_timeout_ms)),
        ..Config::new(args.listen)
    };
    let server = Server::bind(config, Arc::new(SystemClock))
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    let _pid_file = process::write_pid_file(&args.pid_file)?;
    server
        .run(async {
            if let Err(err) = process::terminated().await {
                tracing::error!("cannot install signal handlers ({err}); stop me with SIGKILL");
                std::future::pending::<()>().await
            }
        })
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Runs the server on a runtime of its own; for a binary whose `main` is not async.
pub fn run(args: Args) -> anyhow::Result<()> {
    process::runtime()?.block_on(serve(args))
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
