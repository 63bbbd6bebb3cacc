//! Choosing the system under test and the workload by name, as `faultline run` does:
//! `--db`, `--workload`, `--bug`, `--read-mode` and pass-through node options become a
//! `faultline_core::run::Test`.

use crate::binary::find_node_binary;
use crate::http::NodeClientFactory;
use crate::node_db::{endpoint, NodeDb, NodeDbConfig};
use crate::register::RegisterGenerator;
use faultline_core::nemesis::NoNemesis;
use faultline_core::run::{RunOptions, Test};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Systems `--db` accepts now.
pub const DBS: [&str; 2] = ["raft", "paxos"];
/// Workloads `--workload` accepts now.
pub const WORKLOADS: [&str; 1] = ["register"];
/// Systems planned but not built yet, named in the error so users know.
const DBS_LATER: [&str; 5] = ["zk-lock", "redis-lock", "etcd", "redis", "zookeeper"];

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
        }
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
    anyhow::ensure!(
        WORKLOADS.contains(&spec.workload.as_str()),
        "unknown --workload {:?}; expected one of {}",
        spec.workload,
        WORKLOADS.join(", ")
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

/// The test for `spec` on `options.hosts`, without faults (set `nemesis` to add them).
/// Fills in the checker's model and test.json's system fields.
pub fn build_test(spec: &SystemSpec, mut options: RunOptions) -> anyhow::Result<Test> {
    validate(spec)?;
    anyhow::ensure!(
        !options.hosts.is_empty(),
        "{} needs hosts to run on",
        spec.db
    );
    let binary = find_node_binary(spec.node_binary.as_deref())?;
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
    options.check.model = Some("cas-register".into());
    let bug = match spec.bugs.as_slice() {
        [] => json!(null),
        [one] => json!(one),
        many => json!(many),
    };
    for (key, value) in [
        ("db", json!(spec.db)),
        ("workload", json!(spec.workload)),
        ("bug", bug),
        ("read_mode", json!(read_mode)),
        ("node_args", json!(spec.node_args)),
        ("node_binary", json!(binary.display().to_string())),
        (
            "client_timeout_ms",
            json!(spec.client_timeout.as_millis() as u64),
        ),
    ] {
        options.test_fields.entry(key).or_insert(value);
    }
    Ok(Test {
        options,
        db: Arc::new(db),
        client: Arc::new(client),
        generator: Arc::new(RegisterGenerator),
        nemesis: Arc::new(NoNemesis),
    })
}
