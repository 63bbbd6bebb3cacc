//! Choosing the system under test and the workload by name, as `faultline run` does:
//! `--db`, `--workload`, `--bug`, `--read-mode` and pass-through node options become a
//! `faultline_core::run::Test`.

use crate::binary::find_node_binary;
use crate::http::NodeClientFactory;
use crate::lock::{
    Holding, LockGenerator, LockMode, RedisLockClientFactory, RedisLockSettings,
    ZkLockClientFactory, ZkLockSettings,
};
use crate::lock_db::{FailoverNemesis, RedisLockDb, REDIS_PORT};
use crate::node_db::{endpoint, NodeDb, NodeDbConfig, CLIENT_PORT};
use crate::register::RegisterGenerator;
use faultline_core::nemesis::{Nemesis, NoNemesis};
use faultline_core::run::{RunOptions, Test};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

pub mod etcd;
pub mod zookeeper;

/// Systems `--db` accepts now.
pub const DBS: [&str; 6] = [
    "raft",
    "paxos",
    "zk-lock",
    "redis-lock",
    "etcd",
    zookeeper::NAME,
];
/// Workloads `--workload` accepts now.
pub const WORKLOADS: [&str; 5] = ["register", "lock", "lock-set", "append", "wr"];
/// Systems planned but not built yet, named in the error so users know.
const DBS_LATER: [&str; 1] = ["redis"];
/// The lock services: the only systems of the `lock` workload, which they alone serve.
const LOCK_DBS: [&str; 2] = ["zk-lock", "redis-lock"];
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

/// Which system and workload, and how to start the system.
#[derive(Debug, Clone)]
pub struct SystemSpec {
    pub db: String,
    pub workload: String,
    /// `--bug` names planted in every node.
    pub bugs: Vec<String>,
    pub read_mode: Option<String>,
    /// Further node options, passed through word by word.
    pub node_args: Vec<String>,
    /// `--node-binary`; `None`: found or built (see `binary::find_node_binary`).
    pub node_binary: Option<PathBuf>,
    /// The client's bound on one request.
    pub client_timeout: Duration,
    /// Environment of the node processes (e.g. libfaketime's, for clock faults).
    pub env: Vec<(String, String)>,
    /// redis-lock's deployment: `single` (default), `replica` or `redlock`.
    pub lock_mode: Option<String>,
    /// A grant's lease: zk-lock's session timeout, redis-lock's TTL (ms).
    pub lock_ttl_ms: Option<u64>,
    /// redis-lock replica mode: run the `failover` fault about this often.
    pub failover_interval: Option<Duration>,
    /// The register workload draws values from `0..register_values`.
    pub register_values: u64,
    /// etcd: `--read-consistency` (linearizable or serializable).
    pub read_consistency: Option<String>,
    /// lock-set: guard writes with the lock's fencing token.
    pub fencing: bool,
}

impl Default for SystemSpec {
    fn default() -> Self {
        SystemSpec {
            db: "raft".into(),
            workload: "register".into(),
            bugs: Vec::new(),
            read_mode: None,
            node_args: Vec::new(),
            node_binary: None,
            client_timeout: Duration::from_millis(2500),
            env: Vec::new(),
            lock_mode: None,
            lock_ttl_ms: None,
            register_values: crate::register::DEFAULT_VALUES,
            failover_interval: None,
            read_consistency: None,
            fencing: false,
        }
    }
}

/// The etcd options of `spec`.
fn etcd_options(spec: &SystemSpec) -> etcd::EtcdOptions {
    etcd::EtcdOptions {
        workload: spec.workload.clone(),
        read_consistency: spec.read_consistency.clone(),
        lease_ms: spec.lock_ttl_ms,
        fencing: spec.fencing,
        client_timeout: spec.client_timeout,
        register_values: spec.register_values,
    }
}

