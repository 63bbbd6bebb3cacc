//! The system under test's lifecycle: a small `Db` trait plus optional abilities (`Kill`,
//! `Pause`, `Primaries`, `LogFiles`), as Jepsen splits them.

use async_trait::async_trait;
use faultline_control::Remote;
use std::path::PathBuf;

/// What a db needs to know about the whole cluster while it works on one host.
#[derive(Clone)]
pub struct DbContext {
    /// Every host of the test, in order (`n1`, `n2`, …).
    pub remotes: Vec<Remote>,
    /// The run folder (test.json, history.jsonl, nodes/ …).
    pub run_dir: PathBuf,
    /// Environment every process of the system under test must start with: libfaketime's
    /// when clock faults run on local hosts (`LD_PRELOAD`, its timestamp file, …), empty
    /// otherwise. Every `Db` passes it to each process it starts (and restarts), so clock
    /// faults reach every system the same way.
    pub env: Vec<(String, String)>,
}

impl DbContext {
    pub fn host_names(&self) -> Vec<String> {
        self.remotes.iter().map(|r| r.name().to_owned()).collect()
    }
}

/// Install, start and remove the system on hosts.
#[async_trait]
pub trait Db: Send + Sync {
    /// The name test.json records (`raft`, `paxos`, …).
    fn name(&self) -> &str;

    /// Installs and starts the system on one host; called on every host in parallel.
    /// Must first clear what an earlier, crashed run left (processes, data).
    async fn setup(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()>;

    /// Waits until the cluster as a whole serves clients (a leader is elected, …).
    async fn await_ready(&self, _cx: &DbContext) -> anyhow::Result<()> {
        Ok(())
    }

    /// Stops the system on one host and removes its data; log files stay for download.
    /// Must succeed when the system is not running.
    async fn teardown(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()>;

    fn kill(&self) -> Option<&dyn Kill> {
        None
    }
    fn pause(&self) -> Option<&dyn Pause> {
        None
    }
    fn primaries(&self) -> Option<&dyn Primaries> {
        None
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        None
    }
}

/// Crash and restart a host's process (SIGKILL, then start again with the same data).
#[async_trait]
pub trait Kill: Send + Sync {
    async fn kill(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()>;
    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()>;
}

/// Freeze and thaw a host's process (SIGSTOP / SIGCONT).
#[async_trait]
pub trait Pause: Send + Sync {
    async fn pause(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()>;
    async fn resume(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()>;
}

/// Which hosts currently believe they lead, for systems that have leaders.
#[async_trait]
pub trait Primaries: Send + Sync {
    async fn primaries(&self, cx: &DbContext) -> anyhow::Result<Vec<String>>;
}

/// Remote paths of a host's logs, downloaded into `nodes/<host>/` at the end of a run.
pub trait LogFiles: Send + Sync {
    fn log_files(&self, node: &Remote) -> Vec<String>;
}

/// A db that installs nothing: for runs whose client needs no server (benchmarks, tests
/// of the run itself).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopDb;

#[async_trait]
impl Db for NoopDb {
    fn name(&self) -> &str {
        "noop"
    }
    async fn setup(&self, _cx: &DbContext, _node: &Remote) -> anyhow::Result<()> {
        Ok(())
    }
    async fn teardown(&self, _cx: &DbContext, _node: &Remote) -> anyhow::Result<()> {
        Ok(())
    }
}
