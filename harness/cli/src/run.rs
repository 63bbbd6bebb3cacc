//! `faultline run`: run a test against a system on the local cluster or on SSH hosts,
//! then check it, write the report and print the summary.

use crate::nemesis_args::NemesisArgs;
use anyhow::Context;
use clap::Args;
use faultline_control::local_cluster::{self, ClusterConfig};
use faultline_control::{HostSpec, SshArgs, SshConfig};
use faultline_core::run::{self as core_run, RunOptions};
use faultline_nemesis::clock::ClockStrategy;
use faultline_nemesis::runner::ScheduledNemesis;
use faultline_nemesis::schedule::Family;
use faultline_workloads::system::{Capabilities, Registry, System, SystemRequest};
use faultline_workloads::systems;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The local cluster a run or campaign uses when neither --nodes nor --nodes-file is given;
/// one definition so that `run` and `campaign` accept the same flags with the same bounds.
#[derive(Args)]
pub struct LocalClusterArgs {
    /// Hosts of the local cluster when neither --nodes nor --nodes-file is given.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub local_nodes: u16,
    /// Which local cluster (its namespaces, subnet 10.77.<id>.0/24) to use.
    #[arg(long, default_value_t = 0)]
    pub local_cluster_id: u8,
}

#[derive(Args)]
pub struct RunArgs {
    /// The system under test: a registered system (`faultline systems` lists them; stock:
    /// raft, paxos, zk-lock, redis-lock and Debian's etcd, redis, zookeeper), or
    /// `external:FILE.toml`; `help` prints the table.
    #[arg(long, default_value = "raft")]
    pub db: String,
    /// The workload: one the system serves (`faultline systems` lists them: register, lock,
    /// lock-set).
    #[arg(long, default_value = "register")]
    pub workload: String,
    /// An option of the system or workload (repeatable), e.g. `read-mode=lease`; the
    /// system's row in `faultline systems` lists what it takes.
    #[arg(long = "db-opt", value_name = "NAME=VALUE")]
    pub db_opts: Vec<String>,
    /// Start the nodes with a planted bug (repeatable), e.g. stale-read.
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,
    /// The nodes' read path: readindex or lease (raft only).
    #[arg(long, value_name = "MODE")]
    pub read_mode: Option<String>,
    /// A further faultline-node option, passed through (repeatable): `tick-ms=20` becomes
    /// `--tick-ms 20`, `foo` becomes `--foo`.
    #[arg(long = "node-opt", value_name = "NAME[=VALUE]")]
    pub node_opts: Vec<String>,
    /// redis-lock's deployment: single, replica (primary + async replica) or redlock.
    #[arg(long, value_name = "MODE")]
    pub lock_mode: Option<String>,
    /// etcd's read option: linearizable (default) or serializable.
    #[arg(long, value_name = "MODE")]
    pub read_consistency: Option<String>,
    /// lock-set: guard each write of the set with the lock's fencing token.
    #[arg(long)]
    pub fencing: bool,
    /// --db redis: single, replica (primary + async replicas), sentinel (the same with a
    /// Sentinel per host) or redlock (independent servers).
    #[arg(long, value_name = "MODE")]
    pub redis_mode: Option<String>,
    /// --db redis: `appendonly` (yes or no; Debian's default is no).
    #[arg(long, value_name = "YES|NO")]
    pub redis_appendonly: Option<String>,
    /// --db redis: `appendfsync` (always, everysec or no; Debian's default is everysec).
    #[arg(long, value_name = "POLICY")]
    pub redis_appendfsync: Option<String>,
    /// A lock grant's lease in ms: zk-lock's session timeout (default 3000), redis-lock's
    /// TTL (default 1000).
    #[arg(long, value_name = "MS")]
    pub lock_ttl_ms: Option<u64>,
    /// The register workload's values are drawn from 0..N: more values make a stale read
    /// harder to explain away by an indeterminate write of the same value, fewer make cas
    /// succeed more often.
    /// (Default 5; the same as `--db-opt register-values=N`.)
    #[arg(long, value_name = "N")]
    pub register_values: Option<u64>,
    /// lock-set: a client pauses this many ms (1 to 60000) after it acquired the lock,
    /// read the set and last checked its grant, before it writes (a GC pause, SIGSTOP).
    /// The same as `--db-opt client-pause-ms=N`.
    #[arg(long, value_name = "MS")]
    pub client_pause_ms: Option<u64>,
    /// lock-set: the chance that an add pauses (default 0.1; one client paused at a time;
    /// drawn from the run's seed).
    #[arg(long, value_name = "P")]
    pub client_pause_probability: Option<f64>,
    /// The faultline-node binary to upload; default: beside this program, or built with
    /// cargo.
    #[arg(long, value_name = "PATH")]
    pub node_binary: Option<PathBuf>,
    /// Seconds of workload (faults included), before the final phase.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub time_limit: f64,
    /// Run the test this many times (seeds seed, seed+1, …).
    #[arg(long, default_value_t = 1)]
    pub test_count: u32,
    /// Client processes running at once.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Target ops/s over all clients; 0: as fast as they go.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// The generator's seed; random when not given (always recorded in test.json).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Leave the system running after the test (for poking at it by hand).
    #[arg(long)]
    pub leave_db_running: bool,
    /// Where run folders go.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results_dir: PathBuf,
    /// The test's name (its folder under the results dir); default `<db>-<workload>`.
    #[arg(long)]
    pub name: Option<String>,
    /// Client processes sharing one key (Jepsen's independent keys).
    #[arg(long, default_value_t = 5)]
    pub workers_per_key: usize,
    /// Ops on a key before its clients move to a fresh key.
    #[arg(long, default_value_t = 200)]
    pub ops_per_key: u64,
    /// The client's bound on one request, in milliseconds.
    #[arg(long, default_value_t = 2500, value_name = "MS")]
    pub client_timeout_ms: u64,
    #[command(flatten)]
    pub local: LocalClusterArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub nemesis: NemesisArgs,
    /// Run again with the configuration, seed and fault schedule of an earlier run folder
    /// (its test.json); other options except --results-dir are taken from that run.
    #[arg(long, value_name = "RUN_DIR")]
    pub replay: Option<PathBuf>,
    /// Write a JUnit XML report (one test case per run) for CI systems.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Parses the recorded arguments of a run for `--replay`.
#[derive(clap::Parser)]
#[command(name = "faultline run")]
struct RecordedRun {
    #[command(flatten)]
    args: RunArgs,
}

/// The arguments of the run recorded in `run_dir`, with its seed, for one run; results go
/// where this invocation says.
fn replay_args(
    run_dir: &std::path::Path,
    current: &RunArgs,
) -> anyhow::Result<(RunArgs, Vec<String>)> {
    use clap::Parser;
    let path = run_dir.join("test.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} to replay it", path.display()))?;
    let test: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let argv: Vec<String> = test
        .get("argv")
        .and_then(|a| a.as_array())
        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
        .with_context(|| {
            format!("{}: field `argv` (the run's arguments) is missing; it was written by a faultline that cannot replay", path.display())
        })?;
    let seed = test.get("seed").and_then(|s| s.as_u64()).with_context(|| {
        format!(
            "{}: field `seed` is missing or not a number",
            path.display()
        )
    })?;
    let recorded =
        RecordedRun::try_parse_from(std::iter::once("run".to_owned()).chain(argv.iter().cloned()))
            .with_context(|| {
                format!("{}: the recorded arguments no longer parse", path.display())
            })?;
    let mut args = recorded.args;
    args.seed = Some(seed);
    args.test_count = 1;
    args.replay = None;
    args.results_dir = current.results_dir.clone();
    Ok((args, argv))
}

