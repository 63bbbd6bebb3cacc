//! The run's own guarantees without any hosts: files of DESIGN §4, clean-up (nemesis heal)
//! on success, interrupt and panic, exit codes, and a process retired after `info`.

use async_trait::async_trait;
use faultline_checker::history::{Key, Op, OpType, Process};
use faultline_checker::{CheckOptions, Validity};
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::db::NoopDb;
use faultline_core::generator::{Invocation, OpGenerator};
use faultline_core::nemesis::{Nemesis, NemesisContext};
use faultline_core::run::{run, RunOptions, RunOutcome, Test};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A linearizable in-memory register per key; every `info_every`-th op times out (info)
/// after taking effect, as a real lost answer would.
#[derive(Default)]
struct MemoryRegisters {
    values: Mutex<HashMap<String, Value>>,
    ops: AtomicUsize,
    info_every: usize,
}

struct MemoryClient(Arc<MemoryRegisters>);

struct MemoryFactory(Arc<MemoryRegisters>);

impl ClientFactory for MemoryFactory {
    fn open(&self, _worker: usize, _process: u64) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(MemoryClient(self.0.clone())))
    }
}

#[async_trait]
impl Client for MemoryClient {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let key = format!("{:?}", op.key);
        let n = self.0.ops.fetch_add(1, Ordering::Relaxed) + 1;
        let done = {
            let mut values = self.0.values.lock().unwrap();
            let current = values.get(&key).cloned().unwrap_or(Value::Null);
            match op.f {
                "read" => Completion::ok(Some(current)),
                "write" => {
                    values.insert(key, op.value.clone());
                    Completion::ok(None)
                }
                _ => {
                    if current == op.value[0] {
                        values.insert(key, op.value[1].clone());
                        Completion::ok(None)
                    } else {
                        Completion::fail("compare failed")
                    }
                }
            }
        };
        tokio::task::yield_now().await;
        if self.0.info_every > 0 && n.is_multiple_of(self.0.info_every) && op.f != "read" {
            return Completion::info("timed out (simulated)");
        }
        done
    }
}

struct Registers;

impl OpGenerator for Registers {
    fn next_op(&self, key: &Key, rng: &mut ChaCha8Rng) -> Invocation {
        let (f, value) = match rng.random_range(0..3) {
            0 => ("read", Value::Null),
            1 => ("write", json!(rng.random_range(0..3))),
            _ => (
                "cas",
                json!([rng.random_range(0..3), rng.random_range(0..3)]),
            ),
        };
        Invocation {
            f,
            key: Some(key.clone()),
            value,
        }
    }
    fn final_op(&self, key: &Key) -> Option<Invocation> {
        Some(Invocation {
            f: "read",
            key: Some(key.clone()),
            value: Value::Null,
        })
    }
}

/// Counts heals; optionally panics while running.
#[derive(Default)]
struct CountingNemesis {
    heals: AtomicUsize,
    panic: bool,
}

