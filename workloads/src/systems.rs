//! The stock systems — our own nodes (raft, paxos, zk-lock, redis-lock) and Debian's
//! servers (etcd, redis, zookeeper, each in its own folder) — and workloads (register,
//! lock, lock-set), each one value implementing `System` or `Workload`, registered by
//! [`register_stock`].

pub mod etcd;
pub mod redis;
pub mod zookeeper;

use crate::binary::find_node_binary;
use crate::http::NodeClientFactory;
use crate::lock::{
    Holding, LockGenerator, LockMode, RedisLockClientFactory, RedisLockSettings,
    ZkLockClientFactory, ZkLockSettings,
};
use crate::lock_db::{BothNemeses, FailoverNemesis, RedisLockDb, REDIS_PORT};
use crate::lock_set::LockSetPlan;
use crate::lock_set_nodes::{RedisLockSetFactory, ZkLockSetFactory};
use crate::node_db::{endpoint, NodeDb, NodeDbConfig, CLIENT_PORT};
use crate::register::RegisterGenerator;
use crate::system::{
    Capabilities, Named, Registry, System, SystemRequest, Workload, WorkloadParts,
};
use faultline_core::run::{RunOptions, Test};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

/// Default lease of a grant: zk-lock's session timeout, redis-lock's TTL.
const ZK_SESSION_TIMEOUT_MS: u64 = 3000;
const REDIS_TTL_MS: u64 = 1000;
/// How long a zk-lock acquire queues before it is cancelled (408, `fail`).
const ZK_ACQUIRE_WAIT_MS: u64 = 1000;
/// Redlock's bound on each server's answer: a small part of the TTL, so that one paused
/// server does not eat the validity.
const REDLOCK_REQUEST_TIMEOUT: Duration = Duration::from_millis(100);
/// How long the replica-mode primary grants without replicating before a failover stops it.
const FAILOVER_LAG: Duration = Duration::from_millis(1000);

/// The option names of the stock systems and workloads (also CLI flags of `run`).
pub const READ_MODE: &str = "read-mode";
pub const LOCK_MODE: &str = "lock-mode";
pub const LOCK_TTL_MS: &str = "lock-ttl-ms";
pub const REGISTER_VALUES: &str = "register-values";
pub const FENCING: &str = "fencing";

/// Adds the stock systems and workloads to `registry`.
pub fn register_stock(registry: Registry) -> Registry {
    registry
        .with_workload(RegisterWorkload)
        .with_workload(LockWorkload)
        .with_workload(LockSetWorkload)
        .with_workload(crate::txn::TxnWorkload(crate::txn::TxnKind::Append))
        .with_workload(crate::txn::TxnWorkload(crate::txn::TxnKind::Wr))
        .with(NodeRegisterSystem::raft())
        .with(NodeRegisterSystem::paxos())
        .with(ZkLockSystem)
        .with(RedisLockSystem)
        .with(etcd::EtcdSystem)
        .with(redis::RedisSystem)
        .with(zookeeper::ZooKeeperSystem)
}

/// Third-party servers run as Debian ships them: `--node-opt` and `--node-binary` are for
/// faultline's own node program.
pub(crate) fn refuse_program_flags(system: &str, request: &SystemRequest) -> anyhow::Result<()> {
    anyhow::ensure!(
        request.program_args.is_empty() && request.binary.is_none(),
        "--node-opt and --node-binary are for faultline's own nodes, not {system}"
    );
    Ok(())
}

/// `--fencing` (a flag: `--db-opt fencing` or `fencing=true`), refused outside lock-set,
/// whose writes it guards.
pub(crate) fn fencing(request: &SystemRequest) -> anyhow::Result<bool> {
    let fencing = request.parsed::<bool>(FENCING)?.unwrap_or(false);
    anyhow::ensure!(
        !fencing || request.workload == "lock-set",
        "--fencing guards the lock-set workload's writes; it does not apply to {}",
        request.workload
    );
    Ok(fencing)
}