/// Checks names before anything is started, so a typo fails in milliseconds.
pub fn validate(spec: &SystemSpec) -> anyhow::Result<()> {
    if !DBS.contains(&spec.db.as_str()) {
        if DBS_LATER.contains(&spec.db.as_str()) {
            anyhow::bail!(
                "--db {} is not available yet; available: {}",
                spec.db,
                DBS.join(", ")
            );
        }
        anyhow::bail!(
            "unknown --db {:?}; expected one of {}",
            spec.db,
            DBS.join(", ")
        );
    }
    if spec.db == zookeeper::NAME {
        return zookeeper::validate(spec);
    }
    anyhow::ensure!(
        WORKLOADS.contains(&spec.workload.as_str()),
        "unknown --workload {:?}; expected one of {}",
        spec.workload,
        WORKLOADS.join(", ")
    );
    if spec.db == "etcd" {
        anyhow::ensure!(
            spec.bugs.is_empty() && spec.read_mode.is_none() && spec.lock_mode.is_none(),
            "--bug, --read-mode and --lock-mode are for faultline's own nodes, not etcd \
             (etcd's reads: --read-consistency)"
        );
        return etcd::validate(&etcd_options(spec));
    }
    anyhow::ensure!(
        spec.read_consistency.is_none() && !spec.fencing,
        "--read-consistency and --fencing are for --db etcd"
    );
    anyhow::ensure!(
        spec.workload != "lock-set",
        "--workload lock-set runs on --db etcd; zk-lock and redis-lock do not serve it yet"
    );
    anyhow::ensure!(
        crate::txn::TxnKind::from_workload(&spec.workload).is_none() || spec.db == "raft",
        "--workload {} runs on --db raft only (its POST /txn)",
        spec.workload
    );
    let lock_db = LOCK_DBS.contains(&spec.db.as_str());
    anyhow::ensure!(
        lock_db == (spec.workload == "lock"),
        "--workload {} does not run on --db {}: the lock workload runs on {}, the register \
         workload on raft and paxos",
        spec.workload,
        spec.db,
        LOCK_DBS.join(" and ")
    );
    if let Some(mode) = &spec.lock_mode {
        anyhow::ensure!(
            spec.db == "redis-lock",
            "--lock-mode is for --db redis-lock only"
        );
        mode.parse::<LockMode>().map_err(anyhow::Error::msg)?;
    }
    if spec.failover_interval.is_some() {
        anyhow::ensure!(
            spec.db == "redis-lock" && spec.lock_mode.as_deref() == Some("replica"),
            "the failover fault needs --db redis-lock --lock-mode replica"
        );
    }
    anyhow::ensure!(
        spec.db != "redis-lock" || spec.bugs.is_empty(),
        "redis-lock has no planted bugs"
    );
    if spec.read_mode.is_some() {
        anyhow::ensure!(
            !lock_db,
            "--read-mode is for raft and paxos, not {}",
            spec.db
        );
    }
    anyhow::ensure!(
        spec.register_values >= 1,
        "--register-values must be at least 1"
    );
    if let Some(mode) = &spec.read_mode {
        let allowed: &[&str] = match spec.db.as_str() {
            "paxos" => &["readindex"],
            _ => &["readindex", "lease"],
        };
        anyhow::ensure!(
            allowed.contains(&mode.as_str()),
            "--read-mode {mode:?} is not one of {} for {}",
            allowed.join(", "),
            spec.db
        );
    }
    Ok(())
}

