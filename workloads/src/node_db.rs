//! The `raft` and `paxos` systems: install `faultline-node` on every host, start it detached
//! with a PID file, wait for the cluster, stop it by PID file, and name its logs.

use crate::http::NodeEndpoint;
use anyhow::Context;
use async_trait::async_trait;
use faultline_control::{shell_join, Remote};
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

/// The files of a process that faultline starts detached on a host and stops by PID file.
pub(crate) struct Detached {
    /// Written by the process itself once it serves.
    pub pid_file: String,
    /// The launcher's own record of the PID, for a process that dies before writing its file.
    pub launch_pid_file: String,
    /// Its stdout and stderr, appended to.
    pub stdout_file: String,
    /// A word of its command line (`/proc/PID/cmdline`), checked before it is signalled,
    /// since PIDs are reused.
    pub exe: &'static str,
}

impl Detached {
    /// Starts `argv` detached (new session, no terminal, stdio to a file) so the SSH command
    /// returns at once, then waits for its PID file. `label` names it in the error.
    pub async fn launch(&self, node: &Remote, argv: &[String], label: &str) -> anyhow::Result<()> {
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let script = format!(
            "setsid {} </dev/null >>{} 2>&1 & echo $! > {}",
            shell_join(&words),
            faultline_control::shell_escape(&self.stdout_file),
            faultline_control::shell_escape(&self.launch_pid_file),
        );
        node.exec(&["sh", "-c", &script]).await?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let probe = node
                .exec_status(&["sh", "-c", "test -s \"$1\"", "sh", &self.pid_file])
                .await?;
            if probe.status == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let tail = node
                    .exec_status(&["tail", "-n", "20", &self.stdout_file])
                    .await
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                anyhow::bail!(
                    "{label} did not write its PID file within {} s; its output ends with:\n{tail}",
                    START_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process by its PID file and the launcher's; `what` names it in the error.
    pub async fn stop(&self, node: &Remote, what: &str) -> anyhow::Result<()> {
        for file in [&self.pid_file, &self.launch_pid_file] {
            node.exec(&["sh", "-c", STOP_SCRIPT, "sh", file, self.exe])
                .await
                .with_context(|| format!("stopping {what}"))?;
        }
        Ok(())
    }

    /// Sends `signal` to the process of the PID file, if it is still ours.
    pub async fn signal(&self, node: &Remote, signal: &str) -> anyhow::Result<()> {
        node.exec(&[
            "sh",
            "-c",
            SIGNAL_SCRIPT,
            "sh",
            &self.pid_file,
            signal,
            self.exe,
        ])
        .await?;
        Ok(())
    }
}

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
    /// Environment of the node process, set with `env` in front of it.
    pub env: Vec<(String, String)>,
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

/// The stop script: signals the PID in the file (after checking the PID is still the
/// program named by $2, since PIDs are reused), waits for it to die (zombies count as dead),
/// escalates to SIGKILL, and removes the file.
const STOP_SCRIPT: &str = r#"f=$1; exe=$2
[ -f "$f" ] || exit 0
read -r p < "$f" || { rm -f "$f"; exit 0; }
case $p in ''|*[!0-9]*) rm -f "$f"; exit 0;; esac
alive() { [ -r /proc/$p/stat ] && [ "$(sed 's/.*) //' /proc/$p/stat | cut -c1)" != Z ]; }
ours() { tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q -- "$exe"; }
if alive && ours; then
  kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null
  i=0; while alive && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  if alive; then
    kill -KILL "$p" 2>/dev/null
    i=0; while alive && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  fi
  if alive; then echo "process $p survived SIGKILL" >&2; exit 1; fi
fi
rm -f "$f"
exit 0"#;

/// Sends one signal to the PID in a file, if it is a live process of the program $3.
const SIGNAL_SCRIPT: &str = r#"f=$1; sig=$2; exe=$3
read -r p < "$f" || { echo "no PID file $f" >&2; exit 1; }
case $p in ''|*[!0-9]*) echo "bad PID file $f" >&2; exit 1;; esac
tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q -- "$exe" || { echo "$p is not a $exe" >&2; exit 1; }
kill -s "$sig" "$p""#;

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
    /// The launcher's own record of the PID, for a node that dies before writing its file.
    fn launch_pid_file(&self) -> String {
        format!("/opt/faultline/run/{}.launch.pid", self.config.system)
    }
    fn files(&self) -> Detached {
        Detached {
            pid_file: self.pid_file(),
            launch_pid_file: self.launch_pid_file(),
            stdout_file: self.stdout_file(),
            exe: "faultline-node",
        }
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

    /// Starts the node detached (new session, no terminal, stdio to a file) so the SSH
    /// command returns at once, then waits for its PID file.
    async fn start_node(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        let mut argv = self.node_argv(cx, node);
        if !self.config.env.is_empty() {
            let assignments = self.config.env.iter().map(|(k, v)| format!("{k}={v}"));
            argv.splice(0..0, std::iter::once("env".to_owned()).chain(assignments));
        }
        self.files().launch(node, &argv, node.name()).await
    }

    async fn stop_node(&self, node: &Remote) -> anyhow::Result<()> {
        self.files()
            .stop(node, &format!("the node of {}", node.name()))
            .await
    }

    async fn signal(&self, node: &Remote, signal: &str) -> anyhow::Result<()> {
        self.files()
            .signal(node, signal)
            .await
            .with_context(|| format!("sending {signal} to the node of {}", node.name()))?;
        Ok(())
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
        matches!(self.config.system.as_str(), "raft" | "zk-lock").then_some(self as &dyn Primaries)
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        Some(self)
    }
}

#[async_trait]
impl Kill for NodeDb {
    async fn kill(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, "KILL").await
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
        self.signal(node, "STOP").await
    }
    async fn resume(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, "CONT").await
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