/// A request for `workload` with `--db-opt` options, for the systems' tests.
#[cfg(test)]
pub(crate) fn test_request(workload: &str, options: &[(&str, &str)]) -> SystemRequest {
    SystemRequest {
        workload: workload.into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..SystemRequest::default()
    }
}

pub(crate) fn named(list: &[(&str, &str)]) -> Vec<Named> {
    list.iter().map(|(n, h)| Named::new(*n, *h)).collect()
}

/// test.json fields every faultline-node system records.
fn node_fields(options: &mut RunOptions, request: &SystemRequest, binary: &std::path::Path) {
    for (key, value) in [
        ("node_args", json!(request.program_args)),
        ("node_binary", json!(binary.display().to_string())),
    ] {
        options.test_fields.entry(key).or_insert(value);
    }
}

fn node_binary(request: &SystemRequest) -> anyhow::Result<PathBuf> {
    find_node_binary(request.binary.as_deref())
}

/// `register`: read / write / cas on independent keys, linearizable against a
/// cas-register.
pub struct RegisterWorkload;

impl Workload for RegisterWorkload {
    fn name(&self) -> &str {
        "register"
    }
    fn description(&self) -> &str {
        "read, write and cas of small integers on independent keys; linearizable (cas-register)"
    }
    fn options(&self) -> Vec<Named> {
        named(&[(
            REGISTER_VALUES,
            "values are drawn from 0..N (default 5): more make a stale read harder to explain away",
        )])
    }
    fn build(&self, request: &SystemRequest) -> anyhow::Result<WorkloadParts> {
        let values = request
            .parsed::<u64>(REGISTER_VALUES)?
            .unwrap_or(crate::register::DEFAULT_VALUES);
        anyhow::ensure!(values >= 1, "--register-values must be at least 1");
        let mut parts = WorkloadParts::new(Arc::new(RegisterGenerator { values }));
        parts.check.model = Some("cas-register".into());
        parts.test_fields.push(("register_values", json!(values)));
        Ok(parts)
    }
}

/// `lock`: acquire, hold, release one lock per group of workers for the whole run,
/// checked for mutual exclusion (and fencing order where tokens exist).
pub struct LockWorkload;

impl Workload for LockWorkload {
    fn name(&self) -> &str {
        "lock"
    }
    fn description(&self) -> &str {
        "acquire, hold, release; mutual exclusion and fencing-token order"
    }
    fn build(&self, _request: &SystemRequest) -> anyhow::Result<WorkloadParts> {
        // The lock systems replace this generator with one sharing their clients' state.
        let mut parts = WorkloadParts::new(Arc::new(LockGenerator::new(Holding::default())));
        parts.check.model = None;
        parts.check.mutex = Some(true);
        // A group keeps its lock for the whole run: a worker must release what it acquired.
        parts.ops_per_key = Some(u64::MAX);
        Ok(parts)
    }
}

/// `lock-set`: each worker takes the lock, reads the set, adds its element and writes the
/// set back; the final read must hold every acknowledged add (lost updates show a lock
/// that did not exclude). The system supplies the client (see `lock_set::GuardedSet`).
pub struct LockSetWorkload;

impl Workload for LockSetWorkload {
    fn name(&self) -> &str {
        "lock-set"
    }
    fn description(&self) -> &str {
        "a lock-guarded read-modify-write of one set; the final read must hold every acknowledged add"
    }
    fn options(&self) -> Vec<Named> {
        named(&[
            (
                crate::lock_set::CLIENT_PAUSE_MS,
                "a client pauses this many ms (1 to 60000) after its last validity check, before it writes the set",
            ),
            (
                crate::lock_set::CLIENT_PAUSE_PROBABILITY,
                "the chance an add pauses (default 0.1; one client paused at a time)",
            ),
        ])
    }
    fn build(&self, request: &SystemRequest) -> anyhow::Result<WorkloadParts> {
        crate::lock_set::ClientPause::from_request(request)?;
        let mut parts = WorkloadParts::new(Arc::new(crate::lock_set::LockSetGenerator::default()));
        parts.check.model = None;
        parts.check.mutex = Some(false);
        // The set checker, with lost adds explained by the client pauses that caused them.
        parts.check.set = Some(false);
        parts
            .checkers
            .push(Arc::new(crate::lock_set::LockSetChecker));
        Ok(parts)
    }
}

