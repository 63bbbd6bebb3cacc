//! The `redis-lock` system on the hosts (one server, primary + replica, or Redlock's
//! independent servers) and its `failover` fault; `zk-lock` runs through `node_db`.

use crate::lock::LockMode;
use crate::node_db::{NODE_EXECUTABLE, REMOTE_BINARY};
use anyhow::Context;
use async_trait::async_trait;
use faultline_checker::history::{OpType, Process};
use faultline_control::daemon::{Daemon, PidFileBy, Signal, Start};
use faultline_control::Remote;
use faultline_core::db::{Db, DbContext, Kill, LogFiles, Pause, Primaries};
use faultline_core::history::Event;
use faultline_core::nemesis::{Nemesis, NemesisContext};
use faultline_redis_lock::client::RedisLockClient;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const REDIS_PORT: u16 = 6379;
/// Redlock's servers: at most this many hosts run one.
pub const REDLOCK_SERVERS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

const DATA_DIR: &str = "/opt/faultline/data/redis-lock";
const LOG_FILE: &str = "/opt/faultline/log/redis-lock.log";
const STDOUT_FILE: &str = "/opt/faultline/log/redis-lock.stdout";
const PID_FILE: &str = "/opt/faultline/run/redis-lock.pid";

fn daemon() -> Daemon {
    Daemon::new(NODE_EXECUTABLE, PID_FILE, STDOUT_FILE)
}

/// redis-lock on the hosts of a run. Which host serves depends on the mode; in replica
/// mode `primary` (shared with the clients and the failover fault) says which of the first
/// two hosts is the primary now.
pub struct RedisLockDb {
    binary: PathBuf,
    mode: LockMode,
    primary: Arc<AtomicUsize>,
}

