//! The client workers: tokio tasks that take operations from the generator, perform them
//! through their client, and record invoke and completion in the history.

use crate::client::{Client, ClientFactory, Completion};
use crate::generator::{worker_rng, GenContext, Invocation, KeyPlan, OpGenerator, Pacer};
use crate::history::{ClientEvent, History};
use anyhow::Context;
use faultline_checker::history::{Key, OpType, Process};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;

/// Settings of the client phases.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub concurrency: usize,
    /// Total target ops/s over all workers; `None`: as fast as the clients go.
    pub rate: Option<f64>,
    pub seed: u64,
    /// A safety net above the clients' own timeouts: an op still running after this is
    /// recorded as `info` and its process retired.
    pub op_timeout: Duration,
}

/// What the workers did, for the run's log and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PhaseCounts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl PhaseCounts {
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }

    fn add(&mut self, other: PhaseCounts) {
        self.ok += other.ok;
        self.fail += other.fail;
        self.info += other.info;
    }
}

struct Worker {
    index: usize,
    process: u64,
    client: Box<dyn Client>,
    /// The client's node, shared by every event of this client.
    node: Option<Arc<str>>,
    rng: ChaCha8Rng,
}

/// Every worker with its current process id; process ids survive from the main phase to
/// the final phase so that a retired process never issues another op.
pub struct ClientPool {
    config: WorkerConfig,
    factory: Arc<dyn ClientFactory>,
    history: History,
    workers: Vec<Worker>,
    /// When the main phase started: time 0 of `GenContext::elapsed`.
    started: Option<Instant>,
}

