//! `--db external:FILE.toml`: a system in any language, described by a TOML file — per-host
//! install, start (detached, PID file), stop, logs — with a client program on the
//! controller that speaks newline-delimited JSON (docs/extending.md has the format and the
//! protocol).
//!
//! The client program is one process for every client of the run: faultline writes one
//! invocation per line `{"id", "process", "f", "key", "value", "node"}` and the program
//! answers each with `{"id", "type": "ok"|"fail"|"info", "value", "error"}`, in any order.
//! A program that exits, prints a line that is not such an answer, or leaves an op without
//! answer past the client timeout is stopped: each op it had not answered ends `info` (its
//! fate is unknown) and the next op starts it again. Its stderr goes to the run's log.

use crate::system::{Capabilities, ClockReach, Named, System, SystemRequest, WorkloadParts};
use anyhow::Context;
use async_trait::async_trait;
use faultline_checker::history::{Key, OpType};
use faultline_control::daemon::{Daemon, PidFileBy, Signal, Start};
use faultline_control::Remote;
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::db::{Db, DbContext, Kill, LogFiles, Pause};
use faultline_core::generator::Invocation;
use faultline_core::run::{RunOptions, Test};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

/// How long the cluster may take to pass the `ready` command on every host.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of one install, stop or ready command on a host.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest answer line read from the client program.
const ANSWER_BYTES_MAX: usize = 1 << 20;

/// The TOML file (docs/extending.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Workloads it serves (registered names: generators and checkers come from them).
    pub workloads: Vec<String>,
    /// Planted bugs it accepts (`--bug`); each adds `bug_args` to the start command.
    #[serde(default)]
    pub bugs: Vec<String>,
    /// Words added to `start` per `--bug NAME` (`{bug}` is the name).
    #[serde(default)]
    pub bug_args: Vec<String>,
    /// Ports, by name, for `{port.NAME}` and `{peers.NAME}`.
    #[serde(default)]
    pub ports: HashMap<String, u16>,
    #[serde(default)]
    pub upload: Vec<Upload>,
    /// Commands run on every host before the start (each an argv).
    #[serde(default)]
    pub install: Vec<Vec<String>>,
    /// The command started detached on every host (an argv).
    pub start: Vec<String>,
    /// The name its PID must run; default: the basename of `start[0]`.
    pub executable: Option<String>,
    /// The program's own PID file; default: faultline's (written by the launcher).
    pub pid_file: Option<String>,
    /// A command run on each host until it succeeds, once every host started.
    #[serde(default)]
    pub ready: Vec<String>,
    /// Commands run on every host after the daemon is stopped at the end (each an argv).
    #[serde(default)]
    pub stop: Vec<Vec<String>>,
    /// Log files on each host, downloaded into the run folder.
    #[serde(default)]
    pub logs: Vec<String>,
    pub client: ClientConfig,
    #[serde(default)]
    pub capabilities: CapabilitiesConfig,
}

/// A file copied to every host at setup; `from` is relative to the TOML file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    pub from: String,
    /// An environment variable of the controller that, when set, names the file instead
    /// of `from` (e.g. a binary built elsewhere).
    pub env: Option<String>,
    pub to: String,
    #[serde(default = "default_mode")]
    pub mode: u32,
}

fn default_mode() -> u32 {
    0o755
}

/// The client program, run on the controller in the TOML file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub command: Vec<String>,
}

/// What the nemesis can do to it; by default everything a process on a host can take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesConfig {
    #[serde(default = "yes")]
    pub kill: bool,
    #[serde(default = "yes")]
    pub pause: bool,
    #[serde(default = "yes")]
    pub partition: bool,
    #[serde(default = "yes")]
    pub packet: bool,
    /// `true`, or why libfaketime does not reach its clock (e.g. "Go reads the kernel
    /// clock directly").
    #[serde(default = "reach")]
    pub faketime: Reach,
    #[serde(default = "reach")]
    pub system_clock: Reach,
}

impl Default for CapabilitiesConfig {
    fn default() -> Self {
        CapabilitiesConfig {
            kill: true,
            pause: true,
            partition: true,
            packet: true,
            faketime: Reach::Yes(true),
            system_clock: Reach::Yes(true),
        }
    }
}

fn yes() -> bool {
    true
}