impl RedisLockDb {
    pub fn new(binary: PathBuf, mode: LockMode, primary: Arc<AtomicUsize>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            binary.is_file(),
            "node binary {} does not exist",
            binary.display()
        );
        Ok(RedisLockDb {
            binary,
            mode,
            primary,
        })
    }

    /// How many of the first hosts run a server in `mode`.
    pub fn servers(mode: LockMode, hosts: usize) -> usize {
        match mode {
            LockMode::Single => 1,
            LockMode::Replica => 2,
            LockMode::Redlock => REDLOCK_SERVERS,
        }
        .min(hosts)
    }

    fn index(cx: &DbContext, node: &Remote) -> Option<usize> {
        cx.remotes.iter().position(|r| r.name() == node.name())
    }

    fn serves(&self, cx: &DbContext, node: &Remote) -> bool {
        Self::index(cx, node).is_some_and(|i| i < Self::servers(self.mode, cx.remotes.len()))
    }

    fn addr(node: &Remote) -> String {
        format!("{}:{REDIS_PORT}", node.address())
    }

    /// The primary `node` follows, if it is a replica now.
    fn replica_of<'a>(&self, cx: &'a DbContext, node: &Remote) -> Option<&'a Remote> {
        if self.mode != LockMode::Replica {
            return None;
        }
        let primary = cx.remotes.get(self.primary.load(Ordering::SeqCst))?;
        (primary.name() != node.name()).then_some(primary)
    }

    async fn start_node(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        let mut argv: Vec<String> = Vec::new();
        argv.extend(
            [
                REMOTE_BINARY,
                "redis-lock",
                "--listen",
                &Self::addr(node),
                "--data-dir",
                DATA_DIR,
                "--pid-file",
                PID_FILE,
                "--log-file",
                LOG_FILE,
            ]
            .map(str::to_owned),
        );
        if let Some(primary) = self.replica_of(cx, node) {
            argv.extend(["--replica-of".into(), Self::addr(primary)]);
        }
        let start = Start::new(argv)
            .envs(cx.env.iter().cloned())
            .pid_file_by(PidFileBy::Program);
        daemon()
            .start(node, &start)
            .await
            .with_context(|| format!("starting redis-lock on {}", node.name()))
    }

    async fn stop_node(&self, node: &Remote) -> anyhow::Result<()> {
        daemon()
            .stop(node)
            .await
            .with_context(|| format!("stopping redis-lock on {}", node.name()))
    }

    async fn signal(&self, cx: &DbContext, node: &Remote, signal: Signal) -> anyhow::Result<()> {
        if !self.serves(cx, node) {
            // Nothing runs there in this mode: the fault has nothing to hit.
            return Ok(());
        }
        daemon()
            .signal(node, signal)
            .await
            .with_context(|| format!("sending {signal} to redis-lock on {}", node.name()))
    }

    async fn call(addr: &str, args: &[&str]) -> Result<String, String> {
        let attempt = async {
            let mut client = RedisLockClient::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            client
                .call(args)
                .await
                .map(|f| format!("{f:?}"))
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(PROBE_TIMEOUT, attempt)
            .await
            .map_err(|_| format!("{addr} did not answer"))?
    }

    async fn ready(&self, cx: &DbContext) -> Result<(), String> {
        let n = Self::servers(self.mode, cx.remotes.len());
        for node in &cx.remotes[..n] {
            let addr = Self::addr(node);
            Self::call(&addr, &["PING"]).await?;
            if self.replica_of(cx, node).is_some() {
                let mut client = RedisLockClient::connect(&addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let link =
                    tokio::time::timeout(PROBE_TIMEOUT, client.info_field("master_link_status"))
                        .await
                        .map_err(|_| format!("{addr}: INFO timed out"))?
                        .map_err(|e| e.to_string())?;
                if link.as_deref() != Some("up") {
                    return Err(format!("{addr}: replication link is {link:?}"));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Db for RedisLockDb {
    fn name(&self) -> &str {
        "redis-lock"
    }

    async fn setup(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.stop_node(node).await?;
        node.exec(&["rm", "-rf", DATA_DIR, LOG_FILE, STDOUT_FILE])
            .await?;
        node.exec(&[
            "mkdir",
            "-p",
            "/opt/faultline/bin",
            "/opt/faultline/log",
            "/opt/faultline/run",
        ])
        .await?;
        if !self.serves(cx, node) {
            // Empty logs, so the run's log download finds what `log_files` names.
            node.exec(&["touch", LOG_FILE, STDOUT_FILE]).await?;
            return Ok(());
        }
        node.upload(&self.binary, REMOTE_BINARY, 0o755)
            .await
            .with_context(|| format!("uploading {}", self.binary.display()))?;
        self.start_node(cx, node).await
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
                    "redis-lock ({}) was not ready within {} s: {why}",
                    self.mode.name(),
                    READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn teardown(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.stop_node(node).await?;
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
        (self.mode != LockMode::Redlock).then_some(self as &dyn Primaries)
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        Some(self)
    }
}

#[async_trait]
impl Kill for RedisLockDb {
    async fn kill(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(cx, node, Signal::Kill).await
    }
    /// A restarted server has forgotten every lock (no persistence, as configured Redis);
    /// a former primary comes back as a replica of the current one.
    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        if !self.serves(cx, node) {
            return Ok(());
        }
        self.stop_node(node).await?;
        self.start_node(cx, node).await
    }
}

#[async_trait]
impl Pause for RedisLockDb {
    async fn pause(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(cx, node, Signal::Stop).await
    }
    async fn resume(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(cx, node, Signal::Cont).await
    }
}

#[async_trait]
impl Primaries for RedisLockDb {
    async fn primaries(&self, cx: &DbContext) -> anyhow::Result<Vec<String>> {
        let i = match self.mode {
            LockMode::Replica => self.primary.load(Ordering::SeqCst),
            _ => 0,
        };
        Ok(cx
            .remotes
            .get(i)
            .map(|r| vec![r.name().to_owned()])
            .unwrap_or_default())
    }
}

impl LogFiles for RedisLockDb {
    fn log_files(&self, _node: &Remote) -> Vec<String> {
        vec![LOG_FILE.into(), STDOUT_FILE.into()]
    }
}

/// The `failover` fault of replica mode, as a failure detector with manual promotion
/// does it: the replica loses the primary (its traffic from the primary is dropped, so
/// grants stop replicating), after `lag` the primary is SIGKILLed, the replica promoted
/// with `REPLICAOF NO ONE`, and clients are pointed at it. `failover-done` restarts the
/// old primary as a replica of the new one. Grants the old primary made during the lag are
/// unknown to the new primary, which grants those locks again.
pub struct FailoverNemesis {
    db: Arc<RedisLockDb>,
    /// Mean seconds between a failover and its `failover-done`, and between those.
    pub interval: Duration,
    /// How long the primary grants without replicating before it is stopped.
    pub lag: Duration,
    state: tokio::sync::Mutex<FailoverState>,
}

#[derive(Default)]
struct FailoverState {
    /// The host killed by the last failover, not restarted yet.
    down: Option<usize>,
    /// `(host, dropped address)` of iptables rules in place.
    rules: Vec<(usize, String)>,
}

const FAILOVER_SALT: u64 = 0x6661_696c_6f76_6572;

impl FailoverNemesis {
    pub fn new(db: Arc<RedisLockDb>, interval: Duration, lag: Duration) -> Self {
        FailoverNemesis {
            db,
            interval,
            lag,
            state: Default::default(),
        }
    }

    fn record(cx: &NemesisContext, kind: OpType, f: &str, value: Value, error: Option<String>) {
        cx.history.record(Event {
            kind,
            process: Process::Nemesis,
            f: f.to_owned(),
            key: None,
            value,
            node: None,
            error,
        });
    }

    async fn recorded<F>(&self, cx: &NemesisContext, f: &str, invoke: Value, act: F)
    where
        F: std::future::Future<Output = anyhow::Result<Value>>,
    {
        Self::record(cx, OpType::Invoke, f, invoke, None);
        match act.await {
            Ok(v) => Self::record(cx, OpType::Info, f, v, None),
            Err(err) => {
                tracing::warn!("nemesis {f} failed: {err:#}");
                Self::record(cx, OpType::Info, f, Value::Null, Some(format!("{err:#}")));
            }
        }
    }

    async fn drop_rule(remote: &Remote, from: &str, add: bool) -> anyhow::Result<()> {
        let op = if add { "-A" } else { "-D" };
        let out = remote
            .exec_status(&["iptables", op, "INPUT", "-s", from, "-j", "DROP"])
            .await?;
        anyhow::ensure!(
            out.status == 0 || !add,
            "iptables on {}: {}",
            remote.name(),
            out.stderr
        );
        Ok(())
    }

    /// Kills the primary and promotes the replica.
    pub async fn failover(&self, cx: &NemesisContext) {
        let remotes = &cx.db_cx.remotes;
        let old = self.db.primary.load(Ordering::SeqCst);
        let new = 1 - old.min(1);
        let (Some(primary), Some(replica)) = (remotes.get(old), remotes.get(new)) else {
            return;
        };
        let invoke = json!({"primary": primary.name(), "replica": replica.name()});
        self.recorded(cx, "failover", invoke, async {
            self.state
                .lock()
                .await
                .rules
                .push((new, primary.address().to_owned()));
            Self::drop_rule(replica, primary.address(), true).await?;
            tokio::time::sleep(self.lag).await;
            self.state.lock().await.down = Some(old);
            Kill::kill(&*self.db, &cx.db_cx, primary).await?;
            let mut client = RedisLockClient::connect(&RedisLockDb::addr(replica)).await?;
            client.replicaof(None).await?;
            self.db.primary.store(new, Ordering::SeqCst);
            self.unpartition_in(cx).await?;
            Ok(json!({"killed": primary.name(), "promoted": replica.name(),
                      "lag_ms": self.lag.as_millis() as u64}))
        })
        .await;
    }

    async fn unpartition_in(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        let rules = std::mem::take(&mut self.state.lock().await.rules);
        for (host, from) in rules {
            if let Some(remote) = cx.db_cx.remotes.get(host) {
                Self::drop_rule(remote, &from, false).await?;
            }
        }
        Ok(())
    }

    /// Restarts the killed old primary as a replica of the new one.
    async fn restore(&self, cx: &NemesisContext) -> anyhow::Result<Option<String>> {
        self.unpartition_in(cx).await?;
        let down = self.state.lock().await.down.take();
        let Some(host) = down.and_then(|i| cx.db_cx.remotes.get(i)) else {
            return Ok(None);
        };
        Kill::start(&*self.db, &cx.db_cx, host).await?;
        Ok(Some(host.name().to_owned()))
    }
}

#[async_trait]
impl Nemesis for FailoverNemesis {
    fn names(&self) -> Vec<String> {
        vec!["failover".into()]
    }

    async fn setup(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.db.mode == LockMode::Replica && cx.db_cx.remotes.len() >= 2,
            "the failover fault needs redis-lock in replica mode on at least 2 hosts"
        );
        Ok(())
    }

    async fn run(&self, cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(cx.seed ^ FAILOVER_SALT);
        let mean = self.interval.as_millis().max(2) as u64;
        loop {
            for failing in [true, false] {
                let wait = Duration::from_millis(rng.random_range(mean / 2..=mean + mean / 2));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return Ok(()),
                }
                if failing {
                    self.failover(cx).await;
                } else {
                    self.recorded(cx, "failover-done", Value::Null, async {
                        Ok(json!({"restarted": self.restore(cx).await?}))
                    })
                    .await;
                }
            }
        }
    }

    async fn heal(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        self.restore(cx).await.map(|_| ())
    }
}

/// Two nemeses side by side (e.g. the scheduled faults and `failover`).
pub struct BothNemeses(pub Arc<dyn Nemesis>, pub Arc<dyn Nemesis>);

impl BothNemeses {
    /// `first` beside the nemesis `test` already has: the one way a test gains a nemesis.
    pub fn add_to(test: &mut faultline_core::run::Test, first: Arc<dyn Nemesis>) {
        test.nemesis = Arc::new(BothNemeses(first, test.nemesis.clone()));
    }
}

#[async_trait]
impl Nemesis for BothNemeses {
    fn names(&self) -> Vec<String> {
        let mut names = self.0.names();
        names.extend(self.1.names());
        names
    }
    async fn setup(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        self.0.setup(cx).await?;
        self.1.setup(cx).await
    }
    async fn run(&self, cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()> {
        let (a, b) = tokio::join!(self.0.run(cx, stop.clone()), self.1.run(cx, stop));
        a.and(b)
    }
    async fn heal(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        let (a, b) = tokio::join!(self.0.heal(cx), self.1.heal(cx));
        a.and(b)
    }
}
