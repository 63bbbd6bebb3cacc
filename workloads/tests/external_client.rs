//! The NDJSON client protocol of external systems, against small client programs (no
//! hosts needed): answers out of order; garbage, an exit mid-run and a program that never
//! answers give `info` for the ops concerned, the program is restarted, and a whole run
//! through it keeps every op it recorded.

use faultline_checker::history::{Key, OpType};
use faultline_core::client::ClientFactory;
use faultline_core::db::NoopDb;
use faultline_core::generator::Invocation;
use faultline_core::run::{run, RunOptions, Test};
use faultline_workloads::external::ProgramClientFactory;
use faultline_workloads::register::RegisterGenerator;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Debian's python3 when there is one: a version manager's shim in PATH can take a
/// second to start on a loaded machine.
fn python() -> String {
    ["/usr/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("python3")
        .to_owned()
}

/// A client program in Python: `body` handles one parsed op `op` and may print answers.
fn program(dir: &std::path::Path, body: &str) -> ProgramClientFactory {
    let script = format!(
        "import json, sys, os, threading, time\n\
         def say(m):\n    sys.stdout.write(json.dumps(m) + '\\n'); sys.stdout.flush()\n\
         n = 0\n\
         for line in sys.stdin:\n    op = json.loads(line); n += 1\n{}\n",
        body.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    std::fs::write(dir.join("client.py"), script).unwrap();
    ProgramClientFactory::new(
        vec![python(), "client.py".into()],
        dir.to_owned(),
        vec![("n1".into(), "10.0.0.1".into())],
        Duration::from_millis(2500),
    )
}

fn write(v: i64) -> Invocation {
    Invocation {
        f: "write",
        key: Some(Key::Int(1)),
        value: json!(v),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_may_come_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    // Holds op 0 until op 1 arrived, then answers 1 before 0.
    let factory = program(
        dir.path(),
        "if n == 1:\n    first = op\nelse:\n    say({'id': op['id'], 'type': 'ok', 'value': op['value'] * 10})\n    say({'id': first['id'], 'type': 'fail', 'error': 'no'})",
    );
    let mut a = factory.open(0, 0).unwrap();
    let mut b = factory.open(1, 1).unwrap();
    let one = write(1);
    let (ra, rb) = tokio::join!(a.invoke(&one), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.invoke(&write(2)).await
    });
    assert_eq!(ra.kind, OpType::Fail);
    assert_eq!(ra.error.as_deref(), Some("no"));
    assert_eq!(rb.kind, OpType::Ok);
    assert_eq!(rb.value, Some(json!(20)));
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_exit_and_silence_give_info_and_a_fresh_program() {
    let dir = tempfile::tempdir().unwrap();
    // Each instance: op 1 answered, op 2 garbage, (restart) op 1 answered, op 2 exit, …
    let factory = program(
        dir.path(),
        "mode = op['value']\n\
         if mode == 'garbage':\n    print('this is not json', flush=True)\n\
         elif mode == 'exit':\n    sys.exit(3)\n\
         elif mode == 'silent':\n    pass\n\
         else:\n    say({'id': op['id'], 'type': 'ok', 'value': [mode, os.getpid()]})",
    );
    let mut c = factory.open(0, 0).unwrap();
    let op = |v: &str| Invocation {
        f: "echo",
        key: None,
        value: json!(v),
    };
    let pid = |done: &faultline_core::client::Completion| done.value.as_ref().unwrap()[1].clone();
    let first = c.invoke(&op("a")).await;
    assert_eq!(first.kind, OpType::Ok, "{first:?}");
    for bad in ["garbage", "exit", "silent"] {
        let started = Instant::now();
        let done = c.invoke(&op(bad)).await;
        assert_eq!(done.kind, OpType::Info, "{bad}: {done:?}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{bad}: {:?}",
            started.elapsed()
        );
        let after = c.invoke(&op("b")).await;
        assert_eq!(after.kind, OpType::Ok, "after {bad}: {after:?}");
        assert_ne!(
            pid(&after),
            pid(&first),
            "after {bad} a new program answers"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_through_a_misbehaving_program_keeps_every_op() {
    let dir = tempfile::tempdir().unwrap();
    // Its 10th op of each start, odd starts print garbage and even starts exit: the run
    // goes on, each op it left ends `info`, and the history is whole.
    std::fs::write(dir.path().join("starts"), "").unwrap();
    let factory = program(
        dir.path(),
        "if n == 1:\n    open('starts', 'a').write('x'); start = len(open('starts').read())\n\
         if n == 10 and start % 2 == 1:\n    print('garbage', flush=True); continue\n\
         if n == 10:\n    sys.exit(1)\n\
         say({'id': op['id'], 'type': 'ok', 'value': None if op['f'] == 'read' else op['value']})",
    );
    let results = tempfile::tempdir().unwrap();
    let options = RunOptions {
        name: "external-client".into(),
        results_dir: results.path().to_owned(),
        concurrency: 4,
        rate: Some(400.0),
        time_limit: Duration::from_secs(6),
        ..RunOptions::default()
    };
    let mut test = Test::new(
        options,
        Arc::new(NoopDb),
        Arc::new(factory),
        Arc::new(RegisterGenerator::default()),
    );
    // Reads return nothing meaningful here: this test is about the protocol, not the model.
    test.built_in_check = false;
    let outcome = run(test, std::future::pending()).await.unwrap();
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let ops = faultline_checker::read_jsonl(outcome.dir.join("history.jsonl")).unwrap();
    let invokes = ops.iter().filter(|o| o.kind == OpType::Invoke).count();
    let completions = ops.iter().filter(|o| o.kind != OpType::Invoke).count();
    let infos = ops.iter().filter(|o| o.kind == OpType::Info).count();
    assert!(invokes > 10, "{invokes} ops");
    assert_eq!(invokes, completions, "every op has its completion");
    assert!(infos >= 2, "{infos} info of {invokes}");
    let log = std::fs::read_to_string(outcome.dir.join("faultline.log")).unwrap();
    assert!(log.contains("is not an answer"), "garbage is logged");
    assert!(
        log.contains("client program started (instance 2)"),
        "restarted"
    );
    assert!(log.contains("it exited"), "the exit is logged");
    let values: Vec<&Value> = ops.iter().map(|o| &o.value).collect();
    assert!(!values.is_empty());
}
