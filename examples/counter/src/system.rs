//! The counter as a faultline system: its db (the server on the first host, started and
//! signalled through faultline's daemon helpers), its client, its workload (generator and
//! model) — everything a user writes to test a system of their own.

use async_trait::async_trait;
use faultline::checker::history::{Key, Op, OpType};
use faultline::checker::model::{Model, Prepared};
use faultline::control::daemon::{Daemon, PidFileBy, Signal, Start};
use faultline::control::Remote;
use faultline::core::check::Linearizable;
use faultline::core::client::{Client, ClientFactory, Completion};
use faultline::core::db::{Db, DbContext, Kill, LogFiles, Pause};
use faultline::core::generator::{Invocation, OpGenerator};
use faultline::core::run::{RunOptions, Test};
use faultline::{Capabilities, Named, System, SystemRequest, Workload, WorkloadParts};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const PORT: u16 = 7301;
const REMOTE_BINARY: &str = "/opt/faultline/bin/faultline-counter";
const DATA_DIR: &str = "/opt/faultline/data/counter";
const PID_FILE: &str = "/opt/faultline/run/counter.pid";
const STDOUT_FILE: &str = "/opt/faultline/log/counter.stdout";
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// `--db counter`.
pub struct CounterSystem;

impl System for CounterSystem {
    fn name(&self) -> &str {
        "counter"
    }
    fn description(&self) -> &str {
        "an example of one's own system: a durable counter service on the first host (examples/counter)"
    }
    fn workloads(&self) -> Vec<String> {
        vec!["counter".into()]
    }
    fn bugs(&self) -> Vec<Named> {
        vec![Named::new(
            "lost-update",
            "an add reads the count, lets other requests run, then writes what it read plus one",
        )]
    }
    fn capabilities(&self, _request: &SystemRequest) -> Capabilities {
        Capabilities::default()
    }
    fn build(
        &self,
        request: &SystemRequest,
        workload: WorkloadParts,
        options: RunOptions,
    ) -> anyhow::Result<Test> {
        let binary = std::env::current_exe()?;
        let server = &options.hosts[0];
        let client = CounterClientFactory {
            node: server.name.clone(),
            address: format!("{}:{PORT}", server.address),
            timeout: request.client_timeout,
        };
        let db = CounterDb {
            binary,
            bugs: request.bugs.clone(),
        };
        Ok(workload.into_test(options, Arc::new(db), Arc::new(client)))
    }
}

/// The server, on the first host only (the others stand by: a partition cuts clients off
/// from it, a kill on another host does nothing).
pub struct CounterDb {
    binary: PathBuf,
    bugs: Vec<String>,
}

impl CounterDb {
    fn daemon() -> Daemon {
        Daemon::new("faultline-counter", PID_FILE, STDOUT_FILE)
    }

    fn serves(cx: &DbContext, node: &Remote) -> bool {
        cx.remotes.first().is_some_and(|r| r.name() == node.name())
    }

    /// The other hosts run nothing: a fault aimed at them has nothing to hit.
    async fn signal(cx: &DbContext, node: &Remote, signal: Signal) -> anyhow::Result<()> {
        if Self::serves(cx, node) {
            Self::daemon().signal(node, signal).await?;
        }
        Ok(())
    }

    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        let mut argv = vec![
            REMOTE_BINARY.to_owned(),
            "serve".into(),
            "--listen".into(),
            format!("{}:{PORT}", node.address()),
            "--data-dir".into(),
            DATA_DIR.into(),
            "--pid-file".into(),
            PID_FILE.into(),
        ];
        for bug in &self.bugs {
            argv.extend(["--bug".into(), bug.clone()]);
        }
        let start = Start::new(argv)
            .envs(cx.env.iter().cloned())
            .pid_file_by(PidFileBy::Program);
        Self::daemon().start(node, &start).await?;
        Ok(())
    }
}

