//! The redis-lock server over real sockets: TTLs, compare-and-delete, redis-cli, malformed input.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, TestServer};
use faultline_redis_lock::clock::{ManualClock, SystemClock};
use faultline_redis_lock::resp::Frame;
use faultline_redis_lock::server::Config;
use faultline_redis_lock::{ClientError, RedisLockClient};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn keys_expire_by_the_servers_clock() {
    let clock = ManualClock::new(1_000_000);
    let server = TestServer::start(Arc::new(clock.clone()), None).await;
    let mut a = RedisLockClient::connect(&server.addr_string())
        .await
        .unwrap();
    let mut b = RedisLockClient::connect(&server.addr_string())
        .await
        .unwrap();
    assert!(a.acquire("lock", "a", 5_000).await.unwrap());
    assert!(!b.acquire("lock", "b", 5_000).await.unwrap());
    clock.advance_ms(4_999);
    assert_eq!(b.get("lock").await.unwrap(), Some(b"a".to_vec()));
    assert!(!b.acquire("lock", "b", 5_000).await.unwrap());
    clock.advance_ms(1);
    assert_eq!(b.get("lock").await.unwrap(), None);
    assert!(b.acquire("lock", "b", 5_000).await.unwrap());
    // The active sweep also removes expired keys nobody reads.
    clock.advance_ms(5_000);
    common::eventually("sweep empties the keyspace", 2_000, || {
        let addr = server.addr_string();
        async move {
            let mut c = RedisLockClient::connect(&addr).await.unwrap();
            c.call(&["DBSIZE"]).await.unwrap() == Frame::Integer(0)
        }
    })
    .await;
}

#[tokio::test]
async fn compare_and_delete_never_deletes_another_clients_lock() {
    let clock = ManualClock::new(0);
    let server = TestServer::start(Arc::new(clock.clone()), None).await;
    let mut a = RedisLockClient::connect(&server.addr_string())
        .await
        .unwrap();
    let mut b = RedisLockClient::connect(&server.addr_string())
        .await
        .unwrap();
    assert!(a.acquire("lock", "token-a", 100).await.unwrap());
    assert!(!b.release("lock", "token-b").await.unwrap());
    assert_eq!(a.get("lock").await.unwrap(), Some(b"token-a".to_vec()));
    // a's lease runs out while a is slow; b takes the lock; a's late release must miss.
    clock.advance_ms(150);
    assert!(b.acquire("lock", "token-b", 100).await.unwrap());
    assert!(!a.release("lock", "token-a").await.unwrap());
    assert!(!a.extend("lock", "token-a", 1_000).await.unwrap());
    assert_eq!(a.get("lock").await.unwrap(), Some(b"token-b".to_vec()));
    assert!(b.extend("lock", "token-b", 1_000).await.unwrap());
    clock.advance_ms(900);
    assert!(b.release("lock", "token-b").await.unwrap());
    assert_eq!(a.get("lock").await.unwrap(), None);
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs (Debian package redis-tools, see harness/scripts/install-deps.sh)");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_sets_nx_px_and_gets() {
    let server = TestServer::start(Arc::new(SystemClock), None).await;
    let port = server.addr.port();
    let run =
        |args: &'static [&'static str]| tokio::task::spawn_blocking(move || redis_cli(port, args));
    assert_eq!(run(&["PING"]).await.unwrap(), "PONG");
    assert_eq!(
        run(&["SET", "lock", "tok1", "NX", "PX", "60000"])
            .await
            .unwrap(),
        "OK"
    );
    assert_eq!(
        run(&["SET", "lock", "tok2", "NX", "PX", "60000"])
            .await
            .unwrap(),
        ""
    );
    assert_eq!(run(&["GET", "lock"]).await.unwrap(), "tok1");
    let ttl: i64 = run(&["PTTL", "lock"]).await.unwrap().parse().unwrap();
    assert!((1..=60_000).contains(&ttl), "PTTL {ttl}");
    let unlock = faultline_redis_lock::cmd::UNLOCK_SCRIPT;
    let out = tokio::task::spawn_blocking(move || {
        redis_cli(port, &["EVAL", unlock, "1", "lock", "tok1"])
    })
    .await
    .unwrap();
    assert_eq!(out, "1");
    assert_eq!(run(&["GET", "lock"]).await.unwrap(), "");
    assert!(run(&["INFO", "replication"])
        .await
        .unwrap()
        .contains("role:master"));
}

