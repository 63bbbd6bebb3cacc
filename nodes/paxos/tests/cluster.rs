//! Loopback tests of whole CASPaxos nodes (acceptor fsync, peer TCP, HTTP API) in one
//! process: concurrent cas from clients on every node, a minority that cannot decide,
//! restart durability, bad input, and the `skip-prepare` bug.

use std::sync::Arc;
use std::time::Duration;

use faultline_nodes_testkit::{Kind, MemberSpec, Tasks};
use faultline_paxos::server::{self, Node, PaxosConfig};
use serde_json::{json, Value};

/// CASPaxos members with the HTTP register API, with or without the `skip-prepare` bug.
struct Paxos {
    skip_prepare: bool,
}

struct Member {
    node: Node,
    tasks: Tasks,
}

impl Kind for Paxos {
    type Member = Member;

    async fn start(&self, spec: MemberSpec) -> anyhow::Result<Member> {
        let cfg = PaxosConfig {
            id: spec.id,
            peers: spec.peers,
            data_dir: spec.data_dir,
            request_timeout: Duration::from_millis(1500),
            round_timeout: Duration::from_millis(200),
            skip_prepare: self.skip_prepare,
            bugs: vec![],
            link_filter: Some(spec.link_filter),
        };
        let node = Node::start(cfg, &tokio::runtime::Handle::current())?;
        let mut tasks = Tasks::default();
        let n2 = node.clone();
        let peer_l = spec.peer_listener;
        tasks.spawn(async move { n2.serve_peers(peer_l).await });
        tasks.serve_http(spec.client_listener, server::router(node.clone()));
        Ok(Member { node, tasks })
    }

    async fn stop(&self, m: Member) -> anyhow::Result<()> {
        // Shutdown joins the acceptor's thread: off the runtime's workers.
        let node = m.node;
        tokio::task::spawn_blocking(move || node.shutdown()).await?;
        m.tasks.stop().await;
        Ok(())
    }
}

type Cluster = faultline_nodes_testkit::Cluster<Paxos>;

async fn start(n: usize, skip_prepare: bool) -> Cluster {
    Cluster::start(n, Paxos { skip_prepare }).await
}

/// The register API as these tests use it: a request that gets no JSON answer fails the test.
async fn post(c: &Cluster, i: usize, path: &str, body: Value) -> (u16, Value) {
    c.post(i, path, &body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_increments_from_every_node_are_never_lost() {
    let c = Arc::new(start(3, false).await);
    let clients = 6;
    let attempts = 15;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut unknown) = (0u64, 0u64);
            for a in 0..attempts {
                let node = (client + a) % 3;
                let (s, v) = post(&c, node, "/read", json!({"key": "ctr"})).await;
                if s != 200 {
                    continue;
                }
                let n = v["value"].as_u64().unwrap_or(0);
                let req = json!({"key": "ctr", "expected": if n == 0 { Value::Null } else { json!(n) },
                                 "new": n + 1, "request_id": format!("c{client}-{a}")});
                match post(&c, node, "/cas", req).await {
                    (200, v) if v["ok"] == json!(true) => ok += 1,
                    (200, _) => {}
                    (_, v) if v["definite"] == json!(false) => unknown += 1,
                    _ => {}
                }
            }
            (ok, unknown)
        }));
    }
    let (mut ok, mut unknown) = (0, 0);
    for t in tasks {
        let (o, u) = t.await.unwrap();
        ok += o;
        unknown += u;
    }
    let (s, v) = post(&c, 0, "/read", json!({"key": "ctr"})).await;
    assert_eq!(s, 200);
    let final_value = v["value"].as_u64().unwrap_or(0);
    assert!(ok > 0);
    assert!(
        ok <= final_value && final_value <= ok + unknown,
        "ok {ok}, unknown {unknown}, final {final_value}"
    );
    for i in 0..3 {
        let (code, st) = c.get(i, "/status").await.unwrap();
        assert_eq!((code, &st["role"]), (200, &json!("acceptor")));
    }
    Arc::try_unwrap(c).ok().unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_node_cannot_decide_while_the_majority_can_and_state_survives_restart() {
    let mut c = start(3, false).await;
    assert_eq!(
        post(&c, 0, "/write", json!({"key": "k", "value": {"a": 1}})).await,
        (200, json!({}))
    );
    c.isolate(2);
    let (s, v) = post(&c, 2, "/write", json!({"key": "k", "value": "minority"})).await;
    assert_eq!(s, 504, "{v}");
    assert_eq!(
        v["definite"],
        json!(true),
        "no acceptor could have accepted it: prepare never got a majority"
    );
    assert_eq!(
        post(
            &c,
            1,
            "/cas",
            json!({"key": "k", "expected": {"a": 1}, "new": 2})
        )
        .await,
        (200, json!({"ok": true}))
    );
    c.heal_all();
    // Restart every acceptor: the chosen value is on disk.
    for i in 0..3 {
        c.stop(i).await;
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    assert_eq!(
        post(&c, 2, "/read", json!({"key": "k"})).await,
        (200, json!({"value": 2}))
    );
    assert_eq!(
        post(&c, 2, "/read", json!({"key": "absent"})).await,
        (200, json!({"value": null}))
    );
    let (s, v) = post(&c, 0, "/write", json!({"key": "k".repeat(257), "value": 1})).await;
    assert_eq!((s, v["definite"].clone()), (400, json!(true)));
    let (s, _) = post(
        &c,
        0,
        "/cas",
        json!({"key": "k", "new": "x".repeat(70_000)}),
    )
    .await;
    assert_eq!(s, 400);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_skip_prepare_lets_a_stale_cas_succeed() {
    for bug in [false, true] {
        let c = start(3, bug).await;
        assert_eq!(
            post(&c, 0, "/write", json!({"key": "k", "value": "x"}))
                .await
                .0,
            200
        );
        assert_eq!(
            post(&c, 1, "/write", json!({"key": "k", "value": "y"}))
                .await
                .0,
            200
        );
        let got = post(
            &c,
            0,
            "/cas",
            json!({"key": "k", "expected": "x", "new": "z"}),
        )
        .await;
        if bug {
            assert_eq!(
                got,
                (200, json!({"ok": true})),
                "n1 trusted its cached x: y's write is lost"
            );
        } else {
            assert_eq!(got, (200, json!({"ok": false, "current": "y"})));
        }
        c.shutdown().await;
    }
}
