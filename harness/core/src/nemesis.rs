//! The nemesis hook: faults run beside the clients and record themselves in the same
//! history; `heal` reverts all of them and must be safe to call any number of times.

use crate::db::{Db, DbContext};
use crate::history::History;
use async_trait::async_trait;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Everything a nemesis may act on.
#[derive(Clone)]
pub struct NemesisContext {
    pub db: Arc<dyn Db>,
    pub db_cx: DbContext,
    /// The run's history: nemesis ops go here with `process: "nemesis"`
    /// (docs/contracts.md).
    pub history: History,
    /// The run's seed; a nemesis derives its own rng from it so schedules reproduce.
    pub seed: u64,
}

#[async_trait]
pub trait Nemesis: Send + Sync {
    /// The names test.json lists under `nemesis`.
    fn names(&self) -> Vec<String>;

    /// Checks tools and prepares hosts before the clients start.
    async fn setup(&self, _cx: &NemesisContext) -> anyhow::Result<()> {
        Ok(())
    }

    /// Injects faults until `stop` is cancelled, then returns (faults may still be in
    /// effect: `heal` follows). Runs beside the clients.
    async fn run(&self, cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()>;

    /// Reverts every fault this nemesis may have caused. Idempotent: the run calls it after
    /// `run`, and again on the error path, even if `setup` or `run` never ran.
    async fn heal(&self, cx: &NemesisContext) -> anyhow::Result<()>;
}

/// No faults.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNemesis;

#[async_trait]
impl Nemesis for NoNemesis {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn run(&self, _cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        Ok(())
    }

    async fn heal(&self, _cx: &NemesisContext) -> anyhow::Result<()> {
        Ok(())
    }
}