/// Records in test.json what every run of a faultline node says about itself, plus the
/// workload's own `specific` fields; a field the caller already set is kept.
fn record_test_fields<const N: usize>(
    options: &mut RunOptions,
    spec: &SystemSpec,
    binary: &Path,
    specific: [(&'static str, Value); N],
) {
    let bug = match spec.bugs.as_slice() {
        [] => json!(null),
        [one] => json!(one),
        many => json!(many),
    };
    let common = [
        ("db", json!(spec.db)),
        ("workload", json!(spec.workload)),
        ("bug", bug),
        ("node_args", json!(spec.node_args)),
        ("node_binary", json!(binary.display().to_string())),
        (
            "client_timeout_ms",
            json!(spec.client_timeout.as_millis() as u64),
        ),
    ];
    for (key, value) in common.into_iter().chain(specific) {
        options.test_fields.entry(key).or_insert(value);
    }
}

/// The test for `spec` on `options.hosts`, without faults (set `nemesis` to add them).
/// Fills in the checker's model and test.json's system fields.
pub fn build_test(spec: &SystemSpec, mut options: RunOptions) -> anyhow::Result<Test> {
    validate(spec)?;
    if spec.db == zookeeper::NAME {
        return zookeeper::build_test(spec, options);
    }
    anyhow::ensure!(
        !options.hosts.is_empty(),
        "{} needs hosts to run on",
        spec.db
    );
    if spec.db == "etcd" {
        return etcd::build_test(&etcd_options(spec), options);
    }
    let binary = find_node_binary(spec.node_binary.as_deref())?;
    if spec.workload == "lock" {
        return build_lock_test(spec, options, binary);
    }
    let read_mode = spec.read_mode.clone().unwrap_or_else(|| "readindex".into());
    let db = NodeDb::new(NodeDbConfig {
        system: spec.db.clone(),
        binary: binary.clone(),
        bugs: spec.bugs.clone(),
        read_mode: spec.read_mode.clone(),
        extra_args: spec.node_args.clone(),
        env: spec.env.clone(),
    })?;
    let endpoints = options
        .hosts
        .iter()
        .map(|h| endpoint(&h.name, &h.address))
        .collect();
    let client = NodeClientFactory::new(endpoints, spec.client_timeout)?;
    let generator: Arc<dyn faultline_core::generator::OpGenerator> =
        match crate::txn::TxnKind::from_workload(&spec.workload) {
            Some(kind) => Arc::new(crate::txn::TxnGenerator::new(crate::txn::TxnParams::new(
                kind,
            ))),
            None => {
                options.check.model = Some("cas-register".into());
                Arc::new(RegisterGenerator {
                    values: spec.register_values,
                })
            }
        };
    record_test_fields(
        &mut options,
        spec,
        &binary,
        [
            ("read_mode", json!(read_mode)),
            ("register_values", json!(spec.register_values)),
        ],
    );
    Ok(Test {
        options,
        db: Arc::new(db),
        client: Arc::new(client),
        generator,
        nemesis: Arc::new(NoNemesis),
    })
}

/// The lock workload on zk-lock or redis-lock, checked for mutual exclusion (and fencing
/// order where tokens exist).
fn build_lock_test(
    spec: &SystemSpec,
    mut options: RunOptions,
    binary: PathBuf,
) -> anyhow::Result<Test> {
    // A group keeps its lock for the whole run: a worker must release what it acquired.
    options.ops_per_key = u64::MAX;
    options.check.model = None;
    options.check.mutex = Some(true);
    let mut nemesis: Arc<dyn Nemesis> = Arc::new(NoNemesis);
    let holding = Holding::default();
    let (db, client, lease_ms): (
        Arc<dyn faultline_core::db::Db>,
        Arc<dyn faultline_core::client::ClientFactory>,
        u64,
    ) = if spec.db == "zk-lock" {
        let lease_ms = spec.lock_ttl_ms.unwrap_or(ZK_SESSION_TIMEOUT_MS);
        let db = NodeDb::new(NodeDbConfig {
            system: spec.db.clone(),
            binary: binary.clone(),
            bugs: spec.bugs.clone(),
            read_mode: None,
            extra_args: spec.node_args.clone(),
            env: spec.env.clone(),
        })?;
        let client = ZkLockClientFactory::new(
            ZkLockSettings {
                nodes: options
                    .hosts
                    .iter()
                    .map(|h| (h.name.clone(), format!("{}:{CLIENT_PORT}", h.address)))
                    .collect(),
                request_timeout: spec.client_timeout,
                session_timeout_ms: lease_ms,
                acquire_wait_ms: ZK_ACQUIRE_WAIT_MS,
            },
            holding.clone(),
        )?;
        (Arc::new(db), Arc::new(client), lease_ms)
    } else {
        let mode: LockMode = spec
            .lock_mode
            .as_deref()
            .unwrap_or("single")
            .parse()
            .map_err(anyhow::Error::msg)?;
        let servers = RedisLockDb::servers(mode, options.hosts.len());
        anyhow::ensure!(
            mode != LockMode::Replica || servers == 2,
            "--lock-mode replica needs at least 2 hosts"
        );
        let lease_ms = spec.lock_ttl_ms.unwrap_or(REDIS_TTL_MS);
        let primary = Arc::new(AtomicUsize::new(0));
        let db = Arc::new(RedisLockDb::new(
            binary.clone(),
            mode,
            spec.env.clone(),
            primary.clone(),
        )?);
        let client = RedisLockClientFactory::new(
            RedisLockSettings {
                mode,
                servers: options.hosts[..servers]
                    .iter()
                    .map(|h| (h.name.clone(), format!("{}:{REDIS_PORT}", h.address)))
                    .collect(),
                primary,
                ttl_ms: lease_ms,
                request_timeout: match mode {
                    LockMode::Redlock => REDLOCK_REQUEST_TIMEOUT,
                    _ => spec.client_timeout,
                },
            },
            holding.clone(),
        )?;
        if let Some(interval) = spec.failover_interval {
            nemesis = Arc::new(FailoverNemesis::new(db.clone(), interval, FAILOVER_LAG));
        }
        options
            .test_fields
            .entry("lock_mode")
            .or_insert(json!(mode.name()));
        (db, Arc::new(client), lease_ms)
    };
    record_test_fields(&mut options, spec, &binary, [("lease_ms", json!(lease_ms))]);
    if let Some(interval) = spec.failover_interval {
        options
            .test_fields
            .entry("failover_interval_s")
            .or_insert(json!(interval.as_secs_f64()));
    }
    Ok(Test {
        options,
        db,
        client,
        generator: Arc::new(LockGenerator::new(holding)),
        nemesis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_values_must_leave_something_to_draw() {
        assert!(validate(&SystemSpec::default()).is_ok());
        let none = SystemSpec {
            register_values: 0,
            ..SystemSpec::default()
        };
        let err = validate(&none).unwrap_err().to_string();
        assert!(err.contains("--register-values"), "{err}");
    }
}
