//! One run end to end (DESIGN §1): hosts, db setup, clients beside the nemesis, heal, final
//! phase, teardown, logs, check, results.json — with the clean-up steps run on every path
//! (error, panic, interrupt).

use crate::check::Checker;
use crate::client::ClientFactory;
use crate::db::{Db, DbContext};
use crate::generator::{KeyPlan, OpGenerator};
use crate::history::{History, HistoryWriter};
use crate::nemesis::{Nemesis, NemesisContext};
use crate::runlog;
use crate::store;
use crate::worker::{ClientPool, WorkerConfig};
use anyhow::Context;
use faultline_checker::{CheckOptions, RunResults, Stats, Validity};
use faultline_control::{Control, HostSpec, SshConfig};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;
use tracing::{error, info, warn};

/// After an interrupt, how long the clients and setup steps get to wind down before
/// they are aborted and clean-up starts regardless.
const INTERRUPT_GRACE: Duration = Duration::from_secs(15);
/// Bounds of the clean-up steps: one unreachable host must not hang the run forever.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of the final phase (one op per used key, spread over the workers).
const FINAL_PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `Control::connect` may take in all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to run: everything test.json records, and where.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The test's name: the folder under `results_dir`.
    pub name: String,
    pub results_dir: PathBuf,
    /// The hosts; empty runs without SSH (a db and client that need no hosts).
    pub hosts: Vec<HostSpec>,
    pub ssh: SshConfig,
    pub seed: u64,
    pub concurrency: usize,
    /// Target ops/s over all clients; `None`: as fast as they go.
    pub rate: Option<f64>,
    pub time_limit: Duration,
    /// The harness's own bound on one op, above the clients' timeouts.
    pub op_timeout: Duration,
    /// Independent keys: how many workers share a key, and ops per key before moving on.
    pub workers_per_key: usize,
    pub ops_per_key: u64,
    pub leave_db_running: bool,
    pub check: CheckOptions,
    /// Further test.json fields (`db`, `workload`, `bug`, `read_mode`, `nemesis`,
    /// `command`, …), written as given.
    pub test_fields: Map<String, Value>,
    /// Mirror the run's log to stderr from this level on.
    pub stderr_log: Option<tracing::Level>,
    /// Environment of the system's processes (`DbContext::env`): libfaketime's for clock
    /// faults on local hosts.
    pub db_env: Vec<(String, String)>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            name: "test".into(),
            results_dir: PathBuf::from("results"),
            hosts: Vec::new(),
            ssh: SshConfig::default(),
            seed: 0,
            concurrency: 10,
            rate: Some(100.0),
            time_limit: Duration::from_secs(30),
            op_timeout: Duration::from_secs(10),
            workers_per_key: 5,
            ops_per_key: 200,
            leave_db_running: false,
            check: CheckOptions::default(),
            test_fields: Map::new(),
            stderr_log: None,
            db_env: Vec::new(),
        }
    }
}

/// A test: the system, its client and generator, the nemesis, and how its history is
/// checked.
pub struct Test {
    pub options: RunOptions,
    pub db: Arc<dyn Db>,
    pub client: Arc<dyn ClientFactory>,
    pub generator: Arc<dyn OpGenerator>,
    pub nemesis: Arc<dyn Nemesis>,
    /// Checkers run on the history after `options.check`'s built-in ones (see
    /// `built_in_check`); their verdicts combine into the run's. `faultline report`
    /// re-checks with them too when the registry it runs with has the test's workload.
    pub checkers: Vec<Arc<dyn Checker>>,
    /// Whether the built-in checks of `options.check` run; off for a test whose own
    /// `checkers` say everything (a user's model on a history the built-ins would misread).
    pub built_in_check: bool,
}