fn reach() -> Reach {
    Reach::Yes(true)
}

/// `true`/`false`, or the reason it does not reach.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Reach {
    Yes(bool),
    Not(String),
}

impl Reach {
    fn result(&self, what: &str) -> Result<(), String> {
        match self {
            Reach::Yes(true) => Ok(()),
            Reach::Yes(false) => Err(format!("{what} does not reach its clock")),
            Reach::Not(why) => Err(why.clone()),
        }
    }
}

/// A system loaded from a TOML file.
pub struct ExternalSystem {
    config: ExternalConfig,
    /// The TOML file's folder: uploads and the client program are relative to it.
    base: PathBuf,
}

impl ExternalSystem {
    pub fn load(path: &Path) -> anyhow::Result<ExternalSystem> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the external system {}", path.display()))?;
        ExternalSystem::parse(&text, path)
    }

    /// The system described by `text`, the contents of the file at `path` (errors name
    /// it; uploads and the client program are relative to its folder).
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<ExternalSystem> {
        let config: ExternalConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        anyhow::ensure!(
            !config.start.is_empty(),
            "{}: `start` is empty",
            path.display()
        );
        anyhow::ensure!(
            !config.client.command.is_empty(),
            "{}: `client.command` is empty",
            path.display()
        );
        anyhow::ensure!(
            !config.workloads.is_empty(),
            "{}: `workloads` names none",
            path.display()
        );
        anyhow::ensure!(
            config
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !config.name.is_empty(),
            "{}: name {:?} must be letters, digits, - and _",
            path.display(),
            config.name
        );
        let base = path
            .parent()
            .map(Path::to_owned)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(ExternalSystem { config, base })
    }
}

impl System for ExternalSystem {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn description(&self) -> &str {
        &self.config.description
    }
    fn workloads(&self) -> Vec<String> {
        self.config.workloads.clone()
    }
    fn bugs(&self) -> Vec<Named> {
        self.config
            .bugs
            .iter()
            .map(|b| Named::new(b, "passed to the start command"))
            .collect()
    }
    fn capabilities(&self, _request: &SystemRequest) -> Capabilities {
        let c = &self.config.capabilities;
        Capabilities {
            kill: c.kill,
            pause: c.pause,
            primaries: false,
            clock: ClockReach {
                faketime: c.faketime.result("libfaketime"),
                system: c.system_clock.result("setting the system clock"),
            },
            packet: c.packet,
            partition: c.partition,
        }
    }
    fn build(
        &self,
        request: &SystemRequest,
        workload: WorkloadParts,
        mut options: RunOptions,
    ) -> anyhow::Result<Test> {
        let hosts: Vec<(String, String)> = options
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.address.clone()))
            .collect();
        let db = ExternalDb {
            config: self.config.clone(),
            base: self.base.clone(),
            bugs: request.bugs.clone(),
            program_args: request.program_args.clone(),
        };
        let client = ProgramClientFactory::new(
            self.config.client.command.clone(),
            self.base.clone(),
            hosts,
            request.client_timeout,
        );
        options
            .test_fields
            .entry("external")
            .or_insert(json!(self.base.display().to_string()));
        Ok(workload.into_test(options, Arc::new(db), Arc::new(client)))
    }
}

/// The external system's lifecycle on the hosts.
pub struct ExternalDb {
    config: ExternalConfig,
    base: PathBuf,
    bugs: Vec<String>,
    program_args: Vec<String>,
}

impl ExternalDb {
    fn pid_file(&self) -> String {
        self.config
            .pid_file
            .clone()
            .unwrap_or_else(|| format!("/opt/faultline/run/{}.pid", self.config.name))
    }

    fn daemon(&self) -> Daemon {
        let executable = self.config.executable.clone().unwrap_or_else(|| {
            let first = &self.config.start[0];
            first.rsplit('/').next().unwrap_or(first).to_owned()
        });
        Daemon::new(
            executable,
            self.pid_file(),
            format!("/opt/faultline/log/{}.stdout", self.config.name),
        )
    }