impl ClientPool {
    pub fn open(
        config: WorkerConfig,
        factory: Arc<dyn ClientFactory>,
        history: History,
    ) -> anyhow::Result<ClientPool> {
        anyhow::ensure!(config.concurrency > 0, "concurrency must be at least 1");
        let workers = (0..config.concurrency)
            .map(|index| {
                let client = factory
                    .open(index, index as u64)
                    .with_context(|| format!("opening the client of worker {index}"))?;
                Ok(Worker {
                    index,
                    process: index as u64,
                    node: client.node().map(Arc::from),
                    client,
                    rng: worker_rng(config.seed, index),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ClientPool {
            config,
            factory,
            history,
            workers,
            started: None,
        })
    }

    /// Runs every worker until `deadline` or until `stop` is cancelled. An op in flight
    /// when `stop` fires is recorded as `info` (interrupted).
    pub async fn run_main(
        &mut self,
        generator: Arc<dyn OpGenerator>,
        plan: Arc<KeyPlan>,
        deadline: Instant,
        stop: CancellationToken,
    ) -> PhaseCounts {
        self.started.get_or_insert_with(Instant::now);
        let workers = std::mem::take(&mut self.workers);
        let mut tasks = tokio::task::JoinSet::new();
        for mut worker in workers {
            let cx = self.op_context(stop.clone());
            let generator = generator.clone();
            let plan = plan.clone();
            let rate = self.config.rate;
            let concurrency = self.config.concurrency;
            tasks.spawn(
                async move {
                    let mut counts = PhaseCounts::default();
                    let mut pacer = Pacer::new(rate, concurrency, Instant::now());
                    loop {
                        let due = pacer.next(&mut worker.rng, Instant::now());
                        if due >= deadline {
                            break;
                        }
                        if due > Instant::now() {
                            tokio::select! {
                                _ = tokio::time::sleep_until(due) => {}
                                _ = cx.stop.cancelled() => break,
                            }
                        }
                        if cx.stop.is_cancelled() {
                            break;
                        }
                        let key = plan.next_key(worker.index);
                        let gcx = worker.gen_context(&cx, false);
                        let op = generator.next_op_in(&gcx, &key, &mut worker.rng);
                        counts.add(worker.perform(&op, &cx, &*generator, &gcx).await);
                        while cx.history.backlogged() && !cx.stop.is_cancelled() {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    (worker, counts)
                }
                .with_current_subscriber(),
            );
        }
        self.collect(tasks).await
    }

    /// The final phase: `final_op` once on every key in `keys`, each by a worker of the
    /// key's group, all groups in parallel.
    pub async fn run_final(
        &mut self,
        generator: Arc<dyn OpGenerator>,
        plan: &KeyPlan,
        keys: &[Key],
        stop: CancellationToken,
    ) -> PhaseCounts {
        let workers = std::mem::take(&mut self.workers);
        let mut jobs: Vec<Vec<Invocation>> = vec![Vec::new(); workers.len()];
        let mut handed = vec![0usize; plan.groups()];
        for key in keys {
            let Some(op) = generator.final_op(key) else {
                continue;
            };
            // Spread each group's keys over the group's workers still alive.
            let group = plan.group_of_key(key);
            let members: Vec<usize> = (0..workers.len())
                .filter(|&w| plan.group_of(workers[w].index) == group)
                .collect();
            let target = match members.len() {
                0 => 0,
                n => members[handed[group] % n],
            };
            handed[group] += 1;
            if let Some(job) = jobs.get_mut(target) {
                job.push(op);
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        self.started.get_or_insert_with(Instant::now);
        for (mut worker, ops) in workers.into_iter().zip(jobs) {
            let cx = self.op_context(stop.clone());
            let generator = generator.clone();
            tasks.spawn(
                async move {
                    let mut counts = PhaseCounts::default();
                    for op in ops {
                        if cx.stop.is_cancelled() {
                            break;
                        }
                        let gcx = worker.gen_context(&cx, true);
                        counts.add(worker.perform(&op, &cx, &*generator, &gcx).await);
                    }
                    (worker, counts)
                }
                .with_current_subscriber(),
            );
        }
        self.collect(tasks).await
    }

    fn op_context(&self, stop: CancellationToken) -> OpContext {
        OpContext {
            history: self.history.clone(),
            factory: self.factory.clone(),
            concurrency: self.config.concurrency as u64,
            op_timeout: self.config.op_timeout,
            started: self.started.unwrap_or_else(Instant::now),
            stop,
        }
    }

    async fn collect(
        &mut self,
        mut tasks: tokio::task::JoinSet<(Worker, PhaseCounts)>,
    ) -> PhaseCounts {
        let mut total = PhaseCounts::default();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((worker, counts)) => {
                    total.add(counts);
                    self.workers.push(worker);
                }
                // The op it was running stays without completion: the checker treats a
                // pending op as indeterminate, which is what it is.
                Err(err) => tracing::error!("a client worker died: {err}"),
            }
        }
        self.workers.sort_by_key(|w| w.index);
        total
    }
}

struct OpContext {
    history: History,
    factory: Arc<dyn ClientFactory>,
    concurrency: u64,
    op_timeout: Duration,
    started: Instant,
    stop: CancellationToken,
}

impl Worker {
    fn gen_context(&self, cx: &OpContext, final_phase: bool) -> GenContext {
        GenContext {
            process: self.process,
            worker: self.index,
            elapsed: cx.started.elapsed(),
            final_phase,
        }
    }

    async fn perform(
        &mut self,
        op: &Invocation,
        cx: &OpContext,
        generator: &dyn OpGenerator,
        gcx: &GenContext,
    ) -> PhaseCounts {
        let process = Process::Client(self.process);
        let node = self.node.clone();
        cx.history.record_client(ClientEvent {
            kind: OpType::Invoke,
            process,
            f: op.f,
            key: op.key.clone(),
            value: op.value.clone(),
            node: node.clone(),
            error: None,
        });
        let done = tokio::select! {
            biased;
            done = tokio::time::timeout(cx.op_timeout, self.client.invoke(op)) => match done {
                Ok(done) => done,
                Err(_) => Completion::info(format!(
                    "no answer within the harness's op timeout of {} ms",
                    cx.op_timeout.as_millis()
                )),
            },
            _ = cx.stop.cancelled() => Completion::info("interrupted: the run was stopped"),
        };
        generator.completed(gcx, op, &done);
        let kind = done.kind;
        cx.history.record_client(ClientEvent {
            kind,
            process,
            f: op.f,
            key: op.key.clone(),
            value: done.value.unwrap_or_else(|| op.value.clone()),
            node: done.node.map(Arc::from).or(node),
            error: done.error,
        });
        let mut counts = PhaseCounts::default();
        match kind {
            OpType::Ok => counts.ok = 1,
            OpType::Fail => counts.fail = 1,
            OpType::Info | OpType::Invoke => {
                counts.info = 1;
                self.retire(cx);
            }
        }
        counts
    }

    /// DESIGN §2: a process whose op ended in `info` never issues another op; the worker
    /// continues as a fresh process (Jepsen's numbering: old id + concurrency).
    fn retire(&mut self, cx: &OpContext) {
        self.process += cx.concurrency;
        match cx.factory.open(self.index, self.process) {
            Ok(client) => {
                self.node = client.node().map(Arc::from);
                self.client = client;
            }
            // Keep the old connection rather than stopping the worker: the process id is
            // what the checker relies on, and it changed.
            Err(err) => tracing::warn!(
                "reopening the client of worker {} failed, keeping the old one: {err:#}",
                self.index
            ),
        }
    }
}
