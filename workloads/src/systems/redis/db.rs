//! Debian's `redis-server` (and `redis-sentinel`) on the hosts: installed with apt where
//! missing (never started as Debian's service), configured and started by faultline with
//! its own files under `/opt/faultline`, stopped by PID file.

use super::{Deployment, Mode, SENTINEL_MASTER};
use anyhow::Context;
use async_trait::async_trait;
use faultline_control::daemon::{Daemon, PidFileBy, Signal, Start};
use faultline_control::Remote;
use faultline_core::db::{Db, DbContext, Kill, LogFiles, Pause, Primaries};
use std::time::Duration;

pub const REDIS_PORT: u16 = 6379;
pub const SENTINEL_PORT: u16 = 26379;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

const DATA_DIR: &str = "/opt/faultline/data/redis";
const SENTINEL_DIR: &str = "/opt/faultline/data/redis-sentinel";
const CONF_FILE: &str = "/opt/faultline/data/redis/redis.conf";
const SENTINEL_CONF_FILE: &str = "/opt/faultline/data/redis-sentinel/sentinel.conf";
const LOG_FILE: &str = "/opt/faultline/log/redis.log";
const SENTINEL_LOG_FILE: &str = "/opt/faultline/log/redis-sentinel.log";
const STDOUT_FILE: &str = "/opt/faultline/log/redis.stdout";
const SENTINEL_STDOUT_FILE: &str = "/opt/faultline/log/redis-sentinel.stdout";
const PID_FILE: &str = "/opt/faultline/run/redis.pid";
const SENTINEL_PID_FILE: &str = "/opt/faultline/run/redis-sentinel.pid";

fn server() -> Daemon {
    Daemon::new("redis-server", PID_FILE, STDOUT_FILE)
}

fn sentinel() -> Daemon {
    Daemon::new("redis-sentinel", SENTINEL_PID_FILE, SENTINEL_STDOUT_FILE)
}

/// Installs redis-server and redis-sentinel where either is missing. Debian's services are
/// kept from starting (a policy-rc.d that refuses, removed again if it was ours) and
/// disabled; one apt at a time, since local test hosts share one dpkg database.
const INSTALL_SCRIPT: &str = r#"command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null && exit 0
exec 9>/var/lock/faultline-apt.lock
flock 9
command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null && exit 0
ours=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && ours=1
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-sentinel >/dev/null
rc=$?
[ -n "$ours" ] && rm -f /usr/sbin/policy-rc.d
if command -v systemctl >/dev/null; then
  systemctl disable --now redis-server redis-sentinel >/dev/null 2>&1
fi
exit $rc"#;

/// Real Redis on the hosts of a run, deployed as `deployment` says.
pub struct RedisDb {
    deployment: Deployment,
}

impl RedisDb {
    pub fn new(deployment: Deployment) -> Self {
        RedisDb { deployment }
    }

    fn index(cx: &DbContext, node: &Remote) -> Option<usize> {
        cx.remotes.iter().position(|r| r.name() == node.name())
    }

    fn serves(&self, cx: &DbContext, node: &Remote) -> bool {
        Self::index(cx, node).is_some_and(|i| i < self.deployment.servers)
    }

    fn runs_sentinel(&self, cx: &DbContext, node: &Remote) -> bool {
        self.deployment.mode == Mode::Sentinel && self.serves(cx, node)
    }

    /// redis.conf of `node`: its own address, no protected mode, data and logs under
    /// /opt/faultline, persistence as asked; replicas follow the first host.
    fn config(&self, cx: &DbContext, node: &Remote) -> String {
        let d = &self.deployment;
        let mut conf = format!(
            "bind {addr}\nport {REDIS_PORT}\nprotected-mode no\ndaemonize no\n\
             pidfile {PID_FILE}\nlogfile {LOG_FILE}\ndir {DATA_DIR}\n\
             appendonly {aof}\nappendfsync {fsync}\n\
             repl-diskless-sync-delay 0\n",
            addr = node.address(),
            aof = d.appendonly,
            fsync = d.appendfsync,
        );
        let replicated = matches!(d.mode, Mode::Replica | Mode::Sentinel);
        if let (true, Some(primary)) = (replicated, cx.remotes.first()) {
            if primary.name() != node.name() {
                conf.push_str(&format!("replicaof {} {REDIS_PORT}\n", primary.address()));
            }
        }
        conf
    }

