//! etcd's lifecycle on the hosts: Debian's `etcd-server` installed with apt where missing
//! (its own service kept from starting), `etcd` started by faultline with its own flags,
//! detached with a PID file, stopped and signalled by that PID file only.

use super::client::{connect, EtcdError};
use anyhow::Context;
use async_trait::async_trait;
use faultline_control::daemon::{Daemon, Signal, Start};
use faultline_control::Remote;
use faultline_core::db::{Db, DbContext, Kill, LogFiles, Pause, Primaries};
use serde_json::json;
use std::time::Duration;

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
const DATA_DIR: &str = "/opt/faultline/data/etcd";
const LOG_FILE: &str = "/opt/faultline/log/etcd.log";
const PID_FILE: &str = "/opt/faultline/run/etcd.pid";
/// Debian's binary.
const ETCD: &str = "/usr/bin/etcd";
/// The name the PID file's process must run.
const EXECUTABLE: &str = "etcd";
/// How long the members may take to agree on a leader after every one started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of one status request (readiness, primaries).
const STATUS_TIMEOUT: Duration = Duration::from_millis(1000);
/// Bound of installing the package over SSH.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Installs etcd-server where `etcd` is missing, one host at a time (namespace hosts share
/// one dpkg database), with a policy-rc.d so that Debian's own etcd service never starts,
/// and the unit disabled where systemd runs.
const INSTALL_SCRIPT: &str = r#"command -v etcd >/dev/null 2>&1 && exit 0
exec 9>/var/lib/dpkg/faultline-etcd.lock; flock 9
command -v etcd >/dev/null 2>&1 && exit 0
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  policy=/usr/sbin/policy-rc.d
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null
rc=$?
[ -n "$policy" ] && rm -f "$policy"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now etcd.service >/dev/null 2>&1 || true
fi
exit $rc"#;

/// Timing flags of the members: a 100 ms heartbeat and a 1 s election timeout (etcd's
/// defaults), so a paused or partitioned leader is replaced within a few seconds of a run.
#[derive(Debug, Clone)]
pub struct EtcdTiming {
    pub heartbeat_ms: u64,
    pub election_ms: u64,
}

impl Default for EtcdTiming {
    fn default() -> Self {
        EtcdTiming {
            heartbeat_ms: 100,
            election_ms: 1000,
        }
    }
}

/// An etcd cluster, one member per host.
pub struct EtcdDb {
    timing: EtcdTiming,
}

fn daemon() -> Daemon {
    Daemon::new(EXECUTABLE, PID_FILE, LOG_FILE)
}

async fn stop(node: &Remote) -> anyhow::Result<()> {
    daemon()
        .stop(node)
        .await
        .with_context(|| format!("stopping etcd on {}", node.name()))
}

async fn signal(node: &Remote, signal: Signal) -> anyhow::Result<()> {
    daemon()
        .signal(node, signal)
        .await
        .with_context(|| format!("sending {} to etcd on {}", signal.name(), node.name()))
}

fn url(address: &str, port: u16) -> String {
    format!("http://{address}:{port}")
}

/// The client endpoint of one host.
pub fn endpoint(address: &str) -> String {
    url(address, CLIENT_PORT)
}

impl EtcdDb {
    pub fn new(timing: EtcdTiming) -> Self {
        EtcdDb { timing }
    }

