//! faultline's checker: the history model, importers for other checkers' formats, and the
//! checkers that turn a history into a verdict (linearizability, mutual exclusion).
//!
//! Layout:
//! - `history`: one event (`Op`) exactly as `history.jsonl` stores it (DESIGN §2), the
//!   one reader of history.jsonl (`HistoryReader`, `read_history`) and the one
//!   invoke/completion pairing (`pair_ops`).
//! - `stats`: the one statistics function (counts, latency quantiles) of every view.
//! - `import`: Porcupine etcd logs, Porcupine kv logs and Knossos EDN → `Op`s, and format
//!   guessing.
//! - `model`: the `Model` trait and the built-in models (register, cas-register, kv,
//!   kv-map, multi-register, mutex).
//! - `linearizable`: the Wing–Gong–Lowe search (per key, in parallel, with time and memory
//!   limits) and counterexample shrinking/explanations.
//! - `mutex`: the mutual-exclusion and fencing-token checker for lock histories.
//! - `set`: the lock-set workload's checker: every acknowledged add is in the final read.
//! - `results`: results.json's one schema (`RunResults`) and the checkers' result types.
//! - `txn`: the Elle-style transactional checker (list-append, rw-register) and its
//!   consistency models.
//! - `results`: result types, serialised exactly as `docs/contracts.md` fixes them.
//! - `verdict`: `Validity` (true / false / "unknown") and how verdicts combine (DESIGN §3).
//! - `bench_data`: MANIFEST.tsv of `tests/data` (tests, benchmark).
//! - `generate`: seeded generators of random histories (tests, benchmarks).
//!
//! Entry points: [`analyze`] (a run's history.jsonl to results.json: what `faultline run` and
//! `faultline report` call), [`check_history`] (what `faultline check` calls),
//! [`check_linearizable`] (any `Model`), [`check_linearizable_named`] and [`check_mutex`].

pub mod bench_data;
pub mod generate;
pub mod history;
pub mod import;
pub mod linearizable;
pub mod model;
pub mod mutex;
pub mod results;
pub mod set;
pub mod stats;
pub mod txn;
pub mod verdict;

pub use history::{read_history, read_jsonl, Key, Op, OpType, Process, ReadHistory};
pub use linearizable::{check_linearizable, Limits};
pub use mutex::check_mutex;
pub use results::{CheckerResult, Results, RunResults};
pub use set::check_set;
pub use stats::Stats;
pub use verdict::Validity;

use model::{Convention, KvModel, MultiRegisterModel, MutexModel, RegisterModel, Val};
use results::LinearizableResult;

/// What to check and within which limits.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// A name from [`model::MODEL_NAMES`]; `None`: chosen from the ops' `f` (see
    /// [`guess_model`]).
    pub model: Option<String>,
    /// The model's initial state as JSON; `None`: the model's default (`null` for
    /// registers, `""` for kv keys, `{}` for multi-register).
    pub initial: Option<serde_json::Value>,
    pub limits: Limits,
    /// Also run the mutual-exclusion checker on `acquire`/`release` ops; `None`: when the
    /// history has any.
    pub mutex: Option<bool>,
    /// Also run the set checker on `add`/`read` ops (the lock-set workload); `None`: when
    /// the history has any `add`.
    pub set: Option<bool>,
    /// Check transactions (`txn` ops of `append` / `r` / `w` micro-ops) against this
    /// consistency model (see [`txn::model::MODELS`]); `None`: strict-serializable, when the
    /// history has such transactions.
    pub consistency_model: Option<String>,
}

/// The model for a history whose model was not named: by the ops' `f`, `None` for lock
/// histories (they get the mutual-exclusion checker) and set histories (the set checker).
pub fn guess_model(ops: &[Op]) -> Option<&'static str> {
    let client = |f: &str| {
        ops.iter()
            .any(|o| matches!(o.process, Process::Client(_)) && o.f == f)
    };
    // Lock, set and transactional histories have checkers of their own.
    if client("acquire") || client("release") || client("add") || txn::is_txn_history(ops) {
        None
    } else if client("txn") {
        Some("multi-register")
    } else if client("get") || client("put") || client("append") {
        Some("kv")
    } else {
        Some("cas-register")
    }
}

