//! Asynchronous replication and failover, including the grant a failover loses.

mod common;

use std::sync::Arc;

use common::{eventually, Link, TestServer};
use faultline_redis_lock::clock::ManualClock;
use faultline_redis_lock::{ClientError, RedisLockClient};

async fn replica_has(addr: String, key: &'static str, value: &'static [u8]) -> bool {
    let mut c = RedisLockClient::connect(&addr).await.unwrap();
    c.get(key).await.unwrap().as_deref() == Some(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_copies_writes_keeps_deadlines_and_refuses_writes() {
    let clock = ManualClock::new(10_000);
    let primary = TestServer::start(Arc::new(clock.clone()), None).await;
    let mut p = RedisLockClient::connect(&primary.addr_string())
        .await
        .unwrap();
    // Written before the replica attaches: reaches it through the full sync.
    assert!(p.acquire("early", "e", 1_000).await.unwrap());
    let replica = TestServer::start(Arc::new(clock.clone()), Some(primary.addr)).await;
    let r_addr = replica.addr_string();
    eventually("full sync", 5_000, || {
        replica_has(r_addr.clone(), "early", b"e")
    })
    .await;
    // Written after: reaches it through the stream.
    assert!(p.acquire("late", "l", 5_000).await.unwrap());
    eventually("streamed write", 5_000, || {
        replica_has(r_addr.clone(), "late", b"l")
    })
    .await;
    assert_eq!(
        RedisLockClient::connect(&r_addr)
            .await
            .unwrap()
            .info_field("master_link_status")
            .await
            .unwrap()
            .as_deref(),
        Some("up")
    );

    let mut r = RedisLockClient::connect(&r_addr).await.unwrap();
    match r.acquire("x", "y", 1_000).await {
        Err(e @ ClientError::Server { .. }) => assert!(e.to_string().contains("READONLY"), "{e}"),
        other => panic!("a replica accepted a write: {other:?}"),
    }
    // The deadline travelled as an absolute time: both expire "early" together.
    clock.advance_ms(1_000);
    assert_eq!(r.get("early").await.unwrap(), None);
    assert_eq!(r.get("late").await.unwrap(), Some(b"l".to_vec()));
    // A released lock is deleted on the replica too.
    assert!(p.release("late", "l").await.unwrap());
    eventually("streamed delete", 5_000, || {
        let addr = r_addr.clone();
        async move {
            RedisLockClient::connect(&addr)
                .await
                .unwrap()
                .get("late")
                .await
                .unwrap()
                .is_none()
        }
    })
    .await;
}

/// The known Redis hazard: the primary grants a lock, dies before replicating it, the replica
/// is promoted and grants the same lock to someone else — two holders at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_before_replication_gives_the_lock_to_two_clients() {
    let clock = ManualClock::new(0);
    let primary = TestServer::start(Arc::new(clock.clone()), None).await;
    let link = Link::start(primary.addr).await;
    let replica = TestServer::start(Arc::new(clock.clone()), Some(link.addr)).await;
    let r_addr = replica.addr_string();

    let mut a = RedisLockClient::connect(&primary.addr_string())
        .await
        .unwrap();
    assert!(a.acquire("warmup", "w", 60_000).await.unwrap());
    eventually("replication works before the fault", 5_000, || {
        replica_has(r_addr.clone(), "warmup", b"w")
    })
    .await;

    // The replication link stalls (a partition), then A is granted the lock by the primary.
    link.cut();
    assert!(
        a.acquire("lock", "client-a", 60_000).await.unwrap(),
        "A holds the lock"
    );
    // The primary crashes; the operator (or a failover nemesis) promotes the replica.
    primary.kill().await;
    let mut b = RedisLockClient::connect(&r_addr).await.unwrap();
    b.replicaof(None).await.unwrap();
    assert_eq!(
        b.info_field("role").await.unwrap().as_deref(),
        Some("master")
    );
    assert_eq!(
        b.get("warmup").await.unwrap(),
        Some(b"w".to_vec()),
        "replicated data survived"
    );

    // A's lease has 60 s left, yet B is granted the same lock: mutual exclusion is broken.
    assert!(
        b.acquire("lock", "client-b", 60_000).await.unwrap(),
        "B holds the lock too"
    );
    assert_eq!(b.get("lock").await.unwrap(), Some(b"client-b".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_can_be_demoted_again_and_resyncs() {
    let clock = ManualClock::new(0);
    let primary = TestServer::start(Arc::new(clock.clone()), None).await;
    let replica = TestServer::start(Arc::new(clock.clone()), None).await;
    let mut r = RedisLockClient::connect(&replica.addr_string())
        .await
        .unwrap();
    assert!(r.acquire("stale", "s", 60_000).await.unwrap());
    r.replicaof(Some(("127.0.0.1", primary.addr.port())))
        .await
        .unwrap();
    let mut p = RedisLockClient::connect(&primary.addr_string())
        .await
        .unwrap();
    assert!(p.acquire("fresh", "f", 60_000).await.unwrap());
    let r_addr = replica.addr_string();
    eventually("resync from the new primary", 5_000, || {
        replica_has(r_addr.clone(), "fresh", b"f")
    })
    .await;
    // A full resync replaces the replica's data set, as in Redis.
    assert_eq!(r.get("stale").await.unwrap(), None);
    r.replicaof(None).await.unwrap();
    assert!(r.acquire("after", "x", 1_000).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaof_cycle_does_not_loop_and_heals_after_a_promotion() {
    let clock = ManualClock::new(0);
    let a = TestServer::start(Arc::new(clock.clone()), None).await;
    let b = TestServer::start(Arc::new(clock.clone()), Some(a.addr)).await;
    let (a_addr, b_addr) = (a.addr_string(), b.addr_string());
    let link_status = |addr: String| async move {
        RedisLockClient::connect(&addr)
            .await
            .unwrap()
            .info_field("master_link_status")
            .await
            .unwrap()
    };
    eventually("b follows a", 5_000, || {
        let addr = b_addr.clone();
        async move { link_status(addr).await.as_deref() == Some("up") }
    })
    .await;
    // Now a follows b, which follows a: each refuses to feed the other.
    let mut ca = RedisLockClient::connect(&a_addr).await.unwrap();
    ca.replicaof(Some(("127.0.0.1", b.addr.port())))
        .await
        .unwrap();
    eventually("both links down", 5_000, || {
        let (aa, bb) = (a_addr.clone(), b_addr.clone());
        async move {
            link_status(aa).await.as_deref() == Some("down")
                && link_status(bb).await.as_deref() == Some("down")
        }
    })
    .await;
    let offset = |addr: String| async move {
        RedisLockClient::connect(&addr)
            .await
            .unwrap()
            .info_field("master_repl_offset")
            .await
            .unwrap()
    };
    let before = offset(b_addr.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(offset(b_addr.clone()).await, before, "no writes circulate");
    // Promoting a breaks the cycle: b resyncs from it.
    ca.replicaof(None).await.unwrap();
    assert!(ca.acquire("lock", "x", 60_000).await.unwrap());
    eventually("b follows a again", 5_000, || {
        replica_has(b_addr.clone(), "lock", b"x")
    })
    .await;
}
