//! The loopback cluster itself, on a probe kind whose members answer what the kit gave them:
//! their link filter's view of every peer, their data directory, and a fixed leader.

use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use faultline_nodes_testkit::{wait_until, Cluster, Kind, MemberSpec, Tasks};
use serde_json::{json, Map, Value};

struct Probe;

impl Kind for Probe {
    type Member = Tasks;

    async fn start(&self, spec: MemberSpec) -> anyhow::Result<Tasks> {
        std::fs::create_dir_all(&spec.data_dir)?;
        let starts = spec.data_dir.join("starts");
        let n = std::fs::read_to_string(&starts)
            .map(|s| s.trim().parse::<u64>().unwrap_or(0))
            .unwrap_or(0);
        std::fs::write(&starts, (n + 1).to_string())?;
        let (id, peers, filter) = (spec.id.clone(), spec.peers.clone(), spec.link_filter);
        let status = json!({"id": id, "leader": "n2", "starts": n + 1});
        let links = move || {
            let view: Map<String, Value> = peers
                .iter()
                .map(|(p, _)| (p.clone(), json!(filter(&id, p))))
                .collect();
            Json(Value::Object(view))
        };
        let app = Router::new()
            .route("/status", get(move || async move { Json(status) }))
            .route("/links", get(move || async move { links() }))
            .route("/echo", post(|Json(v): Json<Value>| async move { Json(v) }))
            .route("/text", get(|| async { "not json" }));
        let mut tasks = Tasks::default();
        tasks.serve_http(spec.client_listener, app);
        // Accepts and drops peer connections, so the peer port is taken while running.
        let peer = spec.peer_listener;
        tasks.spawn(async move {
            while let Ok((s, _)) = peer.accept().await {
                drop(s);
            }
        });
        Ok(tasks)
    }

    async fn stop(&self, member: Tasks) -> anyhow::Result<()> {
        member.stop().await;
        Ok(())
    }
}

/// Member `i`'s link filter, as `[may i send to n1, to n2, ...]`.
async fn links(c: &Cluster<Probe>, i: usize) -> Vec<bool> {
    let (status, view) = c.get(i, "/links").await.unwrap();
    assert_eq!(status, 200);
    (0..c.len()).map(|j| view[c.id(j)] == json!(true)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_heal_one_way_both_ways_and_all_at_once() {
    let c = Cluster::start(3, Probe).await;
    assert_eq!(c.leader().await, 1, "n2, as every member's status says");
    assert_eq!(links(&c, 0).await, [true, true, true]);
    c.cut(0, 1);
    assert_eq!(links(&c, 0).await, [true, false, true]);
    assert_eq!(links(&c, 1).await, [true, true, true], "one way only");
    c.heal(0, 1);
    assert_eq!(links(&c, 0).await, [true, true, true]);
    c.isolate(2);
    assert_eq!(
        links(&c, 2).await,
        [false, false, true],
        "its self link stays"
    );
    assert_eq!(links(&c, 0).await, [true, true, false]);
    c.heal_both(2, 0);
    assert_eq!(links(&c, 2).await, [true, false, true]);
    assert_eq!(links(&c, 0).await, [true, true, true]);
    c.heal_all();
    c.partition(&[0], &[1, 2]);
    assert!(c.is_cut(1, 0) && c.is_cut(0, 2) && !c.is_cut(1, 2));
    c.heal_all();
    for i in 0..3 {
        assert_eq!(links(&c, i).await, [true, true, true]);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_refuses_and_restarts_on_its_addresses_and_data() {
    let mut c = Cluster::start(2, Probe).await;
    let addr = c.client_addr(0).to_string();
    assert_eq!(c.status(0).await.unwrap()["starts"], 1);
    c.stop(0).await;
    assert_eq!(c.running(), [1]);
    let err = c.post(0, "/echo", &json!({})).await.unwrap_err();
    assert!(err.is_no_answer(), "{err}");
    // Whatever pooled connection there was is gone now: a new one is refused.
    let err = c.post(0, "/echo", &json!({})).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(err.to_string().contains(&addr), "names the address: {err}");
    assert!(c.status(0).await.is_none());
    c.restart(0).await;
    assert_eq!(c.client_addr(0), addr);
    assert_eq!(
        c.status(0).await.unwrap()["starts"],
        2,
        "the data dir was kept"
    );
    c.stop(0).await;
    c.wipe(0);
    assert!(!c.data_dir(0).exists());
    c.restart(0).await;
    assert_eq!(
        c.status(0).await.unwrap()["starts"],
        1,
        "a wiped member starts afresh"
    );
    assert_eq!(c.status(1).await.unwrap()["starts"], 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_answers_json_and_errors_instead_of_panicking() {
    let c = Cluster::start(1, Probe).await;
    let body = json!({"a": [1, 2]});
    assert_eq!(c.post(0, "/echo", &body).await.unwrap(), (200, body));
    let (status, text) = c.post_bytes(0, "/echo", "{not json").await.unwrap();
    // Raw bytes carry no JSON content type: axum's extractor refuses them.
    assert_eq!(status, 415, "{text}");
    let err = c.get(0, "/text").await.unwrap_err();
    assert!(
        !err.is_connect() && err.to_string().contains("not JSON"),
        "{err}"
    );
    let err = c.get(0, "/nowhere").await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    c.shutdown().await;
}

#[tokio::test]
async fn wait_until_returns_the_first_answer_within_its_bound() {
    let started = Instant::now();
    let mut polls = 0;
    let got = wait_until("the third poll", Duration::from_secs(5), || {
        polls += 1;
        let n = polls;
        async move { (n == 3).then_some(n) }
    })
    .await;
    assert_eq!(got, 3);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
#[should_panic(expected = "for the impossible, in vain")]
async fn wait_until_names_what_it_waited_for_when_it_gives_up() {
    wait_until("the impossible", Duration::from_millis(100), || async {
        None::<()>
    })
    .await;
}
