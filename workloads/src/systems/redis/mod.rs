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
use crate::lock_set::LockSetPlan;
use crate::system::{Capabilities, ClockReach, Named, System, SystemRequest, WorkloadParts};
use crate::systems::{named, refuse_program_flags, LOCK_TTL_MS};
use client::{RedisClientFactory, RedisSetFactory, Route, Workload};
use db::{RedisDb, REDIS_PORT, SENTINEL_PORT};
use faultline_core::run::{RunOptions, Test};
use serde_json::json;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

/// The name the Sentinels monitor the primary under.
pub const SENTINEL_MASTER: &str = "faultline";
/// The option names (also `run`'s flags `--redis-mode`, `--redis-appendonly`,
/// `--redis-appendfsync`).
pub const REDIS_MODE: &str = "redis-mode";
pub const REDIS_APPENDONLY: &str = "redis-appendonly";
pub const REDIS_APPENDFSYNC: &str = "redis-appendfsync";
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
    fn of(request: &SystemRequest) -> RedisOptions {
        let get = |name| request.option(name).map(str::to_owned);
        RedisOptions {
            mode: get(REDIS_MODE),
            appendonly: get(REDIS_APPENDONLY),
            appendfsync: get(REDIS_APPENDFSYNC),
        }
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

/// Debian's Redis 7, as users deploy it.
pub struct RedisSystem;

impl System for RedisSystem {
    fn name(&self) -> &str {
        "redis"
    }
    fn description(&self) -> &str {
        "Debian's Redis 7 (redis-server, redis-sentinel): single, primary + async replicas, Sentinel, or Redlock"
    }
    fn workloads(&self) -> Vec<String> {
        ["register", "lock", "lock-set"].map(String::from).to_vec()
    }
    fn options(&self) -> Vec<Named> {
        named(&[
            (
                REDIS_MODE,
                "single (default), replica (primary + async replicas), sentinel (the same with a Sentinel per host) or redlock (independent servers, lock only)",
            ),
            (
                REDIS_APPENDONLY,
                "yes or no (Debian's default: no)",
            ),
            (
                REDIS_APPENDFSYNC,
                "always, everysec (Debian's default) or no",
            ),
            (
                LOCK_TTL_MS,
                "lock and lock-set: the lock's TTL in ms (default 1000)",
            ),
        ])
    }
    fn capabilities(&self, request: &SystemRequest) -> Capabilities {
        let mode = Deployment::new(&RedisOptions::of(request), 0).map(|d| d.mode);
        Capabilities {
            // Redlock's servers are independent: none leads.
            primaries: mode.is_ok_and(|m| m != Mode::Redlock),
            clock: ClockReach {
                // Measured with libfaketime 0.9.10 and Redis 7.0.15 (docs/redis.md):
                // libfaketime's first clock_gettime runs its init, whose dlsym fails and
                // mallocs; jemalloc starts on that malloc, calls clock_gettime, re-enters
                // libfaketime and waits for its own init lock for ever. No FAKETIME_* or
                // MALLOC_CONF setting or preload order avoids it.
                faketime: Err(
                    "redis-server hangs at start under libfaketime (its jemalloc \
                               re-enters libfaketime's init and deadlocks)"
                        .into(),
                ),
                system: Ok(()),
            },
            ..Capabilities::default()
        }
    }
    fn check(&self, request: &SystemRequest) -> anyhow::Result<()> {
        refuse_program_flags(self.name(), request)?;
        request.parsed::<u64>(LOCK_TTL_MS)?;
        let deployment = Deployment::new(&RedisOptions::of(request), 0)?;
        anyhow::ensure!(
            deployment.mode != Mode::Redlock || request.workload == "lock",
            "--redis-mode redlock serves the lock workload only"
        );
        Ok(())
    }
    fn build(
        &self,
        request: &SystemRequest,
        mut workload: WorkloadParts,
        mut options: RunOptions,
    ) -> anyhow::Result<Test> {
        let deployment = Deployment::new(&RedisOptions::of(request), options.hosts.len())?;
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
        let lease_ms = request
            .parsed::<u64>(LOCK_TTL_MS)?
            .unwrap_or(DEFAULT_TTL_MS);
        let lock = request.workload == "lock";
        let mut lock_set = None;
        let client: Arc<dyn faultline_core::client::ClientFactory> = match (lock, deployment.mode) {
            (false, _) if request.workload == "lock-set" => {
                let plan = LockSetPlan::new(request, &mut options)?;
                let client = plan.factory(RedisSetFactory {
                    route,
                    timeout: request.client_timeout,
                    ttl_ms: lease_ms,
                });
                lock_set = Some(plan);
                Arc::new(client)
            }
            // Redlock over real servers: redis-lock's own Redlock client speaks plain RESP.
            (true, Mode::Redlock) => Arc::new(RedisLockClientFactory::new(
                RedisLockSettings {
                    mode: LockMode::Redlock,
                    servers,
                    primary: Arc::new(AtomicUsize::new(0)),
                    ttl_ms: lease_ms,
                    request_timeout: REDLOCK_REQUEST_TIMEOUT,
                },
                holding.clone(),
            )?),
            (true, _) => Arc::new(RedisClientFactory::new(
                route,
                request.client_timeout,
                Workload::Lock { ttl_ms: lease_ms },
                holding.clone(),
            )),
            (false, _) => Arc::new(RedisClientFactory::new(
                route,
                request.client_timeout,
                Workload::Register,
                holding.clone(),
            )),
        };
        if lock {
            workload.generator = Arc::new(LockGenerator::new(holding));
        }
        let describe = deployment.describe(&names);
        let mut fields = vec![
            ("redis_mode", json!(deployment.mode.name())),
            ("appendonly", json!(deployment.appendonly)),
            ("appendfsync", json!(deployment.appendfsync)),
            ("deployment", json!(describe)),
        ];
        if request.workload != "register" {
            fields.push(("lease_ms", json!(lease_ms)));
        }
        for (key, value) in fields {
            options.test_fields.entry(key).or_insert(value);
        }
        // The role watcher runs for the whole test beside the scheduled faults: it records
        // the deployment and every failover Sentinel makes.
        let watcher = watch::RoleWatcher::new(
            deployment.servers,
            json!({"mode": deployment.mode.name(), "description": describe}),
            matches!(deployment.mode, Mode::Replica | Mode::Sentinel),
        );
        let mut test = workload.into_test(options, Arc::new(RedisDb::new(deployment)), client);
        test.nemesis = Arc::new(watcher);
        if let Some(plan) = &lock_set {
            plan.install(&mut test);
        }
        Ok(test)
    }
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
        let registry = crate::system::Registry::stock();
        let mut request = SystemRequest {
            options: vec![(REDIS_MODE.into(), "redlock".into())],
            ..SystemRequest::default()
        };
        let check = |r: &SystemRequest| registry.check(&RedisSystem, r).map_err(|e| e.to_string());
        assert!(check(&request).unwrap_err().contains("lock workload only"));
        request.workload = "lock".into();
        assert!(check(&request).is_ok());
        assert!(!RedisSystem.capabilities(&request).primaries);
        request.options.push(("lock-mode".into(), "replica".into()));
        assert!(check(&request).unwrap_err().contains("lock-mode"));
    }
}