#[async_trait]
impl Nemesis for CountingNemesis {
    fn names(&self) -> Vec<String> {
        vec!["counting".into()]
    }
    async fn run(&self, _cx: &NemesisContext, stop: CancellationToken) -> anyhow::Result<()> {
        if self.panic {
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!("nemesis exploded");
        }
        stop.cancelled().await;
        Ok(())
    }
    async fn heal(&self, _cx: &NemesisContext) -> anyhow::Result<()> {
        self.heals.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn test(
    dir: &std::path::Path,
    registers: Arc<MemoryRegisters>,
    nemesis: Arc<CountingNemesis>,
    seconds: f64,
) -> Test {
    Test {
        options: RunOptions {
            name: "memory-register".into(),
            results_dir: dir.to_owned(),
            seed: 9,
            concurrency: 6,
            rate: Some(2000.0),
            time_limit: Duration::from_secs_f64(seconds),
            workers_per_key: 3,
            ops_per_key: 50,
            check: CheckOptions {
                model: Some("cas-register".into()),
                ..CheckOptions::default()
            },
            ..RunOptions::default()
        },
        db: Arc::new(NoopDb),
        client: Arc::new(MemoryFactory(registers)),
        generator: Arc::new(Registers),
        nemesis,
        checkers: Vec::new(),
        built_in_check: true,
    }
}

fn history(outcome: &RunOutcome) -> Vec<Op> {
    faultline_checker::read_jsonl(outcome.dir.join("history.jsonl")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_writes_every_file_and_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let nemesis = Arc::new(CountingNemesis::default());
    let registers = Arc::new(MemoryRegisters {
        info_every: 37,
        ..MemoryRegisters::default()
    });
    let outcome = run(
        test(dir.path(), registers, nemesis.clone(), 1.0),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.valid, Some(Validity::Valid));
    assert_eq!(outcome.exit_code(), 0);
    for file in [
        "test.json",
        "history.jsonl",
        "results.json",
        "faultline.log",
    ] {
        assert!(outcome.dir.join(file).is_file(), "{file} missing");
    }
    assert!(dir.path().join("memory-register/latest").exists());
    let test_json: Value =
        serde_json::from_slice(&std::fs::read(outcome.dir.join("test.json")).unwrap()).unwrap();
    assert_eq!(test_json["seed"], json!(9));
    assert_eq!(test_json["nemesis"], json!(["counting"]));
    let results: Value =
        serde_json::from_slice(&std::fs::read(outcome.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["valid"], json!(true));
    assert!(results["stats"]["ops"].as_u64().unwrap() > 100, "{results}");
    // Heal ran before the final phase and again in clean-up.
    assert_eq!(nemesis.heals.load(Ordering::SeqCst), 2);

    // A process that got `info` never invokes again.
    let ops = history(&outcome);
    let mut retired = std::collections::HashSet::new();
    let mut infos = 0;
    for op in &ops {
        let Process::Client(p) = op.process else {
            continue;
        };
        assert!(
            !retired.contains(&p),
            "process {p} invoked after info: {op:?}"
        );
        if op.kind == OpType::Info {
            retired.insert(p);
            infos += 1;
        }
    }
    assert!(infos > 0, "the simulated timeouts were recorded as info");
    // The final phase read every used key once more.
    let last = ops.last().unwrap();
    assert_eq!((last.f.as_str(), last.kind), ("read", OpType::Ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_stops_the_clients_heals_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let nemesis = Arc::new(CountingNemesis::default());
    let started = std::time::Instant::now();
    let outcome = run(
        test(dir.path(), Arc::default(), nemesis.clone(), 60.0),
        tokio::time::sleep(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the interrupt was not obeyed"
    );
    assert!(
        outcome.error.as_deref().unwrap().contains("interrupted"),
        "{outcome:?}"
    );
    assert_eq!(outcome.exit_code(), 3);
    assert!(nemesis.heals.load(Ordering::SeqCst) >= 1);
    // What was recorded is on disk, checked, and in results.json with the reason.
    assert!(!history(&outcome).is_empty());
    let results: Value =
        serde_json::from_slice(&std::fs::read(outcome.dir.join("results.json")).unwrap()).unwrap();
    assert!(results["error"].as_str().unwrap().contains("interrupted"));
    assert_eq!(results["valid"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_nemesis_still_gets_healed_and_the_run_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let nemesis = Arc::new(CountingNemesis {
        panic: true,
        ..CountingNemesis::default()
    });
    let outcome = run(
        test(dir.path(), Arc::default(), nemesis.clone(), 1.0),
        std::future::pending(),
    )
    .await
    .unwrap();
    let error = outcome.error.clone().unwrap();
    assert!(
        error.contains("nemesis panicked: nemesis exploded"),
        "{error}"
    );
    assert_eq!(outcome.exit_code(), 3);
    assert!(nemesis.heals.load(Ordering::SeqCst) >= 1);
}

/// Records what the workers tell a generator: the context of each op asked for and each
/// completion it is shown.
#[derive(Default)]
struct Watching {
    asked: Mutex<Vec<faultline_core::generator::GenContext>>,
    completed: Mutex<Vec<(u64, OpType)>>,
}

impl OpGenerator for Watching {
    fn next_op(&self, key: &Key, rng: &mut ChaCha8Rng) -> Invocation {
        Registers.next_op(key, rng)
    }
    fn final_op(&self, key: &Key) -> Option<Invocation> {
        Registers.final_op(key)
    }
    fn next_op_in(
        &self,
        cx: &faultline_core::generator::GenContext,
        key: &Key,
        rng: &mut ChaCha8Rng,
    ) -> Invocation {
        self.asked.lock().unwrap().push(*cx);
        self.next_op(key, rng)
    }
    fn completed(
        &self,
        cx: &faultline_core::generator::GenContext,
        _op: &Invocation,
        done: &Completion,
    ) {
        self.completed.lock().unwrap().push((cx.process, done.kind));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_see_where_they_are_asked_and_how_their_ops_ended() {
    let dir = tempfile::tempdir().unwrap();
    let registers = Arc::new(MemoryRegisters {
        info_every: 11,
        ..MemoryRegisters::default()
    });
    let watching = Arc::new(Watching::default());
    let mut test = test(
        dir.path(),
        registers,
        Arc::new(CountingNemesis::default()),
        0.5,
    );
    test.generator = watching.clone();
    let outcome = run(test, std::future::pending()).await.unwrap();
    assert_eq!(outcome.error, None);
    let asked = watching.asked.lock().unwrap().clone();
    let completed = watching.completed.lock().unwrap().clone();
    // Every worker was asked, each under the process the history records for its op.
    let workers: std::collections::BTreeSet<usize> = asked.iter().map(|c| c.worker).collect();
    assert_eq!(workers, (0..6).collect());
    assert!(asked.iter().all(|c| !c.final_phase));
    assert!(asked.windows(2).any(|w| w[1].elapsed > w[0].elapsed));
    assert!(asked.iter().all(|c| c.elapsed <= Duration::from_secs(2)));
    // Each completion in the history was shown to the generator, with its outcome.
    let ops = history(&outcome);
    let mut recorded: Vec<(u64, OpType)> = ops
        .iter()
        .filter(|o| o.kind != OpType::Invoke)
        .filter_map(|o| match o.process {
            Process::Client(p) => Some((p, o.kind)),
            _ => None,
        })
        .collect();
    let mut shown = completed.clone();
    recorded.sort_by_key(|(p, k)| (*p, format!("{k:?}")));
    shown.sort_by_key(|(p, k)| (*p, format!("{k:?}")));
    assert_eq!(shown, recorded);
    assert!(shown.iter().any(|(_, k)| *k == OpType::Info));
}
