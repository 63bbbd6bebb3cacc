//! results.json's one schema (docs/contracts.md): the checkers' result types, and the file
//! that adds the run's stats and error to them. Every field a past version may not have
//! written has a serde default, so older files still read.

use crate::history::{Key, Op, OpType, Operation, Outcome, Process};
use crate::stats::Stats;
use crate::verdict::Validity;
use serde::{Deserialize, Serialize};

fn certain() -> bool {
    true
}

fn unknown() -> Validity {
    Validity::Unknown
}

/// results.json: what `faultline run` writes and `faultline report` rewrites, through the
/// same [`crate::analyze`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    #[serde(default = "unknown")]
    pub valid: Validity,
    #[serde(default)]
    pub checkers: Vec<CheckerResult>,
    /// None only when no history was recorded (the run failed before its workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    /// Why the run itself failed (exit 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What reading the history found and skipped (a torn last line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What `check_history` returns: the combined verdict and every checker's result. The
/// controller adds `stats` and `error` when it writes `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub valid: Validity,
    pub checkers: Vec<CheckerResult>,
}

impl Results {
    pub fn new(checkers: Vec<CheckerResult>) -> Self {
        let valid = checkers
            .iter()
            .fold(Validity::Valid, |acc, c| acc.combine(c.valid()));
        Results { valid, checkers }
    }
}

/// One checker's verdict and details, tagged by `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name")]
pub enum CheckerResult {
    #[serde(rename = "linearizable")]
    Linearizable(LinearizableResult),
    #[serde(rename = "mutex")]
    Mutex(MutexResult),
    #[serde(rename = "set")]
    Set(crate::set::SetResult),
    #[serde(rename = "txn")]
    Txn(crate::txn::TxnResult),
    /// A checker this version does not know (a newer file): read, shown as undecided.
    #[serde(other)]
    Other,
}

impl CheckerResult {
    pub fn valid(&self) -> Validity {
        match self {
            CheckerResult::Linearizable(r) => r.valid,
            CheckerResult::Mutex(r) => r.valid,
            CheckerResult::Set(r) => r.valid,
            CheckerResult::Txn(r) => r.valid,
            CheckerResult::Other => Validity::Unknown,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            CheckerResult::Linearizable(_) => "linearizable",
            CheckerResult::Mutex(_) => "mutex",
            CheckerResult::Set(_) => "set",
            CheckerResult::Txn(_) => "txn",
            CheckerResult::Other => "other",
        }
    }

    /// Per-key verdicts (linearizability), empty for other checkers.
    pub fn keys(&self) -> &[KeyResult] {
        match self {
            CheckerResult::Linearizable(r) => &r.keys,
            _ => &[],
        }
    }

    /// Per-lock verdicts (mutual exclusion), empty for other checkers.
    pub fn locks(&self) -> &[LockResult] {
        match self {
            CheckerResult::Mutex(r) => &r.locks,
            _ => &[],
        }
    }

    /// The checker's own words on the whole history: why it could not decide, or (the set
    /// checker) why it is not valid.
    pub fn error(&self) -> Option<&str> {
        match self {
            CheckerResult::Mutex(r) => r.error.as_deref(),
            CheckerResult::Set(r) => r.error.as_deref().or(r.explanation.as_deref()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearizableResult {
    #[serde(default)]
    pub model: String,
    #[serde(default = "unknown")]
    pub valid: Validity,
    #[serde(default)]
    pub duration_ms: f64,
    #[serde(default)]
    pub keys: Vec<KeyResult>,
}

/// The verdict for one independent key (or for the whole history when the model does not
/// split by key; then `key` is null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyResult {
    #[serde(default)]
    pub key: Option<Key>,
    #[serde(default = "unknown")]
    pub valid: Validity,
    /// Operations checked (after leaving out those that did not happen).
    #[serde(default)]
    pub ops: usize,
    #[serde(default)]
    pub duration_ms: f64,
    /// Why the verdict is unknown (limit reached, bad op); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub counterexample: Option<Counterexample>,
}

/// Why a key is not linearizable, for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counterexample {
    /// A smallest set of ops found that cannot be linearized on its own.
    #[serde(default)]
    pub ops: Vec<OpRef>,
    /// The longest order found, in linearization order.
    #[serde(default)]
    pub partial_linearization: Vec<OpRef>,
    /// The model state after `partial_linearization`, where the search got stuck.
    #[serde(default)]
    pub state: serde_json::Value,
    #[serde(default)]
    pub explanation: String,
}

/// One operation (invoke plus completion), pointing back into the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRef {
    pub process: Process,
    pub f: String,
    #[serde(default)]
    pub key: Option<Key>,
    #[serde(default)]
    pub value: serde_json::Value,
    #[serde(rename = "type")]
    pub outcome: Outcome,
    pub invoke_index: u64,
    #[serde(default)]
    pub complete_index: Option<u64>,
    #[serde(default)]
    pub invoke_time: u64,
    #[serde(default)]
    pub complete_time: Option<u64>,
}

impl OpRef {
    /// The value shown is the completion's when the op completed `ok` (a read's result),
    /// otherwise the invoke's (what was attempted).
    pub fn new(ops: &[Op], operation: Operation) -> Self {
        let inv = &ops[operation.invoke];
        let comp = operation.complete.map(|c| &ops[c]);
        let outcome = match comp.map(|c| c.kind) {
            None | Some(OpType::Invoke) => Outcome::Pending,
            Some(OpType::Ok) => Outcome::Ok,
            Some(OpType::Fail) => Outcome::Fail,
            Some(OpType::Info) => Outcome::Info,
        };
        let value = match comp {
            Some(c) if c.kind == OpType::Ok && !c.value.is_null() => c.value.clone(),
            _ => inv.value.clone(),
        };
        OpRef {
            process: inv.process,
            f: inv.f.clone(),
            key: inv.key.clone(),
            value,
            outcome,
            invoke_index: inv.index,
            complete_index: comp.map(|c| c.index),
            invoke_time: inv.time,
            complete_time: comp.map(|c| c.time),
        }
    }

