//! The server: accepts connections, runs commands against the keyspace, feeds replicas.
//!
//! Replication is asynchronous, as in Redis: a write is applied and answered first, then put
//! on a broadcast channel that each connected replica's feeder drains onto its socket. A
//! primary that dies before the feeder wrote a grant loses it; a replica promoted with
//! `REPLICAOF NO ONE` then grants the same lock again. That hazard is deliberate.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::clock::Clock;
use crate::cmd::Command;
use crate::connection::{ConnError, Connection};
use crate::db::Db;
use crate::resp::Frame;

/// Most client connections served at once by default; more are answered with an error
/// and closed.
pub const CONNECTIONS_MAX: usize = 1024;
/// How long a client may take to send its next whole command, or to take a reply, by
/// default. Without it 1,024 silent (or trickling) clients held every connection slot.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;
/// Writes a replica may fall behind by before its feeder drops it (it then resyncs in full).
pub const REPLICA_BACKLOG_WRITES_MAX: usize = 100_000;
/// Replies to a pipeline are written out once this many bytes are pending, so pipelined
/// `GET`s of a large value (20 bytes in, up to 1 MiB out each) cannot grow memory without
/// bound while the client does not read.
const REPLY_FLUSH_BYTES: usize = 256 * 1024;
/// How often expired keys are swept (reads expire keys lazily anyway).
const SWEEP_INTERVAL_MS: u64 = 100;
/// Pause between a replica's attempts to reach its primary.
const REPLICA_RETRY_MS: u64 = 200;
const REPLICA_CONNECT_TIMEOUT_MS: u64 = 1000;
/// How long shutdown waits for connections to finish before cutting them.
const SHUTDOWN_GRACE_MS: u64 = 1000;

/// What to start with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Start as a replica of this primary (`host`, `port`).
    pub replica_of: Option<(String, u16)>,
    /// Most client connections at once (Redis's `maxclients`).
    pub max_connections: usize,
    /// A client connection that sends no whole command for this long, or does not take a
    /// reply for this long, is closed (Redis's `timeout`, but counted per command, so a
    /// client trickling bytes does not keep its slot). `None`: never. Replica feeds are
    /// exempt: a replica only listens.
    pub idle_timeout: Option<Duration>,
}

impl Config {
    /// A primary on `listen` with the default limits.
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            replica_of: None,
            max_connections: CONNECTIONS_MAX,
            idle_timeout: Some(Duration::from_millis(IDLE_TIMEOUT_MS)),
        }
    }
}

enum Role {
    Primary,
    Replica {
        host: String,
        port: u16,
        link: Option<JoinHandle<()>>,
        link_up: bool,
    },
}

struct State {
    db: Db,
    role: Role,
    /// Bumped on every role change, so a stale replica link stops applying writes.
    link_generation: u64,
    replid: String,
    /// Bytes of writes sent to replicas (a primary) or received from the primary (a replica).
    repl_offset: u64,
    connected_replicas: usize,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    repl_tx: broadcast::Sender<Arc<Vec<u8>>>,
    /// The link generation, watched by replica feeders: a role change ends every feed.
    role_changes: watch::Sender<u64>,
    shutdown: watch::Receiver<bool>,
    idle_timeout: Option<Duration>,
}

