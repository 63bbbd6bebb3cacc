//! The `lock-set` workload (Jepsen's lock-guarded set), generic over lock services: each
//! `add` acquires the key's lock, reads the set stored in the system, adds its element and
//! writes the whole set back without a compare, then releases. A final `read` per key must
//! hold every acknowledged add (`faultline_checker::set`); lost adds are the visible damage
//! of two holders. With fencing, the write is guarded by the grant's token and a stale
//! holder's write is refused, so the same faults must leave the set whole.
//!
//! A lock service takes part by implementing [`GuardedSet`] for one client process;
//! [`LockSetFactory`] turns such processes into the run's clients.
//!
//! The client pause (`--client-pause-ms N`, `--client-pause-probability P`) is the hazard
//! every lock analysis starts with (Kleppmann, "How to do distributed locking"): a client
//! that acquired the lock, read the set and last checked its grant's validity freezes for
//! N ms (a GC pause, swap, SIGSTOP) before it writes. Its lease expires meanwhile, another
//! client takes the lock and writes, and the woken client overwrites that write. Every
//! pause is in the history: a `client-pause` / `client-pause-done` pair of the nemesis
//! process (the report shades it) and `paused_ms` in the add's value.

use crate::system::SystemRequest;
use async_trait::async_trait;
use faultline_checker::history::{Key, Op, OpType, Process};
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::generator::{Invocation, OpGenerator};
use faultline_core::history::{Event, History};
use faultline_core::nemesis::{Nemesis, NemesisContext};
use faultline_core::run::{RunOptions, Test};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The workload's options (also `run`'s flags `--client-pause-ms`,
/// `--client-pause-probability`).
pub const CLIENT_PAUSE_MS: &str = "client-pause-ms";
pub const CLIENT_PAUSE_PROBABILITY: &str = "client-pause-probability";
/// The longest pause asked for: a bound, so a typo cannot stall a run for an hour.
pub const CLIENT_PAUSE_MS_MAX: u64 = 60_000;
/// The chance of a pause per add when only `--client-pause-ms` is given.
pub const CLIENT_PAUSE_PROBABILITY_DEFAULT: f64 = 0.1;
/// The nemesis ops that mark a pause's start and end (test.json's `nemesis_perf`).
pub const CLIENT_PAUSE_START: &str = "client-pause";
pub const CLIENT_PAUSE_END: &str = "client-pause-done";

/// The lock of a key: the lock workload's name for it, so both workloads look alike.
pub fn lock_name(key: &Key) -> String {
    crate::lock::lock_name(key)
}

/// Where a key's set is stored in the system.
pub fn set_name(key: &Key) -> String {
    match key {
        Key::Int(k) => format!("set-{k}"),
        Key::Str(s) => format!("set-{s}"),
    }
}

/// The set's stored form: a JSON array of integers, ascending.
pub fn encode_set(elements: &[i64]) -> Vec<u8> {
    let mut sorted = elements.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    serde_json::to_vec(&sorted).expect("a list of integers serialises")
}

/// The stored form back; an absent value is the empty set. A value that is not a list of
/// integers is an error naming what was found, never a panic.
pub fn decode_set(bytes: Option<&[u8]>) -> Result<Vec<i64>, String> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    serde_json::from_slice::<Vec<i64>>(bytes).map_err(|e| {
        format!(
            "the stored set is not a JSON list of integers ({e}): {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        )
    })
}

/// How one step against the lock service or its store ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// It certainly did not take effect (refused, not granted, compare failed).
    Definite(String),
    /// Unknown: a timeout or lost connection; it may have taken effect.
    Indefinite(String),
}

impl StepError {
    /// `Definite` when the step certainly did not take effect, else `Indefinite`.
    pub fn classified(definite: bool, why: impl std::fmt::Display) -> StepError {
        if definite {
            StepError::Definite(why.to_string())
        } else {
            StepError::Indefinite(why.to_string())
        }
    }

    /// A client's `fail` or `info` as a step's error (`info` stays unknown).
    pub fn from_completion(done: Completion) -> StepError {
        let why = done.error.unwrap_or_default();
        match done.kind {
            faultline_checker::history::OpType::Info => StepError::Indefinite(why),
            _ => StepError::Definite(why),
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Definite(s) | StepError::Indefinite(s) => f.write_str(s),
        }
    }
}

