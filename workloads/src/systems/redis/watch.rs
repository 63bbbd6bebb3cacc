//! Failovers as the servers report them: `ROLE` of every server, polled beside the
//! workload, recorded in the history as nemesis-process `failover` ops whenever the set of
//! servers that call themselves primary changes (docs/contracts.md). It injects nothing.

use super::db::{probe, role};
use faultline_checker::history::{OpType, Process};
use faultline_core::history::Event;
use faultline_core::nemesis::{Nemesis, NemesisContext};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often every server is asked its role: well under Sentinel's failover time.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long healing waits for replicated servers to settle on one primary: Sentinel
/// reconfigures a returning old primary only after it has reported itself primary for
/// 8 s (four hello periods), and the final reads must see what that resync dropped.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Records the deployment once and every change of primaries after it.
pub struct RoleWatcher {
    /// How many of the first hosts run a server.
    pub servers: usize,
    /// What `deployment` records: mode, version, persistence.
    pub deployment: Value,
    /// Replicated modes: at heal, wait until exactly one server is primary and every other
    /// answers as a replica.
    pub converge: bool,
    /// The primaries seen last, shared by the polling loop and the heal.
    masters: tokio::sync::Mutex<Vec<String>>,
}

/// `redis_version` from `INFO server`, as the server itself reports it.
async fn server_version(node: &faultline_control::Remote) -> Result<String, String> {
    let addr = format!("{}:{}", node.address(), super::db::REDIS_PORT);
    let info: String = probe(&addr, redis::cmd("INFO").arg("server")).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| format!("{addr}: INFO server names no redis_version"))
}

fn record(cx: &NemesisContext, kind: OpType, f: &str, value: Value) {
    cx.history.record(Event {
        kind,
        process: Process::Nemesis,
        f: f.to_owned(),
        key: None,
        value,
        node: None,
        error: None,
    });
}

impl RoleWatcher {
    pub fn new(servers: usize, deployment: Value, converge: bool) -> Self {
        RoleWatcher {
            servers,
            deployment,
            converge,
            masters: Default::default(),
        }
    }

    /// `(masters, replicas, unreachable)` by host name.
    async fn roles(&self, cx: &NemesisContext) -> (Vec<String>, Vec<String>, Vec<String>) {
        let (mut masters, mut replicas, mut down) = (Vec::new(), Vec::new(), Vec::new());
        let servers = &cx.db_cx.remotes[..self.servers.min(cx.db_cx.remotes.len())];
        // Asked at once, so a hung server does not delay the others' answers.
        let mut asks = tokio::task::JoinSet::new();
        for (i, node) in servers.iter().enumerate() {
            let node = node.clone();
            asks.spawn(async move { (i, role(&node).await) });
        }
        let mut answers: Vec<Result<String, String>> = vec![Err(String::new()); servers.len()];
        while let Some(Ok((i, answer))) = asks.join_next().await {
            answers[i] = answer;
        }
        for (node, answer) in servers.iter().zip(answers) {
            let name = node.name().to_owned();
            match answer.as_deref() {
                Ok("master") => masters.push(name),
                Ok(_) => replicas.push(name),
                Err(_) => down.push(name),
            }
        }
        (masters, replicas, down)
    }

    /// Asks every server its role once and records a `failover` if the primaries changed;
    /// returns whether one primary leads answering replicas.
    async fn observe(&self, cx: &NemesisContext) -> bool {
        let (now, replicas, down) = self.roles(cx).await;
        let mut masters = self.masters.lock().await;
        // A server that does not answer (killed, paused) says nothing about roles.
        let promoted: Vec<&String> = now.iter().filter(|m| !masters.contains(m)).collect();
        let demoted: Vec<&String> = masters
            .iter()
            .filter(|m| !now.contains(m) && !down.contains(m))
            .collect();
        if !promoted.is_empty() || !demoted.is_empty() {
            let value = json!({"promoted": promoted, "demoted": demoted, "primaries": now,
                               "replicas": replicas, "unreachable": down, "seen_by": "ROLE"});
            record(cx, OpType::Invoke, "failover", Value::Null);
            record(cx, OpType::Info, "failover", value);
            *masters = now
                .iter()
                .chain(masters.iter().filter(|m| down.contains(m)))
                .cloned()
                .collect();
        }
        now.len() == 1 && down.is_empty()
    }
}

#[async_trait::async_trait]
impl Nemesis for RoleWatcher {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn run(&self, cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()> {
        let (masters, replicas, _) = self.roles(cx).await;
        let mut deployment = self.deployment.clone();
        let version = match cx.db_cx.remotes.first() {
            Some(first) => server_version(first).await,
            None => Err("no hosts".into()),
        };
        if let Some(map) = deployment.as_object_mut() {
            match version {
                Ok(v) => map.insert("version".into(), json!(v)),
                Err(why) => map.insert("version_error".into(), json!(why)),
            };
            map.insert("primaries".into(), json!(masters));
            map.insert("replicas".into(), json!(replicas));
        }
        *self.masters.lock().await = masters;
        record(cx, OpType::Invoke, "deployment", Value::Null);
        record(cx, OpType::Info, "deployment", deployment);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.cancelled() => return Ok(()),
            }
            self.observe(cx).await;
        }
    }

    /// Waits (bounded) for the servers to settle on one primary, so the final phase reads
    /// what survived; it changes nothing itself.
    async fn heal(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        if !self.converge {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
        while !self.observe(cx).await {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "redis: no single primary {} s after healing; the final reads go on",
                    CONVERGE_TIMEOUT.as_secs()
                );
                return Ok(());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }
}
