//! Clients: how one process performs an operation against the system under test.

use crate::generator::Invocation;
use async_trait::async_trait;
use faultline_checker::history::OpType;
use serde_json::Value;

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `Ok`, `Fail` (certainly did not happen) or `Info` (unknown).
    pub kind: OpType,
    /// The value to record; `None` records the invocation's value (e.g. a write's).
    pub value: Option<Value>,
    pub error: Option<String>,
    /// The host that answered, when it differs from the one the client is bound to.
    pub node: Option<String>,
}

impl Completion {
    pub fn ok(value: Option<Value>) -> Completion {
        Completion {
            kind: OpType::Ok,
            value,
            error: None,
            node: None,
        }
    }

    /// The operation certainly did not take effect.
    pub fn fail(error: impl Into<String>) -> Completion {
        Completion {
            kind: OpType::Fail,
            value: None,
            error: Some(error.into()),
            node: None,
        }
    }

    /// The outcome is unknown: the process that issued it is retired.
    pub fn info(error: impl Into<String>) -> Completion {
        Completion {
            kind: OpType::Info,
            value: None,
            error: Some(error.into()),
            node: None,
        }
    }

    pub fn at_node(mut self, node: impl Into<String>) -> Completion {
        self.node = Some(node.into());
        self
    }
}

/// One client process. Its `invoke` must not panic on anything the system answers, and
/// must turn every error into `fail` (only when the op certainly did not happen) or `info`.
#[async_trait]
pub trait Client: Send {
    async fn invoke(&mut self, op: &Invocation) -> Completion;
    /// The host this client talks to, recorded with each of its operations.
    fn node(&self) -> Option<&str> {
        None
    }
}

/// Opens a client for a process; called again with a fresh process id after an `info`.
pub trait ClientFactory: Send + Sync {
    fn open(&self, worker: usize, process: u64) -> anyhow::Result<Box<dyn Client>>;
}

/// A client that does nothing and always succeeds: measures the controller's own cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopClient;

#[async_trait]
impl Client for NoopClient {
    async fn invoke(&mut self, _op: &Invocation) -> Completion {
        Completion::ok(None)
    }
}

impl ClientFactory for NoopClient {
    fn open(&self, _worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(NoopClient))
    }
}