/// raft and paxos: `faultline-node` on every host, the register workload over HTTP.
pub struct NodeRegisterSystem {
    name: &'static str,
    description: &'static str,
    bugs: &'static [(&'static str, &'static str)],
    workloads: &'static [&'static str],
    read_modes: &'static [&'static str],
    /// Whether it has a leader (`primaries`).
    leader: bool,
}

impl NodeRegisterSystem {
    pub fn raft() -> NodeRegisterSystem {
        NodeRegisterSystem {
            name: "raft",
            description: "our Raft key-value store (faultline-node raft), linearizable reads by ReadIndex or lease",
            bugs: &[
                ("stale-read", "followers answer reads from their own state"),
                ("lease-unsafe", "the leader lease is measured on the wall clock"),
                ("no-fsync", "the log is not synced before acknowledging"),
                ("ack-before-commit", "writes are acknowledged before they commit"),
                (
                    "txn-early-reads",
                    "a txn's reads come from the leader's state at arrival, only its writes go through the log",
                ),
            ],
            workloads: &["register", "append", "wr"],
            read_modes: &["readindex", "lease"],
            leader: true,
        }
    }

    pub fn paxos() -> NodeRegisterSystem {
        NodeRegisterSystem {
            name: "paxos",
            description: "our CASPaxos register store (faultline-node paxos), one instance per key",
            bugs: &[("skip-prepare", "a proposer skips the prepare phase")],
            workloads: &["register"],
            read_modes: &["readindex"],
            leader: false,
        }
    }
}

impl System for NodeRegisterSystem {
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        self.description
    }
    fn workloads(&self) -> Vec<String> {
        self.workloads.iter().map(|w| w.to_string()).collect()
    }
    fn bugs(&self) -> Vec<Named> {
        named(self.bugs)
    }
    fn options(&self) -> Vec<Named> {
        vec![Named::new(
            READ_MODE,
            format!("the read path: {}", self.read_modes.join(" or ")),
        )]
    }
    fn capabilities(&self, _request: &SystemRequest) -> Capabilities {
        Capabilities {
            primaries: self.leader,
            ..Capabilities::default()
        }
    }
    fn check(&self, request: &SystemRequest) -> anyhow::Result<()> {
        if let Some(mode) = request.option(READ_MODE) {
            anyhow::ensure!(
                self.read_modes.contains(&mode),
                "--read-mode {mode:?} is not one of {} for {}",
                self.read_modes.join(", "),
                self.name
            );
        }
        Ok(())
    }
    fn build(
        &self,
        request: &SystemRequest,
        workload: WorkloadParts,
        mut options: RunOptions,
    ) -> anyhow::Result<Test> {
        let binary = node_binary(request)?;
        let read_mode = request.option(READ_MODE).map(str::to_owned);
        let db = NodeDb::new(NodeDbConfig {
            system: self.name.into(),
            binary: binary.clone(),
            bugs: request.bugs.clone(),
            read_mode: read_mode.clone(),
            extra_args: request.program_args.clone(),
            primaries: self.leader,
        })?;
        let endpoints = options
            .hosts
            .iter()
            .map(|h| endpoint(&h.name, &h.address))
            .collect();
        let client = NodeClientFactory::new(endpoints, request.client_timeout)?;
        node_fields(&mut options, request, &binary);
        options
            .test_fields
            .entry("read_mode")
            .or_insert(json!(read_mode.unwrap_or_else(|| "readindex".into())));
        Ok(workload.into_test(options, Arc::new(db), Arc::new(client)))
    }
}

