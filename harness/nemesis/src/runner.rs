//! The scheduled nemesis: plays a seeded [`schedule`](crate::schedule) beside the clients,
//! records every fault as a nemesis op in the history, and undoes whatever is in effect on
//! `heal` — on the normal path, on error, on panic and on Ctrl-C (the run calls it).

use crate::clock::{self, ClockStrategy};
use crate::grudge::{grudge_for, Grudge};
use crate::net;
use crate::schedule::{
    schedule, Action, ClockFault, Family, Fault, PacketFault, ScheduleOptions, Step, Target,
};
use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use faultline_checker::history::{OpType, Process};
use faultline_control::Remote;
use faultline_core::db::DbContext;
use faultline_core::history::Event;
use faultline_core::nemesis::{Nemesis, NemesisContext};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Mixed into the run's seed so the nemesis's choices do not mirror the generator's.
const NEMESIS_SEED_SALT: u64 = 0x6e65_6d65_7369_7321;

/// How often skew and strobe move a clock. Small steps look like a running clock to the
/// node; each is one short SSH command.
const CLOCK_STEP_MS: u64 = 100;

/// What the user asked of the nemesis.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    pub schedule: ScheduleOptions,
    pub clock_strategy: ClockStrategy,
    /// Length of the workload phase the schedule spans.
    pub time_limit: Duration,
    /// `Err(reason)` when the db cannot have its clock changed with `clock_strategy` (for
    /// example a Go program under libfaketime): clock faults are then refused at setup.
    pub db_clock_skewable: Result<(), String>,
    /// Whether the hosts' kernels can run netem; `None` means probe them at setup.
    pub netem: Option<bool>,
}

/// Faults currently in effect, so `heal` can undo exactly them.
#[derive(Default)]
struct Active {
    partition: Option<Grudge>,
    packet: Option<(Vec<String>, PacketFault)>,
    offsets: BTreeMap<String, i64>,
    clock_task: Option<(CancellationToken, JoinHandle<()>)>,
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
}

pub struct ScheduledNemesis {
    config: NemesisConfig,
    steps: Vec<Step>,
    rng: std::sync::Mutex<ChaCha8Rng>,
    active: std::sync::Arc<Mutex<Active>>,
}