#[tokio::test]
async fn pipelined_and_inline_commands_are_answered_in_order() {
    let server = TestServer::start(Arc::new(ManualClock::new(0)), None).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut req = Vec::new();
    for cmd in [&["SET", "k", "1"][..], &["INCR", "k"], &["GET", "k"]] {
        Frame::command(cmd).encode(&mut req);
    }
    req.extend_from_slice(b"PING\r\n");
    s.write_all(&req).await.unwrap();
    let expected = b"+OK\r\n:2\r\n$1\r\n2\r\n+PONG\r\n";
    let mut got = vec![0u8; expected.len()];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(got, expected);
}

/// Sends `bytes` on a fresh connection and reads until the server closes or stays quiet.
async fn send_garbage(addr: std::net::SocketAddr, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        panic!("server stopped accepting connections");
    };
    let _ = s.write_all(bytes).await;
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(20), s.read(&mut sink)).await;
}

async fn assert_alive(addr: std::net::SocketAddr) {
    let mut c = RedisLockClient::connect(&addr.to_string()).await.unwrap();
    c.ping().await.expect("server still answers PING");
}

#[tokio::test]
async fn malformed_resp_never_crashes_the_server() {
    let server = TestServer::start(Arc::new(ManualClock::new(0)), None).await;
    let table: &[&[u8]] = &[
        b"*1\r\n$999999999999\r\n",
        b"*99999999999\r\n",
        b"$-7\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk",
        b"*2\r\n:1\r\n:2\r\n",
        b"*1\r\n$4\r\nPINGxx",
        b"*-1\r\n",
        b"\r\n\r\n\r\n",
        b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n",
        b"EVAL 'return 1' 0\r\n",
        b"SET k v PX 99999999999999999999\r\n",
        b"SET k v PXAT 18446744073709551615\r\n",
        b"SET k v EX 9223372036854775807\r\n",
    ];
    for bytes in table {
        send_garbage(server.addr, bytes).await;
    }
    // A frame that never ends: the server drops the connection at its size cap.
    let mut huge = b"*1\r\n$1048576\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1 << 20));
    send_garbage(server.addr, &huge).await;
    let mut endless_line = b"+".to_vec();
    endless_line.extend(std::iter::repeat_n(b'y', 100_000));
    send_garbage(server.addr, &endless_line).await;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let alphabet = b"*$+-:\r\n0123456789-SETGETNXPX ";
    for _ in 0..300 {
        let len = rng.random_range(1..200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.random_bool(0.7) {
                    alphabet[rng.random_range(0..alphabet.len())]
                } else {
                    rng.random()
                }
            })
            .collect();
        send_garbage(server.addr, &bytes).await;
    }
    assert_alive(server.addr).await;
}