/// zk-lock: the ZooKeeper-style lock service on our Raft.
pub struct ZkLockSystem;

impl System for ZkLockSystem {
    fn name(&self) -> &str {
        "zk-lock"
    }
    fn description(&self) -> &str {
        "our ZooKeeper-style lock service on Raft: sessions, ephemeral sequential nodes, fencing tokens"
    }
    fn workloads(&self) -> Vec<String> {
        vec!["lock".into(), "lock-set".into()]
    }
    fn bugs(&self) -> Vec<Named> {
        named(&[(
            "wall-clock-expiry",
            "sessions expire on the leader's wall clock",
        )])
    }
    fn options(&self) -> Vec<Named> {
        named(&[
            (LOCK_TTL_MS, "the session timeout in ms (default 3000)"),
            (
                FENCING,
                "lock-set: the set's write is stored only while the grant's token holds the lock",
            ),
        ])
    }
    fn capabilities(&self, _request: &SystemRequest) -> Capabilities {
        Capabilities {
            primaries: true,
            ..Capabilities::default()
        }
    }
    fn check(&self, request: &SystemRequest) -> anyhow::Result<()> {
        request.parsed::<u64>(LOCK_TTL_MS)?;
        fencing(request)?;
        Ok(())
    }
    fn build(
        &self,
        request: &SystemRequest,
        mut workload: WorkloadParts,
        mut options: RunOptions,
    ) -> anyhow::Result<Test> {
        let binary = node_binary(request)?;
        let lease_ms = request
            .parsed::<u64>(LOCK_TTL_MS)?
            .unwrap_or(ZK_SESSION_TIMEOUT_MS);
        let nodes: Vec<(String, String)> = options
            .hosts
            .iter()
            .map(|h| (h.name.clone(), format!("{}:{CLIENT_PORT}", h.address)))
            .collect();
        let db = NodeDb::new(NodeDbConfig {
            system: "zk-lock".into(),
            binary: binary.clone(),
            bugs: request.bugs.clone(),
            read_mode: None,
            extra_args: request.program_args.clone(),
            primaries: true,
        })?;
        node_fields(&mut options, request, &binary);
        options
            .test_fields
            .entry("lease_ms")
            .or_insert(json!(lease_ms));
        if request.workload == "lock-set" {
            let plan = LockSetPlan::new(request, &mut options)?;
            let client = plan.factory(ZkLockSetFactory {
                nodes,
                request_timeout: request.client_timeout,
                session_timeout_ms: lease_ms,
                acquire_wait_ms: ZK_ACQUIRE_WAIT_MS,
            });
            let mut test = workload.into_test(options, Arc::new(db), Arc::new(client));
            plan.install(&mut test);
            return Ok(test);
        }
        let holding = Holding::default();
        let client = ZkLockClientFactory::new(
            ZkLockSettings {
                nodes,
                request_timeout: request.client_timeout,
                session_timeout_ms: lease_ms,
                acquire_wait_ms: ZK_ACQUIRE_WAIT_MS,
            },
            holding.clone(),
        )?;
        workload.generator = Arc::new(LockGenerator::new(holding));
        Ok(workload.into_test(options, Arc::new(db), Arc::new(client)))
    }
}

/// redis-lock: the Redis-style lock server, alone, with an async replica, or as Redlock.
pub struct RedisLockSystem;

impl RedisLockSystem {
    fn mode(request: &SystemRequest) -> anyhow::Result<LockMode> {
        request
            .option(LOCK_MODE)
            .unwrap_or("single")
            .parse()
            .map_err(anyhow::Error::msg)
    }
}