impl ScheduledNemesis {
    pub fn new(config: NemesisConfig, seed: u64) -> ScheduledNemesis {
        let time_limit_ms = config.time_limit.as_millis() as u64;
        let steps = schedule(&config.schedule, time_limit_ms, seed ^ NEMESIS_SEED_SALT);
        ScheduledNemesis {
            config,
            steps,
            rng: std::sync::Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ NEMESIS_SEED_SALT ^ 1)),
            active: Default::default(),
        }
    }

    /// The planned schedule (recorded in test.json so a replay can be compared).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    fn families(&self) -> &[Family] {
        &self.config.schedule.families
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
        self.rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn primaries(&self, cx: &NemesisContext) -> Vec<String> {
        match cx.db.primaries() {
            Some(p) => p.primaries(&cx.db_cx).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    async fn targets(&self, cx: &NemesisContext, target: Target) -> Vec<String> {
        let mut hosts = cx.db_cx.host_names();
        if target == Target::Primaries {
            return self.primaries(cx).await;
        }
        let n = hosts.len();
        let count = match target {
            Target::One => 1,
            Target::Minority => (n.saturating_sub(1) / 2).max(1),
            Target::Majority => n / 2 + 1,
            Target::All | Target::Primaries => n,
        };
        hosts.shuffle(&mut *self.rng());
        hosts.truncate(count.min(n));
        hosts.sort();
        hosts
    }

    fn record(cx: &NemesisContext, kind: OpType, f: &str, value: Value, error: Option<String>) {
        cx.history.record(Event {
            kind,
            process: Process::Nemesis,
            f: f.to_string(),
            key: None,
            value,
            node: None,
            error,
        });
    }

    /// Records the invoke, does `act`, records the outcome as `info` (a fault's effect is
    /// never certain: a host may have been unreachable) and returns the info's value.
    async fn recorded<F>(&self, cx: &NemesisContext, f: &str, invoke: Value, act: F) -> Value
    where
        F: std::future::Future<Output = anyhow::Result<Value>>,
    {
        Self::record(cx, OpType::Invoke, f, invoke, None);
        match act.await {
            Ok(value) => {
                Self::record(cx, OpType::Info, f, value.clone(), None);
                value
            }
            Err(err) => {
                tracing::warn!("nemesis {f} failed: {err:#}");
                Self::record(cx, OpType::Info, f, Value::Null, Some(format!("{err:#}")));
                Value::Null
            }
        }
    }

    /// Applies the steps `chosen` picks, each at its time, until they are done or `stop`.
    async fn play<F>(
        &self,
        cx: &NemesisContext,
        stop: &CancellationToken,
        started: tokio::time::Instant,
        chosen: F,
    ) where
        F: Fn(&Step) -> bool,
    {
        for step in self.steps.iter().filter(|step| chosen(step)) {
            let at = started + Duration::from_millis(step.at_ms);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
            self.apply(cx, &step.action).await;
        }
    }

    /// Does one step of a schedule now, as `run` does at its time, and returns what the
    /// history records as its outcome (e.g. the hosts a kill hit); `Null` when the step
    /// failed or had nothing to undo. Tests use it to apply exact faults.
    pub async fn apply(&self, cx: &NemesisContext, action: &Action) -> Value {
        match action {
            Action::Start(fault) => self.start(cx, fault).await,
            Action::Stop { family } => self.stop(cx, *family).await,
        }
    }

    async fn start(&self, cx: &NemesisContext, fault: &Fault) -> Value {
        let remotes = &cx.db_cx.remotes;
        let invoke = serde_json::to_value(fault).unwrap_or(Value::Null);
        match fault {
            Fault::Partition { kind } => {
                let primaries = self.primaries(cx).await;
                let grudge =
                    grudge_for(*kind, &cx.db_cx.host_names(), &primaries, &mut *self.rng());
                self.recorded(cx, "start-partition", invoke, async {
                    self.active.lock().await.partition = Some(grudge.clone());
                    net::start_partition(remotes, &grudge).await?;
                    Ok(json!(grudge))
                })
                .await
            }
            Fault::Packet { target, packet } => {
                let hosts = self.targets(cx, *target).await;
                self.recorded(cx, "start-packet", invoke, async {
                    self.active.lock().await.packet = Some((hosts.clone(), *packet));
                    net::start_packet(remotes, &hosts, packet).await?;
                    Ok(json!({"hosts": hosts, "packet": packet}))
                })
                .await
            }
            Fault::Kill { target } => {
                let hosts = self.targets(cx, *target).await;
                self.recorded(cx, "kill", invoke, async {
                    let kill = cx
                        .db
                        .kill()
                        .ok_or_else(|| anyhow!("{} cannot be killed", cx.db.name()))?;
                    for host in &hosts {
                        self.active.lock().await.killed.insert(host.clone());
                        kill.kill(&cx.db_cx, remote(&cx.db_cx, host)?).await?;
                    }
                    Ok(json!(hosts))
                })
                .await
            }
            Fault::Pause { target } => {
                let hosts = self.targets(cx, *target).await;
                self.recorded(cx, "pause", invoke, async {
                    let pause = cx
                        .db
                        .pause()
                        .ok_or_else(|| anyhow!("{} cannot be paused", cx.db.name()))?;
                    for host in &hosts {
                        self.active.lock().await.paused.insert(host.clone());
                        pause.pause(&cx.db_cx, remote(&cx.db_cx, host)?).await?;
                    }
                    Ok(json!(hosts))
                })
                .await
            }
            Fault::Clock { target, clock } => {
                let hosts = self.targets(cx, *target).await;
                let f = match clock {
                    ClockFault::Bump { .. } => "bump-clock",
                    ClockFault::Strobe { .. } => "strobe-clock",
                    ClockFault::Skew { .. } => "skew-clock",
                };
                self.recorded(cx, f, invoke, self.start_clock(cx, &hosts, *clock))
                    .await
            }
        }
    }

    async fn start_clock(
        &self,
        cx: &NemesisContext,
        hosts: &[String],
        fault: ClockFault,
    ) -> anyhow::Result<Value> {
        let strategy = self.config.clock_strategy;
        match fault {
            ClockFault::Bump { delta_ms } => {
                // Every offset is noted before any is set, so heal undoes a bump cut short.
                let mut plan = Vec::new();
                {
                    let mut active = self.active.lock().await;
                    for host in hosts {
                        let previous = active.offsets.get(host).copied().unwrap_or(0);
                        let offset = previous + delta_ms;
                        active.offsets.insert(host.clone(), offset);
                        plan.push((remote(&cx.db_cx, host)?.clone(), previous, offset));
                    }
                }
                // All hosts at once: on slow hosts (emulated VMs, seconds per SSH command) one
                // after another would leave the clocks apart for as long as the bump lasts.
                let results = on_each(plan, move |(remote, previous, offset)| async move {
                    clock::set_offset(&remote, strategy, previous, offset).await?;
                    Ok((remote.name().to_string(), offset))
                })
                .await;
                let mut applied = BTreeMap::new();
                for result in results {
                    let (host, offset) = result?;
                    applied.insert(host, offset);
                }
                Ok(json!({"offsets_ms": applied}))
            }
            ClockFault::Strobe { .. } | ClockFault::Skew { .. } => {
                let token = CancellationToken::new();
                let remotes: Vec<Remote> = hosts
                    .iter()
                    .map(|h| remote(&cx.db_cx, h).cloned())
                    .collect::<anyhow::Result<_>>()?;
                let active = self.active.clone();
                let task_token = token.clone();
                let task = tokio::spawn(async move {
                    drive_clock(remotes, strategy, fault, active, task_token).await;
                });
                let mut active = self.active.lock().await;
                if let Some((old, handle)) = active.clock_task.replace((token, task)) {
                    old.cancel();
                    handle.abort();
                }
                Ok(json!({"hosts": hosts, "clock": fault}))
            }
        }
    }

    async fn stop(&self, cx: &NemesisContext, family: Family) -> Value {
        let remotes = &cx.db_cx.remotes;
        match family {
            Family::Partition => {
                let grudge = self.active.lock().await.partition.take();
                if let Some(grudge) = grudge {
                    self.recorded(cx, "stop-partition", json!(grudge), async {
                        net::stop_partition(remotes, &grudge).await?;
                        Ok(json!(grudge))
                    })
                    .await
                } else {
                    Value::Null
                }
            }
            Family::Packet => {
                let packet = self.active.lock().await.packet.take();
                if let Some((hosts, fault)) = packet {
                    self.recorded(cx, "stop-packet", json!(hosts), async {
                        net::stop_packet(remotes, &hosts, &fault).await?;
                        Ok(json!({"hosts": hosts, "packet": fault}))
                    })
                    .await
                } else {
                    Value::Null
                }
            }
            Family::Kill => {
                let killed = std::mem::take(&mut self.active.lock().await.killed);
                if !killed.is_empty() {
                    self.recorded(cx, "restart", json!(killed), async {
                        let kill = cx
                            .db
                            .kill()
                            .ok_or_else(|| anyhow!("{} cannot be restarted", cx.db.name()))?;
                        for host in &killed {
                            kill.start(&cx.db_cx, remote(&cx.db_cx, host)?).await?;
                        }
                        Ok(json!(killed))
                    })
                    .await
                } else {
                    Value::Null
                }
            }
            Family::Pause => {
                let paused = std::mem::take(&mut self.active.lock().await.paused);
                if !paused.is_empty() {
                    self.recorded(cx, "resume", json!(paused), async {
                        let pause = cx
                            .db
                            .pause()
                            .ok_or_else(|| anyhow!("{} cannot be resumed", cx.db.name()))?;
                        for host in &paused {
                            pause.resume(&cx.db_cx, remote(&cx.db_cx, host)?).await?;
                        }
                        Ok(json!(paused))
                    })
                    .await
                } else {
                    Value::Null
                }
            }
            Family::Clock => {
                let needed = {
                    let active = self.active.lock().await;
                    active.clock_task.is_some() || active.offsets.values().any(|o| *o != 0)
                };
                if needed {
                    self.recorded(cx, "reset-clock", Value::Null, self.reset_clocks(&cx.db_cx))
                        .await
                } else {
                    Value::Null
                }
            }
        }
    }

    /// Stops the clock task and sets every moved clock back to zero. Cancel-safe: the task
    /// is told to stop before it is taken, and a host leaves `offsets` only once its clock
    /// is reset, so a reset cut short (Ctrl-C mid-step) leaves `heal` the rest to undo.
    async fn reset_clocks(&self, db_cx: &DbContext) -> anyhow::Result<Value> {
        let task = {
            let mut active = self.active.lock().await;
            if let Some((token, _)) = &active.clock_task {
                token.cancel();
            }
            active.clock_task.take()
        };
        if let Some((_, handle)) = task {
            let _ = handle.await;
        }
        let offsets = self.active.lock().await.offsets.clone();
        let strategy = self.config.clock_strategy;
        let plan = offsets
            .iter()
            .map(|(host, previous)| Ok((remote(db_cx, host)?.clone(), *previous)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let results = on_each(plan, move |(remote, previous)| async move {
            clock::set_offset(&remote, strategy, previous, 0).await?;
            Ok(remote.name().to_string())
        })
        .await;
        let mut reset = Vec::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(host) => {
                    self.active.lock().await.offsets.remove(&host);
                    reset.push(host);
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => {
                reset.sort();
                Ok(json!(reset))
            }
        }
    }
}

/// Runs `act` on every item at once and returns every outcome, in the items' order; all are
/// tried even when one fails, so an undo never stops half-way.
async fn on_each<T, R, F, Fut>(items: Vec<T>, act: F) -> Vec<anyhow::Result<R>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<R>> + Send + 'static,
    R: Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let fut = act(item);
        tasks.spawn(async move { (i, fut.await) });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => outcomes.push((usize::MAX, Err(anyhow!("a clock task failed: {err}")))),
        }
    }
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

fn remote<'a>(db_cx: &'a DbContext, host: &str) -> anyhow::Result<&'a Remote> {
    db_cx
        .remotes
        .iter()
        .find(|r| r.name() == host)
        .ok_or_else(|| anyhow!("no host named {host}"))
}