/// A lock grant as the workload sees it: the fencing token where the service issues one,
/// and the service's own handle to release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub token: Option<i64>,
    /// Whatever the service needs to release (or fence with) this grant: a lock key, a
    /// random value.
    pub handle: Vec<u8>,
}

/// One client process of a lock service that also stores the set (or reaches a store).
/// Implementations classify their own errors; they must not panic on anything the
/// service answers.
#[async_trait]
pub trait GuardedSet: Send {
    /// Acquires `lock`, waiting at most the service's own bound.
    async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError>;
    /// Releases a grant of `lock`. Errors here never undo an add that was written.
    async fn release(&mut self, lock: &str, grant: &Grant) -> Result<(), StepError>;
    /// Reads the set named `set` (empty when absent).
    async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError>;
    /// Writes the whole set. With `fence`, only while that grant still holds the lock (the
    /// service's token check); a refused write is `Definite`.
    async fn write(
        &mut self,
        set: &str,
        elements: &[i64],
        fence: Option<(&str, &Grant)>,
    ) -> Result<(), StepError>;
    /// Whether the grant still holds by the client's own reckoning (Redlock's validity
    /// time, a session's last keepalive), checked last before the write: a `Definite`
    /// error stops the add before anything is written. Services without such a check
    /// keep the default.
    fn check_valid(&mut self, _lock: &str, _grant: &Grant) -> Result<(), StepError> {
        Ok(())
    }
    /// Freezes this client process for `pause`, as a GC pause or SIGSTOP would: whatever it
    /// runs in the background (keepalives, pings) must stop meanwhile, or the pause would
    /// not let its lease expire. The default, a sleep, is right for a client that runs
    /// nothing in the background (a Redis TTL lock, Redlock).
    async fn pause(&mut self, pause: Duration) {
        tokio::time::sleep(pause).await;
    }
    /// Whether this service can fence writes with its grants (`--fencing` needs it).
    fn can_fence(&self) -> bool;
    /// The host this process talks to, recorded with each op.
    fn node(&self) -> Option<&str>;
}

/// Opens one [`GuardedSet`] process per client process.
pub trait GuardedSetFactory: Send + Sync {
    fn open(&self, worker: usize, process: u64) -> anyhow::Result<Box<dyn GuardedSet>>;
}

/// Adds unique elements (one counter for the whole run, so every element is unique across
/// keys too) and reads each used key's set at the end.
#[derive(Debug, Default)]
pub struct LockSetGenerator {
    next: AtomicI64,
}

impl OpGenerator for LockSetGenerator {
    fn next_op(&self, key: &Key, _rng: &mut ChaCha8Rng) -> Invocation {
        Invocation {
            f: "add",
            key: Some(key.clone()),
            value: json!(self.next.fetch_add(1, Ordering::Relaxed)),
        }
    }

    fn final_op(&self, key: &Key) -> Option<Invocation> {
        Some(Invocation {
            f: "read",
            key: Some(key.clone()),
            value: Value::Null,
        })
    }
}

/// `--client-pause-ms` / `--client-pause-probability`: how long a paused client sleeps
/// between its last validity check and its write, and how often an add pauses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientPause {
    pub ms: u64,
    pub probability: f64,
}

impl ClientPause {
    /// The pause a request asks for, checked: `None` without `--client-pause-ms`.
    pub fn from_request(request: &SystemRequest) -> anyhow::Result<Option<ClientPause>> {
        let ms = request.parsed::<u64>(CLIENT_PAUSE_MS)?;
        let probability = request.parsed::<f64>(CLIENT_PAUSE_PROBABILITY)?;
        let Some(ms) = ms else {
            anyhow::ensure!(
                probability.is_none(),
                "--client-pause-probability needs --client-pause-ms (how long a client pauses)"
            );
            return Ok(None);
        };
        anyhow::ensure!(
            (1..=CLIENT_PAUSE_MS_MAX).contains(&ms),
            "--client-pause-ms must be between 1 and {CLIENT_PAUSE_MS_MAX}, not {ms}"
        );
        let probability = probability.unwrap_or(CLIENT_PAUSE_PROBABILITY_DEFAULT);
        anyhow::ensure!(
            probability > 0.0 && probability <= 1.0,
            "--client-pause-probability must be in (0, 1], not {probability}"
        );
        Ok(Some(ClientPause { ms, probability }))
    }

    fn duration(&self) -> Duration {
        Duration::from_millis(self.ms)
    }
}

