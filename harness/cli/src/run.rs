//! `faultline run`: run a test against a system on the local cluster or on SSH hosts,
//! then check it, write the report and print the summary.

use crate::nemesis_args::NemesisArgs;
use anyhow::Context;
use clap::Args;
use faultline_control::local_cluster::{self, ClusterConfig};
use faultline_control::{HostSpec, SshArgs, SshConfig};
use faultline_core::run::{self as core_run, RunOptions};
use faultline_nemesis::runner::ScheduledNemesis;
use faultline_nemesis::schedule::Family;
use faultline_workloads::systems::{self, SystemSpec};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct RunArgs {
    /// The system under test: raft, paxos, zk-lock, redis-lock or redis (Debian's Redis 7).
    #[arg(long, default_value = "raft")]
    pub db: String,
    /// The workload: register (raft, paxos, redis) or lock (zk-lock, redis-lock, redis).
    #[arg(long, default_value = "register")]
    pub workload: String,
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
    #[arg(long, default_value_t = faultline_workloads::register::DEFAULT_VALUES, value_name = "N")]
    pub register_values: u64,
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
    /// Hosts of the local cluster when neither --nodes nor --nodes-file is given.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub local_nodes: u16,
    /// Which local cluster (its namespaces, subnet 10.77.<id>.0/24) to use.
    #[arg(long, default_value_t = 0)]
    pub local_cluster_id: u8,
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
pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    // The arguments after `run`, recorded so that `--replay` can run the same test again.
    let (mut args, argv, replay_of) = match &args.replay {
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
    };
    // `failover` is redis-lock's own fault (`lock_db::FailoverNemesis`), run beside the
    // scheduled families rather than as one of them.
    let failover = args.nemesis.nemesis.iter().any(|n| n.trim() == "failover");
    args.nemesis.nemesis.retain(|n| n.trim() != "failover");
    anyhow::ensure!(
        !failover
            || (args.nemesis.nemesis_interval.is_finite() && args.nemesis.nemesis_interval > 0.0),
        "--nemesis-interval must be a positive number of seconds"
    );
    // VMs have their own clocks: unless told otherwise, clock faults set the system clock
    // on hosts from a nodes file that `cluster up --vm` marked as VMs.
    if args.nemesis.clock_strategy.is_none()
        && args
            .ssh
            .nodes_file
            .as_deref()
            .is_some_and(faultline_control::vm::nodes_file_is_vm)
    {
        args.nemesis.clock_strategy = Some(faultline_nemesis::clock::ClockStrategy::System);
    }
    let spec = SystemSpec {
        lock_mode: args.lock_mode.clone(),
        lock_ttl_ms: args.lock_ttl_ms,
        register_values: args.register_values,
        redis: systems::redis::RedisOptions {
            mode: args.redis_mode.clone(),
            appendonly: args.redis_appendonly.clone(),
            appendfsync: args.redis_appendfsync.clone(),
        },
        failover_interval: failover.then(|| Duration::from_secs_f64(args.nemesis.nemesis_interval)),
        db: args.db.clone(),
        workload: args.workload.clone(),
        bugs: args.bugs.clone(),
        read_mode: args.read_mode.clone(),
        node_args: node_args(&args.node_opts)?,
        node_binary: args.node_binary.clone(),
        client_timeout: Duration::from_millis(args.client_timeout_ms),
        env: if args.nemesis.needs_faketime() {
            faultline_nemesis::clock::faketime_env()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect()
        } else {
            Vec::new()
        },
    };
    systems::validate(&spec)?;
    anyhow::ensure!(
        args.time_limit.is_finite() && args.time_limit > 0.0,
        "--time-limit must be a positive number of seconds"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.rate >= 0.0, "--rate must not be negative");

    // Faults are checked before any host is touched, so a bad --nemesis fails at once.
    let nemesis_config = args.nemesis.config(
        Duration::from_secs_f64(args.time_limit),
        clock_skewable(&args.db, &args.nemesis),
    )?;

    let (hosts, ssh, _cluster) = hosts(&args)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", args.db, args.workload));
    let command = std::env::args()
        .map(|a| faultline_control::shell_escape(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let runtime = tokio::runtime::Runtime::new()?;
    let mut code = 0;
    let mut summaries = Vec::new();
    for n in 0..args.test_count {
        let seed = seed.wrapping_add(u64::from(n));
        let mut options = RunOptions {
            name: name.clone(),
            results_dir: args.results_dir.clone(),
            hosts: hosts.clone(),
            ssh: ssh.clone(),
            seed,
            concurrency: args.concurrency,
            rate: (args.rate > 0.0).then_some(args.rate),
            time_limit: Duration::from_secs_f64(args.time_limit),
            workers_per_key: args.workers_per_key,
            ops_per_key: args.ops_per_key,
            leave_db_running: args.leave_db_running,
            stderr_log: Some(tracing::Level::INFO),
            ..RunOptions::default()
        };
        options.test_fields.insert("command".into(), json!(command));
        options.test_fields.insert("argv".into(), json!(argv));
        if let Some(dir) = &replay_of {
            options.test_fields.insert("replay_of".into(), json!(dir));
        }
        let nemesis = nemesis_config
            .clone()
            .map(|config| ScheduledNemesis::new(config, seed));
        if let Some(nemesis) = &nemesis {
            let families = &args.nemesis.families()?;
            options.test_fields.insert(
                "nemesis_perf".into(),
                json!(families.iter().map(|f| f.perf()).collect::<Vec<_>>()),
            );
            options.test_fields.insert(
                "nemesis_interval_s".into(),
                json!(args.nemesis.nemesis_interval),
            );
            options
                .test_fields
                .insert("nemesis_schedule".into(), json!(nemesis.steps()));
            options.test_fields.insert(
                "clock_strategy".into(),
                json!(args.nemesis.effective_clock_strategy()),
            );
        }
        if failover {
            let perf = json!({"name": "failover", "start": ["failover"],
                              "stop": ["failover-done"], "color": "#ffc9a8"});
            match options.test_fields.get_mut("nemesis_perf") {
                Some(serde_json::Value::Array(list)) => list.push(perf),
                _ => {
                    options
                        .test_fields
                        .insert("nemesis_perf".into(), json!([perf]));
                    options.test_fields.insert(
                        "nemesis_interval_s".into(),
                        json!(args.nemesis.nemesis_interval),
                    );
                }
            }
        }
        let mut test = systems::build_test(&spec, options)?;
        if let Some(nemesis) = nemesis {
            let scheduled: std::sync::Arc<dyn faultline_core::nemesis::Nemesis> =
                std::sync::Arc::new(nemesis);
            // Failover and Redis's role watcher run beside the scheduled faults.
            test.nemesis = if failover || spec.db == "redis" {
                std::sync::Arc::new(faultline_workloads::lock_db::BothNemeses(
                    scheduled,
                    test.nemesis.clone(),
                ))
            } else {
                scheduled
            };
        }
        eprintln!(
            "faultline: run {}/{} of {name} (seed {seed})",
            n + 1,
            args.test_count
        );
        let (outcome, interrupted) = runtime.block_on(async {
            let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = interrupted.clone();
            let interrupt = async move {
                shutdown_signal().await;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            };
            // Setup takes a while before the workload starts; the bar counts the whole run
            // against the time limit, so it shows how far along the run is, not more.
            let bar =
                faultline_report::progress_bar(Duration::from_secs_f64(args.time_limit), "running");
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
            (
                outcome,
                interrupted.load(std::sync::atomic::Ordering::SeqCst),
            )
        });
        let outcome = outcome?;
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
        code = combine(code, outcome.exit_code());
        if let Some(path) = &args.junit {
            match faultline_report::RunSummary::load(&outcome.dir) {
                Ok(summary) => summaries.push(summary),
                Err(err) => eprintln!("faultline: JUnit: {err:#}"),
            }
            faultline_report::write_junit(&summaries, path)
                .with_context(|| format!("writing the JUnit report {}", path.display()))?;
        }
        if interrupted {
            break;
        }
    }
    Ok(code)
}

/// Whether `db`'s clock can be changed the way `--clock-strategy` says; the reason when not.
fn clock_skewable(db: &str, nemesis: &NemesisArgs) -> Result<(), String> {
    use faultline_nemesis::clock::ClockStrategy;
    let wants_clock = nemesis.families().is_ok_and(|f| f.contains(&Family::Clock));
    match (db, nemesis.effective_clock_strategy()) {
        (_, ClockStrategy::System) => Ok(()),
        ("etcd" | "zookeeper", ClockStrategy::Faketime) if wants_clock => Err(format!(
            "{db} cannot be clock-skewed on local hosts: libfaketime does not reach its clock \
             (Go reads the kernel clock directly; the JVM's is not covered either); use VMs with \
             --clock-strategy system"
        )),
        // Measured with libfaketime 0.9.10 and Redis 7.0.15 (docs/redis.md): libfaketime's
        // first clock_gettime runs its init, whose dlsym fails and mallocs; jemalloc starts
        // on that malloc, calls clock_gettime, re-enters libfaketime and waits for its own
        // init lock for ever. No FAKETIME_* or MALLOC_CONF setting or preload order avoids it.
        ("redis", ClockStrategy::Faketime) if wants_clock => Err(
            "redis-server hangs at start under libfaketime (its jemalloc re-enters \
             libfaketime's init and deadlocks); clock faults on Redis need VMs: \
             `faultline cluster up --vm`, then run with its --nodes-file (--clock-strategy \
             system)"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// Hosts and login: `--nodes`/`--nodes-file`, or the local cluster (brought up if down,
/// and then down again at the end).
fn hosts(args: &RunArgs) -> anyhow::Result<(Vec<HostSpec>, SshConfig, ClusterGuard)> {
    if let Some(hosts) = args.ssh.hosts()? {
        return Ok((hosts, args.ssh.ssh_config(), ClusterGuard(None)));
    }
    let id = args.local_cluster_id;
    let nodes = usize::from(args.local_nodes);
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