impl System for RedisLockSystem {
    fn name(&self) -> &str {
        "redis-lock"
    }
    fn description(&self) -> &str {
        "our Redis-style lock server (SET NX PX, compare-and-delete): single, primary + async replica, or Redlock"
    }
    fn workloads(&self) -> Vec<String> {
        vec!["lock".into(), "lock-set".into()]
    }
    fn options(&self) -> Vec<Named> {
        named(&[
            (
                LOCK_MODE,
                "single (default), replica (primary + async replica) or redlock",
            ),
            (LOCK_TTL_MS, "the lock TTL in ms (default 1000)"),
            (
                FENCING,
                "refused: redis-lock issues no fencing token the store could check",
            ),
        ])
    }
    fn faults(&self) -> Vec<Named> {
        named(&[(
            "failover",
            "replica mode: cut the replica off, kill the primary after 1 s, promote the replica",
        )])
    }
    fn capabilities(&self, request: &SystemRequest) -> Capabilities {
        Capabilities {
            // Redlock's servers are independent: none leads.
            primaries: Self::mode(request).is_ok_and(|m| m != LockMode::Redlock),
            ..Capabilities::default()
        }
    }
    fn check(&self, request: &SystemRequest) -> anyhow::Result<()> {
        let mode = Self::mode(request)?;
        request.parsed::<u64>(LOCK_TTL_MS)?;
        anyhow::ensure!(
            !fencing(request)?,
            "--fencing needs a fencing token, and redis-lock issues none (a random value per \
             grant, nothing a store can order); zk-lock, etcd and zookeeper fence lock-set"
        );
        anyhow::ensure!(
            !request.has_fault("failover") || mode == LockMode::Replica,
            "the failover fault needs --db redis-lock --lock-mode replica"
        );
        Ok(())
    }
    fn build(
        &self,
        request: &SystemRequest,
        mut workload: WorkloadParts,
        mut options: RunOptions,
    ) -> anyhow::Result<Test> {
        let binary = node_binary(request)?;
        let mode = Self::mode(request)?;
        let servers = RedisLockDb::servers(mode, options.hosts.len());
        anyhow::ensure!(
            mode != LockMode::Replica || servers == 2,
            "--lock-mode replica needs at least 2 hosts"
        );
        let lease_ms = request.parsed::<u64>(LOCK_TTL_MS)?.unwrap_or(REDIS_TTL_MS);
        let primary = Arc::new(AtomicUsize::new(0));
        let db = Arc::new(RedisLockDb::new(binary.clone(), mode, primary.clone())?);
        let settings = RedisLockSettings {
            mode,
            servers: options.hosts[..servers]
                .iter()
                .map(|h| (h.name.clone(), format!("{}:{REDIS_PORT}", h.address)))
                .collect(),
            primary,
            ttl_ms: lease_ms,
            request_timeout: match mode {
                LockMode::Redlock => REDLOCK_REQUEST_TIMEOUT,
                _ => request.client_timeout,
            },
        };
        let plan = match request.workload.as_str() {
            "lock-set" => Some(LockSetPlan::new(request, &mut options)?),
            _ => None,
        };
        let client: Arc<dyn faultline_core::client::ClientFactory> = match &plan {
            Some(plan) => Arc::new(plan.factory(RedisLockSetFactory {
                settings,
                store_timeout: request.client_timeout,
            })),
            None => {
                let holding = Holding::default();
                workload.generator = Arc::new(LockGenerator::new(holding.clone()));
                Arc::new(RedisLockClientFactory::new(settings, holding)?)
            }
        };
        node_fields(&mut options, request, &binary);
        let fields = &mut options.test_fields;
        fields.entry("lock_mode").or_insert(json!(mode.name()));
        fields.entry("lease_ms").or_insert(json!(lease_ms));
        let failover = request.has_fault("failover");
        if failover {
            let interval = request.fault_interval;
            fields
                .entry("failover_interval_s")
                .or_insert(json!(interval.as_secs_f64()));
            let perf = json!({"name": "failover", "start": ["failover"],
                              "stop": ["failover-done"], "color": "#ffc9a8"});
            append_perf(&mut options, perf, interval);
        }
        let mut test = workload.into_test(options, db.clone(), client);
        if failover {
            test.nemesis = Arc::new(FailoverNemesis::new(
                db,
                request.fault_interval,
                FAILOVER_LAG,
            ));
        }
        if let Some(plan) = &plan {
            plan.install(&mut test);
        }
        Ok(test)
    }
}

