//! Loopback tests of whole CASPaxos nodes (acceptor fsync, peer TCP, HTTP API) in one
//! process: concurrent cas from clients on every node, a minority that cannot decide,
//! restart durability, bad input, and the `skip-prepare` bug.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_paxos::server::{self, Node, PaxosConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

struct Member {
    id: String,
    peer_addr: String,
    client_addr: String,
    node: Option<Node>,
    tasks: Vec<JoinHandle<()>>,
}

struct Cluster {
    members: Vec<Member>,
    cut: Arc<Mutex<HashSet<(String, String)>>>,
    dir: tempfile::TempDir,
    skip_prepare: bool,
    http: reqwest::Client,
}

async fn free_addr() -> String {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

impl Cluster {
    async fn start(n: usize, skip_prepare: bool) -> Self {
        let mut members = Vec::new();
        for i in 1..=n {
            members.push(Member {
                id: format!("n{i}"),
                peer_addr: free_addr().await,
                client_addr: free_addr().await,
                node: None,
                tasks: vec![],
            });
        }
        let mut c = Self {
            members,
            cut: Arc::default(),
            dir: tempfile::tempdir().unwrap(),
            skip_prepare,
            http: reqwest::Client::new(),
        };
        for i in 0..n {
            c.start_member(i).await;
        }
        c
    }

    async fn start_member(&mut self, i: usize) {
        let peers: Vec<(String, String)> = self
            .members
            .iter()
            .map(|m| (m.id.clone(), m.peer_addr.clone()))
            .collect();
        let cut = self.cut.clone();
        let m = &mut self.members[i];
        let cfg = PaxosConfig {
            id: m.id.clone(),
            peers,
            data_dir: self.dir.path().join(&m.id),
            request_timeout: Duration::from_millis(1500),
            round_timeout: Duration::from_millis(200),
            skip_prepare: self.skip_prepare,
            bugs: vec![],
            link_filter: Some(Arc::new(move |a: &str, b: &str| {
                !cut.lock().unwrap().contains(&(a.into(), b.into()))
            })),
        };
        let peer_l = TcpListener::bind(&m.peer_addr).await.unwrap();
        let client_l = TcpListener::bind(&m.client_addr).await.unwrap();
        let node = Node::start(cfg, &tokio::runtime::Handle::current()).unwrap();
        let n2 = node.clone();
        m.tasks
            .push(tokio::spawn(async move { n2.serve_peers(peer_l).await }));
        let app = server::router(node.clone());
        m.tasks.push(tokio::spawn(async move {
            axum::serve(client_l, app).await.unwrap()
        }));
        m.node = Some(node);
    }

    async fn stop_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(n) = m.node.take() {
            tokio::task::spawn_blocking(move || n.shutdown())
                .await
                .unwrap();
        }
        for t in m.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }

    fn isolate(&self, i: usize) {
        let id = &self.members[i].id;
        let mut cut = self.cut.lock().unwrap();
        for m in &self.members {
            cut.insert((id.clone(), m.id.clone()));
            cut.insert((m.id.clone(), id.clone()));
        }
        cut.remove(&(id.clone(), id.clone()));
    }

    async fn post(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        let url = format!("http://{}{}", self.members[i].client_addr, path);
        let r = self
            .http
            .post(url)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn shutdown(mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_increments_from_every_node_are_never_lost() {
    let c = Arc::new(Cluster::start(3, false).await);
    let clients = 6;
    let attempts = 15;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut unknown) = (0u64, 0u64);
            for a in 0..attempts {
                let node = (client + a) % 3;
                let (s, v) = c.post(node, "/read", json!({"key": "ctr"})).await;
                if s != 200 {
                    continue;
                }
                let n = v["value"].as_u64().unwrap_or(0);
                let req = json!({"key": "ctr", "expected": if n == 0 { Value::Null } else { json!(n) },
                                 "new": n + 1, "request_id": format!("c{client}-{a}")});
                match c.post(node, "/cas", req).await {
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
    let (s, v) = c.post(0, "/read", json!({"key": "ctr"})).await;
    assert_eq!(s, 200);
    let final_value = v["value"].as_u64().unwrap_or(0);
    assert!(ok > 0);
    assert!(
        ok <= final_value && final_value <= ok + unknown,
        "ok {ok}, unknown {unknown}, final {final_value}"
    );
    for i in 0..3 {
        let st: Value = c
            .http
            .get(format!("http://{}/status", c.members[i].client_addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(st["role"], json!("acceptor"));
    }
    Arc::try_unwrap(c).ok().unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_node_cannot_decide_while_the_majority_can_and_state_survives_restart() {
    let mut c = Cluster::start(3, false).await;
    assert_eq!(
        c.post(0, "/write", json!({"key": "k", "value": {"a": 1}}))
            .await,
        (200, json!({}))
    );
    c.isolate(2);
    let (s, v) = c
        .post(2, "/write", json!({"key": "k", "value": "minority"}))
        .await;
    assert_eq!(s, 504, "{v}");
    assert_eq!(
        v["definite"],
        json!(true),
        "no acceptor could have accepted it: prepare never got a majority"
    );
    assert_eq!(
        c.post(
            1,
            "/cas",
            json!({"key": "k", "expected": {"a": 1}, "new": 2})
        )
        .await,
        (200, json!({"ok": true}))
    );
    c.cut.lock().unwrap().clear();
    // Restart every acceptor: the chosen value is on disk.
    for i in 0..3 {
        c.stop_member(i).await;
    }
    for i in 0..3 {
        c.start_member(i).await;
    }
    assert_eq!(
        c.post(2, "/read", json!({"key": "k"})).await,
        (200, json!({"value": 2}))
    );
    assert_eq!(
        c.post(2, "/read", json!({"key": "absent"})).await,
        (200, json!({"value": null}))
    );
    let (s, v) = c
        .post(0, "/write", json!({"key": "k".repeat(257), "value": 1}))
        .await;
    assert_eq!((s, v["definite"].clone()), (400, json!(true)));
    let (s, _) = c
        .post(0, "/cas", json!({"key": "k", "new": "x".repeat(70_000)}))
        .await;
    assert_eq!(s, 400);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_skip_prepare_lets_a_stale_cas_succeed() {
    for bug in [false, true] {
        let c = Cluster::start(3, bug).await;
        assert_eq!(
            c.post(0, "/write", json!({"key": "k", "value": "x"}))
                .await
                .0,
            200
        );
        assert_eq!(
            c.post(1, "/write", json!({"key": "k", "value": "y"}))
                .await
                .0,
            200
        );
        let got = c
            .post(0, "/cas", json!({"key": "k", "expected": "x", "new": "z"}))
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