    /// `{host}`, `{address}`, `{index}`, `{hosts}`, `{port.NAME}`, `{peers.NAME}`,
    /// `{pid_file}`, `{name}` in one word.
    fn expand(&self, word: &str, cx: &DbContext, node: &Remote) -> String {
        let mut out = word
            .replace("{host}", node.name())
            .replace("{address}", node.address())
            .replace("{name}", &self.config.name)
            .replace("{pid_file}", &self.pid_file())
            .replace(
                "{hosts}",
                &cx.remotes
                    .iter()
                    .map(|r| r.address())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        if let Some(i) = cx.remotes.iter().position(|r| r.name() == node.name()) {
            out = out.replace("{index}", &i.to_string());
        }
        for (name, port) in &self.config.ports {
            out = out.replace(&format!("{{port.{name}}}"), &port.to_string());
            let peers = cx
                .remotes
                .iter()
                .map(|r| format!("{}={}:{port}", r.name(), r.address()))
                .collect::<Vec<_>>()
                .join(",");
            out = out.replace(&format!("{{peers.{name}}}"), &peers);
        }
        out
    }

    fn start_argv(&self, cx: &DbContext, node: &Remote) -> Vec<String> {
        let mut argv: Vec<String> = self
            .config
            .start
            .iter()
            .map(|w| self.expand(w, cx, node))
            .collect();
        for bug in &self.bugs {
            argv.extend(self.config.bug_args.iter().map(|w| w.replace("{bug}", bug)));
        }
        argv.extend(self.program_args.iter().cloned());
        argv
    }

    async fn run_all(
        &self,
        commands: &[Vec<String>],
        cx: &DbContext,
        node: &Remote,
        what: &str,
    ) -> anyhow::Result<()> {
        for command in commands {
            let argv: Vec<String> = command.iter().map(|w| self.expand(w, cx, node)).collect();
            let words: Vec<&str> = argv.iter().map(String::as_str).collect();
            if words.is_empty() {
                continue;
            }
            node.exec_timeout(&words, COMMAND_TIMEOUT)
                .await
                .with_context(|| format!("{what} of {} on {}", self.config.name, node.name()))?;
        }
        Ok(())
    }

    async fn start_node(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        let by = if self.config.pid_file.is_some() {
            PidFileBy::Program
        } else {
            PidFileBy::Launcher
        };
        let start = Start::new(self.start_argv(cx, node))
            .envs(cx.env.iter().cloned())
            .pid_file_by(by);
        self.daemon()
            .start(node, &start)
            .await
            .with_context(|| format!("starting {} on {}", self.config.name, node.name()))
    }

    async fn signal(&self, node: &Remote, signal: Signal) -> anyhow::Result<()> {
        self.daemon().signal(node, signal).await.with_context(|| {
            format!(
                "sending {signal} to {} on {}",
                self.config.name,
                node.name()
            )
        })
    }
}

#[async_trait]
impl Db for ExternalDb {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn setup(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.daemon().stop(node).await?;
        node.exec(&[
            "mkdir",
            "-p",
            "/opt/faultline/bin",
            "/opt/faultline/log",
            "/opt/faultline/run",
        ])
        .await?;
        node.exec(&["rm", "-f", &self.daemon().log_file]).await?;
        for upload in &self.config.upload {
            let from = match upload.env.as_deref().and_then(std::env::var_os) {
                Some(path) => PathBuf::from(path),
                None => self.base.join(&upload.from),
            };
            let to = self.expand(&upload.to, cx, node);
            node.upload(&from, &to, upload.mode)
                .await
                .with_context(|| format!("uploading {} to {}:{to}", from.display(), node.name()))?;
        }
        self.run_all(&self.config.install, cx, node, "the install")
            .await?;
        self.start_node(cx, node).await
    }