/// The run's history as the clients see it, filled in by [`PauseRecorder`]'s setup (which
/// runs before any client opens): pauses are recorded as nemesis ops on the history's
/// clock, and grant times are stamped on the same clock.
#[derive(Clone, Default)]
pub struct PauseLog {
    history: Arc<OnceLock<History>>,
    /// At most one client is paused at a time, so each shaded band in the report is one
    /// pause and every lost add has one pause to answer for.
    pausing: Arc<AtomicBool>,
}

impl PauseLog {
    /// Seconds since the test started, when the history is known.
    fn now_s(&self) -> Option<f64> {
        self.history.get().map(|h| h.elapsed_ns() as f64 / 1e9)
    }

    /// Records `f` as an instantaneous nemesis op (invoke and info): pairs of the nemesis
    /// process are matched by `f`, so a begin and an end of different names never cross.
    fn record(&self, f: &str, value: Value) {
        let Some(history) = self.history.get() else {
            return;
        };
        for kind in [OpType::Invoke, OpType::Info] {
            history.record(Event {
                kind,
                process: Process::Nemesis,
                f: f.to_owned(),
                key: None,
                value: value.clone(),
                node: None,
                error: None,
            });
        }
    }
}

/// The nemesis half of the client pause: it injects nothing itself (the clients pause),
/// it hands the clients the run's history before they start.
pub struct PauseRecorder(pub PauseLog);