fn new_replid() -> String {
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving rather than cascade.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends write frames to replicas and returns their size in bytes; call with the state
    /// lock held, so the stream's order is the order of applying.
    fn publish(&self, frames: &[Frame]) -> u64 {
        let mut sent = 0;
        for frame in frames {
            let bytes = frame.to_bytes();
            sent += bytes.len() as u64;
            // No receiver (no replica connected) is the normal case, not an error.
            let _ = self.repl_tx.send(Arc::new(bytes));
        }
        sent
    }

    fn execute(self: &Arc<Self>, cmd: Command) -> Frame {
        match cmd {
            Command::ReplicaOf(target) => self.replicaof(target),
            Command::Info => Frame::Bulk(self.info().into_bytes()),
            Command::Role => self.role(),
            Command::Sync | Command::Quit => Frame::error("ERR handled by the connection"),
            cmd => {
                let now = self.clock.now_ms();
                let mut state = self.lock();
                if cmd.is_write() && matches!(state.role, Role::Replica { .. }) {
                    return Frame::error("READONLY You can't write against a read only replica.");
                }
                let applied = state.db.apply(&cmd, now);
                state.repl_offset += self.publish(&applied.propagate);
                applied.reply
            }
        }
    }

    fn replicaof(self: &Arc<Self>, target: Option<(String, u16)>) -> Frame {
        let mut state = self.lock();
        if let (Some((h, p)), Role::Replica { host, port, .. }) = (&target, &state.role) {
            if h == host && p == port {
                return Frame::Simple("OK Already connected to specified master".into());
            }
        }
        if target.is_none() && matches!(state.role, Role::Primary) {
            // Already a primary: keep the replicas attached.
            return Frame::ok();
        }
        state.link_generation += 1;
        // Replicas fed by this server detach: it is no longer the source of truth they follow.
        self.role_changes.send_replace(state.link_generation);
        if let Role::Replica {
            link: Some(link), ..
        } = &state.role
        {
            link.abort();
        }
        match target {
            None => {
                if matches!(state.role, Role::Replica { .. }) {
                    tracing::warn!("promoted to primary (REPLICAOF NO ONE); data set kept");
                    state.replid = new_replid();
                }
                state.role = Role::Primary;
            }
            Some((host, port)) => {
                tracing::info!(%host, port, "becoming a replica");
                let link = tokio::spawn(replica_link(
                    Arc::clone(self),
                    host.clone(),
                    port,
                    state.link_generation,
                ));
                state.role = Role::Replica {
                    host,
                    port,
                    link: Some(link),
                    link_up: false,
                };
            }
        }
        Frame::ok()
    }

    fn info(&self) -> String {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        state.db.sweep(now);
        let mut s = String::from("# Server\r\nredis_version:7.0.0-faultline\r\n");
        s += &format!("server_time_ms:{now}\r\n\r\n# Replication\r\n");
        match &state.role {
            Role::Primary => s += "role:master\r\n",
            Role::Replica {
                host,
                port,
                link_up,
                ..
            } => {
                s += &format!(
                    "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nslave_repl_offset:{}\r\n",
                    if *link_up { "up" } else { "down" },
                    state.repl_offset
                );
            }
        }
        s += &format!(
            "connected_slaves:{}\r\nmaster_replid:{}\r\nmaster_repl_offset:{}\r\n\r\n# Keyspace\r\ndb0:keys={}\r\n",
            state.connected_replicas,
            state.replid,
            state.repl_offset,
            state.db.len()
        );
        s
    }

    fn role(&self) -> Frame {
        let state = self.lock();
        match &state.role {
            Role::Primary => Frame::Array(vec![
                Frame::bulk("master"),
                Frame::Integer(state.repl_offset as i64),
                Frame::Array(Vec::new()),
            ]),
            Role::Replica {
                host,
                port,
                link_up,
                ..
            } => Frame::Array(vec![
                Frame::bulk("slave"),
                Frame::bulk(host),
                Frame::Integer(i64::from(*port)),
                Frame::bulk(if *link_up { "connected" } else { "connect" }),
                Frame::Integer(state.repl_offset as i64),
            ]),
        }
    }
}

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    replica_of: Option<(String, u16)>,
    max_connections: usize,
}

impl Server {
    pub async fn bind(config: Config, clock: Arc<dyn Clock>) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (repl_tx, _) = broadcast::channel(REPLICA_BACKLOG_WRITES_MAX);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                db: Db::new(),
                role: Role::Primary,
                link_generation: 0,
                replid: new_replid(),
                repl_offset: 0,
                connected_replicas: 0,
            }),
            clock,
            repl_tx,
            role_changes: watch::channel(0).0,
            shutdown,
            idle_timeout: config.idle_timeout,
        });
        Ok(Server {
            listener,
            shared,
            shutdown_tx,
            replica_of: config.replica_of,
            max_connections: config.max_connections,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then closes every connection (replica feeds too).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Server {
            listener,
            shared,
            shutdown_tx,
            replica_of,
            max_connections,
        } = self;
        tracing::info!(addr = %listener.local_addr()?, "redis-lock serving");
        if replica_of.is_some() {
            shared.replicaof(replica_of);
        }
        let sweeper = tokio::spawn(sweep_loop(Arc::clone(&shared)));
        let permits = Arc::new(Semaphore::new(max_connections));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        tracing::warn!(%peer, "connection limit reached");
                        connections.spawn(refuse(stream));
                        continue;
                    };
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        if let Err(e) = serve(shared, stream).await {
                            tracing::debug!(%peer, error = %e, "connection ended");
                        }
                        drop(permit);
                    });
                }
            }
        }
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
        sweeper.abort();
        {
            let mut state = shared.lock();
            state.link_generation += 1;
            if let Role::Replica {
                link: Some(link), ..
            } = &state.role
            {
                link.abort();
            }
        }
        drop(listener);
        let drained = tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            connections.abort_all();
        }
        Ok(())
    }
}