impl Test {
    /// A test without faults, checked by `options.check`'s built-in checks.
    pub fn new(
        options: RunOptions,
        db: Arc<dyn Db>,
        client: Arc<dyn ClientFactory>,
        generator: Arc<dyn OpGenerator>,
    ) -> Test {
        Test {
            options,
            db,
            client,
            generator,
            nemesis: Arc::new(crate::nemesis::NoNemesis),
            checkers: Vec::new(),
            built_in_check: true,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub dir: PathBuf,
    /// The checkers' verdict, when the history could be checked.
    pub valid: Option<Validity>,
    /// Why the run itself failed (setup, SSH, interrupt, panic, …); exit code 3.
    pub error: Option<String>,
    pub stats: Stats,
}

impl RunOutcome {
    /// DESIGN §3: 0 valid, 1 invalid, 2 unknown, 3 the harness failed.
    pub fn exit_code(&self) -> u8 {
        match (&self.error, self.valid) {
            (Some(_), _) | (None, None) => 3,
            (None, Some(valid)) => valid.exit_code() as u8,
        }
    }
}

/// Runs `test`, stopping early and cleaning up when `interrupt` completes (e.g. Ctrl-C).
/// Returns `Err` only when the run folder itself cannot be made; every later failure is
/// in the outcome (and results.json) with whatever history was recorded.
pub async fn run(
    test: Test,
    interrupt: impl Future<Output = ()> + Send,
) -> anyhow::Result<RunOutcome> {
    let start_wall = SystemTime::now();
    let options = &test.options;
    let dir = store::create_run_dir(&options.results_dir, &options.name, start_wall)?;
    let log_path = dir.join(store::LOG_FILE);
    let dispatch = runlog::dispatch(&log_path, options.stderr_log)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    Ok(run_in(test, dir, start_wall, interrupt)
        .with_subscriber(dispatch)
        .await)
}

/// test.json (docs/contracts.md).
fn test_json(options: &RunOptions, start_wall: SystemTime, nemesis: &[String]) -> Value {
    let mut fields = Map::new();
    let nodes: Vec<&str> = options.hosts.iter().map(|h| h.name.as_str()).collect();
    for (k, v) in [
        ("name", json!(options.name)),
        ("faultline_version", json!(env!("CARGO_PKG_VERSION"))),
        ("seed", json!(options.seed)),
        ("nemesis", json!(nemesis)),
        ("nodes", json!(nodes)),
        ("concurrency", json!(options.concurrency)),
        ("rate", json!(options.rate)),
        ("time_limit_s", json!(options.time_limit.as_secs_f64())),
        ("start_time", json!(store::rfc3339(start_wall))),
        ("workers_per_key", json!(options.workers_per_key)),
        ("ops_per_key", json!(options.ops_per_key)),
        ("leave_db_running", json!(options.leave_db_running)),
    ] {
        fields.insert(k.into(), v);
    }
    // `faultline report` re-checks with the model the run used.
    if let Some(model) = &options.check.model {
        fields.insert("model".into(), json!(model));
    }
    for (k, v) in &options.test_fields {
        fields.insert(k.clone(), v.clone());
    }
    Value::Object(fields)
}

/// What the main phases hand to clean-up, whatever point they reached.
#[derive(Default)]
struct Reached {
    control: Option<Arc<Control>>,
    /// Made once the db is ready, so that time 0 of the history is the workload's start.
    writer: Option<HistoryWriter>,
    db_cx: Option<DbContext>,
    nemesis_cx: Option<NemesisContext>,
}

type Shared = Arc<Mutex<Reached>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Reached> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

async fn run_in(
    test: Test,
    dir: PathBuf,
    start_wall: SystemTime,
    interrupt: impl Future<Output = ()> + Send,
) -> RunOutcome {
    let mut errors: Vec<String> = Vec::new();
    let options = test.options.clone();
    info!(dir = %dir.display(), seed = options.seed, "run of {} starts", options.name);
    let config = test_json(&options, start_wall, &test.nemesis.names());
    if let Err(err) = store::write_json(&dir.join(store::TEST_JSON), &config) {
        errors.push(format!("{err:#}"));
    }
    let shared: Shared = Arc::default();
    let stop = CancellationToken::new();
    let test = Arc::new(test);
    let mut main = runlog::spawn(main_phases(
        test.clone(),
        dir.clone(),
        shared.clone(),
        stop.clone(),
    ));
    tokio::pin!(interrupt);
    let joined = tokio::select! {
        joined = &mut main => joined,
        _ = &mut interrupt => {
            warn!("interrupted: stopping the clients, then cleaning up");
            errors.push("interrupted (Ctrl-C or SIGTERM)".into());
            stop.cancel();
            match tokio::time::timeout(INTERRUPT_GRACE, &mut main).await {
                Ok(joined) => joined,
                Err(_) => {
                    main.abort();
                    Ok(Err(anyhow::anyhow!(
                        "the run did not stop within {} s of the interrupt; aborted it",
                        INTERRUPT_GRACE.as_secs()
                    )))
                }
            }
        }
    };
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(err)) => errors.push(format!("{err:#}")),
        Err(join) => errors.push(panic_text("the run", join)),
    }
    stop.cancel();
    for err in &errors {
        error!("{err}");
    }