#[async_trait]
impl Nemesis for PauseRecorder {
    fn names(&self) -> Vec<String> {
        vec![CLIENT_PAUSE_START.to_owned()]
    }
    async fn setup(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        // A second run of the same test would bring a new history; the first one set wins
        // for this test's clients, which is the one they record into.
        let _ = self.0.history.set(cx.history.clone());
        Ok(())
    }
    async fn run(&self, _cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        Ok(())
    }
    async fn heal(&self, _cx: &NemesisContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What a lock-set run's clients are asked beyond the service itself: `--fencing` and the
/// client pause. Every system serving lock-set builds its clients through one, so the
/// options mean the same everywhere: [`LockSetPlan::new`] reads and checks them and writes
/// test.json's fields, [`LockSetPlan::factory`] wraps the system's processes,
/// [`LockSetPlan::install`] adds the pause's recorder to the built test.
pub struct LockSetPlan {
    pub fencing: bool,
    pub pause: Option<ClientPause>,
    seed: u64,
    log: PauseLog,
}

impl LockSetPlan {
    pub fn new(request: &SystemRequest, options: &mut RunOptions) -> anyhow::Result<LockSetPlan> {
        let fencing = crate::systems::fencing(request)?;
        let pause = ClientPause::from_request(request)?;
        let fields = &mut options.test_fields;
        fields.entry("fencing").or_insert(json!(fencing));
        if let Some(p) = pause {
            fields.entry("client_pause_ms").or_insert(json!(p.ms));
            fields
                .entry("client_pause_probability")
                .or_insert(json!(p.probability));
            // The harness's bound on one op must not cut a pause short: a paused add is
            // still one op, and its write's fate is what the run measures.
            options.op_timeout += p.duration();
            let perf = json!({"name": CLIENT_PAUSE_START, "start": [CLIENT_PAUSE_START],
         "stop": [CLIENT_PAUSE_END], "color": "#f7a8c8"});
            crate::systems::push_perf(options, perf);
        }
        Ok(LockSetPlan {
            fencing,
            pause,
            seed: options.seed,
            log: PauseLog::default(),
        })
    }

    /// The run's clients over the system's processes.
    pub fn factory<F: GuardedSetFactory>(&self, inner: F) -> LockSetFactory<F> {
        LockSetFactory::new(inner, self.fencing).with_pause(self.pause, self.seed, self.log.clone())
    }

    /// Gives the built test the pause's recorder beside its own nemesis.
    pub fn install(&self, test: &mut Test) {
        if self.pause.is_some() {
            let recorder: Arc<dyn Nemesis> = Arc::new(PauseRecorder(self.log.clone()));
            crate::lock_db::BothNemeses::add_to(test, recorder);
        }
    }
}

/// The run's clients: every process of the lock service, driven through the add's steps.
pub struct LockSetFactory<F> {
    inner: F,
    fencing: bool,
    pause: Option<(ClientPause, u64, PauseLog)>,
}

impl<F: GuardedSetFactory> LockSetFactory<F> {
    /// `fencing`: guard every write with the grant's token.
    pub fn new(inner: F, fencing: bool) -> Self {
        LockSetFactory {
            inner,
            fencing,
            pause: None,
        }
    }

    /// Clients that pause as `pause` says, each process drawing from its own rng seeded by
    /// the run's `seed` and its process number (a rerun with the seed pauses the same adds,
    /// as far as the run's timing repeats), recording into `log`.
    pub fn with_pause(mut self, pause: Option<ClientPause>, seed: u64, log: PauseLog) -> Self {
        self.pause = pause.map(|p| (p, seed, log));
        self
    }
}

impl<F: GuardedSetFactory> ClientFactory for LockSetFactory<F> {
    fn open(&self, worker: usize, process: u64) -> anyhow::Result<Box<dyn Client>> {
        let service = self.inner.open(worker, process)?;
        anyhow::ensure!(
            !self.fencing || service.can_fence(),
            "this lock service issues no fencing token, so --fencing cannot guard its writes"
        );
        Ok(Box::new(LockSetClient {
            service,
            fencing: self.fencing,
            process,
            pause: self.pause.as_ref().map(|(pause, seed, log)| Pauser {
                pause: *pause,
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5041_5553_4500_0000 ^ process),
                log: log.clone(),
            }),
        }))
    }
}

/// One process's pauses: whether this add pauses, and the record of it.
struct Pauser {
    pause: ClientPause,
    rng: ChaCha8Rng,
    log: PauseLog,
}

/// One client process of the workload.
pub struct LockSetClient {
    service: Box<dyn GuardedSet>,
    fencing: bool,
    process: u64,
    pause: Option<Pauser>,
}

fn element_of(op: &Invocation) -> Option<i64> {
    op.value.as_i64()
}

impl LockSetClient {
    /// The add's outcome is the write's: nothing before the write can have added the
    /// element, so every earlier failure (even an unknown acquire) is `fail`.
    async fn add(&mut self, key: &Key, element: i64) -> Completion {
        let (lock, set) = (lock_name(key), set_name(key));
        let grant = match self.service.acquire(&lock).await {
            Ok(grant) => grant,
            Err(e) => return Completion::fail(format!("acquiring {lock}: {e}")),
        };
        let granted_s = self.pause.as_ref().and_then(|p| p.log.now_s());
        let mut paused_ms = None;
        let written = match self.service.read(&set).await {
            Err(e) => Err(StepError::Definite(format!("reading {set}: {e}"))),
            Ok(mut elements) => {
                elements.push(element);
                match self.service.check_valid(&lock, &grant) {
                    Err(StepError::Definite(s)) => {
                        let why = format!("not written: the grant of {lock} expired: {s}");
                        return self.released(&lock, &grant, Completion::fail(why)).await;
                    }
                    Err(StepError::Indefinite(s)) => {
                        let why = format!("not written: the grant of {lock} is in doubt: {s}");
                        return self.released(&lock, &grant, Completion::fail(why)).await;
                    }
                    Ok(()) => {}
                }
                // The hazard: frozen after the last check, before the write.
                paused_ms = self.maybe_pause(&lock, &grant, element, granted_s).await;
                let fence = self.fencing.then_some((lock.as_str(), &grant));
                self.service
                    .write(&set, &elements, fence)
                    .await
                    .map_err(|e| match e {
                        StepError::Definite(s) => {
                            StepError::Definite(format!("writing {set}: {s}"))
                        }
                        StepError::Indefinite(s) => {
                            StepError::Indefinite(format!("writing {set}: {s}"))
                        }
                    })
            }
        };
        let token = grant.token.map_or(Value::Null, |t| json!(t));
        let done = match written {
            Ok(()) => {
                let mut value = json!({"element": element, "token": token});
                if let Some(at) = granted_s {
                    value["granted_s"] = json!(at);
                }
                if let Some(ms) = paused_ms {
                    value["paused_ms"] = json!(ms);
                }
                Completion::ok(Some(value))
            }
            Err(StepError::Definite(s)) => Completion::fail(s),
            Err(StepError::Indefinite(s)) => Completion::info(s),
        };
        self.released(&lock, &grant, done).await
    }

    /// Releases `grant` and returns `done`: a release that fails leaves the lock to its
    /// lease, and the add's fate is the write's.
    async fn released(&mut self, lock: &str, grant: &Grant, done: Completion) -> Completion {
        if let Err(e) = self.service.release(lock, grant).await {
            tracing::debug!("releasing {lock}: {e}");
        }
        done
    }

