//! Clock and process faults on a real local cluster running raft nodes (needs root):
//! bump, strobe and skew move exactly the targeted node's view of the time (its
//! `GET /status` `wall_clock_ms` against the controller's clock) and reset brings it back;
//! kill and pause hit only the targeted host's process (`/proc/PID/stat` on every host) and
//! restart and resume bring it back. Faults go through `ScheduledNemesis::apply`, the path a
//! run's schedule takes. Cluster ids 14 and 15, one per test.

use faultline_control::local_cluster::{self, ClusterConfig, LocalCluster};
use faultline_control::{Control, Remote};
use faultline_core::db::{Db, DbContext};
use faultline_core::history::{History, HistoryWriter};
use faultline_core::nemesis::{Nemesis, NemesisContext};
use faultline_nemesis::clock::{self, faketime_env, ClockStrategy};
use faultline_nemesis::runner::{NemesisConfig, ScheduledNemesis};
use faultline_nemesis::schedule::{Action, ClockFault, Family, Fault, ScheduleOptions, Target};
use faultline_workloads::binary::{env_or_build, NODE_BINARY};
use faultline_workloads::node_db::{NodeDb, NodeDbConfig, CLIENT_PORT};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a node's clock may sit from the controller's (both read the same kernel clock;
/// the slack is the HTTP round trip on a loaded machine).
const CLOCK_SLACK_MS: i64 = 400;

/// Tears the cluster down on drop, also when an assertion fails (its processes with it).
struct ClusterGuard(u8);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(e) = local_cluster::down(self.0) {
            eprintln!("cluster {} down failed: {e:#}", self.0);
        }
    }
}

