//! Models: what a correct sequential system would answer. A `Model` is a trait, so a user
//! can check their own system; the built-in ones are `register`, `cas-register`, `kv`,
//! `kv-map`, `multi-register` and `mutex`.

mod kv;
mod multi_register;
mod mutex;
mod register;

pub use kv::{KvModel, KvOp};
pub use multi_register::{MultiRegisterModel, TxnOp};
pub use mutex::{MutexModel, MutexOp};
pub use register::{Convention, RegOp, RegisterModel};

use crate::history::Op;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// One operation of the history as a model sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared<O> {
    /// The op did not happen (e.g. it failed): leave it out.
    Skip,
    /// It happened between its invoke and its completion.
    Known(O),
    /// Its outcome is unknown (`info`, or still pending at the end): it may take effect at
    /// any point after its invoke, or never. The op itself must then accept any output.
    Unknown(O),
}

/// A sequential specification. States must be cheap to clone and hash: the search keeps
/// one copy of each distinct state and looks transitions up by state id.
pub trait Model: Send + Sync {
    /// One operation with its input and, when known, its output.
    type Op: Debug + Send + Sync;
    type State: Clone + Eq + Hash + Debug + Send;

    /// The name shown in results, e.g. `cas-register`.
    fn name(&self) -> String;

    /// Whether ops on different keys are independent and checked apart (P-compositionality).
    fn by_key(&self) -> bool {
        true
    }

    /// Turns one operation (invoke and, unless pending, its completion) into the model's
    /// form. An error names what was expected; the key's verdict is then `unknown`.
    fn prepare(&self, invoke: &Op, completion: Option<&Op>) -> Result<Prepared<Self::Op>, String>;

    fn init(&self) -> Self::State;

    /// The state after `op`, or `None` when `op` is not legal in `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// Whether `op` never changes any state (a read). The search linearizes a legal
    /// read-only op at once without trying alternatives, which is always safe: any order
    /// that works can be changed to put it first. Default: false (no such shortcut).
    fn is_read_only(&self, _op: &Self::Op) -> bool {
        false
    }

    /// Whether `op` is legal in every state and never leads back to a state it left
    /// (an append of a non-empty string): the states a set of ops holding it can produce
    /// then have no end, so the counterexample relaxer does not try to list them.
    /// Default: false (they are listed until a bound stops it).
    fn grows_without_end(&self, _op: &Self::Op) -> bool {
        false
    }

    /// Whether `may_become_legal` can ever answer false for `op`. The search looks ahead
    /// only for such ops, and not at all when a sub-history has none. Default: false.
    fn bounds_future(&self, _op: &Self::Op) -> bool {
        false
    }

    /// Whether `op` may take the state somewhere `may_become_legal` cannot foresee from
    /// the current state alone (a put that replaces an appended string). Default: true.
    fn resets(&self, _op: &Self::Op) -> bool {
        true
    }

    /// Look-ahead pruning: false only when `op` is illegal in every state reachable from
    /// `state` by any sequence of ops drawn from the ops that do not `reset` (any number,
    /// any values) and the ops in `resets` (each any number of times, any order). The
    /// search asks this for every op that must still be linearized, passing the reset ops
    /// that could come before it, and abandons a configuration on false: e.g. a `get`
    /// that returned "ab" can never be satisfied once appends made the value "ac" unless a
    /// put may still intervene. A wrong false makes valid histories invalid, so answer
    /// true when unsure. Default: true (no pruning).
    fn may_become_legal(
        &self,
        _state: &Self::State,
        _op: &Self::Op,
        _resets: &[&Self::Op],
    ) -> bool {
        true
    }

    /// The state as JSON, for counterexamples.
    fn state_json(&self, state: &Self::State) -> serde_json::Value;

    /// Bytes a state holds, for the memory limit.
    fn state_bytes(&self, _state: &Self::State) -> usize {
        std::mem::size_of::<Self::State>()
    }

    /// Why `op` is not legal in `state`, in words.
    fn why_illegal(&self, state: &Self::State, op: &Self::Op) -> String {
        format!(
            "{op:?} is not legal when the state is {}",
            self.state_json(state)
        )
    }
}

/// A JSON value that can be hashed and compared cheaply (strings shared, not copied).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Str(Arc<str>),
    /// Anything else, as canonical JSON text (objects have sorted keys in serde_json).
    Json(Arc<str>),
}

impl From<&serde_json::Value> for Val {
    fn from(v: &serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Val::Null,
            serde_json::Value::Bool(b) => Val::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Json(n.to_string().into()),
            },
            serde_json::Value::String(s) => Val::Str(s.as_str().into()),
            other => Val::Json(other.to_string().into()),
        }
    }
}

impl Val {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Val::Null => serde_json::Value::Null,
            Val::Bool(b) => serde_json::Value::Bool(*b),
            Val::Int(i) => serde_json::Value::from(*i),
            Val::Str(s) => serde_json::Value::String(s.to_string()),
            Val::Json(s) => serde_json::from_str(s).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Null => f.write_str("nil"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Str(s) => write!(f, "{s:?}"),
            Val::Json(s) => f.write_str(s),
        }
    }
}

/// The built-in model names `--model` accepts.
pub const MODEL_NAMES: &[&str] = &[
    "register",
    "cas-register",
    "cas-register:knossos",
    "cas-register:porcupine",
    "kv",
    "kv-map",
    "multi-register",
    "mutex",
];