    /// Pauses this add when its draw says so and no other client is paused; the pause's
    /// length when it did. The draw is made for every add, so whether add k of a process
    /// pauses does not depend on the other processes' timing.
    async fn maybe_pause(
        &mut self,
        lock: &str,
        grant: &Grant,
        element: i64,
        granted_s: Option<f64>,
    ) -> Option<u64> {
        let pauser = self.pause.as_mut()?;
        let draw = pauser.rng.random_bool(pauser.pause.probability);
        if !draw
            || pauser
                .log
                .pausing
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return None;
        }
        let ms = pauser.pause.ms;
        let value = json!({
            "process": self.process,
            "lock": lock,
            "token": grant.token,
            "element": element,
            "granted_s": granted_s,
            "ms": ms,
        });
        pauser.log.record(CLIENT_PAUSE_START, value.clone());
        // Ends the pause's record even when the harness cancels the op mid-pause.
        let _end = PauseEnd {
            log: pauser.log.clone(),
            value,
        };
        let duration = pauser.pause.duration();
        self.service.pause(duration).await;
        Some(ms)
    }
}

/// Records a pause's end and lets the next client pause, when dropped.
struct PauseEnd {
    log: PauseLog,
    value: Value,
}

impl Drop for PauseEnd {
    fn drop(&mut self) {
        self.log
            .record(CLIENT_PAUSE_END, std::mem::take(&mut self.value));
        self.log.pausing.store(false, Ordering::SeqCst);
    }
}

/// The set checker (`faultline_checker::set`) with every lost add it can tie to a client
/// pause explained in those terms: who was paused, while holding which grant, and who was
/// granted the lock meanwhile. The verdict is the set checker's, unchanged.
pub struct LockSetChecker;

impl faultline_core::check::Checker for LockSetChecker {
    fn name(&self) -> String {
        "set".into()
    }
    fn check(&self, ops: &[Op]) -> Result<Vec<faultline_checker::CheckerResult>, String> {
        let mut result = faultline_checker::check_set(ops);
        if let Some(more) = explain_pauses(ops, &result) {
            // The cause first: the set checker's own account (which adds ran beside which)
            // follows.
            result.explanation = Some(match result.explanation.take() {
                Some(rest) => format!("{more} {rest}"),
                None => more,
            });
        }
        Ok(vec![faultline_checker::CheckerResult::Set(result)])
    }
}

/// One client pause as the history has it.
#[derive(Debug)]
struct PauseRecord {
    process: u64,
    lock: String,
    element: Option<i64>,
    granted_s: Option<f64>,
    ms: u64,
    start_s: f64,
    end_s: Option<f64>,
}

