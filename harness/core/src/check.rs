//! Checkers a test carries: the built-in checks of `CheckOptions` and any other, e.g. a
//! linearizability check against a user's own `Model`, all run by `run` on the history.

use faultline_checker::model::Model;
use faultline_checker::{Analysis, CheckOptions, CheckerResult, Limits, Op};
use std::path::Path;
use std::sync::Arc;

/// Turns a history into checker results (each with its verdict). Must not panic on any
/// history; a history it cannot judge gives an `unknown` verdict or an `Err`.
pub trait Checker: Send + Sync {
    /// Names it in the log.
    fn name(&self) -> String;
    fn check(&self, ops: &[Op]) -> Result<Vec<CheckerResult>, String>;
}

/// The built-in checks of `CheckOptions` (`faultline check`'s): the model's
/// linearizability and mutual exclusion.
#[derive(Debug, Clone, Default)]
pub struct BuiltIn(pub CheckOptions);

impl Checker for BuiltIn {
    fn name(&self) -> String {
        "built-in".into()
    }
    fn check(&self, ops: &[Op]) -> Result<Vec<CheckerResult>, String> {
        faultline_checker::check_history(ops, &self.0).map(|r| r.checkers)
    }
}

/// Linearizability against any [`Model`] (a user's own included), per key when the model
/// says its keys are independent.
pub struct Linearizable<M> {
    pub model: M,
    pub limits: Limits,
}

impl<M: Model> Linearizable<M> {
    pub fn new(model: M) -> Linearizable<M> {
        Linearizable {
            model,
            limits: Limits::default(),
        }
    }
}

impl<M: Model> Checker for Linearizable<M> {
    fn name(&self) -> String {
        format!("linearizable ({})", self.model.name())
    }
    fn check(&self, ops: &[Op]) -> Result<Vec<CheckerResult>, String> {
        Ok(vec![CheckerResult::Linearizable(
            faultline_checker::check_linearizable(&self.model, ops, &self.limits),
        )])
    }
}

/// A history file judged as `run` judges it, and as `faultline report` re-judges it: the
/// built-in checks of `options` (unless `built_in` is off) and then a test's own
/// `checkers` (e.g. a user's model), their verdicts combined into the run's.
pub fn analyze(
    path: &Path,
    options: &CheckOptions,
    built_in: bool,
    checkers: &[Arc<dyn Checker>],
) -> Result<Analysis, String> {
    let mut analysis = faultline_checker::analyze(path, options)?;
    if built_in && checkers.is_empty() {
        return Ok(analysis);
    }
    if !built_in {
        analysis.results.checkers.clear();
    }
    for checker in checkers {
        let found = checker
            .check(&analysis.history.ops)
            .map_err(|e| format!("checking the history ({}): {e}", checker.name()))?;
        analysis.results.checkers.extend(found);
    }
    analysis.results.valid =
        faultline_checker::Results::new(analysis.results.checkers.clone()).valid;
    Ok(analysis)
}
