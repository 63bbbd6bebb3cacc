//! The `redis` system: Debian's Redis 7 (`redis-server`, `redis-sentinel`) as users run it —
//! one server, a primary with asynchronous replicas, the same watched by Sentinels that
//! fail over, or Redlock's independent servers — with its options, its register and lock
//! clients and the failovers it reports.
//!
//! - `db`: install, config, start/stop by PID file, kill, pause, primaries, logs.
//! - `client`: register and lock clients on the `redis` crate (fixed primary or Sentinel).
//! - `watch`: `ROLE` of every server, recorded as `deployment` and `failover` history ops.

pub mod client;
pub mod db;
pub mod watch;

use crate::lock::{Holding, LockGenerator, LockMode, RedisLockClientFactory, RedisLockSettings};
use crate::register::RegisterGenerator;
use crate::systems::SystemSpec;
use client::{RedisClientFactory, Route, Workload};
use db::{RedisDb, REDIS_PORT, SENTINEL_PORT};
use faultline_core::run::{RunOptions, Test};
use serde_json::json;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

/// The name the Sentinels monitor the primary under.
pub const SENTINEL_MASTER: &str = "faultline";
/// Workloads this system serves.
pub const WORKLOADS: [&str; 2] = ["register", "lock"];
/// A lock's TTL unless `--lock-ttl-ms` says otherwise (as for redis-lock).
const DEFAULT_TTL_MS: u64 = 1000;
/// Sentinel: how long a primary may be silent before a Sentinel calls it down, and the
/// failover timeout. Debian's 30 s / 180 s would not fail over inside a 30 s test.
const DOWN_AFTER_MS: u64 = 1000;
const FAILOVER_TIMEOUT_MS: u64 = 3000;
/// Redlock's bound on each server's answer, as for redis-lock.
const REDLOCK_REQUEST_TIMEOUT: Duration = Duration::from_millis(100);
/// At most this many Redlock servers.
const REDLOCK_SERVERS: usize = 5;

/// `--redis-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One server on the first host.
    Single,
    /// A primary on the first host, asynchronous replicas on the others; no failover.
    Replica,
    /// `Replica` plus a Sentinel on every host; clients ask the Sentinels for the primary.
    Sentinel,
    /// Independent servers on up to five hosts, locked by majority.
    Redlock,
}

impl Mode {
    pub const NAMES: [&'static str; 4] = ["single", "replica", "sentinel", "redlock"];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Replica => "replica",
            Mode::Sentinel => "sentinel",
            Mode::Redlock => "redlock",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Mode> {
        Ok(match s {
            "single" => Mode::Single,
            "replica" => Mode::Replica,
            "sentinel" => Mode::Sentinel,
            "redlock" => Mode::Redlock,
            other => anyhow::bail!(
                "unknown --redis-mode {other:?}; expected one of {}",
                Mode::NAMES.join(", ")
            ),
        })
    }
}

/// The user's Redis options (`--redis-mode`, `--redis-appendonly`, `--redis-appendfsync`).
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    pub mode: Option<String>,
    /// `yes` or `no`; Debian's default is `no`.
    pub appendonly: Option<String>,
    /// `always`, `everysec` or `no`; Debian's default is `everysec`.
    pub appendfsync: Option<String>,
}

impl RedisOptions {
    /// True when any Redis option was given (they are refused for other systems).
    pub fn any(&self) -> bool {
        self.mode.is_some() || self.appendonly.is_some() || self.appendfsync.is_some()
    }
}

/// What runs where, derived from the options and the number of hosts.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub mode: Mode,
    /// The first `servers` hosts run redis-server (and, in sentinel mode, a Sentinel).
    pub servers: usize,
    pub appendonly: &'static str,
    pub appendfsync: &'static str,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
}