/// Moves the clocks of `remotes` in small steps until cancelled (skew) or until the strobe's
/// duration is over; each offset set is remembered so `reset` can undo it.
async fn drive_clock(
    remotes: Vec<Remote>,
    strategy: ClockStrategy,
    fault: ClockFault,
    active: std::sync::Arc<Mutex<Active>>,
    token: CancellationToken,
) {
    let started = tokio::time::Instant::now();
    let (period_ms, steps_max) = match fault {
        ClockFault::Strobe {
            period_ms,
            duration_ms,
            ..
        } => (
            period_ms.max(CLOCK_STEP_MS),
            duration_ms / period_ms.max(CLOCK_STEP_MS),
        ),
        ClockFault::Skew { .. } => (CLOCK_STEP_MS, u64::MAX),
        ClockFault::Bump { .. } => return,
    };
    let base: BTreeMap<String, i64> = {
        let active = active.lock().await;
        remotes
            .iter()
            .map(|r| {
                (
                    r.name().to_string(),
                    active.offsets.get(r.name()).copied().unwrap_or(0),
                )
            })
            .collect()
    };
    let mut step: u64 = 0;
    while step < steps_max {
        let next = started + Duration::from_millis((step + 1) * period_ms);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        step += 1;
        let mut plan = Vec::new();
        for remote in &remotes {
            let base_ms = base[remote.name()];
            let target = match fault {
                ClockFault::Strobe { delta_ms, .. } => {
                    if step % 2 == 1 {
                        base_ms + delta_ms
                    } else {
                        base_ms
                    }
                }
                ClockFault::Skew { rate } => {
                    let elapsed = started.elapsed().as_millis() as f64;
                    base_ms + ((rate - 1.0) * elapsed) as i64
                }
                ClockFault::Bump { .. } => base_ms,
            };
            let previous = {
                let mut active = active.lock().await;
                active
                    .offsets
                    .insert(remote.name().to_string(), target)
                    .unwrap_or(0)
            };
            plan.push((remote.clone(), previous, target));
        }
        let results = on_each(plan, move |(remote, previous, target)| async move {
            clock::set_offset(&remote, strategy, previous, target)
                .await
                .with_context(|| format!("moving the clock of {}", remote.name()))
        })
        .await;
        for err in results.into_iter().filter_map(Result::err) {
            tracing::warn!("{err:#}");
        }
    }
}

