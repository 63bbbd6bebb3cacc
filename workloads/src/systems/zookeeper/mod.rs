//! `--db zookeeper`: Debian's ZooKeeper 3.8 — its lifecycle on the hosts (`db`), its
//! clients (`client`), and here the options it takes, what it can be faulted with, and the
//! `Test` of each workload it serves (register, lock).
//!
//! What the workloads show: writes (setData, and cas as setData with the version read) are
//! linearizable; plain reads are only sequentially consistent — a follower cut off from
//! the leader keeps answering from what it has for up to syncLimit × tickTime — and the
//! register checker says so. The lock recipe's fencing token is the lock node's sequence
//! number.

pub mod client;
pub mod db;

use crate::lock::{Holding, LockGenerator};
use crate::register::RegisterGenerator;
use crate::systems::SystemSpec;
use client::{ReadMode, ZkLockFactory, ZkRegisterFactory, ZkSettings};
use db::{ZooKeeperDb, CLIENT_PORT, SYNC_LIMIT_TICKS, TICK_MS};
use faultline_core::nemesis::NoNemesis;
use faultline_core::run::{RunOptions, Test};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "zookeeper";
/// The workloads this system serves.
pub const WORKLOADS: [&str; 2] = ["register", "lock"];
/// A register client's session timeout: long enough to ride out a short partition of its
/// server, within the server's 2–20 tick bounds.
const REGISTER_SESSION_MS: u64 = 4000;
/// The lock's lease by default: the session timeout of a lock client.
const LOCK_SESSION_MS: u64 = 3000;
/// How long an acquire waits for its predecessors before it gives up.
const ACQUIRE_WAIT: Duration = Duration::from_millis(1000);
/// The session timeouts the servers accept (ZooKeeper's defaults: 2 and 20 ticks).
const SESSION_MS_MIN: u64 = 2 * TICK_MS;
const SESSION_MS_MAX: u64 = 20 * TICK_MS;

/// Checks the options that only make sense for other systems, before anything starts.
pub fn validate(spec: &SystemSpec) -> anyhow::Result<()> {
    anyhow::ensure!(
        WORKLOADS.contains(&spec.workload.as_str()),
        "--workload {} does not run on --db zookeeper; it serves {}",
        spec.workload,
        WORKLOADS.join(", ")
    );
    anyhow::ensure!(
        spec.bugs.is_empty(),
        "zookeeper is the real server: it has no planted bugs (--bug)"
    );
    anyhow::ensure!(
        spec.node_args.is_empty() && spec.node_binary.is_none(),
        "--node-opt and --node-binary are for faultline's own nodes, not zookeeper"
    );
    anyhow::ensure!(
        spec.lock_mode.is_none() && spec.failover_interval.is_none(),
        "--lock-mode and the failover fault are for --db redis-lock"
    );
    if let Some(mode) = &spec.read_mode {
        anyhow::ensure!(
            spec.workload == "register",
            "--read-mode is for the register workload"
        );
        mode.parse::<ReadMode>().map_err(anyhow::Error::msg)?;
    }
    if let Some(ttl) = spec.lock_ttl_ms {
        anyhow::ensure!(
            spec.workload == "lock",
            "--lock-ttl-ms is for the lock workload"
        );
        anyhow::ensure!(
            (SESSION_MS_MIN..=SESSION_MS_MAX).contains(&ttl),
            "--lock-ttl-ms {ttl} is the lock's session timeout: ZooKeeper (tickTime {TICK_MS} ms) \
             accepts {SESSION_MS_MIN} to {SESSION_MS_MAX} ms"
        );
    }
    anyhow::ensure!(
        spec.register_values >= 1,
        "--register-values must be at least 1"
    );
    Ok(())
}

/// The test of `spec` (db `zookeeper`) on `options.hosts`, without faults.
pub fn build_test(spec: &SystemSpec, mut options: RunOptions) -> anyhow::Result<Test> {
    validate(spec)?;
    anyhow::ensure!(!options.hosts.is_empty(), "zookeeper needs hosts to run on");
    let servers: Vec<(String, String)> = options
        .hosts
        .iter()
        .map(|h| (h.name.clone(), format!("{}:{CLIENT_PORT}", h.address)))
        .collect();
    let db = Arc::new(ZooKeeperDb::new(spec.env.clone()));
    let common = [
        ("db", json!(NAME)),
        ("workload", json!(spec.workload)),
        ("bug", json!(null)),
        (
            "client_timeout_ms",
            json!(spec.client_timeout.as_millis() as u64),
        ),
        ("zookeeper_tick_ms", json!(TICK_MS)),
        ("zookeeper_sync_limit_ticks", json!(SYNC_LIMIT_TICKS)),
    ];
    for (key, value) in common {
        options.test_fields.entry(key).or_insert(value);
    }
    if spec.workload == "lock" {
        let lease_ms = spec.lock_ttl_ms.unwrap_or(LOCK_SESSION_MS);
        // A group keeps its lock for the whole run: a worker must release what it acquired.
        options.ops_per_key = u64::MAX;
        options.check.model = None;
        options.check.mutex = Some(true);
        options
            .test_fields
            .entry("lease_ms")
            .or_insert(json!(lease_ms));
        let holding = Holding::default();
        let settings = ZkSettings {
            servers,
            request_timeout: spec.client_timeout,
            session_timeout: Duration::from_millis(lease_ms),
        };
        let client = ZkLockFactory::new(settings, holding.clone(), ACQUIRE_WAIT)?;
        return Ok(Test {
            options,
            db,
            client: Arc::new(client),
            generator: Arc::new(LockGenerator::new(holding)),
            nemesis: Arc::new(NoNemesis),
        });
    }
    let read_mode: ReadMode = spec
        .read_mode
        .as_deref()
        .unwrap_or("plain")
        .parse()
        .map_err(anyhow::Error::msg)?;
    options.check.model = Some("cas-register".into());
    options
        .test_fields
        .entry("read_mode")
        .or_insert(json!(read_mode.name()));
    options
        .test_fields
        .entry("register_values")
        .or_insert(json!(spec.register_values));
    let settings = ZkSettings {
        servers,
        request_timeout: spec.client_timeout,
        session_timeout: Duration::from_millis(REGISTER_SESSION_MS),
    };
    Ok(Test {
        options,
        db,
        client: Arc::new(ZkRegisterFactory::new(settings, read_mode)?),
        generator: Arc::new(RegisterGenerator {
            values: spec.register_values,
        }),
        nemesis: Arc::new(NoNemesis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(workload: &str) -> SystemSpec {
        SystemSpec {
            db: NAME.into(),
            workload: workload.into(),
            ..SystemSpec::default()
        }
    }

    #[test]
    fn options_of_other_systems_are_refused_by_name() {
        assert!(validate(&spec("register")).is_ok());
        assert!(validate(&spec("lock")).is_ok());
        let err = validate(&spec("append")).unwrap_err().to_string();
        assert!(err.contains("register, lock"), "{err}");
        let bug = SystemSpec {
            bugs: vec!["stale-read".into()],
            ..spec("register")
        };
        assert!(validate(&bug).unwrap_err().to_string().contains("--bug"));
        let read = SystemSpec {
            read_mode: Some("readindex".into()),
            ..spec("register")
        };
        assert!(validate(&read)
            .unwrap_err()
            .to_string()
            .contains("plain, sync"));
        let ttl = SystemSpec {
            lock_ttl_ms: Some(60_000),
            ..spec("lock")
        };
        assert!(validate(&ttl).unwrap_err().to_string().contains("5000 ms"));
    }
}