/// The local cluster brought up for this command, brought down again when dropped.
struct ClusterGuard(Option<u8>);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            eprintln!("faultline: bringing local cluster {id} down again");
            if let Err(err) = local_cluster::down(id) {
                eprintln!("faultline: local cluster {id} down failed: {err:#}");
            }
        }
    }
}

fn node_args(opts: &[String]) -> anyhow::Result<Vec<String>> {
    let mut argv = Vec::new();
    for opt in opts {
        let (name, value) = match opt.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (opt.as_str(), None),
        };
        let name = name.trim_start_matches('-');
        anyhow::ensure!(!name.is_empty(), "--node-opt {opt:?} names no option");
        argv.push(format!("--{name}"));
        argv.extend(value.map(str::to_owned));
    }
    Ok(argv)
}

/// Combines exit codes of several runs: 3 beats 1 beats 2 beats 0 (DESIGN §3).
fn combine(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        3 => 3,
        1 => 2,
        2 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Returns the process exit code (DESIGN §3).
pub fn run(args: RunArgs, registry: &Registry) -> anyhow::Result<u8> {
    if args.db == "help" {
        print!("{}", crate::systems::table(registry));
        return Ok(0);
    }
    let (mut args, argv, replay_of) = resolve_replay(args)?;
    vm_clock_default(&mut args);
    let plan = plan(&args, registry)?;
    let (hosts, ssh, _cluster) = hosts(&args)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", plan.system.name(), args.workload));
    let command = std::env::args()
        .map(|a| faultline_control::shell_escape(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let runtime = tokio::runtime::Runtime::new()?;
    let mut code = 0;
    let mut summaries = Vec::new();
    for n in 0..args.test_count {
        let seed = seed.wrapping_add(u64::from(n));
        let mut options = run_options(&args, &plan, name.clone(), hosts.clone(), ssh.clone(), seed);
        options.test_fields.insert("command".into(), json!(command));
        options.test_fields.insert("argv".into(), json!(argv));
        if let Some(dir) = &replay_of {
            options.test_fields.insert("replay_of".into(), json!(dir));
        }
        let scheduled = plan
            .nemesis
            .clone()
            .map(|config| ScheduledNemesis::new(config, seed));
        if let Some(nemesis) = &scheduled {
            record_schedule(&mut options, &plan.nemesis_args, nemesis)?;
        }
        let mut test = registry.build_test(&*plan.system, &plan.request, options)?;
        if let Some(nemesis) = scheduled {
            systems::with_scheduled(&mut test, Arc::new(nemesis));
        }
        // "1/1" in every run of a campaign said nothing: the count only with --test-count.
        if args.test_count > 1 {
            eprintln!(
                "faultline: run {}/{} of {name} (seed {seed})",
                n + 1,
                args.test_count
            );
        } else {
            eprintln!("faultline: run of {name} (seed {seed})");
        }
        let (outcome, interrupted) = runtime.block_on(run_with_progress(test, args.time_limit));
        let outcome = outcome?;
        code = combine(code, outcome.exit_code());
        report(&outcome, args.junit.as_deref(), &mut summaries)?;
        if interrupted {
            break;
        }
    }
    Ok(code)
}

/// The arguments of this run: as given, or those recorded in `--replay`'s run folder; with
/// the words after `run` (recorded so that `--replay` can run the same test again).
fn resolve_replay(args: RunArgs) -> anyhow::Result<(RunArgs, Vec<String>, Option<String>)> {
    Ok(match &args.replay {
        Some(dir) => {
            let (replayed, argv) = replay_args(dir, &args)?;
            eprintln!(
                "faultline: replaying {} (seed {})",
                dir.display(),
                replayed.seed.unwrap_or_default()
            );
            (replayed, argv, Some(dir.display().to_string()))
        }
        None => {
            let argv: Vec<String> = std::env::args()
                .skip_while(|a| a != "run")
                .skip(1)
                .collect();
            (args, argv, None)
        }
    })
}

/// VMs have their own clocks: unless told otherwise, clock faults set the system clock on
/// hosts from a nodes file that `cluster up --vm` marked as VMs.
fn vm_clock_default(args: &mut RunArgs) {
    if args.nemesis.clock_strategy.is_none()
        && args
            .ssh
            .nodes_file
            .as_deref()
            .is_some_and(faultline_control::vm::nodes_file_is_vm)
    {
        args.nemesis.clock_strategy = Some(ClockStrategy::System);
    }
}

/// What is to run, checked before any host is touched so that a typo or a fault the
/// system cannot take fails in milliseconds.
struct Plan {
    system: Arc<dyn System>,
    request: SystemRequest,
    /// The scheduled faults; `None` without any.
    nemesis: Option<faultline_nemesis::runner::NemesisConfig>,
    /// `--nemesis` and friends without the system's own faults.
    nemesis_args: NemesisArgs,
}

fn plan(args: &RunArgs, registry: &Registry) -> anyhow::Result<Plan> {
    let system = registry.system(&args.db)?;
    // A name in --nemesis is either a scheduled family or one of the system's own faults.
    let (own, families): (Vec<String>, Vec<String>) = args
        .nemesis
        .nemesis
        .iter()
        .map(|n| n.trim().to_owned())
        .partition(|n| registry.is_system_fault(&*system, n));
    let mut nemesis_args = args.nemesis.clone();
    nemesis_args.nemesis = families;
    anyhow::ensure!(
        own.is_empty()
            || (args.nemesis.nemesis_interval.is_finite() && args.nemesis.nemesis_interval > 0.0),
        "--nemesis-interval must be a positive number of seconds"
    );
    let request = SystemRequest {
        workload: args.workload.clone(),
        bugs: args.bugs.clone(),
        options: db_options(args)?,
        program_args: node_args(&args.node_opts)?,
        binary: args.node_binary.clone(),
        client_timeout: Duration::from_millis(args.client_timeout_ms),
        faults: own,
        fault_interval: Duration::from_secs_f64(args.nemesis.nemesis_interval.max(0.001)),
    };
    registry.check(&*system, &request)?;
    anyhow::ensure!(
        args.time_limit.is_finite() && args.time_limit > 0.0,
        "--time-limit must be a positive number of seconds"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.rate >= 0.0, "--rate must not be negative");
    let capabilities = system.capabilities(&request);
    let families = nemesis_args.families()?;
    refuse_unsupported(system.name(), &capabilities, &families, &nemesis_args)?;
    let nemesis = nemesis_args.config(Duration::from_secs_f64(args.time_limit), Ok(()))?;
    Ok(Plan {
        system,
        request,
        nemesis,
        nemesis_args,
    })
}

/// `--db-opt name=value` and the stock systems' named flags, as the system's options.
fn db_options(args: &RunArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut options = Vec::new();
    let named = [
        (systems::READ_MODE, args.read_mode.clone()),
        (systems::LOCK_MODE, args.lock_mode.clone()),
        (
            systems::etcd::READ_CONSISTENCY,
            args.read_consistency.clone(),
        ),
        (systems::FENCING, args.fencing.then(|| "true".to_owned())),
        (systems::redis::REDIS_MODE, args.redis_mode.clone()),
        (
            systems::redis::REDIS_APPENDONLY,
            args.redis_appendonly.clone(),
        ),
        (
            systems::redis::REDIS_APPENDFSYNC,
            args.redis_appendfsync.clone(),
        ),
        (
            systems::LOCK_TTL_MS,
            args.lock_ttl_ms.map(|v| v.to_string()),
        ),
        (
            systems::REGISTER_VALUES,
            args.register_values.map(|v| v.to_string()),
        ),
        (
            faultline_workloads::lock_set::CLIENT_PAUSE_MS,
            args.client_pause_ms.map(|v| v.to_string()),
        ),
        (
            faultline_workloads::lock_set::CLIENT_PAUSE_PROBABILITY,
            args.client_pause_probability.map(|v| v.to_string()),
        ),
    ];
    for (name, value) in named {
        if let Some(value) = value {
            options.push((name.to_owned(), value));
        }
    }
    for opt in &args.db_opts {
        let (name, value) = opt.split_once('=').unwrap_or((opt.as_str(), "true"));
        let name = name.trim().trim_start_matches("--");
        anyhow::ensure!(!name.is_empty(), "--db-opt {opt:?} names no option");
        options.push((name.to_owned(), value.to_owned()));
    }
    Ok(options)
}

/// Refuses, before anything starts, a fault the system cannot take, naming the system, the
/// fault and what would work.
fn refuse_unsupported(
    db: &str,
    capabilities: &Capabilities,
    families: &[Family],
    nemesis: &NemesisArgs,
) -> anyhow::Result<()> {
    for family in families {
        let refused = match family {
            Family::Kill => (!capabilities.kill).then(|| {
                "it cannot be killed and restarted; drop `kill` from --nemesis".to_owned()
            }),
            Family::Pause => (!capabilities.pause)
                .then(|| "it cannot be paused; drop `pause` from --nemesis".to_owned()),
            Family::Partition => (!capabilities.partition).then(|| {
                "its hosts cannot be partitioned; drop `partition` from --nemesis".to_owned()
            }),
            Family::Packet => (!capabilities.packet)
                .then(|| "its traffic cannot be shaped; drop `packet` from --nemesis".to_owned()),
            Family::Clock => clock_refusal(db, capabilities, nemesis.effective_clock_strategy()),
        };
        if let Some(why) = refused {
            anyhow::bail!("--db {db} cannot take --nemesis {}: {why}", family.name());
        }
    }
    Ok(())
}

fn clock_refusal(db: &str, capabilities: &Capabilities, strategy: ClockStrategy) -> Option<String> {
    let reach = &capabilities.clock;
    let (tried, other, other_works) = match strategy {
        ClockStrategy::Faketime => (&reach.faketime, "system", reach.system.is_ok()),
        ClockStrategy::System => (&reach.system, "faketime", reach.faketime.is_ok()),
    };
    let why = tried.as_ref().err()?;
    let strategy_name = match strategy {
        ClockStrategy::Faketime => "faketime",
        ClockStrategy::System => "system",
    };
    let hint = if !other_works {
        format!("no clock strategy reaches {db}; drop `clock` from --nemesis")
    } else if other == "system" {
        "use VMs (`faultline cluster up --vm`) with --clock-strategy system".to_owned()
    } else {
        "use --clock-strategy faketime (local hosts)".to_owned()
    };
    Some(format!(
        "with --clock-strategy {strategy_name}, {why}; {hint}"
    ))
}

fn run_options(
    args: &RunArgs,
    plan: &Plan,
    name: String,
    hosts: Vec<HostSpec>,
    ssh: SshConfig,
    seed: u64,
) -> RunOptions {
    let db_env = if plan.nemesis_args.needs_faketime() {
        faultline_nemesis::clock::faketime_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    } else {
        Vec::new()
    };
    RunOptions {
        name,
        results_dir: args.results_dir.clone(),
        hosts,
        ssh,
        seed,
        concurrency: args.concurrency,
        rate: (args.rate > 0.0).then_some(args.rate),
        time_limit: Duration::from_secs_f64(args.time_limit),
        workers_per_key: args.workers_per_key,
        ops_per_key: args.ops_per_key,
        leave_db_running: args.leave_db_running,
        stderr_log: Some(tracing::Level::INFO),
        db_env,
        ..RunOptions::default()
    }
}

/// test.json's record of the fault schedule: what the report shades and `--replay` reruns.
fn record_schedule(
    options: &mut RunOptions,
    nemesis_args: &NemesisArgs,
    nemesis: &ScheduledNemesis,
) -> anyhow::Result<()> {
    let families = nemesis_args.families()?;
    let fields = &mut options.test_fields;
    fields.insert(
        "nemesis_perf".into(),
        json!(families.iter().map(|f| f.perf()).collect::<Vec<_>>()),
    );
    fields.insert(
        "nemesis_interval_s".into(),
        json!(nemesis_args.nemesis_interval),
    );
    fields.insert("nemesis_schedule".into(), json!(nemesis.steps()));
    fields.insert(
        "clock_strategy".into(),
        json!(nemesis_args.effective_clock_strategy()),
    );
    Ok(())
}

/// Runs one test with a progress bar, stopping it on Ctrl-C or SIGTERM; whether it was
/// interrupted.
async fn run_with_progress(
    test: faultline_core::run::Test,
    time_limit: f64,
) -> (anyhow::Result<core_run::RunOutcome>, bool) {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let interrupt = async move {
        shutdown_signal().await;
        flag.store(true, Ordering::SeqCst);
    };
    // Setup takes a while before the workload starts; the bar counts the whole run against
    // the time limit, so it shows how far along the run is, not more.
    let bar = faultline_report::progress_bar(Duration::from_secs_f64(time_limit), "running");
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                bar.set_position(started.elapsed().as_secs());
            }
        })
    };
    let outcome = core_run::run(test, interrupt).await;
    ticker.abort();
    bar.finish_and_clear();
    (outcome, interrupted.load(Ordering::SeqCst))
}

