//! What the report reads beyond results.json (whose one schema is the checker crate's
//! `RunResults`): a tolerant mirror of `test.json` (docs/contracts.md), and a run's overall
//! verdict as the index, the summary and JUnit show it.

use faultline_checker::history::Key;
use faultline_checker::verdict::Validity;
use faultline_checker::RunResults;
use serde::{Deserialize, Serialize};

/// `test.json`: the configuration of one run. Only the fields the report reads are typed;
/// the report shows the whole file as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TestConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub faultline_version: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub db: Option<String>,
    #[serde(default)]
    pub workload: Option<String>,
    /// A planted bug's name, or null.
    #[serde(default)]
    pub bug: Option<serde_json::Value>,
    #[serde(default)]
    pub nemesis: Vec<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub time_limit_s: Option<f64>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub nemesis_perf: Vec<NemesisPerf>,
}

/// How one kind of fault shows up in a history: the nemesis `f`s that start and stop it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NemesisPerf {
    pub name: String,
    #[serde(default)]
    pub start: Vec<String>,
    #[serde(default)]
    pub stop: Vec<String>,
    #[serde(default)]
    pub color: Option<String>,
}

/// A run's overall outcome, as the index, the summary and JUnit show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
    /// The harness failed: no results.json, or one that carries an `error`.
    Crashed,
}

impl Verdict {
    pub fn from_results(results: Option<&RunResults>) -> Verdict {
        match results {
            None => Verdict::Crashed,
            Some(r) if r.error.is_some() => Verdict::Crashed,
            Some(r) => match r.valid {
                Validity::Valid => Verdict::Valid,
                Validity::Invalid => Verdict::Invalid,
                Validity::Unknown => Verdict::Unknown,
            },
        }
    }

    /// Lowercase name, also the CSS class of this verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
            Verdict::Crashed => "crashed",
        }
    }

    /// The process exit code (DESIGN §3).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
            Verdict::Crashed => 3,
        }
    }
}

impl From<Validity> for Verdict {
    fn from(v: Validity) -> Verdict {
        match v {
            Validity::Valid => Verdict::Valid,
            Validity::Invalid => Verdict::Invalid,
            Validity::Unknown => Verdict::Unknown,
        }
    }
}

/// Text for a key that may be absent (a history without keys).
pub fn key_text(key: &Option<Key>) -> String {
    match key {
        Some(k) => k.to_string(),
        None => "(all)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::history::Process;
    use faultline_checker::CheckerResult;

    #[test]
    fn reads_the_contract_example_and_tolerates_missing_fields() {
        let text = r#"{
          "valid": false,
          "checkers": [
            {"name": "linearizable", "model": "cas-register", "valid": false, "duration_ms": 12.5,
             "keys": [{"key": "k1", "valid": false, "ops": 3,
                       "counterexample": {"ops": [{"process": 3, "f": "cas", "key": "k1",
                          "value": [1, 2], "type": "ok", "invoke_index": 10,
                          "complete_index": 14, "invoke_time": 123, "complete_time": 456}],
                          "explanation": "no order"}},
                      {"key": 7, "valid": "unknown", "reason": "time limit"},
                      {"key": null, "valid": true}]},
            {"name": "mutex", "valid": true,
             "locks": [{"key": "lock-0", "valid": true,
                        "holds": [{"process": 1, "acquire_index": 4, "start": 5, "end": null,
                                   "token": 7, "certain": false}],
                        "violations": []}]},
            {"name": "something-new"}
          ],
          "stats": {"ops": 3, "ok": 2, "fail": 1, "info": 0,
                    "by_f": {"read": {"ok": 1, "fail": 0, "info": 0, "p50_ms": 1.2, "p99_ms": 9.9}}}
        }"#;
        let r: RunResults = serde_json::from_str(text).unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.checkers.len(), 3);
        let k = r.checkers[0].keys();
        assert_eq!(k[0].key, Some(Key::Str("k1".into())));
        assert_eq!(k[1].key, Some(Key::Int(7)));
        assert_eq!(k[2].key, None);
        let cx = k[0].counterexample.as_ref().unwrap();
        assert_eq!(cx.ops[0].process, Process::Client(3));
        assert_eq!(cx.ops[0].complete_index, Some(14));
        let hold = &r.checkers[1].locks()[0].holds[0];
        assert!(!hold.certain);
        assert_eq!(hold.end, None);
        assert_eq!(r.checkers[2], CheckerResult::Other);
        assert_eq!(r.checkers[2].valid(), Validity::Unknown);
        assert_eq!(r.stats.unwrap().by_f["read"].p99_ms, Some(9.9));
        assert_eq!(Verdict::from_results(None), Verdict::Crashed);
    }
}