    fn argv(&self, cx: &DbContext, node: &Remote) -> Vec<String> {
        let cluster = cx
            .remotes
            .iter()
            .map(|r| format!("{}={}", r.name(), url(r.address(), PEER_PORT)))
            .collect::<Vec<_>>()
            .join(",");
        let address = node.address();
        [
            ETCD,
            "--name",
            node.name(),
            "--data-dir",
            DATA_DIR,
            "--listen-peer-urls",
            &url(address, PEER_PORT),
            "--initial-advertise-peer-urls",
            &url(address, PEER_PORT),
            "--listen-client-urls",
            &url(address, CLIENT_PORT),
            "--advertise-client-urls",
            &url(address, CLIENT_PORT),
            "--initial-cluster",
            &cluster,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            "faultline",
            "--heartbeat-interval",
            &self.timing.heartbeat_ms.to_string(),
            "--election-timeout",
            &self.timing.election_ms.to_string(),
            "--logger",
            "zap",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        // etcd writes no PID file: the launcher's record is the PID file.
        daemon()
            .start(node, &Start::new(self.argv(cx, node)))
            .await
            .with_context(|| format!("starting etcd on {}", node.name()))
    }

    /// Each member's own status: `(host, member id, leader id, version)`; `None` for a
    /// member that does not answer.
    async fn statuses(cx: &DbContext) -> Vec<(String, Option<(u64, u64, String)>)> {
        let mut out = Vec::new();
        for r in &cx.remotes {
            out.push((r.name().to_owned(), status(r.address()).await.ok()));
        }
        out
    }

    /// Records etcd's version in test.json, which the run wrote before the db was set up.
    fn record_version(cx: &DbContext, version: &str) -> anyhow::Result<()> {
        let path = cx.run_dir.join("test.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut test: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if let Some(map) = test.as_object_mut() {
            map.insert("db_version".into(), json!(format!("etcd {version}")));
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&test)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// One member's `(member id, leader id, version)` from the maintenance status API.
async fn status(address: &str) -> Result<(u64, u64, String), EtcdError> {
    let mut client = connect(&endpoint(address), STATUS_TIMEOUT).await?;
    let answer = tokio::time::timeout(STATUS_TIMEOUT, client.status())
        .await
        .map_err(|_| EtcdError::Timeout)?
        .map_err(EtcdError::from)?;
    let member = answer.header().map(|h| h.member_id()).unwrap_or_default();
    Ok((member, answer.leader(), answer.version().to_owned()))
}

#[async_trait]
impl Db for EtcdDb {
    fn name(&self) -> &str {
        "etcd"
    }

    async fn setup(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        // A crashed earlier run may have left its member running.
        stop(node).await?;
        let installed = node
            .exec_status_timeout(&["sh", "-c", INSTALL_SCRIPT], INSTALL_TIMEOUT)
            .await?;
        anyhow::ensure!(
            installed.status == 0,
            "installing etcd-server on {} failed: {}",
            node.name(),
            installed.stderr.trim()
        );
        node.exec(&["rm", "-rf", DATA_DIR, LOG_FILE]).await?;
        node.exec(&[
            "mkdir",
            "-p",
            "/opt/faultline/data",
            "/opt/faultline/log",
            "/opt/faultline/run",
        ])
        .await?;
        self.start(cx, node).await
    }

    /// Every member answers and names the same leader, which is one of them.
    async fn await_ready(&self, cx: &DbContext) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let statuses = Self::statuses(cx).await;
            let why = match statuses.as_slice() {
                [] => return Ok(()),
                all => {
                    let silent: Vec<&str> = all
                        .iter()
                        .filter(|(_, s)| s.is_none())
                        .map(|(h, _)| h.as_str())
                        .collect();
                    let leaders: std::collections::BTreeSet<u64> = all
                        .iter()
                        .filter_map(|(_, s)| s.as_ref().map(|s| s.1))
                        .collect();
                    let members: std::collections::BTreeSet<u64> = all
                        .iter()
                        .filter_map(|(_, s)| s.as_ref().map(|s| s.0))
                        .collect();
                    if !silent.is_empty() {
                        let verb = if silent.len() == 1 { "does" } else { "do" };
                        format!("{} {verb} not answer", silent.join(", "))
                    } else if leaders.len() != 1 || leaders.contains(&0) {
                        format!("the members name leaders {leaders:?}")
                    } else if !members.is_superset(&leaders) {
                        "the named leader is not a member".to_string()
                    } else {
                        let version = all[0].1.as_ref().map(|s| s.2.clone()).unwrap_or_default();
                        Self::record_version(cx, &version)?;
                        return Ok(());
                    }
                }
            };
            if tokio::time::Instant::now() >= deadline {
                let mut tail = String::new();
                if let Some(r) = cx.remotes.first() {
                    if let Ok(out) = r.exec_status(&["tail", "-n", "5", LOG_FILE]).await {
                        tail = out.stdout;
                    }
                }
                anyhow::bail!(
                    "etcd had no leader within {} s: {why}; {LOG_FILE} on {} ends with:\n{tail}",
                    READY_TIMEOUT.as_secs(),
                    cx.remotes.first().map_or("", |r| r.name()),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn teardown(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        stop(node).await?;
        node.exec(&["rm", "-rf", DATA_DIR]).await?;
        Ok(())
    }

    fn kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }
    fn pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }
    fn primaries(&self) -> Option<&dyn Primaries> {
        Some(self)
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        Some(self)
    }
}

#[async_trait]
impl Kill for EtcdDb {
    async fn kill(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        signal(node, Signal::Kill).await
    }
    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        // Whatever is left of the old process goes first: two members never share a dir.
        stop(node).await?;
        EtcdDb::start(self, cx, node).await
    }
}

#[async_trait]
impl Pause for EtcdDb {
    async fn pause(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        signal(node, Signal::Stop).await
    }
    async fn resume(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        signal(node, Signal::Cont).await
    }
}

#[async_trait]
impl Primaries for EtcdDb {
    /// The hosts whose member is the leader its own status names.
    async fn primaries(&self, cx: &DbContext) -> anyhow::Result<Vec<String>> {
        Ok(Self::statuses(cx)
            .await
            .into_iter()
            .filter_map(|(host, s)| s.filter(|(me, leader, _)| me == leader).map(|_| host))
            .collect())
    }
}

impl LogFiles for EtcdDb {
    fn log_files(&self, _node: &Remote) -> Vec<String> {
        vec![LOG_FILE.into()]
    }
}