    async fn await_ready(&self, cx: &DbContext) -> anyhow::Result<()> {
        if self.config.ready.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        for node in &cx.remotes {
            let argv: Vec<String> = self
                .config
                .ready
                .iter()
                .map(|w| self.expand(w, cx, node))
                .collect();
            let words: Vec<&str> = argv.iter().map(String::as_str).collect();
            loop {
                let out = node.exec_status(&words).await?;
                if out.status == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!(
                        "{} was not ready on {} within {} s: `{}` exited {}: {}",
                        self.config.name,
                        node.name(),
                        READY_TIMEOUT.as_secs(),
                        faultline_control::shell_join(&words),
                        out.status,
                        out.stderr.trim()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    async fn teardown(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.daemon().stop(node).await?;
        self.run_all(&self.config.stop, cx, node, "the stop").await
    }

    fn kill(&self) -> Option<&dyn Kill> {
        self.config.capabilities.kill.then_some(self as &dyn Kill)
    }
    fn pause(&self) -> Option<&dyn Pause> {
        self.config.capabilities.pause.then_some(self as &dyn Pause)
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        Some(self)
    }
}

#[async_trait]
impl Kill for ExternalDb {
    async fn kill(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Kill).await
    }
    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.daemon().stop(node).await?;
        self.start_node(cx, node).await
    }
}

#[async_trait]
impl Pause for ExternalDb {
    async fn pause(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Stop).await
    }
    async fn resume(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Cont).await
    }
}

impl LogFiles for ExternalDb {
    fn log_files(&self, _node: &Remote) -> Vec<String> {
        let mut files = self.config.logs.clone();
        files.push(self.daemon().log_file);
        files
    }
}

/// The client program shared by every client process of the run.
pub struct ProgramClientFactory {
    shared: Arc<Program>,
    hosts: Vec<(String, String)>,
}

impl ProgramClientFactory {
    /// `command` runs in `dir` with `FAULTLINE_NODES=n1=addr,…` in its environment.
    pub fn new(
        command: Vec<String>,
        dir: PathBuf,
        hosts: Vec<(String, String)>,
        timeout: Duration,
    ) -> ProgramClientFactory {
        let nodes = hosts
            .iter()
            .map(|(n, a)| format!("{n}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        ProgramClientFactory {
            shared: Arc::new(Program {
                command,
                dir,
                nodes,
                timeout,
                next_id: AtomicU64::new(0),
                running: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
            hosts,
        }
    }
}

impl ClientFactory for ProgramClientFactory {
    fn open(&self, worker: usize, process: u64) -> anyhow::Result<Box<dyn Client>> {
        let node =
            (!self.hosts.is_empty()).then(|| self.hosts[worker % self.hosts.len()].0.clone());
        Ok(Box::new(ProgramClient {
            program: self.shared.clone(),
            process,
            node,
        }))
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Completion>>>>;

/// The client program and what it has not answered yet.
struct Program {
    command: Vec<String>,
    dir: PathBuf,
    nodes: String,
    timeout: Duration,
    next_id: AtomicU64,
    running: tokio::sync::Mutex<Option<Running>>,
    /// Counts starts, so an op's timeout restarts only the instance it was sent to.
    generation: AtomicU64,
}

struct Running {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    pending: Pending,
    generation: u64,
    /// Cleared by the reader when the program's stdout ends or turns to garbage.
    alive: Arc<std::sync::atomic::AtomicBool>,
}

/// Ends every op `pending` holds as `info`: the program can no longer answer them.
fn fail_pending(pending: &Pending, why: &str) {
    let waiting: Vec<_> = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    for (_, tx) in waiting {
        let _ = tx.send(Completion::info(why.to_owned()));
    }
}

/// One answer line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    id: u64,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    node: Option<String>,
}

impl Program {
    fn spawn(&self) -> anyhow::Result<Running> {
        use tracing::instrument::WithSubscriber;
        let mut command = tokio::process::Command::new(&self.command[0]);
        command
            .args(&self.command[1..])
            .current_dir(&self.dir)
            .env("FAULTLINE_NODES", &self.nodes)
            .env(
                "FAULTLINE_CLIENT_TIMEOUT_MS",
                self.timeout.as_millis().to_string(),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().with_context(|| {
            format!(
                "starting the client program {:?} in {}",
                self.command,
                self.dir.display()
            )
        })?;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(
            "client program started (instance {generation}): {:?}",
            self.command
        );
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let pending: Pending = Arc::default();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        tokio::spawn(
            async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "client-program", "stderr: {}", line.escape_debug());
                }
            }
            .with_current_subscriber(),
        );
        let (reader_pending, reader_alive) = (pending.clone(), alive.clone());
        tokio::spawn(
            async move {
                let why = read_answers(stdout, &reader_pending).await;
                reader_alive.store(false, Ordering::SeqCst);
                tracing::warn!(
                    "client program (instance {generation}): {why}; its unanswered ops end info"
                );
                fail_pending(&reader_pending, &format!("client program: {why}"));
            }
            .with_current_subscriber(),
        );
        Ok(Running {
            child,
            stdin,
            pending,
            generation,
            alive,
        })
    }

    /// Stops the instance `generation` (if it still runs) so the next op starts a new one.
    async fn restart(&self, generation: u64, why: &str) {
        let mut running = self.running.lock().await;
        if running.as_ref().is_some_and(|r| r.generation == generation) {
            if let Some(mut old) = running.take() {
                tracing::warn!("stopping the client program (instance {generation}): {why}");
                let _ = old.child.start_kill();
                let _ = old.child.wait().await;
                fail_pending(&old.pending, &format!("client program stopped: {why}"));
            }
        }
    }

    async fn invoke(&self, process: u64, node: Option<&str>, op: &Invocation) -> Completion {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = json!({
            "id": id,
            "process": process,
            "f": op.f,
            "key": op.key.as_ref().map(key_json),
            "value": op.value,
            "node": node,
        })
        .to_string()
            + "\n";
        let (tx, rx) = oneshot::channel();
        let generation = {
            let mut running = self.running.lock().await;
            if running
                .as_ref()
                .is_some_and(|r| !r.alive.load(Ordering::SeqCst))
            {
                if let Some(mut dead) = running.take() {
                    let _ = dead.child.start_kill();
                    let _ = dead.child.wait().await;
                }
            }
            if running.is_none() {
                match self.spawn() {
                    Ok(started) => *running = Some(started),
                    // Never sent: certainly not performed.
                    Err(err) => return Completion::fail(format!("{err:#}")),
                }
            }
            let Some(r) = running.as_mut() else {
                return Completion::fail("no client program");
            };
            r.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, tx);
            if let Err(err) = r.stdin.write_all(line.as_bytes()).await {
                // Part of the line may have reached it: unknown.
                r.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                r.alive.store(false, Ordering::SeqCst);
                return Completion::info(format!("writing to the client program: {err}"));
            }
            let _ = r.stdin.flush().await;
            r.generation
        };
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(done)) => done,
            Ok(Err(_)) => Completion::info("client program: the op was dropped"),
            Err(_) => {
                let why = format!(
                    "no answer to op {id} within the client timeout of {} ms",
                    self.timeout.as_millis()
                );
                self.restart(generation, &why).await;
                Completion::info(format!("client program: {why}"))
            }
        }
    }
}