    /// sentinel.conf: watch the first host's server, a majority to agree it is down, and
    /// timeouts short enough that a failover fits in a 30 s test.
    fn sentinel_config(&self, cx: &DbContext, node: &Remote) -> Option<String> {
        let primary = cx.remotes.first()?;
        let d = &self.deployment;
        Some(format!(
            "bind {addr}\nport {SENTINEL_PORT}\nprotected-mode no\ndaemonize no\n\
             pidfile {SENTINEL_PID_FILE}\nlogfile {SENTINEL_LOG_FILE}\ndir {SENTINEL_DIR}\n\
             sentinel monitor {SENTINEL_MASTER} {primary} {REDIS_PORT} {quorum}\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} {down}\n\
             sentinel failover-timeout {SENTINEL_MASTER} {failover}\n\
             sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
            addr = node.address(),
            primary = primary.address(),
            quorum = d.quorum(),
            down = d.down_after_ms,
            failover = d.failover_timeout_ms,
        ))
    }

    async fn start_server(&self, node: &Remote) -> anyhow::Result<()> {
        let start = Start::new(["redis-server", CONF_FILE]).pid_file_by(PidFileBy::Program);
        server()
            .start(node, &start)
            .await
            .with_context(|| format!("starting redis-server on {}", node.name()))
    }

    async fn start_sentinel(&self, node: &Remote) -> anyhow::Result<()> {
        let start =
            Start::new(["redis-sentinel", SENTINEL_CONF_FILE]).pid_file_by(PidFileBy::Program);
        sentinel()
            .start(node, &start)
            .await
            .with_context(|| format!("starting redis-sentinel on {}", node.name()))
    }

    async fn stop_all(&self, node: &Remote) -> anyhow::Result<()> {
        sentinel()
            .stop(node)
            .await
            .with_context(|| format!("stopping redis-sentinel on {}", node.name()))?;
        server()
            .stop(node)
            .await
            .with_context(|| format!("stopping redis-server on {}", node.name()))
    }

    async fn signal(&self, cx: &DbContext, node: &Remote, signal: Signal) -> anyhow::Result<()> {
        if !self.serves(cx, node) {
            return Ok(());
        }
        server()
            .signal(node, signal)
            .await
            .with_context(|| format!("sending {signal} to redis-server on {}", node.name()))
    }

    /// Every server answers; replicas have their link to the primary up; every Sentinel
    /// names the primary and sees a quorum (so it can fail over).
    async fn ready(&self, cx: &DbContext) -> Result<(), String> {
        let servers = &cx.remotes[..self.deployment.servers.min(cx.remotes.len())];
        for (i, node) in servers.iter().enumerate() {
            let addr = format!("{}:{REDIS_PORT}", node.address());
            let info: String = probe(&addr, redis::cmd("INFO").arg("replication")).await?;
            let replica = i > 0 && matches!(self.deployment.mode, Mode::Replica | Mode::Sentinel);
            if replica && !info.contains("master_link_status:up") {
                return Err(format!("{}: replication link not up yet", node.name()));
            }
            if self.deployment.mode == Mode::Sentinel {
                let addr = format!("{}:{SENTINEL_PORT}", node.address());
                let _: String = probe(
                    &addr,
                    redis::cmd("SENTINEL").arg("CKQUORUM").arg(SENTINEL_MASTER),
                )
                .await
                .map_err(|e| format!("Sentinel on {}: {e}", node.name()))?;
            }
        }
        Ok(())
    }
}