/// Adds a system's own fault to test.json's `nemesis_perf` (the report's fault bands),
/// after the scheduled families' entries when there are any.
pub fn append_perf(options: &mut RunOptions, perf: Value, interval: Duration) {
    if push_perf(options, perf) {
        options
            .test_fields
            .insert("nemesis_interval_s".into(), json!(interval.as_secs_f64()));
    }
}

/// Adds an entry to test.json's `nemesis_perf`; true when it started the list (no scheduled
/// family had put one there).
pub fn push_perf(options: &mut RunOptions, perf: Value) -> bool {
    match options.test_fields.get_mut("nemesis_perf") {
        Some(Value::Array(list)) => {
            list.push(perf);
            false
        }
        _ => {
            options
                .test_fields
                .insert("nemesis_perf".into(), json!([perf]));
            true
        }
    }
}

/// The scheduled nemesis beside the one a system built into its test (its own faults, or
/// a watcher such as Redis's role watcher, which has no fault names but must run too).
pub fn with_scheduled(test: &mut Test, scheduled: Arc<dyn faultline_core::nemesis::Nemesis>) {
    BothNemeses::add_to(test, scheduled);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::ClockReach;

    fn request(workload: &str) -> SystemRequest {
        SystemRequest {
            workload: workload.into(),
            ..SystemRequest::default()
        }
    }

    #[test]
    fn the_registry_checks_names_before_anything_starts() {
        let registry = Registry::stock();
        let raft = registry.system("raft").unwrap();
        assert!(registry.check(&*raft, &request("register")).is_ok());
        let err = registry
            .check(&*raft, &request("lock"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("zk-lock, redis-lock"), "{err}");
        let mut none = request("register");
        none.options.push((REGISTER_VALUES.into(), "0".into()));
        assert!(RegisterWorkload.build(&none).is_err());
        let mut lease = request("register");
        lease.options.push((READ_MODE.into(), "lease".into()));
        assert!(registry.check(&*raft, &lease).is_ok());
        let paxos = registry.system("paxos").unwrap();
        let err = registry.check(&*paxos, &lease).unwrap_err().to_string();
        assert!(err.contains("readindex"), "{err}");
        let mut bug = request("lock");
        bug.bugs.push("stale-read".into());
        let redis = registry.system("redis-lock").unwrap();
        let err = registry.check(&*redis, &bug).unwrap_err().to_string();
        assert!(err.contains("no planted bugs"), "{err}");
        let mut failover = request("lock");
        failover.faults.push("failover".into());
        assert!(registry.check(&*redis, &failover).is_err());
        failover.options.push((LOCK_MODE.into(), "replica".into()));
        assert!(registry.check(&*redis, &failover).is_ok());
        let err = registry.system("etcd2").err().unwrap().to_string();
        assert!(
            err.contains("raft, paxos, zk-lock, redis-lock, etcd, redis, zookeeper"),
            "{err}"
        );
    }

    #[test]
    fn capabilities_follow_the_request() {
        let mut redlock = request("lock");
        redlock.options.push((LOCK_MODE.into(), "redlock".into()));
        assert!(!RedisLockSystem.capabilities(&redlock).primaries);
        assert!(RedisLockSystem.capabilities(&request("lock")).primaries);
        assert!(!NodeRegisterSystem::paxos().capabilities(&redlock).primaries);
        assert_eq!(
            NodeRegisterSystem::raft().capabilities(&redlock).clock,
            ClockReach::both()
        );
    }
}