fn key_json(key: &Key) -> Value {
    serde_json::to_value(key).unwrap_or(Value::Null)
}

/// Reads answers until the program's stdout ends or turns to garbage; says which.
async fn read_answers(stdout: tokio::process::ChildStdout, pending: &Pending) -> String {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(ANSWER_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        number += 1;
        match read {
            Ok(0) => return "it exited (stdout closed)".into(),
            Err(err) => return format!("reading its stdout: {err}"),
            Ok(_) if line.len() > ANSWER_BYTES_MAX => {
                return format!("answer line {number} is longer than {ANSWER_BYTES_MAX} bytes")
            }
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let answer: Answer = match serde_json::from_str(text.trim()) {
            Ok(a) => a,
            Err(err) => {
                return format!(
                    "stdout line {number} is not an answer ({err}): {}",
                    text.trim()
                        .chars()
                        .take(200)
                        .collect::<String>()
                        .escape_debug()
                )
            }
        };
        let kind = match answer.kind.as_str() {
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            other => {
                return format!(
                    "stdout line {number}: type {:?} is not ok, fail or info",
                    other.escape_debug().to_string()
                )
            }
        };
        let waiting = pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&answer.id);
        let Some(tx) = waiting else {
            return format!(
                "stdout line {number} answers id {}, which is not waiting for an answer",
                answer.id
            );
        };
        let _ = tx.send(Completion {
            kind,
            value: answer.value,
            error: answer.error,
            node: answer.node,
        });
    }
}

use tokio::io::AsyncReadExt as _;

/// One client process: its ops go to the shared program, tagged with its process id.
pub struct ProgramClient {
    program: Arc<Program>,
    process: u64,
    node: Option<String>,
}

#[async_trait]
impl Client for ProgramClient {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        self.program
            .invoke(self.process, self.node.as_deref(), op)
            .await
    }
    fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}