/// One acknowledged add: who, which lock, when it was granted.
struct AckedAdd {
    process: u64,
    granted_s: Option<f64>,
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn at(s: Option<f64>) -> String {
    s.map_or("an unrecorded time".to_owned(), |s| format!("{s:.3} s"))
}

/// Sentences tying lost adds to client pauses; `None` when there are no pauses or nothing
/// was lost.
fn explain_pauses(ops: &[Op], result: &faultline_checker::set::SetResult) -> Option<String> {
    let mut pauses: Vec<PauseRecord> = Vec::new();
    for op in ops.iter().filter(|o| o.process == Process::Nemesis) {
        if op.kind != OpType::Info {
            continue;
        }
        let v = &op.value;
        let element = v["element"].as_i64();
        if op.f == CLIENT_PAUSE_START {
            pauses.push(PauseRecord {
                process: v["process"].as_u64().unwrap_or(u64::MAX),
                lock: v["lock"].as_str().unwrap_or_default().to_owned(),
                element,
                granted_s: v["granted_s"].as_f64(),
                ms: v["ms"].as_u64().unwrap_or(0),
                start_s: seconds(op.time),
                end_s: None,
            });
        } else if op.f == CLIENT_PAUSE_END {
            if let Some(p) = pauses
                .iter_mut()
                .rev()
                .find(|p| p.end_s.is_none() && p.element == element)
            {
                p.end_s = Some(seconds(op.time));
            }
        }
    }
    if pauses.is_empty() {
        return None;
    }
    // Acknowledged adds by element: the completion's value carries the grant time.
    let mut acked: HashMap<i64, AckedAdd> = HashMap::new();
    let mut open: HashMap<u64, &Op> = HashMap::new();
    for op in ops {
        let Process::Client(p) = op.process else {
            continue;
        };
        if op.kind == OpType::Invoke {
            open.insert(p, op);
            continue;
        }
        let Some(invoke) = open.remove(&p) else {
            continue;
        };
        if invoke.f != "add" || op.kind != OpType::Ok {
            continue;
        }
        if let Some(e) = invoke.value.as_i64() {
            acked.insert(
                e,
                AckedAdd {
                    process: p,
                    granted_s: op.value["granted_s"].as_f64(),
                },
            );
        }
    }
    let mut sentences = Vec::new();
    let mut unexplained = 0usize;
    for set in &result.sets {
        let Some(key) = &set.key else { continue };
        let lock = lock_name(key);
        for e in &set.lost {
            let Some(add) = acked.get(e) else {
                unexplained += 1;
                continue;
            };
            let on_lock = || pauses.iter().filter(|p| p.lock == lock);
            if let Some(p) = on_lock().find(|p| p.element == Some(*e)) {
                // The paused add itself was overwritten: someone wrote after it woke.
                let end = p.end_s.unwrap_or(f64::INFINITY);
                let during: Vec<String> = acked
                    .values()
                    .filter(|a| a.process != p.process)
                    .filter(|a| a.granted_s.is_some_and(|g| g >= p.start_s && g <= end))
                    .take(3)
                    .map(|a| format!("process {} at {}", a.process, at(a.granted_s)))
                    .collect();
                let meanwhile = if during.is_empty() {
                    format!("another holder was granted {lock}")
                } else {
                    format!("{lock} was granted to {}", during.join(", "))
                };
                sentences.push(format!(
                    "add {e} by process {} was lost: process {} was paused {} ms ({:.3}–{}) while holding {lock} granted at {}, and {} during the pause.",
                    p.process,
                    p.process,
                    p.ms,
                    p.start_s,
                    at(p.end_s),
                    at(p.granted_s),
                    meanwhile
                ));
                continue;
            }
            let overwritten_by = on_lock().find(|p| {
                p.process != add.process
                    && add.granted_s.is_some_and(|g| {
                        g >= p.granted_s.unwrap_or(p.start_s)
                            && g <= p.end_s.unwrap_or(f64::INFINITY)
                    })
            });
            match overwritten_by {
                Some(p) => sentences.push(format!(
                    "add {e} by process {} was lost: process {} was granted {lock} at {} while process {} held it (granted at {}) and was paused {} ms ({:.3}–{}); process {} then wrote the set it had read before its pause, without {e}.",
                    add.process,
                    add.process,
                    at(add.granted_s),
                    p.process,
                    at(p.granted_s),
                    p.ms,
                    p.start_s,
                    at(p.end_s),
                    p.process
                )),
                None => unexplained += 1,
            }
        }
    }
    if sentences.is_empty() && unexplained == 0 {
        return None;
    }
    let shown = sentences.len().min(10);
    let mut text = format!(
        "Client pauses ({} in the history): {}",
        pauses.len(),
        sentences[..shown].join(" ")
    );
    if sentences.len() > shown {
        text.push_str(&format!(
            " {} more lost adds are explained the same way.",
            sentences.len() - shown
        ));
    }
    if unexplained > 0 {
        text.push_str(&format!(
            " {unexplained} lost add(s) fall in no client pause."
        ));
    }
    Some(text)
}

#[async_trait]
impl Client for LockSetClient {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let Some(key) = &op.key else {
            return Completion::fail("a lock-set op needs a key");
        };
        match (op.f, element_of(op)) {
            ("add", Some(element)) => self.add(key, element).await,
            ("read", _) => match self.service.read(&set_name(key)).await {
                Ok(elements) => Completion::ok(Some(json!(elements))),
                // A read changes nothing, so even an unknown one certainly did not happen.
                Err(e) => Completion::fail(e.to_string()),
            },
            (f, _) => Completion::fail(format!(
                "the lock-set client has no op {f:?} with value {}",
                op.value
            )),
        }
    }