    // Clean-up runs in its own task so that a panic in it is reported, not propagated.
    let cleanup = runlog::spawn(clean_up(test.clone(), dir.clone(), shared.clone()));
    match cleanup.await {
        Ok(cleanup_errors) => errors.extend(cleanup_errors),
        Err(join) => errors.push(panic_text("clean-up", join)),
    }
    let history_path = dir.join(store::HISTORY_JSONL);
    let writer = lock(&shared).writer.take();
    let checkable = match writer {
        Some(writer) => match tokio::task::spawn_blocking(move || writer.finish()).await {
            Ok(Ok(events)) => {
                info!("history: {events} events in {}", history_path.display());
                true
            }
            Ok(Err(err)) => {
                errors.push(format!("writing {}: {err}", history_path.display()));
                true
            }
            Err(join) => {
                errors.push(panic_text("the history writer", join));
                true
            }
        },
        // The run failed before its workload: an empty history, nothing to check.
        None => {
            if let Err(err) = std::fs::write(&history_path, b"") {
                errors.push(format!("cannot write {}: {err}", history_path.display()));
            }
            false
        }
    };
    let history = checkable.then_some(history_path.as_path());
    finish(
        &dir,
        history,
        &test.options.check,
        test.built_in_check,
        test.checkers.clone(),
        errors,
    )
    .await
}

fn panic_text(what: &str, join: tokio::task::JoinError) -> String {
    if join.is_panic() {
        let payload = join.into_panic();
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(no message)".into());
        format!("{what} panicked: {text}")
    } else {
        format!("{what} was cancelled")
    }
}

/// Fails with "stopped" as soon as `stop` is cancelled.
async fn until_stopped<T>(
    stop: &CancellationToken,
    what: &str,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        result = future => result.with_context(|| what.to_owned()),
        _ = stop.cancelled() => anyhow::bail!("stopped during {what}"),
    }
}

