//! The `raft` and `paxos` systems: install `faultline-node` on every host, start it detached
//! with a PID file, wait for the cluster, stop it by PID file, and name its logs.

use crate::http::NodeEndpoint;
use anyhow::Context;
use async_trait::async_trait;
use faultline_control::daemon::{Daemon, PidFileBy, Signal, Start};
use faultline_control::Remote;
use faultline_core::db::{Db, DbContext, Kill, LogFiles, Pause, Primaries};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// Where the node binary lives on every host (the per-host `/opt/faultline`).
pub const REMOTE_BINARY: &str = "/opt/faultline/bin/faultline-node";
pub const PEER_PORT: u16 = 7001;
pub const CLIENT_PORT: u16 = 8001;

/// How long a node may take to write its PID file after it was launched.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the cluster may take to elect a leader / serve a read after every node started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// The executable name every PID file of a faultline-node must point at.
pub const NODE_EXECUTABLE: &str = "faultline-node";

/// Which of our systems, and how to start it.
#[derive(Debug, Clone)]
pub struct NodeDbConfig {
    /// `raft` or `paxos`: the `faultline-node` subcommand.
    pub system: String,
    /// The binary on the controller, uploaded to every host.
    pub binary: PathBuf,
    /// `--bug` names to plant.
    pub bugs: Vec<String>,
    /// `--read-mode` (raft: `readindex` or `lease`).
    pub read_mode: Option<String>,
    /// Further node options, passed through as given (e.g. `--tick-ms`, `50`).
    pub extra_args: Vec<String>,
    /// Whether its nodes elect a leader (raft, zk-lock), which `/status` names.
    pub primaries: bool,
}

/// The client endpoint of the node on host `name` at `address`.
pub fn endpoint(name: &str, address: &str) -> NodeEndpoint {
    NodeEndpoint {
        name: name.to_owned(),
        base_url: format!("http://{address}:{CLIENT_PORT}"),
    }
}

/// A faultline-node system on the hosts of a run.
pub struct NodeDb {
    config: NodeDbConfig,
    http: reqwest::Client,
}

/// `GET /status` (nodes/API.md).
#[derive(Debug, Clone, Deserialize)]
pub struct NodeStatus {
    pub id: String,
    pub role: String,
    #[serde(default)]
    pub leader: Option<String>,
}

impl NodeDb {
    pub fn new(config: NodeDbConfig) -> anyhow::Result<NodeDb> {
        anyhow::ensure!(
            config.binary.is_file(),
            "node binary {} does not exist",
            config.binary.display()
        );
        let http = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .connect_timeout(PROBE_TIMEOUT)
            .build()?;
        Ok(NodeDb { config, http })
    }

    fn data_dir(&self) -> String {
        format!("/opt/faultline/data/{}", self.config.system)
    }
    fn log_file(&self) -> String {
        format!("/opt/faultline/log/{}.log", self.config.system)
    }
    fn stdout_file(&self) -> String {
        format!("/opt/faultline/log/{}.stdout", self.config.system)
    }
    fn pid_file(&self) -> String {
        format!("/opt/faultline/run/{}.pid", self.config.system)
    }
    fn daemon(&self) -> Daemon {
        Daemon::new(NODE_EXECUTABLE, self.pid_file(), self.stdout_file())
    }

    /// The client endpoints of every host, for the workload's client.
    pub fn endpoints(remotes: &[Remote]) -> Vec<NodeEndpoint> {
        remotes
            .iter()
            .map(|r| endpoint(r.name(), r.address()))
            .collect()
    }