#[async_trait]
impl Db for CounterDb {
    fn name(&self) -> &str {
        "counter"
    }
    async fn setup(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        Self::daemon().stop(node).await?;
        node.exec(&["rm", "-rf", DATA_DIR, STDOUT_FILE]).await?;
        node.exec(&[
            "mkdir",
            "-p",
            "/opt/faultline/bin",
            "/opt/faultline/run",
            "/opt/faultline/log",
        ])
        .await?;
        if !Self::serves(cx, node) {
            // Nothing runs here; an empty log says so in the run folder.
            node.exec(&["touch", STDOUT_FILE]).await?;
            return Ok(());
        }
        node.upload(&self.binary, REMOTE_BINARY, 0o755).await?;
        self.start(cx, node).await
    }
    async fn await_ready(&self, cx: &DbContext) -> anyhow::Result<()> {
        let Some(server) = cx.remotes.first() else {
            anyhow::bail!("the counter needs a host");
        };
        let address = format!("{}:{PORT}", server.address());
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if request(&address, "read ready", Duration::from_secs(1))
                .await
                .is_ok()
            {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the counter on {address} did not answer within {} s",
                READY_TIMEOUT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    async fn teardown(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        Self::daemon().stop(node).await?;
        node.exec(&["rm", "-rf", DATA_DIR]).await?;
        Ok(())
    }
    fn kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }
    fn pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        Some(self)
    }
}

#[async_trait]
impl Kill for CounterDb {
    async fn kill(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        CounterDb::signal(cx, node, Signal::Kill).await
    }
    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        if !Self::serves(cx, node) {
            return Ok(());
        }
        Self::daemon().stop(node).await?;
        CounterDb::start(self, cx, node).await
    }
}

#[async_trait]
impl Pause for CounterDb {
    async fn pause(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        CounterDb::signal(cx, node, Signal::Stop).await
    }
    async fn resume(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        CounterDb::signal(cx, node, Signal::Cont).await
    }
}

impl LogFiles for CounterDb {
    fn log_files(&self, _node: &Remote) -> Vec<String> {
        vec![STDOUT_FILE.into()]
    }
}

/// Why a request got no answer, which decides `fail` or `info`.
enum RequestError {
    /// Nothing reached the server: the op did not happen.
    NotSent(String),
    /// Sent, but no answer came: it may have happened.
    NoAnswer(String),
    /// The server answered `err …`.
    Refused(String),
}

/// One request on a fresh connection (the server is small; a connection per op keeps a
/// killed server from leaving a client on a dead socket).
async fn request(address: &str, line: &str, timeout: Duration) -> Result<u64, RequestError> {
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| RequestError::NotSent("connect timed out".into()))?
        .map_err(|e| RequestError::NotSent(format!("connect: {e}")))?;
    let exchange = async {
        stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut answer = String::new();
        BufReader::new(&mut stream)
            .read_line(&mut answer)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        Ok::<String, String>(answer)
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| RequestError::NoAnswer("timed out".into()))?
        .map_err(RequestError::NoAnswer)?;
    let answer = answer.trim_end();
    if let Some(n) = answer.strip_prefix("ok ") {
        return n
            .parse()
            .map_err(|_| RequestError::NoAnswer(format!("unreadable answer {answer:?}")));
    }
    match answer.strip_prefix("err ") {
        Some(why) => Err(RequestError::Refused(why.to_owned())),
        None if answer.is_empty() => Err(RequestError::NoAnswer("connection closed".into())),
        None => Err(RequestError::NoAnswer(format!(
            "unreadable answer {answer:?}"
        ))),
    }
}

pub struct CounterClientFactory {
    node: String,
    address: String,
    timeout: Duration,
}

impl ClientFactory for CounterClientFactory {
    fn open(&self, _worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(CounterClient {
            node: self.node.clone(),
            address: self.address.clone(),
            timeout: self.timeout,
        }))
    }
}

struct CounterClient {
    node: String,
    address: String,
    timeout: Duration,
}

#[async_trait]
impl Client for CounterClient {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let key = match &op.key {
            Some(Key::Int(k)) => k.to_string(),
            other => {
                return Completion::fail(format!("the counter's keys are integers, not {other:?}"))
            }
        };
        let answer = request(&self.address, &format!("{} {key}", op.f), self.timeout).await;
        match (op.f, answer) {
            // An add's count is not recorded: the model checks reads against the adds.
            ("read", Ok(n)) => Completion::ok(Some(json!(n))),
            (_, Ok(_)) => Completion::ok(None),
            (_, Err(RequestError::NotSent(why) | RequestError::Refused(why))) => {
                Completion::fail(why)
            }
            // A read changes nothing: unanswered, it simply did not return a value.
            ("read", Err(RequestError::NoAnswer(why))) => Completion::fail(why),
            (_, Err(RequestError::NoAnswer(why))) => Completion::info(why),
        }
    }
    fn node(&self) -> Option<&str> {
        Some(&self.node)
    }
}