async fn main_phases(
    test: Arc<Test>,
    dir: PathBuf,
    shared: Shared,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let options = &test.options;
    let remotes = if options.hosts.is_empty() {
        Vec::new()
    } else {
        let names: Vec<&str> = options.hosts.iter().map(|h| h.name.as_str()).collect();
        info!("connecting to {}", names.join(", "));
        let control = until_stopped(&stop, "connecting to the hosts over SSH", async {
            tokio::time::timeout(
                CONNECT_TIMEOUT,
                Control::connect(&options.hosts, &options.ssh),
            )
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {} s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(anyhow::Error::from)
        })
        .await?;
        let remotes = control.remotes().to_vec();
        lock(&shared).control = Some(Arc::new(control));
        remotes
    };
    let db_cx = DbContext {
        remotes,
        run_dir: dir.clone(),
        env: options.db_env.clone(),
    };
    lock(&shared).db_cx = Some(db_cx.clone());

    info!(
        "setting up {} on {} host(s)",
        test.db.name(),
        db_cx.remotes.len()
    );
    until_stopped(&stop, "setting up the db", setup_all(&test, &db_cx)).await?;
    until_stopped(
        &stop,
        "waiting for the db to serve clients",
        test.db.await_ready(&db_cx),
    )
    .await?;

    let history_path = dir.join(store::HISTORY_JSONL);
    let (history, writer) = History::create(&history_path, std::time::Instant::now())
        .with_context(|| format!("cannot create {}", history_path.display()))?;
    let nemesis_cx = NemesisContext {
        db: test.db.clone(),
        db_cx: db_cx.clone(),
        history: history.clone(),
        seed: options.seed,
    };
    {
        let mut reached = lock(&shared);
        reached.writer = Some(writer);
        reached.nemesis_cx = Some(nemesis_cx.clone());
    }
    until_stopped(
        &stop,
        "setting up the nemesis",
        test.nemesis.setup(&nemesis_cx),
    )
    .await?;

    let config = WorkerConfig {
        concurrency: options.concurrency,
        rate: options.rate,
        seed: options.seed,
        op_timeout: options.op_timeout,
    };
    let mut pool = ClientPool::open(config, test.client.clone(), history.clone())?;
    let plan = Arc::new(KeyPlan::new(
        options.concurrency,
        options.workers_per_key,
        options.ops_per_key,
    ));
    let nemesis_stop = stop.child_token();
    let nemesis_task = {
        let test = test.clone();
        let cx = nemesis_cx.clone();
        let stop = nemesis_stop.clone();
        runlog::spawn(async move { test.nemesis.run(&cx, stop).await })
    };
    info!(
        "workload: {} clients for {} s",
        options.concurrency,
        options.time_limit.as_secs_f64()
    );
    let deadline = Instant::now() + options.time_limit;
    let counts = pool
        .run_main(test.generator.clone(), plan.clone(), deadline, stop.clone())
        .await;
    info!(
        "workload done: {} ok, {} fail, {} info",
        counts.ok, counts.fail, counts.info
    );
    nemesis_stop.cancel();
    let nemesis_result = match nemesis_task.await {
        Ok(result) => result.context("the nemesis failed"),
        Err(join) => Err(anyhow::anyhow!(panic_text("the nemesis", join))),
    };
    // Heal before the final phase, so final reads see a whole cluster; clean-up heals
    // again (heal is idempotent) whatever happens here.
    until_stopped(&stop, "healing", test.nemesis.heal(&nemesis_cx)).await?;
    nemesis_result?;
    if stop.is_cancelled() {
        anyhow::bail!("stopped before the final phase");
    }
    let keys = plan.used_keys();
    info!("final phase: {} key(s)", keys.len());
    let final_counts = tokio::time::timeout(
        FINAL_PHASE_TIMEOUT,
        pool.run_final(test.generator.clone(), &plan, &keys, stop.clone()),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "the final phase took more than {} s",
            FINAL_PHASE_TIMEOUT.as_secs()
        )
    })?;
    info!(
        "final phase done: {} ok, {} fail, {} info",
        final_counts.ok, final_counts.fail, final_counts.info
    );
    Ok(())
}

