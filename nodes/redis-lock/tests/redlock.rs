//! Redlock over independent servers: quorum, validity, and the paused-client hazard.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use faultline_redis_lock::client::random_token;
use faultline_redis_lock::clock::{ManualClock, SystemClock};
use faultline_redis_lock::{RedisLockClient, Redlock};

const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);

async fn servers(n: usize, clock: Arc<dyn faultline_redis_lock::clock::Clock>) -> Vec<TestServer> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(TestServer::start(Arc::clone(&clock), None).await);
    }
    v
}

fn addrs(servers: &[TestServer]) -> Vec<String> {
    servers.iter().map(|s| s.addr_string()).collect()
}

#[tokio::test]
async fn a_majority_grants_and_a_minority_does_not() {
    let clock: Arc<dyn faultline_redis_lock::clock::Clock> = Arc::new(ManualClock::new(0));
    let mut nodes = servers(5, clock).await;
    let mut a = Redlock::new(addrs(&nodes), REQUEST_TIMEOUT);
    let mut b = Redlock::new(addrs(&nodes), REQUEST_TIMEOUT);
    assert_eq!(a.quorum(), 3);
    let grant = a
        .acquire("res", "tok-a", 10_000)
        .await
        .expect("A gets the lock");
    assert_eq!(grant.granted_by.len(), 5);
    assert!(grant.validity < Duration::from_millis(10_000 - 100 - 2 + 1));
    assert!(
        b.acquire("res", "tok-b", 10_000).await.is_none(),
        "B is refused while A holds it"
    );
    assert_eq!(a.release("res", "tok-a").await, 5);

    // Two of five servers down: a majority is still reachable.
    nodes.pop().unwrap().kill().await;
    nodes.pop().unwrap().kill().await;
    let grant = b
        .acquire("res", "tok-b", 10_000)
        .await
        .expect("3 of 5 suffice");
    assert_eq!(grant.granted_by, vec![0, 1, 2]);
    // A third server down: no majority, and B's own partial grants are undone.
    assert_eq!(b.release("res", "tok-b").await, 3);
    nodes.pop().unwrap().kill().await;
    assert!(b.acquire("res", "tok-b", 10_000).await.is_none());
    let mut direct = RedisLockClient::connect(&nodes[0].addr_string())
        .await
        .unwrap();
    assert_eq!(
        direct.get("res").await.unwrap(),
        None,
        "a failed attempt leaves no partial lock"
    );
}

#[tokio::test]
async fn a_partial_grant_held_by_another_client_blocks_the_quorum() {
    let clock: Arc<dyn faultline_redis_lock::clock::Clock> = Arc::new(ManualClock::new(0));
    let nodes = servers(3, clock).await;
    // C holds the lock on two servers directly (e.g. an attempt still in progress).
    for node in &nodes[..2] {
        let mut c = RedisLockClient::connect(&node.addr_string()).await.unwrap();
        assert!(c.acquire("res", "tok-c", 10_000).await.unwrap());
    }
    let mut a = Redlock::new(addrs(&nodes), REQUEST_TIMEOUT);
    assert!(a.acquire("res", "tok-a", 10_000).await.is_none());
    let mut c = RedisLockClient::connect(&nodes[0].addr_string())
        .await
        .unwrap();
    assert_eq!(
        c.get("res").await.unwrap(),
        Some(b"tok-c".to_vec()),
        "A's undo must not free C's lock"
    );
}

async fn next_token(counter: &mut RedisLockClient) -> u64 {
    match counter.call(&["INCR", "fence:res"]).await.unwrap() {
        faultline_redis_lock::resp::Frame::Integer(n) => n as u64,
        other => panic!("INCR: {other:?}"),
    }
}

/// A toy storage service the lock protects: it records who wrote, and (when fencing) refuses
/// a write whose token is older than one it has already seen.
#[derive(Default)]
struct Storage {
    fencing: bool,
    highest_token: u64,
    writes: Vec<&'static str>,
}

impl Storage {
    fn write(&mut self, who: &'static str, token: u64) -> bool {
        if self.fencing && token < self.highest_token {
            return false;
        }
        self.highest_token = self.highest_token.max(token);
        self.writes.push(who);
        true
    }
}

/// Kleppmann's scenario: A gets the Redlock, checks that it is still valid, then pauses (GC,
/// SIGSTOP) past its validity; the keys expire, B gets the lock; A wakes and writes. Both
/// believed they held the lock. Only a fencing token checked by the storage stops A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_and_a_new_holder_both_write_unless_tokens_are_checked() {
    // Long enough that three SETs fit in the validity time on a loaded test machine.
    const TTL_MS: u64 = 1_000;
    for fencing in [false, true] {
        let nodes = servers(3, Arc::new(SystemClock)).await;
        let mut a = Redlock::new(addrs(&nodes), REQUEST_TIMEOUT);
        let mut b = Redlock::new(addrs(&nodes), REQUEST_TIMEOUT);
        // Fencing tokens from a counter on the first server, taken right after each grant.
        let mut counter = RedisLockClient::connect(&nodes[0].addr_string())
            .await
            .unwrap();
        let mut storage = Storage {
            fencing,
            ..Storage::default()
        };

        let grant_a = a
            .acquire("res", &random_token(), TTL_MS)
            .await
            .expect("A gets the lock");
        let token_a = next_token(&mut counter).await;
        assert!(grant_a.is_valid(), "A checks its lease before using it…");
        // …and is paused past its validity before the write.
        tokio::time::sleep(Duration::from_millis(TTL_MS + 100)).await;

        let grant_b = b
            .acquire("res", &random_token(), TTL_MS)
            .await
            .expect("B gets the expired lock");
        let token_b = next_token(&mut counter).await;
        assert!(grant_b.is_valid());
        assert!(storage.write("B", token_b), "B's write is accepted");
        // A resumes, still believing what it checked before the pause.
        let a_written = storage.write("A", token_a);
        if fencing {
            assert!(token_a < token_b);
            assert!(!a_written, "the storage refuses A's stale token");
            assert_eq!(storage.writes, ["B"]);
        } else {
            assert!(a_written);
            assert_eq!(
                storage.writes,
                ["B", "A"],
                "two holders wrote: mutual exclusion broken"
            );
        }
    }
}