/// `counter`: adds and reads on independent keys; a read must return the number of adds
/// before it.
pub struct CounterWorkload;

impl Workload for CounterWorkload {
    fn name(&self) -> &str {
        "counter"
    }
    fn description(&self) -> &str {
        "add 1 and read on independent keys; linearizable against a counter (examples/counter)"
    }
    fn build(&self, _request: &SystemRequest) -> anyhow::Result<WorkloadParts> {
        let mut parts = WorkloadParts::new(Arc::new(CounterGenerator));
        // No built-in model knows a counter: this workload's own runs as a checker.
        parts.check.model = None;
        parts.check.mutex = Some(false);
        // Its `add` is not a set's: keep the set checker from guessing by the name.
        parts.check.set = Some(false);
        parts
            .checkers
            .push(Arc::new(Linearizable::new(CounterModel)));
        Ok(parts)
    }
}

pub struct CounterGenerator;

impl OpGenerator for CounterGenerator {
    fn next_op(&self, key: &Key, rng: &mut ChaCha8Rng) -> Invocation {
        let f = if rng.random_bool(0.6) { "add" } else { "read" };
        Invocation {
            f,
            key: Some(key.clone()),
            value: Value::Null,
        }
    }
    fn final_op(&self, key: &Key) -> Option<Invocation> {
        Some(Invocation {
            f: "read",
            key: Some(key.clone()),
            value: Value::Null,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterOp {
    Add,
    Read(u64),
}

/// A counter starting at 0: an add increments it, a read returns it.
pub struct CounterModel;

impl Model for CounterModel {
    type Op = CounterOp;
    type State = u64;

    fn name(&self) -> String {
        "counter".into()
    }
    fn prepare(&self, invoke: &Op, completion: Option<&Op>) -> Result<Prepared<CounterOp>, String> {
        let kind = completion.map(|c| c.kind);
        Ok(match invoke.f.as_str() {
            "add" => match kind {
                Some(OpType::Ok) => Prepared::Known(CounterOp::Add),
                Some(OpType::Fail) => Prepared::Skip,
                _ => Prepared::Unknown(CounterOp::Add),
            },
            "read" => match (kind, completion.map(|c| &c.value)) {
                (Some(OpType::Ok), Some(v)) => Prepared::Known(CounterOp::Read(
                    v.as_u64()
                        .ok_or_else(|| format!("a read returns a count, not {v}"))?,
                )),
                // A read without a value constrains nothing.
                _ => Prepared::Skip,
            },
            other => return Err(format!("expected f add or read, got {other:?}")),
        })
    }
    fn init(&self) -> u64 {
        0
    }
    fn step(&self, count: &u64, op: &CounterOp) -> Option<u64> {
        match op {
            CounterOp::Add => Some(count + 1),
            CounterOp::Read(n) => (n == count).then_some(*count),
        }
    }
    fn is_read_only(&self, op: &CounterOp) -> bool {
        matches!(op, CounterOp::Read(_))
    }
    fn state_json(&self, count: &u64) -> Value {
        json!(count)
    }
    fn why_illegal(&self, count: &u64, op: &CounterOp) -> String {
        match op {
            CounterOp::Read(n) => format!("read {n}, but the count was {count}"),
            CounterOp::Add => "an add is always legal".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_counts_adds_and_checks_reads() {
        let m = CounterModel;
        let two = m
            .step(&m.init(), &CounterOp::Add)
            .and_then(|s| m.step(&s, &CounterOp::Add));
        assert_eq!(two, Some(2));
        assert_eq!(m.step(&2, &CounterOp::Read(2)), Some(2));
        assert_eq!(m.step(&2, &CounterOp::Read(1)), None);
        assert!(m
            .why_illegal(&2, &CounterOp::Read(1))
            .contains("count was 2"));
    }
}