    /// `p3 cas [1,2] → fail  [#10..#14]`: one line a person can read.
    pub fn describe(&self) -> String {
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info (unknown outcome)",
            Outcome::Pending => "pending (never completed)",
        };
        let end = match self.complete_index {
            Some(c) => format!("#{c}"),
            None => "end".to_string(),
        };
        let value = if self.value.is_null() {
            "nil".to_string()
        } else {
            self.value.to_string()
        };
        format!(
            "process {} {} {} → {}   [invoked #{} .. completed {}]",
            self.process, self.f, value, outcome, self.invoke_index, end
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutexResult {
    #[serde(default = "unknown")]
    pub valid: Validity,
    #[serde(default)]
    pub duration_ms: f64,
    #[serde(default)]
    pub locks: Vec<LockResult>,
    /// Why the history could not be checked (then `valid` is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockResult {
    #[serde(default)]
    pub key: Option<Key>,
    #[serde(default = "unknown")]
    pub valid: Validity,
    #[serde(default)]
    pub holds: Vec<Hold>,
    #[serde(default)]
    pub violations: Vec<Violation>,
}

/// One (possible) holding of a lock by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub process: Process,
    /// 0 when a file (a hand-written or synthetic one) leaves it out.
    #[serde(default)]
    pub acquire_index: u64,
    /// Index of the acquire's `ok` (or `info`) completion; null when still pending.
    #[serde(default)]
    pub grant_index: Option<u64>,
    /// Index of the release's invoke; null when the client never released.
    #[serde(default)]
    pub release_index: Option<u64>,
    /// Certain holds: when the grant was acknowledged. Uncertain ones: the acquire's invoke.
    pub start: u64,
    /// When the hold certainly ended from the client's side (its release was invoked), or
    /// its lease could have expired; null: possibly held to the end of the history.
    #[serde(default)]
    pub end: Option<u64>,
    #[serde(default)]
    pub token: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// false for a hold whose acquire ended in `info` or never completed.
    #[serde(default = "certain")]
    pub certain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViolationKind {
    Overlap,
    Fencing,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::Overlap => "overlap",
            ViolationKind::Fencing => "fencing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub holds: [Hold; 2],
    pub explanation: String,
}

#[cfg(test)]
mod tests {
    use crate::{check_history, CheckOptions};
    use serde_json::json;

    #[test]
    fn linearizable_result_serialises_as_contracts_say() {
        // write 1 completes, then a read sees 2: invalid, with a counterexample.
        let ops: Vec<crate::Op> = [
            json!({"index": 0, "time": 1, "type": "invoke", "process": 0, "f": "write", "key": "k1", "value": 1}),
            json!({"index": 1, "time": 2, "type": "ok", "process": 0, "f": "write", "key": "k1", "value": 1}),
            json!({"index": 2, "time": 3, "type": "invoke", "process": 1, "f": "read", "key": "k1", "value": null}),
            json!({"index": 3, "time": 4, "type": "ok", "process": 1, "f": "read", "key": "k1", "value": 2}),
            json!({"index": 4, "time": 5, "type": "invoke", "process": 2, "f": "cas", "key": 7, "value": [null, 3]}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let mut options = CheckOptions::default();
        options.limits.exhaustive = true;
        let r = check_history(&ops, &options).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["valid"], false);
        let c = &v["checkers"][0];
        assert_eq!(c["name"], "linearizable");
        assert_eq!(c["model"], "cas-register");
        assert!(c["duration_ms"].is_number());
        let keys = c["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        let bad = keys.iter().find(|k| k["key"] == "k1").unwrap();
        assert_eq!(bad["valid"], false);
        assert_eq!(bad["ops"], 2);
        let cx = &bad["counterexample"];
        assert!(cx["explanation"].as_str().unwrap().contains("read 2"));
        let op = &cx["ops"][0];
        for field in [
            "process",
            "f",
            "key",
            "value",
            "type",
            "invoke_index",
            "complete_index",
            "invoke_time",
            "complete_time",
        ] {
            assert!(op.get(field).is_some(), "OpRef lacks {field}: {op}");
        }
        let pending = keys.iter().find(|k| k["key"] == 7).unwrap();
        assert_eq!(pending["valid"], true);
        assert!(pending["counterexample"].is_null());
        // And it reads back.
        let back: crate::Results = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