#[async_trait]
impl Nemesis for ScheduledNemesis {
    fn names(&self) -> Vec<String> {
        self.families()
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    }

    async fn setup(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        let families = self.families();
        if families.contains(&Family::Kill) && cx.db.kill().is_none() {
            bail!(
                "the {} db cannot be killed and restarted; drop `kill` from --nemesis",
                cx.db.name()
            );
        }
        if families.contains(&Family::Pause) && cx.db.pause().is_none() {
            bail!(
                "the {} db cannot be paused; drop `pause` from --nemesis",
                cx.db.name()
            );
        }
        if families.contains(&Family::Clock) {
            if let Err(reason) = &self.config.db_clock_skewable {
                bail!("clock faults refused: {reason}");
            }
            for remote in &cx.db_cx.remotes {
                if self.config.clock_strategy == ClockStrategy::Faketime {
                    if !clock::has_libfaketime(remote).await {
                        bail!(
                            "clock faults need libfaketime on {} (Debian package libfaketime): {} is missing",
                            remote.name(),
                            clock::LIBFAKETIME
                        );
                    }
                    clock::prepare(remote).await.with_context(|| {
                        format!("preparing the clock file on {}", remote.name())
                    })?;
                }
            }
        }
        if families.contains(&Family::Partition) || families.contains(&Family::Packet) {
            net::prepare_chains(&cx.db_cx.remotes)
                .await
                .context("creating faultline's iptables chains")?;
        }
        let wants_netem = families.contains(&Family::Packet)
            && self
                .config
                .schedule
                .packet_faults
                .iter()
                .any(PacketFault::needs_netem);
        if wants_netem {
            let supported = match self.config.netem {
                Some(known) => known,
                None => net::netem_unsupported(&cx.db_cx.remotes).await.is_empty(),
            };
            if !supported {
                bail!(
                    "delay, duplicate and reorder faults need the kernel's sch_netem, which these hosts lack \
                     (tc: \"Specified qdisc kind is unknown\"); use packet faults `loss` or `rate`, or VMs with a stock kernel"
                );
            }
        }
        Ok(())
    }