impl Deployment {
    pub fn new(options: &RedisOptions, hosts: usize) -> anyhow::Result<Deployment> {
        let mode = Mode::parse(options.mode.as_deref().unwrap_or("single"))?;
        let appendonly = match options.appendonly.as_deref().unwrap_or("no") {
            "yes" => "yes",
            "no" => "no",
            other => anyhow::bail!("--redis-appendonly {other:?}: expected yes or no"),
        };
        let appendfsync = match options.appendfsync.as_deref().unwrap_or("everysec") {
            "always" => "always",
            "everysec" => "everysec",
            "no" => "no",
            other => {
                anyhow::bail!("--redis-appendfsync {other:?}: expected always, everysec or no")
            }
        };
        let servers = match mode {
            Mode::Single => 1,
            Mode::Replica | Mode::Sentinel => hosts,
            Mode::Redlock => hosts.min(REDLOCK_SERVERS),
        };
        let least = match mode {
            Mode::Single => 1,
            Mode::Replica => 2,
            Mode::Sentinel | Mode::Redlock => 3,
        };
        anyhow::ensure!(
            hosts == 0 || hosts >= least,
            "--redis-mode {} needs at least {least} hosts, not {hosts}",
            mode.name()
        );
        Ok(Deployment {
            mode,
            servers,
            appendonly,
            appendfsync,
            down_after_ms: DOWN_AFTER_MS,
            failover_timeout_ms: FAILOVER_TIMEOUT_MS,
        })
    }

    /// Sentinels that must agree the primary is down: a majority.
    pub fn quorum(&self) -> usize {
        self.servers / 2 + 1
    }

    /// One line for test.json and the report header.
    pub fn describe(&self, hosts: &[String]) -> String {
        let persistence = format!(
            "appendonly {}, appendfsync {}",
            self.appendonly, self.appendfsync
        );
        let first = hosts.first().map(String::as_str).unwrap_or("n1");
        let rest = hosts.get(1..self.servers).unwrap_or(&[]).join(", ");
        match self.mode {
            Mode::Single => format!("redis single: one server on {first}; {persistence}"),
            Mode::Replica => format!(
                "redis replica: primary {first}, asynchronous replicas {rest}; {persistence}"
            ),
            Mode::Sentinel => format!(
                "redis sentinel: primary {first}, replicas {rest}, a Sentinel on each \
                 (quorum {}, down-after {} ms, failover-timeout {} ms); {persistence}",
                self.quorum(),
                self.down_after_ms,
                self.failover_timeout_ms
            ),
            Mode::Redlock => format!(
                "redis redlock: {} independent servers on {}; {persistence}",
                self.servers,
                hosts.get(..self.servers).unwrap_or(&[]).join(", ")
            ),
        }
    }
}

/// Checks the Redis options of `spec` before anything starts.
pub fn validate(spec: &SystemSpec) -> anyhow::Result<()> {
    anyhow::ensure!(
        WORKLOADS.contains(&spec.workload.as_str()),
        "--workload {} does not run on --db redis; it serves {}",
        spec.workload,
        WORKLOADS.join(", ")
    );
    anyhow::ensure!(spec.bugs.is_empty(), "redis has no planted bugs");
    anyhow::ensure!(
        spec.read_mode.is_none() && spec.lock_mode.is_none() && spec.failover_interval.is_none(),
        "--read-mode, --lock-mode and the failover fault are not for --db redis \
         (see --redis-mode; Sentinel fails over by itself)"
    );
    let deployment = Deployment::new(&spec.redis, 0)?;
    anyhow::ensure!(
        deployment.mode != Mode::Redlock || spec.workload == "lock",
        "--redis-mode redlock serves the lock workload only"
    );
    Ok(())
}

