//! End to end on the local cluster (needs root): `raft` and `paxos` on 3 and 5 hosts with
//! no faults must be valid; `raft --bug stale-read` with one host isolated must be invalid.
//!
//! Each test owns one local cluster id (5–9) so they run side by side, and brings its
//! cluster down again through a Drop guard, also when it fails.

use async_trait::async_trait;
use faultline_checker::history::{OpType, Process};
use faultline_checker::Validity;
use faultline_control::heal::{ensure_chains, heal_host, CHAIN_INPUT};
use faultline_control::local_cluster::{self, ClusterConfig, LocalCluster};
use faultline_core::history::Event;
use faultline_core::nemesis::{Nemesis, NemesisContext};
use faultline_core::run::{run, RunOptions, RunOutcome};
use faultline_workloads::binary::{env_or_build, NODE_BINARY};
use faultline_workloads::system::{Registry, SystemRequest};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Brings the cluster down when the test ends, however it ends.
struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

/// The node binary, built once for all the tests of this file (they start together).
fn node_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            env_or_build("FAULTLINE_NODE_BINARY", "faultline-node", NODE_BINARY)
                .expect("building faultline-node")
        })
        .clone()
}

fn cluster(id: u8, nodes: usize) -> (LocalCluster, ClusterGuard) {
    // A cluster left by an earlier, killed test run is torn down first.
    local_cluster::down(id).expect("clearing the cluster");
    let guard = ClusterGuard(id);
    let cluster = local_cluster::up(&ClusterConfig { id, nodes }).expect("cluster up");
    (cluster, guard)
}

struct Scenario {
    id: u8,
    nodes: usize,
    db: &'static str,
    bugs: &'static [&'static str],
    time_limit_s: u64,
    nemesis: Option<Arc<dyn Nemesis>>,
}

async fn run_scenario(s: Scenario) -> (RunOutcome, tempfile::TempDir) {
    let binary = tokio::task::spawn_blocking(node_binary).await.unwrap();
    let (cluster, _guard) = tokio::task::spawn_blocking(move || cluster(s.id, s.nodes))
        .await
        .unwrap();
    let results = tempfile::tempdir().unwrap();
    let options = RunOptions {
        name: format!("{}-e2e", s.db),
        results_dir: results.path().to_owned(),
        hosts: cluster.hosts.clone(),
        ssh: cluster.ssh.clone(),
        seed: 42 + u64::from(s.id),
        concurrency: 10,
        rate: Some(100.0),
        time_limit: Duration::from_secs(s.time_limit_s),
        ..RunOptions::default()
    };
    let request = SystemRequest {
        bugs: s.bugs.iter().map(|b| b.to_string()).collect(),
        binary: Some(binary),
        ..SystemRequest::default()
    };
    let mut test = Registry::stock()
        .build(s.db, &request, options)
        .expect("building the test");
    if let Some(nemesis) = s.nemesis {
        test.nemesis = nemesis;
    }
    let outcome = run(test, std::future::pending()).await.expect("run folder");
    // The run tore its nodes down: no faultline-node may be left on the hosts.
    let leftover = running_nodes(&cluster).await;
    assert!(leftover.is_empty(), "nodes still running: {leftover:?}");
    (outcome, results)
}

/// PIDs of faultline-node processes inside the cluster's hosts.
async fn running_nodes(cluster: &LocalCluster) -> Vec<String> {
    let control = faultline_control::Control::connect(&cluster.hosts, &cluster.ssh)
        .await
        .expect("connect");
    let mut found = Vec::new();
    for remote in control.remotes() {
        let out = remote
            .exec_status(&[
                "sh",
                "-c",
                "for f in /opt/faultline/run/*.pid; do [ -f \"$f\" ] && cat \"$f\"; done; exit 0",
            ])
            .await
            .expect("listing PID files");
        found.extend(out.stdout.lines().map(|l| format!("{}:{l}", remote.name())));
    }
    control.close().await;
    found
}