/// A raft cluster under libfaketime, with the nemesis context to fault it.
struct Rig {
    _guard: ClusterGuard,
    _cluster: LocalCluster,
    control: Control,
    cx: NemesisContext,
    _writer: HistoryWriter,
    _history_dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn rig(id: u8) -> Rig {
    let binary = tokio::task::spawn_blocking(|| {
        env_or_build("FAULTLINE_NODE_BINARY", "faultline-node", NODE_BINARY)
    })
    .await
    .unwrap()
    .expect("building faultline-node");
    let (cluster, guard) = tokio::task::spawn_blocking(move || {
        local_cluster::down(id).expect("clearing the cluster");
        let guard = ClusterGuard(id);
        let cluster = local_cluster::up(&ClusterConfig { id, nodes: 3 }).expect("cluster up");
        (cluster, guard)
    })
    .await
    .unwrap();
    let control = Control::connect(&cluster.hosts, &cluster.ssh)
        .await
        .expect("connect");
    let history_dir = tempfile::tempdir().unwrap();
    let db = NodeDb::new(NodeDbConfig {
        system: "raft".into(),
        binary,
        bugs: Vec::new(),
        read_mode: None,
        extra_args: Vec::new(),
        primaries: true,
    })
    .expect("node db");
    let db_cx = DbContext {
        remotes: control.remotes().to_vec(),
        run_dir: history_dir.path().to_owned(),
        env: faketime_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    for remote in control.remotes() {
        clock::prepare(remote).await.expect("clock file");
        db.setup(&db_cx, remote).await.expect("node setup");
    }
    db.await_ready(&db_cx).await.expect("cluster ready");
    let (history, writer) = History::create(
        &history_dir.path().join("history.jsonl"),
        std::time::Instant::now(),
    )
    .unwrap();
    let cx = NemesisContext {
        db: Arc::new(db),
        db_cx,
        history,
        seed: 1,
    };
    Rig {
        _guard: guard,
        _cluster: cluster,
        control,
        cx,
        _writer: writer,
        _history_dir: history_dir,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    }
}

fn nemesis(families: Vec<Family>) -> ScheduledNemesis {
    ScheduledNemesis::new(
        NemesisConfig {
            schedule: ScheduleOptions {
                families,
                ..ScheduleOptions::default()
            },
            clock_strategy: ClockStrategy::Faketime,
            time_limit: Duration::from_secs(1),
            db_clock_skewable: Ok(()),
            netem: Some(false),
        },
        7,
    )
}

fn controller_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Rig {
    fn remote(&self, host: &str) -> &Remote {
        self.control
            .remotes()
            .iter()
            .find(|r| r.name() == host)
            .unwrap_or_else(|| panic!("no host {host}"))
    }

    fn hosts(&self) -> Vec<String> {
        self.cx.db_cx.host_names()
    }

    /// The node's clock minus the controller's, in ms, taken against the midpoint of the
    /// request (both clocks are the same kernel clock, so this is libfaketime's offset).
    async fn offset_ms(&self, host: &str) -> i64 {
        let url = format!(
            "http://{}:{CLIENT_PORT}/status",
            self.remote(host).address()
        );
        for _ in 0..20 {
            let before = controller_ms();
            if let Ok(answer) = self.http.get(&url).send().await {
                if let Ok(status) = answer.json::<Value>().await {
                    let after = controller_ms();
                    let node = status["wall_clock_ms"].as_i64().expect("wall_clock_ms");
                    return node - (before + after) / 2;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{host} does not answer /status")
    }

    async fn offsets(&self) -> BTreeMap<String, i64> {
        let mut offsets = BTreeMap::new();
        for host in self.hosts() {
            offsets.insert(host.clone(), self.offset_ms(&host).await);
        }
        offsets
    }

    /// Host → the state letter of its node process (`/proc/PID/stat`), `-` when gone,
    /// with the PID from its PID file.
    async fn process_states(&self) -> BTreeMap<String, (String, char)> {
        let script = r#"read -r p < /opt/faultline/run/raft.pid || exit 1
st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
echo "$p ${st:--}""#;
        let mut states = BTreeMap::new();
        for remote in self.control.remotes() {
            let out = remote
                .exec(&["sh", "-c", script])
                .await
                .expect("reading the process state");
            let (pid, state) = out.stdout.trim().split_once(' ').expect("pid and state");
            states.insert(
                remote.name().to_string(),
                (pid.to_string(), state.chars().next().unwrap_or('-')),
            );
        }
        states
    }

    /// The states once `settled` holds for them, polled for a few seconds (a signal is
    /// delivered, and a killed process dies, a moment after `kill` returns).
    async fn states_when(
        &self,
        settled: impl Fn(&BTreeMap<String, (String, char)>) -> bool,
    ) -> BTreeMap<String, (String, char)> {
        let mut states = self.process_states().await;
        for _ in 0..30 {
            if settled(&states) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            states = self.process_states().await;
        }
        states
    }
}

/// The hosts named in a fault's recorded outcome (a list, or the keys of `offsets_ms`).
fn hosts_of(value: &Value) -> Vec<String> {
    let names = match value {
        Value::Array(a) => a.clone(),
        Value::Object(o) => match (o.get("hosts"), o.get("offsets_ms")) {
            (Some(Value::Array(a)), _) => a.clone(),
            (_, Some(Value::Object(m))) => m.keys().map(|k| Value::String(k.clone())).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    names
        .iter()
        .filter_map(|n| n.as_str().map(String::from))
        .collect()
}

fn assert_near(what: &str, got: i64, want: i64) {
    assert!(
        (got - want).abs() <= CLOCK_SLACK_MS,
        "{what}: offset {got} ms, expected {want} ± {CLOCK_SLACK_MS} ms"
    );
}

async fn assert_all_real(rig: &Rig, when: &str) {
    for (host, offset) in rig.offsets().await {
        assert_near(&format!("{host} {when}"), offset, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bump_strobe_and_skew_move_only_the_targets_clock_and_reset_restores_it() {
    let rig = rig(14).await;
    let nemesis = nemesis(vec![Family::Clock]);
    nemesis.setup(&rig.cx).await.expect("nemesis setup");
    assert_all_real(&rig, "before any fault").await;

    // Bump: one host jumps back 30 s; the others keep the real time.
    let bump = Action::Start(Fault::Clock {
        target: Target::One,
        clock: ClockFault::Bump { delta_ms: -30_000 },
    });
    let bumped = hosts_of(&nemesis.apply(&rig.cx, &bump).await);
    assert_eq!(bumped.len(), 1, "one target");
    for (host, offset) in rig.offsets().await {
        let want = if bumped.contains(&host) { -30_000 } else { 0 };
        assert_near(&format!("{host} after bump"), offset, want);
    }
    let reset = Action::Stop {
        family: Family::Clock,
    };
    let was_reset = hosts_of(&nemesis.apply(&rig.cx, &reset).await);
    assert_eq!(was_reset, bumped, "reset names the bumped host");
    assert_all_real(&rig, "after the bump's reset").await;

    // Strobe: the target flips between +20 s and its base; sampled often, both show, and
    // the other hosts never move.
    let strobe = Action::Start(Fault::Clock {
        target: Target::One,
        clock: ClockFault::Strobe {
            delta_ms: 20_000,
            period_ms: 300,
            duration_ms: 60_000,
        },
    });
    let strobed = hosts_of(&nemesis.apply(&rig.cx, &strobe).await);
    assert_eq!(strobed.len(), 1, "one target");
    let target = strobed[0].clone();
    let (mut at_base, mut at_delta) = (0, 0);
    for _ in 0..40 {
        let offset = rig.offset_ms(&target).await;
        if (offset - 20_000).abs() <= CLOCK_SLACK_MS {
            at_delta += 1;
        } else if offset.abs() <= CLOCK_SLACK_MS {
            at_base += 1;
        } else {
            panic!("{target} strobing: offset {offset} ms is neither 0 nor +20000");
        }
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    assert!(
        at_base >= 3 && at_delta >= 3,
        "both strobe positions seen: {at_base} at base, {at_delta} at +20 s"
    );
    for host in rig.hosts().into_iter().filter(|h| *h != target) {
        assert_near(
            &format!("{host} beside a strobe"),
            rig.offset_ms(&host).await,
            0,
        );
    }
    nemesis.apply(&rig.cx, &reset).await;
    assert_all_real(&rig, "after the strobe's reset").await;

    // Skew: a clock running at double speed gains about one second per second.
    let skew = Action::Start(Fault::Clock {
        target: Target::One,
        clock: ClockFault::Skew { rate: 2.0 },
    });
    let skewed = hosts_of(&nemesis.apply(&rig.cx, &skew).await);
    assert_eq!(skewed.len(), 1, "one target");
    let target = skewed[0].clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = rig.offset_ms(&target).await;
    let first_at = controller_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = rig.offset_ms(&target).await;
    let elapsed = controller_ms() - first_at;
    let gained = second - first;
    assert!(
        gained >= elapsed / 2 && gained <= elapsed * 3 / 2,
        "{target} at rate 2 gained {gained} ms in {elapsed} ms"
    );
    for host in rig.hosts().into_iter().filter(|h| *h != target) {
        assert_near(
            &format!("{host} beside a skew"),
            rig.offset_ms(&host).await,
            0,
        );
    }
    let was_reset = hosts_of(&nemesis.apply(&rig.cx, &reset).await);
    assert_eq!(was_reset, skewed, "reset names the skewed host");
    assert_all_real(&rig, "after the skew's reset").await;

    nemesis.heal(&rig.cx).await.expect("heal");
    for remote in rig.control.remotes() {
        rig.cx
            .db
            .teardown(&rig.cx.db_cx, remote)
            .await
            .expect("teardown");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_and_pause_hit_only_the_target_and_restart_and_resume_bring_it_back() {
    let rig = rig(15).await;
    let nemesis = nemesis(vec![Family::Kill, Family::Pause]);
    nemesis.setup(&rig.cx).await.expect("nemesis setup");
    let running = |s: char| matches!(s, 'R' | 'S' | 'D');
    let before = rig.process_states().await;
    for (host, (_, state)) in &before {
        assert!(running(*state), "{host} runs at start: {before:?}");
    }

    // Kill: the target's process is gone (a zombie counts as dead), no other moved.
    let kill = Action::Start(Fault::Kill {
        target: Target::One,
    });
    let killed = hosts_of(&nemesis.apply(&rig.cx, &kill).await);
    assert_eq!(killed.len(), 1, "one target");
    let dead = |s: &char| matches!(s, '-' | 'Z' | 'X');
    let after = rig
        .states_when(|st| {
            killed
                .iter()
                .all(|h| st.get(h).is_some_and(|(_, s)| dead(s)))
        })
        .await;
    for (host, (pid, state)) in &after {
        if killed.contains(host) {
            assert!(dead(state), "{host} was killed yet is {state}");
        } else {
            assert_eq!(pid, &before[host].0, "{host} kept its process");
            assert!(running(*state), "{host} untouched yet is {state}");
        }
    }
    let restart = Action::Stop {
        family: Family::Kill,
    };
    assert_eq!(hosts_of(&nemesis.apply(&rig.cx, &restart).await), killed);
    let restarted = rig.process_states().await;
    for (host, (pid, state)) in &restarted {
        assert!(running(*state), "{host} runs after restart: {restarted:?}");
        if killed.contains(host) {
            assert_ne!(pid, &before[host].0, "{host} runs a new process");
        }
    }
    rig.cx
        .db
        .await_ready(&rig.cx.db_cx)
        .await
        .expect("the cluster serves again after the restart");

    // Pause: the target's process is stopped (T), the others run; resume lets it run.
    let before = restarted;
    let pause = Action::Start(Fault::Pause {
        target: Target::One,
    });
    let paused = hosts_of(&nemesis.apply(&rig.cx, &pause).await);
    assert_eq!(paused.len(), 1, "one target");
    let stopped = |s: &char| matches!(s, 'T' | 't');
    let after = rig
        .states_when(|st| {
            paused
                .iter()
                .all(|h| st.get(h).is_some_and(|(_, s)| stopped(s)))
        })
        .await;
    for (host, (pid, state)) in &after {
        assert_eq!(pid, &before[host].0, "{host} kept its process");
        if paused.contains(host) {
            assert!(stopped(state), "{host} was paused yet is {state}");
        } else {
            assert!(running(*state), "{host} untouched yet is {state}");
        }
    }
    let resume = Action::Stop {
        family: Family::Pause,
    };
    assert_eq!(hosts_of(&nemesis.apply(&rig.cx, &resume).await), paused);
    let resumed = rig
        .states_when(|st| st.values().all(|(_, s)| running(*s)))
        .await;
    for (host, (pid, state)) in &resumed {
        assert_eq!(pid, &before[host].0, "{host} kept its process");
        assert!(running(*state), "{host} runs after resume: {resumed:?}");
    }
    rig.cx
        .db
        .await_ready(&rig.cx.db_cx)
        .await
        .expect("the cluster serves again after the resume");

    nemesis.heal(&rig.cx).await.expect("heal");
    for remote in rig.control.remotes() {
        rig.cx
            .db
            .teardown(&rig.cx.db_cx, remote)
            .await
            .expect("teardown");
    }
}
