//! Test helpers: servers on 127.0.0.1:0 that can be killed, and a TCP link that can be cut.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faultline_redis_lock::clock::Clock;
use faultline_redis_lock::server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server; dropping it (or `kill`) stops it and closes all its connections.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(clock: Arc<dyn Clock>, replica_of: Option<SocketAddr>) -> TestServer {
        let config = Config {
            replica_of: replica_of.map(|a| (a.ip().to_string(), a.port())),
            ..Config::new("127.0.0.1:0".parse().unwrap())
        };
        TestServer::start_with(clock, config).await
    }

    /// A server on `config` (its `listen` is replaced by 127.0.0.1:0).
    pub async fn start_with(clock: Arc<dyn Clock>, config: Config) -> TestServer {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        };
        let server = Server::bind(config, clock).await.expect("bind 127.0.0.1:0");
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the server and waits until it has closed its connections.
    pub async fn kill(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A TCP forwarder that can stop delivering bytes, like a partition: bytes sent while cut are
/// held back, and the link's endpoints see nothing until it is healed (or they close).
pub struct Link {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Link {
    pub async fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let cut2 = Arc::clone(&cut);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, Arc::clone(&cut2)));
                tokio::spawn(pump(ro, wi, Arc::clone(&cut2)));
            }
        });
        Link { addr, cut, task }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Held while cut; bounded so a test never leaves this task running for long.
        for _ in 0..100 {
            if !cut.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Polls `check` every 10 ms until it holds; panics with `what` after `limit_ms`.
pub async fn eventually<F, Fut>(what: &str, limit_ms: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(limit_ms);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within {limit_ms} ms");
}