/// Checks `ops` for linearizability with a built-in model chosen by name.
pub fn check_linearizable_named(
    ops: &[Op],
    model: &str,
    initial: Option<&serde_json::Value>,
    limits: &Limits,
) -> Result<LinearizableResult, String> {
    let reg = |cas: bool, conv: Convention, default: Val| {
        let init = initial.map(Val::from).unwrap_or(default);
        RegisterModel::new(cas, conv, init)
    };
    let kv_initial = || match initial {
        None => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "kv initial must be a string (the value of every key), got {other}"
        )),
    };
    Ok(match model {
        "register" => {
            check_linearizable(&reg(false, Convention::Faultline, Val::Null), ops, limits)
        }
        "cas-register" => {
            check_linearizable(&reg(true, Convention::Faultline, Val::Null), ops, limits)
        }
        "cas-register:knossos" => {
            check_linearizable(&reg(true, Convention::Knossos, Val::Int(0)), ops, limits)
        }
        "cas-register:porcupine" => {
            check_linearizable(&reg(true, Convention::Porcupine, Val::Null), ops, limits)
        }
        "kv" => check_linearizable(&KvModel::new(true, &kv_initial()?), ops, limits),
        "kv-map" => check_linearizable(&KvModel::new(false, &kv_initial()?), ops, limits),
        "multi-register" => check_linearizable(
            &MultiRegisterModel::new(initial.unwrap_or(&serde_json::Value::Null))?,
            ops,
            limits,
        ),
        "mutex" => check_linearizable(&MutexModel, ops, limits),
        other => {
            return Err(format!(
                "unknown model {other:?}; expected one of {}",
                model::MODEL_NAMES.join(", ")
            ))
        }
    })
}

/// Runs the checkers a history calls for: linearizability with the named (or guessed)
/// model, and mutual exclusion for lock histories. An unknown model name is an `Err`
/// (a harness error, exit 3), never a verdict.
pub fn check_history(ops: &[Op], options: &CheckOptions) -> Result<Results, String> {
    let mut checkers = Vec::new();
    let model = options.model.as_deref().or_else(|| guess_model(ops));
    let has_locks = ops.iter().any(|o| o.f == "acquire" || o.f == "release");
    if options.mutex.unwrap_or(has_locks) {
        checkers.push(CheckerResult::Mutex(check_mutex(ops)));
    }
    if options
        .set
        .unwrap_or_else(|| ops.iter().any(|o| o.f == "add"))
    {
        checkers.push(CheckerResult::Set(check_set(ops)));
    }
    if options.consistency_model.is_some() || txn::is_txn_history(ops) {
        let txn_options = txn::TxnOptions::with_model(options.consistency_model.as_deref());
        checkers.push(CheckerResult::Txn(txn::check_ops(ops, &txn_options)?));
    }
    if let Some(model) = model {
        checkers.push(CheckerResult::Linearizable(check_linearizable_named(
            ops,
            model,
            options.initial.as_ref(),
            &options.limits,
        )?));
    }
    Ok(Results::new(checkers))
}

/// A run's history analysed: what results.json holds, and the history it came from.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub results: RunResults,
    pub history: ReadHistory,
}

/// The offline analysis of a run (Jepsen's `analyze`): reads `history.jsonl`, pairs and
/// counts its ops, runs the checkers. `faultline run` and `faultline report` both write
/// exactly this (plus the run's `error`), so re-analysing a run reproduces its results.json.
/// A history that cannot be read or checked is an `Err` naming the file and line.
pub fn analyze(path: &std::path::Path, options: &CheckOptions) -> Result<Analysis, String> {
    let history = read_history(path).map_err(|e| e.to_string())?;
    let checked = check_history(&history.ops, options)
        .map_err(|e| format!("checking {}: {e}", path.display()))?;
    let results = RunResults {
        valid: checked.valid,
        checkers: checked.checkers,
        stats: Some(stats::compute(&history.ops)),
        error: None,
        warnings: history
            .summary
            .warning(&path.display().to_string())
            .into_iter()
            .collect(),
    };
    Ok(Analysis { results, history })
}