    fn node(&self) -> Option<&str> {
        self.service.node()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::generator::worker_rng;
    use std::sync::Mutex;

    /// A lock service in memory that grants every acquire a fresh token (as if every older
    /// lease had just expired) and fences writes on the newest token.
    #[derive(Default, Clone)]
    struct Memory {
        sets: Arc<Mutex<HashMap<String, Vec<i64>>>>,
        tokens: Arc<Mutex<HashMap<String, i64>>>,
    }

    struct MemoryProcess(Memory);

    #[async_trait]
    impl GuardedSet for MemoryProcess {
        async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError> {
            let mut tokens = self.0.tokens.lock().unwrap();
            let t = tokens.entry(lock.into()).or_insert(0);
            *t += 1;
            Ok(Grant {
                token: Some(*t),
                handle: Vec::new(),
            })
        }
        async fn release(&mut self, _lock: &str, _grant: &Grant) -> Result<(), StepError> {
            Ok(())
        }
        async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError> {
            Ok(self
                .0
                .sets
                .lock()
                .unwrap()
                .get(set)
                .cloned()
                .unwrap_or_default())
        }
        async fn write(
            &mut self,
            set: &str,
            elements: &[i64],
            fence: Option<(&str, &Grant)>,
        ) -> Result<(), StepError> {
            if let Some((lock, grant)) = fence {
                if self.0.tokens.lock().unwrap().get(lock).copied() != grant.token {
                    return Err(StepError::Definite("fenced: a newer grant exists".into()));
                }
            }
            self.0
                .sets
                .lock()
                .unwrap()
                .insert(set.into(), elements.to_vec());
            Ok(())
        }
        fn can_fence(&self) -> bool {
            true
        }
        fn node(&self) -> Option<&str> {
            Some("n1")
        }
    }

    fn client(
        memory: &Memory,
        process: u64,
        fencing: bool,
        pause_ms: Option<u64>,
    ) -> LockSetClient {
        LockSetClient {
            service: Box::new(MemoryProcess(memory.clone())),
            fencing,
            process,
            pause: pause_ms.map(|ms| Pauser {
                pause: ClientPause {
                    ms,
                    probability: 1.0,
                },
                rng: ChaCha8Rng::seed_from_u64(process),
                log: PauseLog::default(),
            }),
        }
    }

    /// Process 1 acquires, reads the empty set and pauses; process 2 is granted the lock
    /// meanwhile (the memory service grants every acquire, as if 1's lease had expired) and
    /// adds 20; then 1 wakes and writes. The final set and both adds' outcomes.
    async fn paused_holder_and_new_holder(fencing: bool) -> (Vec<i64>, OpType, OpType) {
        let memory = Memory::default();
        let mut paused = client(&memory, 1, fencing, Some(200));
        let mut other = client(&memory, 2, fencing, None);
        let key = Key::Int(0);
        let first = tokio::spawn({
            let key = key.clone();
            async move { paused.add(&key, 10).await }
        });
        // Until 1 holds its (soon stale) grant and sleeps.
        while memory.tokens.lock().unwrap().get("lock-0").is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let second = other.add(&key, 20).await;
        let first = first.await.unwrap();
        let set = memory
            .sets
            .lock()
            .unwrap()
            .get("set-0")
            .cloned()
            .unwrap_or_default();
        (set, first.kind, second.kind)
    }

    #[tokio::test]
    async fn a_paused_holder_loses_the_new_holders_add_unless_writes_are_fenced() {
        let (set, paused, other) = paused_holder_and_new_holder(false).await;
        // Both acknowledged, and 20 is gone: 1 wrote the set it read before its pause.
        assert_eq!((paused, other), (OpType::Ok, OpType::Ok));
        assert_eq!(set, vec![10]);
        let (set, paused, other) = paused_holder_and_new_holder(true).await;
        // Fenced: the stale token's write is refused (fail), and every ok add is kept.
        assert_eq!((paused, other), (OpType::Fail, OpType::Ok));
        assert_eq!(set, vec![20]);
    }

    #[test]
    fn pause_options_are_checked_and_bounded() {
        let request = |opts: &[(&str, &str)]| crate::systems::test_request("lock-set", opts);
        assert_eq!(ClientPause::from_request(&request(&[])).unwrap(), None);
        let p = ClientPause::from_request(&request(&[(CLIENT_PAUSE_MS, "1500")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.ms, p.probability),
            (1500, CLIENT_PAUSE_PROBABILITY_DEFAULT)
        );
        for bad in [
            vec![(CLIENT_PAUSE_MS, "0")],
            vec![(CLIENT_PAUSE_MS, "60001")],
            vec![(CLIENT_PAUSE_MS, "100"), (CLIENT_PAUSE_PROBABILITY, "1.5")],
            vec![(CLIENT_PAUSE_MS, "100"), (CLIENT_PAUSE_PROBABILITY, "0")],
            vec![(CLIENT_PAUSE_PROBABILITY, "0.5")],
        ] {
            assert!(
                ClientPause::from_request(&request(&bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    fn op(index: u64, time_ms: u64, kind: OpType, process: Process, f: &str, value: Value) -> Op {
        Op {
            index,
            time: time_ms * 1_000_000,
            kind,
            process,
            f: f.into(),
            key: (f == "add" || f == "read").then_some(Key::Int(0)),
            value,
            node: None,
            error: None,
        }
    }

    #[test]
    fn a_lost_add_is_explained_by_the_pause_it_fell_into() {
        use faultline_core::check::Checker;
        use OpType::*;
        let (p1, p2, nem) = (Process::Client(1), Process::Client(2), Process::Nemesis);
        let pause = json!({"process": 1, "lock": "lock-0", "token": null, "element": 10,
      "granted_s": 1.0, "ms": 1500});
        let h = vec![
            op(0, 1000, Invoke, p1, "add", json!(10)),
            op(1, 1010, Invoke, nem, CLIENT_PAUSE_START, pause.clone()),
            op(2, 1010, Info, nem, CLIENT_PAUSE_START, pause.clone()),
            op(3, 1200, Invoke, p2, "add", json!(20)),
            op(
                4,
                1210,
                Ok,
                p2,
                "add",
                json!({"element": 20, "granted_s": 1.2}),
            ),
            op(5, 2510, Invoke, nem, CLIENT_PAUSE_END, pause.clone()),
            op(6, 2510, Info, nem, CLIENT_PAUSE_END, pause),
            op(
                7,
                2520,
                Ok,
                p1,
                "add",
                json!({"element": 10, "granted_s": 1.0, "paused_ms": 1500}),
            ),
            op(8, 3000, Invoke, p2, "read", json!(null)),
            op(9, 3010, Ok, p2, "read", json!([10])),
        ];
        let results = LockSetChecker.check(&h).unwrap();
        let faultline_checker::CheckerResult::Set(set) = &results[0] else {
            panic!("a set result: {results:?}");
        };
        assert_eq!(set.valid, faultline_checker::Validity::Invalid);
        let text = set.explanation.as_deref().unwrap();
        assert!(
            text.contains("add 20 by process 2 was lost: process 2 was granted lock-0 at 1.200 s \
                 while process 1 held it (granted at 1.000 s) and was paused 1500 ms (1.010–2.510 s)"),
            "{text}"
        );
    }

    #[test]
    fn the_set_round_trips_and_bad_bytes_are_errors() {
        assert_eq!(decode_set(Some(&encode_set(&[3, 1, 3]))), Ok(vec![1, 3]));
        assert_eq!(decode_set(None), Ok(vec![]));
        let err = decode_set(Some(b"{\"x\":1}")).unwrap_err();
        assert!(err.contains("not a JSON list"), "{err}");
    }

    #[test]
    fn elements_are_unique_and_every_key_is_read_at_the_end() {
        let g = LockSetGenerator::default();
        let mut rng = worker_rng(1, 0);
        let a = g.next_op(&Key::Int(0), &mut rng);
        let b = g.next_op(&Key::Int(1), &mut rng);
        assert_eq!((a.f, a.value.clone()), ("add", json!(0)));
        assert_eq!(b.value, json!(1));
        assert_eq!(g.final_op(&Key::Int(1)).unwrap().f, "read");
    }

    #[tokio::test]
    async fn an_add_is_read_back_and_a_stale_fenced_write_fails() {
        let memory = Memory::default();
        let mut a = LockSetClient {
            service: Box::new(MemoryProcess(memory.clone())),
            fencing: true,
            process: 0,
            pause: None,
        };
        let key = Key::Int(0);
        let done = a.add(&key, 7).await;
        assert_eq!(done.kind, faultline_checker::history::OpType::Ok);
        assert_eq!(done.value, Some(json!({"element": 7, "token": 1})));
        // A stale holder: its grant is older than the lock's newest.
        let stale = Grant {
            token: Some(1),
            handle: Vec::new(),
        };
        memory.tokens.lock().unwrap().insert("lock-0".into(), 5);
        let mut p = MemoryProcess(memory.clone());
        let refused = p.write("set-0", &[1], Some(("lock-0", &stale))).await;
        assert!(matches!(refused, Err(StepError::Definite(_))));
        let read = a
            .invoke(&Invocation {
                f: "read",
                key: Some(key),
                value: Value::Null,
            })
            .await;
        assert_eq!(read.value, Some(json!([7])));
    }
}