async fn refuse(stream: TcpStream) {
    let mut conn = Connection::new(stream);
    let _ = conn
        .write_frame(&Frame::error("ERR max number of clients reached"))
        .await;
}

async fn sweep_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(SWEEP_INTERVAL_MS));
    loop {
        tick.tick().await;
        let now = shared.clock.now_ms();
        shared.lock().db.sweep(now);
    }
}

/// One client connection: frames in, replies out, until close, QUIT, SYNC or shutdown.
async fn serve(shared: Arc<Shared>, stream: TcpStream) -> Result<(), ConnError> {
    let mut conn = Connection::new(stream);
    let mut shutdown = shared.shutdown.clone();
    let idle = shared.idle_timeout;
    loop {
        let first = tokio::select! {
            f = within(idle, conn.read_frame()) => match f {
                Some(f) => f,
                None => {
                    tracing::debug!("client sent no whole command in time; closing");
                    return Ok(());
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let mut next = match first {
            Ok(Some(frame)) => Some(frame),
            Ok(None) => return Ok(()),
            Err(ConnError::Protocol(e)) => {
                // Tell the client why, as Redis does, then close: the stream cannot be resynchronised.
                let reply = Frame::error(format!("ERR {e}")).to_bytes();
                let _ = write_within(idle, &mut conn, &reply).await;
                return Err(e.into());
            }
            Err(e) => return Err(e),
        };
        // Answer everything already buffered (a pipeline) with one write.
        let mut out = Vec::new();
        while let Some(frame) = next {
            match Command::from_frame(frame) {
                // No chained replication (feed_replica refuses on a replica): a replica
                // forwarding its stream could loop writes forever in a REPLICAOF cycle.
                Ok(Command::Sync) => {
                    write_within(idle, &mut conn, &out).await?;
                    return feed_replica(shared, conn).await;
                }
                Ok(Command::Quit) => {
                    Frame::ok().encode(&mut out);
                    write_within(idle, &mut conn, &out).await?;
                    return Ok(());
                }
                Ok(cmd) => shared.execute(cmd).encode(&mut out),
                Err(reply) => reply.encode(&mut out),
            }
            if out.len() >= REPLY_FLUSH_BYTES {
                write_within(idle, &mut conn, &out).await?;
                out.clear();
            }
            next = match conn.buffered_frame() {
                Ok(f) => f,
                Err(ConnError::Protocol(e)) => {
                    Frame::error(format!("ERR {e}")).encode(&mut out);
                    let _ = write_within(idle, &mut conn, &out).await;
                    return Err(e.into());
                }
                Err(e) => return Err(e),
            };
        }
        write_within(idle, &mut conn, &out).await?;
    }
}

/// `fut`'s output, or `None` when it took longer than `limit`.
async fn within<T>(limit: Option<Duration>, fut: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// A client that does not take its replies (its socket buffer full) holds its slot no
/// longer than an idle one.
async fn write_within(
    limit: Option<Duration>,
    conn: &mut Connection,
    bytes: &[u8],
) -> Result<(), ConnError> {
    within(limit, conn.write_raw(bytes))
        .await
        .unwrap_or_else(|| {
            Err(ConnError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client took no reply in time",
            )))
        })
}

struct ReplicaCount(Arc<Shared>);

impl Drop for ReplicaCount {
    fn drop(&mut self) {
        self.0.lock().connected_replicas -= 1;
    }
}

/// The primary's side of a replica: the data set as writes, then every write as it happens.
async fn feed_replica(shared: Arc<Shared>, mut conn: Connection) -> Result<(), ConnError> {
    let now = shared.clock.now_ms();
    let setup = {
        let mut state = shared.lock();
        if matches!(state.role, Role::Replica { .. }) {
            None
        } else {
            // Subscribing and snapshotting under one lock: no write or role change falls between.
            let rx = shared.repl_tx.subscribe();
            let role_changes = shared.role_changes.subscribe();
            let snapshot = state.db.snapshot(now);
            let header = format!(
                "FULLRESYNC {} {} {}",
                state.replid,
                state.repl_offset,
                snapshot.len()
            );
            state.connected_replicas += 1;
            Some((rx, role_changes, header, snapshot))
        }
    };
    let Some((mut rx, mut role_changes, header, snapshot)) = setup else {
        let refusal = Frame::error("ERR this server is a replica; replicate from its primary");
        return conn.write_frame(&refusal).await;
    };
    let _count = ReplicaCount(Arc::clone(&shared));
    tracing::info!(keys = snapshot.len(), "replica attached; full sync");
    let mut out = Frame::Simple(header).to_bytes();
    for frame in &snapshot {
        frame.encode(&mut out);
    }
    // Bounded like a client's replies: a "replica" that never reads (or one cut off by a
    // partition) is dropped, as Redis's repl-timeout does, and resyncs in full later.
    let idle = shared.idle_timeout;
    write_within(idle, &mut conn, &out).await?;
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            _ = role_changes.changed() => {
                tracing::info!("role changed; detaching replica");
                return Ok(());
            }
            msg = rx.recv() => match msg {
                Ok(bytes) => write_within(idle, &mut conn, &bytes).await?,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "replica fell too far behind; dropping it");
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            read = conn.read_discard() => {
                if read? == 0 {
                    tracing::info!("replica detached");
                    return Ok(());
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// The replica's side: connect, full sync, apply the stream; reconnect until the role changes.
async fn replica_link(shared: Arc<Shared>, host: String, port: u16, generation: u64) {
    loop {
        match sync_once(&shared, &host, port, generation).await {
            Ok(()) => tracing::info!(%host, port, "replication link closed"),
            Err(e) => tracing::warn!(%host, port, error = %e, "replication link failed"),
        }
        {
            let mut state = shared.lock();
            if state.link_generation != generation {
                return;
            }
            if let Role::Replica { link_up, .. } = &mut state.role {
                *link_up = false;
            }
        }
        tokio::time::sleep(Duration::from_millis(REPLICA_RETRY_MS)).await;
    }
}

async fn sync_once(
    shared: &Arc<Shared>,
    host: &str,
    port: u16,
    generation: u64,
) -> anyhow::Result<()> {
    let stream = tokio::time::timeout(
        Duration::from_millis(REPLICA_CONNECT_TIMEOUT_MS),
        TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connect timed out"))??;
    let mut conn = Connection::new(stream);
    conn.write_frame(&Frame::command(["SYNC"])).await?;
    let header = match conn.read_frame().await? {
        Some(Frame::Simple(h)) => h,
        other => anyhow::bail!("expected +FULLRESYNC, got {other:?}"),
    };
    let fields: Vec<&str> = header.split_whitespace().collect();
    let (offset, mut snapshot_left) = match fields.as_slice() {
        ["FULLRESYNC", _replid, offset, keys] => (offset.parse::<u64>()?, keys.parse::<u64>()?),
        _ => anyhow::bail!("malformed sync header {header:?}"),
    };
    {
        let mut state = shared.lock();
        if state.link_generation != generation {
            return Ok(());
        }
        state.db = Db::new();
        state.repl_offset = offset;
        if let Role::Replica { link_up, .. } = &mut state.role {
            *link_up = true;
        }
    }
    tracing::info!(host, port, offset, "full sync from primary");
    while let Some(frame) = conn.read_frame().await? {
        let len = frame.to_bytes().len() as u64;
        let cmd = Command::from_frame(frame)
            .map_err(|e| anyhow::anyhow!("bad write from primary: {e:?}"))?;
        if !cmd.is_write() {
            anyhow::bail!("primary sent a non-write command {cmd:?}");
        }
        let now = shared.clock.now_ms();
        let mut state = shared.lock();
        if state.link_generation != generation {
            return Ok(());
        }
        state.db.apply(&cmd, now);
        if snapshot_left > 0 {
            snapshot_left -= 1;
        } else {
            state.repl_offset += len;
        }
    }
    Ok(())
}