fn assert_sound_run(outcome: &RunOutcome, want: Validity) {
    let dir = &outcome.dir;
    let results = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert_eq!(outcome.error, None, "run failed; results.json: {results}");
    assert_eq!(outcome.valid, Some(want), "results.json: {results}");
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("test.json")).unwrap()).unwrap();
    assert!(test["seed"].is_u64(), "test.json records the seed: {test}");
    let ops = faultline_checker::read_jsonl(dir.join("history.jsonl")).unwrap();
    let completed = ops
        .iter()
        .filter(|o| o.kind == OpType::Ok && matches!(o.process, Process::Client(_)))
        .count();
    assert!(completed > 200, "only {completed} ok ops");
    // The node logs came back into nodes/<host>/.
    let n1_log = dir
        .join("nodes/n1")
        .join(format!("{}.log", test["db"].as_str().unwrap()));
    assert!(
        std::fs::metadata(&n1_log)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "{} missing or empty",
        n1_log.display()
    );
    assert!(dir.parent().unwrap().join("latest").exists());
}

fn no_faults(id: u8, nodes: usize, db: &'static str) -> Scenario {
    Scenario {
        id,
        nodes,
        db,
        bugs: &[],
        time_limit_s: 20,
        nemesis: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_on_3_hosts_without_faults_is_valid() {
    let (outcome, _results) = run_scenario(no_faults(5, 3, "raft")).await;
    assert_sound_run(&outcome, Validity::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_on_5_hosts_without_faults_is_valid() {
    let (outcome, _results) = run_scenario(no_faults(6, 5, "raft")).await;
    assert_sound_run(&outcome, Validity::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paxos_on_3_hosts_without_faults_is_valid() {
    let (outcome, _results) = run_scenario(no_faults(7, 3, "paxos")).await;
    assert_sound_run(&outcome, Validity::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paxos_on_5_hosts_without_faults_is_valid() {
    let (outcome, _results) = run_scenario(no_faults(8, 5, "paxos")).await;
    assert_sound_run(&outcome, Validity::Valid);
}

/// A crude fault through the nemesis hook: after a few seconds the last host drops all
/// traffic from the other hosts (never from the controller), until heal.
struct IsolateLastHost {
    after: Duration,
}

#[async_trait]
impl Nemesis for IsolateLastHost {
    fn names(&self) -> Vec<String> {
        vec!["isolate-last-host".into()]
    }

    async fn run(&self, cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()> {
        tokio::select! {
            _ = tokio::time::sleep(self.after) => {}
            _ = stop.cancelled() => return Ok(()),
        }
        let remotes = &cx.db_cx.remotes;
        let victim = remotes.last().expect("hosts");
        let others: Vec<&str> = remotes[..remotes.len() - 1]
            .iter()
            .map(|r| r.address())
            .collect();
        let record = |kind, value| {
            cx.history.record(Event {
                kind,
                process: Process::Nemesis,
                f: "start-partition".into(),
                key: None,
                value,
                node: None,
                error: None,
            })
        };
        record(OpType::Invoke, json!(null));
        ensure_chains(victim).await?;
        for address in &others {
            victim
                .exec(&[
                    "iptables",
                    "-w",
                    "-A",
                    CHAIN_INPUT,
                    "-s",
                    address,
                    "-j",
                    "DROP",
                ])
                .await?;
        }
        record(OpType::Info, json!({ victim.name(): others }));
        stop.cancelled().await;
        Ok(())
    }

    async fn heal(&self, cx: &NemesisContext) -> anyhow::Result<()> {
        for remote in &cx.db_cx.remotes {
            heal_host(remote).await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_with_stale_reads_and_an_isolated_host_is_invalid() {
    let (outcome, _results) = run_scenario(Scenario {
        id: 9,
        nodes: 3,
        db: "raft",
        bugs: &["stale-read"],
        time_limit_s: 20,
        nemesis: Some(Arc::new(IsolateLastHost {
            after: Duration::from_secs(3),
        })),
    })
    .await;
    assert_sound_run(&outcome, Validity::Invalid);
    let ops = faultline_checker::read_jsonl(outcome.dir.join("history.jsonl")).unwrap();
    assert!(
        ops.iter()
            .any(|o| o.process == Process::Nemesis && o.kind == OpType::Info),
        "the partition is in the history"
    );
}