    async fn run(&self, cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        if self.config.schedule.overlap {
            // Each family plays its own timeline, as the schedule drew it. Played one after
            // another, a step that takes seconds (an SSH command on an emulated VM) delays
            // every family behind it, and their faults fall into a fixed rhythm instead of
            // the drawn overlaps (a clock reset always right after a partition began).
            let lane = |family: Family| {
                self.play(cx, &stop, started, move |step: &Step| {
                    step.action.family() == family
                })
            };
            tokio::join!(
                lane(Family::Partition),
                lane(Family::Packet),
                lane(Family::Kill),
                lane(Family::Pause),
                lane(Family::Clock),
            );
        } else {
            self.play(cx, &stop, started, |_: &Step| true).await;
        }
        stop.cancelled().await;
        Ok(())
    }

    async fn heal(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        for family in [
            Family::Clock,
            Family::Pause,
            Family::Partition,
            Family::Packet,
            Family::Kill,
        ] {
            self.stop(cx, family).await;
        }
        // Whatever the schedule did not know of (a fault half-applied when an SSH command
        // timed out) is cleared host by host: faultline's chains, qdiscs, paused PIDs, clocks.
        for remote in &cx.db_cx.remotes {
            if let Err(err) = faultline_control::heal::heal_host(remote).await {
                errors.push(format!("{}: {err}", remote.name()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("heal failed on {}", errors.join("; ")))
        }
    }
}