/// The report, the summary on the terminal, and the JUnit file when asked for.
fn report(
    outcome: &core_run::RunOutcome,
    junit: Option<&std::path::Path>,
    summaries: &mut Vec<faultline_report::RunSummary>,
) -> anyhow::Result<()> {
    // The report is extra: a run whose report fails still has its verdict.
    match faultline_report::finish_run(&outcome.dir) {
        Ok(_report) => {
            // The summary ends with the report's path.
            if let Err(err) = faultline_report::print_summary(&outcome.dir) {
                eprintln!("faultline: summary: {err:#}");
            }
        }
        Err(err) => eprintln!("faultline: report: {err:#}"),
    }
    println!("run folder: {}", outcome.dir.display());
    if let Some(error) = &outcome.error {
        eprintln!("faultline: the run failed: {error}");
    }
    if let Some(path) = junit {
        match faultline_report::RunSummary::load(&outcome.dir) {
            Ok(summary) => summaries.push(summary),
            Err(err) => eprintln!("faultline: JUnit: {err:#}"),
        }
        faultline_report::write_junit(summaries, path)
            .with_context(|| format!("writing the JUnit report {}", path.display()))?;
    }
    Ok(())
}

/// Hosts and login: `--nodes`/`--nodes-file`, or the local cluster (brought up if down,
/// and then down again at the end).
fn hosts(args: &RunArgs) -> anyhow::Result<(Vec<HostSpec>, SshConfig, ClusterGuard)> {
    if let Some(hosts) = args.ssh.hosts()? {
        return Ok((hosts, args.ssh.ssh_config(), ClusterGuard(None)));
    }
    let id = args.local.local_cluster_id;
    let nodes = usize::from(args.local.local_nodes);
    if let Some(cluster) = local_cluster::status(id)? {
        anyhow::ensure!(
            cluster.hosts.len() == nodes,
            "local cluster {id} is up with {} hosts, not --local-nodes {nodes}; \
             bring it down with `faultline cluster down --id {id}` or pass --local-nodes {}",
            cluster.hosts.len(),
            cluster.hosts.len()
        );
        return Ok((cluster.hosts, cluster.ssh, ClusterGuard(None)));
    }
    eprintln!("faultline: bringing local cluster {id} up with {nodes} hosts");
    let cluster = local_cluster::up(&ClusterConfig { id, nodes })
        .with_context(|| format!("bringing local cluster {id} up"))?;
    if args.leave_db_running {
        // The nodes are to stay up, so the hosts they run on stay up too.
        eprintln!("faultline: --leave-db-running: local cluster {id} stays up afterwards");
        return Ok((cluster.hosts, cluster.ssh, ClusterGuard(None)));
    }
    Ok((cluster.hosts, cluster.ssh, ClusterGuard(Some(id))))
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_options_pass_through_as_flags() {
        let argv =
            node_args(&["tick-ms=20".into(), "--election-ticks=5".into(), "x".into()]).unwrap();
        assert_eq!(argv, ["--tick-ms", "20", "--election-ticks", "5", "--x"]);
        assert!(node_args(&["=3".into()]).is_err());
    }

    #[test]
    fn exit_codes_combine_as_design_says() {
        assert_eq!(combine(0, 2), 2);
        assert_eq!(combine(2, 1), 1);
        assert_eq!(combine(1, 2), 1);
        assert_eq!(combine(1, 3), 3);
        assert_eq!(combine(3, 0), 3);
        assert_eq!(combine(0, 0), 0);
    }
}