async fn setup_all(test: &Arc<Test>, cx: &DbContext) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for remote in cx.remotes.clone() {
        let test = test.clone();
        let cx = cx.clone();
        tasks.spawn(
            async move {
                let name = remote.name().to_owned();
                test.db
                    .setup(&cx, &remote)
                    .await
                    .with_context(|| format!("setting up {name}"))
            }
            .with_current_subscriber(),
        );
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|j| anyhow::anyhow!(panic_text("db setup", j)));
        if let Err(err) = result.and_then(|r| r) {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Heal, teardown, logs, disconnect: every step is tried even when an earlier one failed.
async fn clean_up(test: Arc<Test>, dir: PathBuf, shared: Shared) -> Vec<String> {
    let mut errors = Vec::new();
    let (control, db_cx, nemesis_cx) = {
        let mut reached = lock(&shared);
        (
            reached.control.take(),
            reached.db_cx.take(),
            reached.nemesis_cx.take(),
        )
    };
    if let Some(cx) = &nemesis_cx {
        info!("healing every fault");
        if let Err(err) = bounded(HEAL_TIMEOUT, test.nemesis.heal(cx)).await {
            errors.push(format!("healing the nemesis's faults: {err:#}"));
        }
    }
    if let Some(cx) = &db_cx {
        // Whatever the nemesis knew of, the hosts are also cleared of every kind of fault
        // faultline can leave (iptables chains, qdiscs, paused processes, clocks).
        for remote in &cx.remotes {
            let healed = bounded(HEAL_TIMEOUT, async {
                faultline_control::heal::heal_host(remote)
                    .await
                    .map_err(anyhow::Error::from)
            })
            .await;
            match healed {
                Ok(report) => info!("{}", report.summary()),
                Err(err) => errors.push(format!("healing {}: {err:#}", remote.name())),
            }
        }
        if test.options.leave_db_running {
            info!("leaving {} running (--leave-db-running)", test.db.name());
        } else {
            info!("tearing down {}", test.db.name());
            for remote in &cx.remotes {
                if let Err(err) = bounded(TEARDOWN_TIMEOUT, test.db.teardown(cx, remote)).await {
                    errors.push(format!("tearing down {}: {err:#}", remote.name()));
                }
            }
        }
        if let Some(logs) = test.db.log_files() {
            for remote in &cx.remotes {
                let local_dir = dir.join(store::NODES_DIR).join(remote.name());
                for path in logs.log_files(remote) {
                    if let Err(err) = download(remote, &path, &local_dir).await {
                        // A node that never started has no log: worth a line, not a failure.
                        warn!("downloading {}:{path}: {err:#}", remote.name());
                    }
                }
            }
        }
    }
    if let Some(control) = control {
        match Arc::try_unwrap(control) {
            Ok(control) => control.close().await,
            Err(_) => warn!("SSH connections still in use at the end; dropping them"),
        }
    }
    errors
}

async fn bounded<T>(
    limit: Duration,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {} s", limit.as_secs()))?
}

async fn download(
    remote: &faultline_control::Remote,
    path: &str,
    local_dir: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(local_dir)
        .with_context(|| format!("cannot create {}", local_dir.display()))?;
    let name = Path::new(path)
        .file_name()
        .with_context(|| format!("{path} names no file"))?;
    bounded(LOG_DOWNLOAD_TIMEOUT, async {
        remote
            .download(path, &local_dir.join(name))
            .await
            .map_err(anyhow::Error::from)
    })
    .await
}

/// Analyses the history (when there is one) as `faultline report` does, writes
/// results.json and the `latest` link.
async fn finish(
    dir: &Path,
    history_path: Option<&Path>,
    check: &CheckOptions,
    built_in: bool,
    extra: Vec<Arc<dyn Checker>>,
    mut errors: Vec<String>,
) -> RunOutcome {
    let mut outcome = RunOutcome {
        dir: dir.to_owned(),
        valid: None,
        error: None,
        stats: Stats::default(),
    };
    let mut results = RunResults {
        valid: Validity::Unknown,
        checkers: Vec::new(),
        stats: None,
        error: None,
        warnings: Vec::new(),
    };
    if let Some(path) = history_path {
        let path = path.to_owned();
        let options = check.clone();
        info!("checking {}", path.display());
        let analysed = tokio::task::spawn_blocking(move || {
            crate::check::analyze(&path, &options, built_in, &extra)
        })
        .await;
        match analysed {
            Ok(Ok(analysis)) => {
                info!("verdict: {:?}", analysis.results.valid);
                for warning in &analysis.results.warnings {
                    warn!("{warning}");
                }
                outcome.valid = Some(analysis.results.valid);
                outcome.stats = analysis.results.stats.clone().unwrap_or_default();
                results = analysis.results;
            }
            Ok(Err(err)) => errors.push(err),
            Err(join) => errors.push(panic_text("the checker", join)),
        }
    }
    if !errors.is_empty() {
        let text = errors.join("; ");
        outcome.error = Some(text.clone());
        results.error = Some(text);
    }
    if let Err(err) = store::write_json(&dir.join(store::RESULTS_JSON), &results) {
        let text = format!("{err:#}");
        error!("{text}");
        outcome.error = Some(match outcome.error.take() {
            Some(old) => format!("{old}; {text}"),
            None => text,
        });
    }
    if let Err(err) = store::link_latest(dir) {
        warn!("{err:#}");
    }
    outcome
}