/// One command on a fresh connection, bounded by `PROBE_TIMEOUT`.
pub async fn probe<T: redis::FromRedisValue>(addr: &str, cmd: &redis::Cmd) -> Result<T, String> {
    let attempt = async {
        let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        cmd.query_async::<T>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .map_err(|_| {
            format!(
                "{addr} did not answer within {} ms",
                PROBE_TIMEOUT.as_millis()
            )
        })?
}

/// The role (`master`, `slave`) a server reports, from `ROLE`.
pub async fn role(node: &Remote) -> Result<String, String> {
    let addr = format!("{}:{REDIS_PORT}", node.address());
    let answer: Vec<redis::Value> = probe(&addr, &redis::cmd("ROLE")).await?;
    match answer.first() {
        Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
        other => Err(format!("{addr}: ROLE answered {other:?}")),
    }
}

#[async_trait]
impl Db for RedisDb {
    fn name(&self) -> &str {
        "redis"
    }

    async fn setup(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.stop_all(node).await?;
        node.exec(&[
            "rm",
            "-rf",
            DATA_DIR,
            SENTINEL_DIR,
            LOG_FILE,
            SENTINEL_LOG_FILE,
            STDOUT_FILE,
            SENTINEL_STDOUT_FILE,
        ])
        .await?;
        node.exec(&[
            "mkdir",
            "-p",
            DATA_DIR,
            SENTINEL_DIR,
            "/opt/faultline/log",
            "/opt/faultline/run",
        ])
        .await?;
        // Empty logs, so the run's log download finds what `log_files` names.
        node.exec(&[
            "touch",
            LOG_FILE,
            SENTINEL_LOG_FILE,
            STDOUT_FILE,
            SENTINEL_STDOUT_FILE,
        ])
        .await?;
        if !self.serves(cx, node) {
            return Ok(());
        }
        let installed = node.exec_status(&["sh", "-c", INSTALL_SCRIPT]).await?;
        anyhow::ensure!(
            installed.status == 0,
            "installing redis-server and redis-sentinel on {} failed: {}",
            node.name(),
            installed.stderr.trim()
        );
        node.upload_bytes(self.config(cx, node).as_bytes(), CONF_FILE, 0o644)
            .await?;
        self.start_server(node).await?;
        if self.runs_sentinel(cx, node) {
            let conf = self
                .sentinel_config(cx, node)
                .context("Sentinel needs a primary host")?;
            node.upload_bytes(conf.as_bytes(), SENTINEL_CONF_FILE, 0o644)
                .await?;
            self.start_sentinel(node).await?;
        }
        Ok(())
    }

    async fn await_ready(&self, cx: &DbContext) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let why = match self.ready(cx).await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "redis ({}) was not ready within {} s: {why}",
                    self.deployment.mode.name(),
                    READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn teardown(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.stop_all(node).await?;
        node.exec(&["rm", "-rf", DATA_DIR, SENTINEL_DIR]).await?;
        Ok(())
    }

    fn kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }
    fn pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }
    fn primaries(&self) -> Option<&dyn Primaries> {
        (self.deployment.mode != Mode::Redlock).then_some(self as &dyn Primaries)
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        Some(self)
    }
}

#[async_trait]
impl Kill for RedisDb {
    /// SIGKILL the server (a Sentinel beside it keeps running, as when redis-server
    /// crashes).
    async fn kill(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(cx, node, Signal::Kill).await
    }
    /// Restarts the server from its config file, which Sentinel may have rewritten (a
    /// demoted primary then comes back as a replica); without AOF it restarts with what
    /// its last RDB snapshot held, if any.
    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        if !self.serves(cx, node) {
            return Ok(());
        }
        server()
            .stop(node)
            .await
            .with_context(|| format!("stopping redis-server on {}", node.name()))?;
        self.start_server(node).await
    }
}

#[async_trait]
impl Pause for RedisDb {
    async fn pause(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(cx, node, Signal::Stop).await
    }
    async fn resume(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(cx, node, Signal::Cont).await
    }
}

#[async_trait]
impl Primaries for RedisDb {
    /// Every server whose `ROLE` says `master`: two during a split brain.
    async fn primaries(&self, cx: &DbContext) -> anyhow::Result<Vec<String>> {
        let mut masters = Vec::new();
        for node in &cx.remotes[..self.deployment.servers.min(cx.remotes.len())] {
            if role(node).await.is_ok_and(|r| r == "master") {
                masters.push(node.name().to_owned());
            }
        }
        Ok(masters)
    }
}

impl LogFiles for RedisDb {
    fn log_files(&self, _node: &Remote) -> Vec<String> {
        let mut logs = vec![LOG_FILE.to_owned(), STDOUT_FILE.to_owned()];
        if self.deployment.mode == Mode::Sentinel {
            logs.extend([
                SENTINEL_LOG_FILE.to_owned(),
                SENTINEL_STDOUT_FILE.to_owned(),
            ]);
        }
        logs
    }
}