    fn node_argv(&self, cx: &DbContext, node: &Remote) -> Vec<String> {
        let list = |port: u16| {
            cx.remotes
                .iter()
                .map(|r| format!("{}={}:{port}", r.name(), r.address()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut argv = vec![
            REMOTE_BINARY.to_owned(),
            self.config.system.clone(),
            "--id".into(),
            node.name().to_owned(),
            "--peers".into(),
            list(PEER_PORT),
            "--client-peers".into(),
            list(CLIENT_PORT),
            "--listen-peer".into(),
            format!("{}:{PEER_PORT}", node.address()),
            "--listen-client".into(),
            format!("0.0.0.0:{CLIENT_PORT}"),
            "--data-dir".into(),
            self.data_dir(),
            "--pid-file".into(),
            self.pid_file(),
            "--log-file".into(),
            self.log_file(),
        ];
        if let Some(mode) = &self.config.read_mode {
            argv.extend(["--read-mode".into(), mode.clone()]);
        }
        for bug in &self.config.bugs {
            argv.extend(["--bug".into(), bug.clone()]);
        }
        argv.extend(self.config.extra_args.iter().cloned());
        argv
    }

    /// Starts the node detached and waits for the PID file it writes once it serves.
    async fn start_node(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        let start = Start::new(self.node_argv(cx, node))
            .envs(cx.env.iter().cloned())
            .pid_file_by(PidFileBy::Program)
            .timeout(START_TIMEOUT);
        self.daemon().start(node, &start).await.with_context(|| {
            format!(
                "starting the {} node of {}",
                self.config.system,
                node.name()
            )
        })
    }

    async fn stop_node(&self, node: &Remote) -> anyhow::Result<()> {
        self.daemon()
            .stop(node)
            .await
            .with_context(|| format!("stopping the node of {}", node.name()))
    }

    async fn signal(&self, node: &Remote, signal: Signal) -> anyhow::Result<()> {
        self.daemon()
            .signal(node, signal)
            .await
            .with_context(|| format!("sending {signal} to the node of {}", node.name()))
    }

    /// The `/status` of one node, `None` when it does not answer.
    pub async fn status(&self, endpoint: &NodeEndpoint) -> Option<NodeStatus> {
        let response = self
            .http
            .get(format!("{}/status", endpoint.base_url))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// Raft: every node names the same leader, and that node says it leads. Paxos: a read
    /// succeeds through every node.
    async fn ready(&self, endpoints: &[NodeEndpoint]) -> Result<(), String> {
        if self.config.system == "paxos" {
            for endpoint in endpoints {
                let answer = self
                    .http
                    .post(format!("{}/read", endpoint.base_url))
                    .json(&json!({"key": "faultline-ready"}))
                    .send()
                    .await
                    .map_err(|e| format!("{}: {e}", endpoint.name))?;
                if !answer.status().is_success() {
                    return Err(format!(
                        "{}: read answered {}",
                        endpoint.name,
                        answer.status()
                    ));
                }
            }
            return Ok(());
        }
        let mut leaders = Vec::new();
        for endpoint in endpoints {
            let status = self
                .status(endpoint)
                .await
                .ok_or_else(|| format!("{} does not answer /status", endpoint.name))?;
            leaders.push((status.id, status.role, status.leader));
        }
        let Some(leader) = leaders[0].2.clone() else {
            return Err(format!("{} knows no leader", leaders[0].0));
        };
        for (id, role, theirs) in &leaders {
            if theirs.as_deref() != Some(leader.as_str()) {
                return Err(format!("{id} names leader {theirs:?}, not {leader}"));
            }
            if *id == leader && role != "leader" {
                return Err(format!("{id} is named leader but is {role}"));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Db for NodeDb {
    fn name(&self) -> &str {
        &self.config.system
    }

    async fn setup(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        // A crashed earlier run may have left its node running.
        self.stop_node(node).await?;
        let dirs = [
            "/opt/faultline/bin",
            "/opt/faultline/log",
            "/opt/faultline/run",
        ];
        node.exec(&[
            "rm",
            "-rf",
            &self.data_dir(),
            &self.log_file(),
            &self.stdout_file(),
        ])
        .await?;
        let mut mkdir = vec!["mkdir", "-p"];
        mkdir.extend(dirs);
        node.exec(&mkdir).await?;
        node.upload(&self.config.binary, REMOTE_BINARY, 0o755)
            .await
            .with_context(|| format!("uploading {}", self.config.binary.display()))?;
        self.start_node(cx, node).await
    }

    async fn await_ready(&self, cx: &DbContext) -> anyhow::Result<()> {
        let endpoints = NodeDb::endpoints(&cx.remotes);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let why = match self.ready(&endpoints).await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "the {} cluster was not ready within {} s: {why}",
                    self.config.system,
                    READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn teardown(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.stop_node(node).await?;
        node.exec(&["rm", "-rf", &self.data_dir()]).await?;
        Ok(())
    }

    fn kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }
    fn pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }
    fn primaries(&self) -> Option<&dyn Primaries> {
        self.config.primaries.then_some(self as &dyn Primaries)
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        Some(self)
    }
}

#[async_trait]
impl Kill for NodeDb {
    async fn kill(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Kill).await
    }
    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        // Whatever is left of the old process goes first: two nodes never share a data dir.
        self.stop_node(node).await?;
        self.start_node(cx, node).await
    }
}

#[async_trait]
impl Pause for NodeDb {
    async fn pause(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Stop).await
    }
    async fn resume(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Cont).await
    }
}

#[async_trait]
impl Primaries for NodeDb {
    async fn primaries(&self, cx: &DbContext) -> anyhow::Result<Vec<String>> {
        let mut leaders = Vec::new();
        for endpoint in NodeDb::endpoints(&cx.remotes) {
            if let Some(status) = self.status(&endpoint).await {
                if status.role == "leader" {
                    leaders.push(status.id);
                }
            }
        }
        Ok(leaders)
    }
}

impl LogFiles for NodeDb {
    fn log_files(&self, _node: &Remote) -> Vec<String> {
        vec![self.log_file(), self.stdout_file()]
    }
}