#[tokio::test]
async fn a_protocol_error_is_reported_before_the_connection_closes() {
    let server = TestServer::start(Arc::new(ManualClock::new(0)), None).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"*1\r\n$99999999999\r\n").await.unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.unwrap();
    assert!(
        reply.starts_with(b"-ERR protocol error"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
}

#[tokio::test]
async fn errors_are_replies_and_keep_the_connection() {
    let server = TestServer::start(Arc::new(ManualClock::new(0)), None).await;
    let mut c = RedisLockClient::connect(&server.addr_string())
        .await
        .unwrap();
    for bad in [
        &["NOSUCH"][..],
        &["SET", "k"],
        &["SET", "k", "v", "PX", "0"],
        &["EVALSHA", "abc", "0"],
    ] {
        match c.call(bad).await {
            Err(e @ ClientError::Server { .. }) => assert!(e.is_definite()),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    c.ping().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_client_connections() {
    let server = TestServer::start(Arc::new(ManualClock::new(0)), None).await;
    let addr = server.addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_alive(addr).await;
    server.kill().await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf))
        .await
        .expect("connection closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

/// A server with few connection slots and a short idle timeout.
async fn small_server(slots: usize, idle_ms: u64) -> TestServer {
    let config = Config {
        max_connections: slots,
        idle_timeout: Some(Duration::from_millis(idle_ms)),
        ..Config::new("127.0.0.1:0".parse().unwrap())
    };
    TestServer::start_with(Arc::new(SystemClock), config).await
}

async fn ping(addr: std::net::SocketAddr) -> Result<(), ClientError> {
    RedisLockClient::connect(&addr.to_string())
        .await?
        .ping()
        .await
}

/// Every slot taken by a client that sends nothing or trickles a frame a byte at a time
/// (the 1,024 idle clients, scaled down so the test needs few descriptors): others
/// are refused only until those clients run out of idle time. Before the timeout existed
/// they were refused for as long as the idle clients stayed.
#[tokio::test]
async fn idle_and_trickling_clients_lose_their_slots_so_others_are_served() {
    const SLOTS: usize = 16;
    let server = small_server(SLOTS, 400).await;
    let mut silent = Vec::new();
    for _ in 0..SLOTS / 2 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut trickling = Vec::new();
    for _ in 0..SLOTS / 2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let stop = Arc::clone(&stop);
        trickling.push(tokio::spawn(async move {
            // A bulk string that would take minutes to arrive; bytes keep coming, but no
            // whole command does.
            let frame = format!("*1\r\n${}\r\n", 1 << 20);
            for b in frame.bytes().chain(std::iter::repeat(b'x')).take(2_000) {
                if stop.load(std::sync::atomic::Ordering::SeqCst)
                    || s.write_all(&[b]).await.is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
            rest
        }));
    }
    // Every slot is taken once the server has accepted them all.
    eventually("the newcomer is refused while every slot is held", 2_000, || async {
        matches!(ping(server.addr).await, Err(ClientError::Server { message, .. }) if message.contains("max number of clients"))
    })
    .await;
    eventually(
        "a newcomer is served once the idle clients timed out",
        5_000,
        || async { ping(server.addr).await.is_ok() },
    )
    .await;
    for mut s in silent {
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("a silent client is closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "a silent client gets no reply, only the close");
    }
    for t in trickling {
        let rest = tokio::time::timeout(Duration::from_secs(2), t)
            .await
            .expect("a trickling client is closed although bytes kept coming")
            .unwrap();
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// A client that pipelines `GET`s of a large value and never reads the replies: the server
/// neither buffers the replies without bound nor keeps the slot once writing stalls.
#[tokio::test]
async fn a_client_that_takes_no_replies_gives_up_its_slot() {
    let server = small_server(1, 400).await;
    let mut greedy = TcpStream::connect(server.addr).await.unwrap();
    let value = "v".repeat(1 << 20);
    let mut request = Frame::command(["SET", "big", value.as_str()]).to_bytes();
    for _ in 0..400 {
        request.extend(Frame::command(["GET", "big"]).to_bytes());
    }
    // 400 MiB of replies to ~10 KB of requests; the write of them stalls at once.
    greedy.write_all(&request).await.unwrap();
    eventually(
        "a newcomer is served once the stalled client is dropped",
        5_000,
        || async { ping(server.addr).await.is_ok() },
    )
    .await;
    drop(greedy);
}

/// The lock client on a connection the server closed for idleness: the next command
/// reconnects instead of failing with an outcome the history would have to call unknown.
#[tokio::test]
async fn a_client_whose_idle_connection_was_closed_reconnects_before_sending() {
    let server = small_server(4, 200).await;
    let mut c = RedisLockClient::connect(&server.addr_string())
        .await
        .unwrap();
    c.ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(c
        .acquire("lock", "token", 10_000)
        .await
        .expect("acquired after the idle close"));
}