/// The test of `spec` on `options.hosts`.
pub fn build_test(spec: &SystemSpec, mut options: RunOptions) -> anyhow::Result<Test> {
    validate(spec)?;
    let deployment = Deployment::new(&spec.redis, options.hosts.len())?;
    let names: Vec<String> = options.hosts.iter().map(|h| h.name.clone()).collect();
    let addrs = |port: u16| -> Vec<(String, String)> {
        options.hosts[..deployment.servers]
            .iter()
            .map(|h| (h.name.clone(), format!("{}:{port}", h.address)))
            .collect()
    };
    let servers = addrs(REDIS_PORT);
    let route = match deployment.mode {
        Mode::Sentinel => Route::Sentinel {
            sentinels: addrs(SENTINEL_PORT).into_iter().map(|(_, a)| a).collect(),
            hosts: servers.clone(),
        },
        _ => Route::Fixed(servers[0].0.clone(), servers[0].1.clone()),
    };
    let holding = Holding::default();
    let lease_ms = spec.lock_ttl_ms.unwrap_or(DEFAULT_TTL_MS);
    let (client, generator): (
        Arc<dyn faultline_core::client::ClientFactory>,
        Arc<dyn faultline_core::generator::OpGenerator>,
    ) = match (spec.workload.as_str(), deployment.mode) {
        ("lock", Mode::Redlock) => (
            // Redlock over real servers: redis-lock's own Redlock client speaks plain RESP.
            Arc::new(RedisLockClientFactory::new(
                RedisLockSettings {
                    mode: LockMode::Redlock,
                    servers,
                    primary: Arc::new(AtomicUsize::new(0)),
                    ttl_ms: lease_ms,
                    request_timeout: REDLOCK_REQUEST_TIMEOUT,
                },
                holding.clone(),
            )?),
            Arc::new(LockGenerator::new(holding)),
        ),
        ("lock", _) => (
            Arc::new(RedisClientFactory::new(
                route,
                spec.client_timeout,
                Workload::Lock { ttl_ms: lease_ms },
                holding.clone(),
            )),
            Arc::new(LockGenerator::new(holding)),
        ),
        _ => (
            Arc::new(RedisClientFactory::new(
                route,
                spec.client_timeout,
                Workload::Register,
                holding,
            )),
            Arc::new(RegisterGenerator {
                values: spec.register_values,
            }),
        ),
    };
    if spec.workload == "lock" {
        // A group keeps its lock for the whole run: a worker must release what it acquired.
        options.ops_per_key = u64::MAX;
        options.check.model = None;
        options.check.mutex = Some(true);
    } else {
        options.check.model = Some("cas-register".into());
    }
    let describe = deployment.describe(&names);
    let fields = [
        ("db", json!("redis")),
        ("workload", json!(spec.workload)),
        ("bug", json!(null)),
        ("redis_mode", json!(deployment.mode.name())),
        ("appendonly", json!(deployment.appendonly)),
        ("appendfsync", json!(deployment.appendfsync)),
        ("deployment", json!(describe)),
        (
            "client_timeout_ms",
            json!(spec.client_timeout.as_millis() as u64),
        ),
    ];
    for (key, value) in fields {
        options.test_fields.entry(key).or_insert(value);
    }
    if spec.workload == "lock" {
        options
            .test_fields
            .entry("lease_ms")
            .or_insert(json!(lease_ms));
    } else {
        options
            .test_fields
            .entry("register_values")
            .or_insert(json!(spec.register_values));
    }
    let watcher = watch::RoleWatcher::new(
        deployment.servers,
        json!({"mode": deployment.mode.name(), "description": describe}),
        matches!(deployment.mode, Mode::Replica | Mode::Sentinel),
    );
    Ok(Test {
        options,
        db: Arc::new(RedisDb::new(deployment)),
        client,
        generator,
        nemesis: Arc::new(watcher),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(mode: &str) -> RedisOptions {
        RedisOptions {
            mode: Some(mode.into()),
            ..RedisOptions::default()
        }
    }

    #[test]
    fn deployments_follow_the_mode_and_debian_defaults() {
        let d = Deployment::new(&RedisOptions::default(), 5).unwrap();
        assert_eq!(
            (d.mode, d.servers, d.appendonly, d.appendfsync),
            (Mode::Single, 1, "no", "everysec")
        );
        let s = Deployment::new(&options("sentinel"), 5).unwrap();
        assert_eq!((s.servers, s.quorum()), (5, 3));
        assert!(s
            .describe(&[
                "n1".into(),
                "n2".into(),
                "n3".into(),
                "n4".into(),
                "n5".into()
            ])
            .contains("replicas n2, n3, n4, n5"));
        assert_eq!(Deployment::new(&options("redlock"), 7).unwrap().servers, 5);
        let err = Deployment::new(&options("sentinel"), 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 3 hosts"), "{err}");
        assert!(Deployment::new(&options("cluster"), 5).is_err());
        let bad = RedisOptions {
            appendonly: Some("maybe".into()),
            ..RedisOptions::default()
        };
        assert!(Deployment::new(&bad, 1)
            .unwrap_err()
            .to_string()
            .contains("--redis-appendonly"));
    }

    #[test]
    fn redlock_is_for_locks_and_redis_takes_no_redis_lock_options() {
        let mut spec = SystemSpec {
            db: "redis".into(),
            redis: options("redlock"),
            ..SystemSpec::default()
        };
        assert!(validate(&spec)
            .unwrap_err()
            .to_string()
            .contains("lock workload only"));
        spec.workload = "lock".into();
        assert!(validate(&spec).is_ok());
        spec.lock_mode = Some("replica".into());
        assert!(validate(&spec).is_err());
    }
}
