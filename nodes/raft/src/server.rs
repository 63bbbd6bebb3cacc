//! A Raft node's host: one event-loop thread owns the core, the storage and the state
//! machine. Peer messages, proposals and reads arrive on one channel; each loop iteration
//! drains everything queued, then persists the whole batch with one fsync (group commit),
//! sends, applies and answers. Generic over [`StateMachine`], so other services reuse it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_nodes_common::api::wall_clock_ms;
use faultline_nodes_common::codec;
use faultline_nodes_common::transport::{self, Outbox};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::core::{Config, NotLeader, Raft, Role};
use crate::message::{Body, Message, NodeId};
use crate::state_machine::StateMachine;
use crate::storage::Storage;

/// Events handled per loop iteration before persisting, so one batch stays bounded.
pub const BATCH_EVENTS_MAX: usize = 8192;

/// Which clock leader leases use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseMode {
    /// ReadIndex only.
    Off,
    /// Monotonic clock, lease shortened by `drift_ms` (correct).
    Monotonic { drift_ms: u64 },
    /// The `lease-unsafe` bug: the wall clock, no margin.
    WallClockUnsafe,
}

/// Settings of one server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub id: NodeId,
    /// Every member's peer address (`host:port`), this node included.
    pub peers: Vec<(NodeId, String)>,
    pub data_dir: PathBuf,
    pub tick: Duration,
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub lease: LeaseMode,
    /// Compact once this many entries are applied past the last snapshot.
    pub snapshot_entries: u64,
    /// The `no-fsync` bug.
    pub no_fsync: bool,
    pub seed: u64,
    /// Tests only: drops peer messages for which it answers false (a simulated partition).
    pub link_filter: Option<LinkFilter>,
}

/// Decides per (from, to) whether a peer message may be sent; lets tests partition
/// in-process clusters without touching the real network.
#[derive(Clone)]
pub struct LinkFilter(pub Arc<LinkFn>);

/// `(from, to) -> may send`.
pub type LinkFn = dyn Fn(&str, &str) -> bool + Send + Sync;

impl std::fmt::Debug for LinkFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkFilter")
    }
}

impl ServerConfig {
    /// The lease length in ms: a follower promises not to vote for `election_ticks` ticks
    /// after hearing from the leader, which is at least `election_ticks - 1` tick lengths
    /// of its time; the drift margin covers clocks running at different rates.
    pub fn lease_ms(&self) -> u64 {
        let tick_ms = self.tick.as_millis() as u64;
        match self.lease {
            LeaseMode::Off => 0,
            LeaseMode::Monotonic { drift_ms } => (u64::from(self.election_ticks.saturating_sub(1))
                * tick_ms)
                .saturating_sub(drift_ms),
            LeaseMode::WallClockUnsafe => u64::from(self.election_ticks) * tick_ms,
        }
    }
}

/// Why a proposal has no outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Certainly not applied: this node does not lead.
    #[error("not the leader")]
    NotLeader(Option<NodeId>),
    /// Certainly not applied: another entry was committed at its index.
    #[error("the entry was overwritten by a new leader")]
    Overwritten,
    /// Unknown: it may have been applied (e.g. covered by an installed snapshot).
    #[error("outcome unknown: {0}")]
    Unknown(String),
    #[error("the node is shutting down")]
    Shutdown,
}

/// Why a read was not served (a read never changes anything).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not the leader")]
    NotLeader(Option<NodeId>),
    #[error("leadership was lost before the read was confirmed")]
    LostLeadership,
    #[error("the node is shutting down")]
    Shutdown,
}

/// The answer to a proposal.
#[derive(Debug)]
pub enum Proposed<O> {
    /// Committed and applied with this output.
    Applied(O),
    /// Only in this node's log (the `ack-before-commit` bug asked for this early answer).
    Appended,
}

/// What `/status` shows.
#[derive(Clone, Debug, Default)]
pub struct NodeStatus {
    pub role: String,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub commit_index: u64,
    pub applied_index: u64,
}

type ReadFn<SM> = Box<dyn FnOnce(Result<&SM, ReadError>) + Send>;
type ProposeReply<O> = oneshot::Sender<Result<Proposed<O>, ProposeError>>;

enum Event<SM: StateMachine> {
    Peer(Message),
    Propose {
        data: Vec<u8>,
        early_ack: bool,
        reply: ProposeReply<SM::Output>,
    },
    Read {
        local: bool,
        f: ReadFn<SM>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// A cheap handle to a running node.
pub struct Handle<SM: StateMachine> {
    tx: mpsc::Sender<Event<SM>>,
    status: Arc<Mutex<NodeStatus>>,
    id: NodeId,
}

impl<SM: StateMachine> Clone for Handle<SM> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            status: self.status.clone(),
            id: self.id.clone(),
        }
    }
}

impl<SM: StateMachine> Handle<SM> {
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// Proposes a command; answers when it is applied (or, with `early_ack`, appended).
    pub async fn propose(
        &self,
        data: Vec<u8>,
        early_ack: bool,
    ) -> Result<Proposed<SM::Output>, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Event::Propose {
                data,
                early_ack,
                reply,
            })
            .map_err(|_| ProposeError::Shutdown)?;
        rx.await.unwrap_or(Err(ProposeError::Shutdown))
    }

    /// Runs `f` on the state machine at a linearizable point (ReadIndex or lease), or at
    /// once on local state when `local` (the `stale-read` bug).
    pub async fn read<R: Send + 'static>(
        &self,
        local: bool,
        f: impl FnOnce(&SM) -> R + Send + 'static,
    ) -> Result<R, ReadError> {
        let (tx, rx) = oneshot::channel();
        let f: ReadFn<SM> = Box::new(move |sm| {
            let _ = tx.send(sm.map(f));
        });
        self.tx
            .send(Event::Read { local, f })
            .map_err(|_| ReadError::Shutdown)?;
        rx.await.unwrap_or(Err(ReadError::Shutdown))
    }

    /// The node's current role, term, leader and indexes.
    pub fn status(&self) -> NodeStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Stops the loop after syncing the log; returns when it has.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Event::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Feeds frames from the peer listener into the loop; garbage closes the connection.
    pub async fn serve_peers(&self, listener: TcpListener) {
        let tx = Mutex::new(self.tx.clone());
        let handler = move |frame: Vec<u8>| match codec::decode::<Message>(&frame) {
            // A stopped loop closes the connection, so peers reconnect to its successor.
            Ok(m) => tx
                .lock()
                .expect("peer sender lock")
                .send(Event::Peer(m))
                .is_ok(),
            Err(_) => false,
        };
        transport::serve(listener, Arc::new(handler)).await;
    }
}

/// Starts a node: recovers from `cfg.data_dir`, restores `sm` from the snapshot, and runs
/// the loop on its own thread. Outgoing peer connections run on `runtime`.
pub fn start<SM: StateMachine>(
    cfg: ServerConfig,
    mut sm: SM,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<(Handle<SM>, std::thread::JoinHandle<anyhow::Result<()>>)> {
    let (storage, recovered) = Storage::open(&cfg.data_dir, cfg.no_fsync)?;
    sm.restore(&recovered.snapshot.data).with_context(|| {
        format!(
            "restoring the snapshot in {}",
            cfg.data_dir.join("snapshot.bin").display()
        )
    })?;
    let peer_ids: Vec<NodeId> = cfg.peers.iter().map(|(id, _)| id.clone()).collect();
    anyhow::ensure!(
        peer_ids.contains(&cfg.id),
        "--id {} is not one of the peers {peer_ids:?}",
        cfg.id
    );
    let mut core_cfg = Config::new(cfg.id.clone(), peer_ids);
    core_cfg.election_ticks = cfg.election_ticks;
    core_cfg.heartbeat_ticks = cfg.heartbeat_ticks;
    core_cfg.seed = cfg.seed;
    core_cfg.lease_reads = cfg.lease != LeaseMode::Off;
    core_cfg.lease_ms = cfg.lease_ms();
    core_cfg.lease_overrides_quorum = cfg.lease == LeaseMode::WallClockUnsafe;
    tracing::info!(
        term = recovered.hard_state.term,
        snapshot = recovered.snapshot.index,
        entries = recovered.entries.len(),
        "recovered from disk"
    );
    let applied = recovered.snapshot.index;
    let raft = Raft::new(
        core_cfg,
        recovered.hard_state,
        recovered.snapshot,
        recovered.entries,
    );
    let others: Vec<(String, String)> = cfg
        .peers
        .iter()
        .filter(|(id, _)| *id != cfg.id)
        .cloned()
        .collect();
    let outbox = Outbox::start(runtime, &others);
    let (tx, rx) = mpsc::channel();
    let status = Arc::new(Mutex::new(NodeStatus::default()));
    let handle = Handle {
        tx,
        status: status.clone(),
        id: cfg.id.clone(),
    };
    let node = Loop {
        started: Instant::now(),
        cfg,
        raft,
        storage: Some(storage),
        sm,
        applied,
        outbox,
        status,
        waiters: HashMap::new(),
        early: Vec::new(),
        reads: HashMap::new(),
        reads_waiting_apply: Vec::new(),
        next_ctx: 1,
    };
    let thread = std::thread::Builder::new()
        .name("raft-loop".into())
        .spawn(move || node.run(rx))?;
    Ok((handle, thread))
}

struct Waiter<O> {
    term: u64,
    reply: ProposeReply<O>,
}

struct Loop<SM: StateMachine> {
    started: Instant,
    cfg: ServerConfig,
    raft: Raft,
    storage: Option<Storage>,
    sm: SM,
    applied: u64,
    outbox: Outbox,
    status: Arc<Mutex<NodeStatus>>,
    waiters: HashMap<u64, Waiter<SM::Output>>,
    early: Vec<ProposeReply<SM::Output>>,
    reads: HashMap<u64, ReadFn<SM>>,
    reads_waiting_apply: Vec<(u64, ReadFn<SM>)>,
    next_ctx: u64,
}

impl<SM: StateMachine> Loop<SM> {
    fn run(mut self, rx: mpsc::Receiver<Event<SM>>) -> anyhow::Result<()> {
        let mut next_tick = Instant::now() + self.cfg.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let mut shutdown = None;
            match rx.recv_timeout(wait) {
                Ok(ev) => shutdown = self.handle(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for _ in 0..BATCH_EVENTS_MAX {
                if shutdown.is_some() {
                    break;
                }
                match rx.try_recv() {
                    Ok(ev) => shutdown = self.handle(ev),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.set_clock();
                self.raft.tick();
                // After a stall (e.g. SIGSTOP) tick once, then resume the normal pace.
                next_tick = (next_tick + self.cfg.tick).max(now);
                self.storage_mut().tick()?;
                self.waiters.retain(|_, w| !w.reply.is_closed());
            }
            self.process_ready()?;
            if let Some(done) = shutdown {
                self.storage_mut().sync()?;
                tracing::info!("raft loop stopped; log synced");
                let _ = done.send(());
                return Ok(());
            }
        }
        self.storage_mut().sync()?;
        Ok(())
    }

    fn storage_mut(&mut self) -> &mut Storage {
        self.storage
            .as_mut()
            .expect("storage is present while running")
    }

    fn set_clock(&mut self) {
        let now = match self.cfg.lease {
            LeaseMode::WallClockUnsafe => wall_clock_ms(),
            _ => self.started.elapsed().as_millis() as u64,
        };
        self.raft.set_now_ms(now);
    }

    fn handle(&mut self, ev: Event<SM>) -> Option<oneshot::Sender<()>> {
        match ev {
            Event::Peer(m) => {
                if let Body::Snapshot { snapshot, .. } = &m.body {
                    if let Err(e) = self.sm.check_snapshot(&snapshot.data) {
                        tracing::warn!(
                            from = %m.from,
                            index = snapshot.index,
                            bytes = snapshot.data.len(),
                            "refusing a snapshot that does not restore: {e:#}"
                        );
                        return None;
                    }
                }
                self.raft.step(m)
            }
            Event::Propose {
                data,
                early_ack,
                reply,
            } => match self.raft.propose(data) {
                Ok(index) => {
                    if early_ack {
                        self.early.push(reply);
                    } else {
                        self.waiters.insert(
                            index,
                            Waiter {
                                term: self.raft.term(),
                                reply,
                            },
                        );
                    }
                }
                Err(NotLeader(leader)) => {
                    let _ = reply.send(Err(ProposeError::NotLeader(leader)));
                }
            },
            Event::Read { local: true, f } => f(Ok(&self.sm)),
            Event::Read { local: false, f } => {
                self.set_clock();
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                match self.raft.read_index(ctx) {
                    Ok(()) => {
                        self.reads.insert(ctx, f);
                    }
                    Err(NotLeader(leader)) => f(Err(ReadError::NotLeader(leader))),
                }
            }
            Event::Shutdown(done) => return Some(done),
        }
        None
    }

    fn process_ready(&mut self) -> anyhow::Result<()> {
        while self.raft.has_ready() {
            let rd = self.raft.ready();
            if let Some(snap) = &rd.snapshot {
                // Restored before it is persisted: what cannot be applied never reaches disk.
                self.sm.restore(&snap.data).with_context(|| {
                    format!(
                        "restoring the snapshot at index {} from the leader",
                        snap.index
                    )
                })?;
                let hs = self.raft.hard_state();
                self.storage_mut().save_snapshot(snap, &hs, &[])?;
                self.applied = snap.index;
                // Proposals covered by the snapshot may or may not be in it.
                let covered: Vec<u64> = self
                    .waiters
                    .keys()
                    .copied()
                    .filter(|i| *i <= snap.index)
                    .collect();
                for i in covered {
                    if let Some(w) = self.waiters.remove(&i) {
                        let _ = w.reply.send(Err(ProposeError::Unknown(
                            "covered by an installed snapshot".into(),
                        )));
                    }
                }
            }
            // A leader's appends may go out before its own fsync, so follower and leader
            // fsyncs overlap (Raft thesis §10.2.1): commit needs follower answers, and this
            // loop handles those only after the fsync below has finished. Answers and votes
            // promise durable state, so they wait for it.
            let (early, late): (Vec<Message>, Vec<Message>) = rd
                .messages
                .into_iter()
                .partition(|m| matches!(m.body, Body::Append { .. } | Body::Snapshot { .. }));
            self.send_all(early);
            self.storage_mut()
                .persist(rd.hard_state.as_ref(), &rd.entries, rd.must_sync)?;
            for reply in self.early.drain(..) {
                let _ = reply.send(Ok(Proposed::Appended));
            }
            self.send_all(late);
            for e in rd.committed {
                self.applied = e.index;
                let output = (!e.data.is_empty()).then(|| self.sm.apply(e.index, &e.data));
                if let Some(w) = self.waiters.remove(&e.index) {
                    let answer = match output {
                        Some(o) if w.term == e.term => Ok(Proposed::Applied(o)),
                        _ => Err(ProposeError::Overwritten),
                    };
                    let _ = w.reply.send(answer);
                }
            }
            for rs in rd.read_states {
                if let Some(f) = self.reads.remove(&rs.ctx) {
                    self.reads_waiting_apply.push((rs.index, f));
                }
            }
            for ctx in rd.dropped_reads {
                if let Some(f) = self.reads.remove(&ctx) {
                    f(Err(ReadError::LostLeadership));
                }
            }
            let applied = self.applied;
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_waiting_apply)
                .into_iter()
                .partition(|(i, _)| *i <= applied);
            self.reads_waiting_apply = waiting;
            for (_, f) in ready {
                f(Ok(&self.sm));
            }
            self.maybe_compact()?;
        }
        self.publish_status();
        Ok(())
    }

    fn send_all(&self, messages: Vec<Message>) {
        for m in messages {
            if self
                .cfg
                .link_filter
                .as_ref()
                .is_some_and(|f| !(f.0)(&m.from, &m.to))
            {
                continue;
            }
            self.outbox.send(&m.to, codec::encode(&m));
        }
    }

    fn maybe_compact(&mut self) -> anyhow::Result<()> {
        if self.applied < self.raft.snapshot_index() + self.cfg.snapshot_entries.max(1) {
            return Ok(());
        }
        let data = self.sm.snapshot();
        self.raft.compact(self.applied, data);
        let snap = self.raft.snapshot().clone();
        let hs = self.raft.hard_state();
        let rest = self.raft.entries(snap.index + 1, usize::MAX);
        tracing::info!(
            index = snap.index,
            bytes = snap.data.len(),
            kept = rest.len(),
            "compacted the log into a snapshot"
        );
        self.storage_mut().save_snapshot(&snap, &hs, &rest)?;
        Ok(())
    }

    fn publish_status(&self) {
        let mut s = self.status.lock().expect("status lock");
        s.role = self.raft.role().as_str().to_string();
        s.term = self.raft.term();
        s.leader = self.raft.leader().cloned();
        s.commit_index = self.raft.commit_index();
        s.applied_index = self.applied;
    }
}

/// True when this role may serve proposals.
pub fn is_leader(status: &NodeStatus) -> bool {
    status.role == Role::Leader.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lease: LeaseMode) -> ServerConfig {
        ServerConfig {
            id: "n1".into(),
            peers: vec![("n1".into(), "127.0.0.1:1".into())],
            data_dir: PathBuf::new(),
            tick: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 2,
            lease,
            snapshot_entries: 10,
            no_fsync: false,
            seed: 0,
            link_filter: None,
        }
    }

    #[test]
    fn lease_is_shorter_than_the_followers_promise_by_the_drift_margin_unless_unsafe() {
        assert_eq!(cfg(LeaseMode::Off).lease_ms(), 0);
        // Followers promise 10 ticks, at least 9 tick lengths of real time; minus 50 ms drift.
        assert_eq!(
            cfg(LeaseMode::Monotonic { drift_ms: 50 }).lease_ms(),
            9 * 50 - 50
        );
        assert_eq!(cfg(LeaseMode::Monotonic { drift_ms: 10_000 }).lease_ms(), 0);
        // The bug trusts the full timeout on the wall clock, with no margin.
        assert_eq!(cfg(LeaseMode::WallClockUnsafe).lease_ms(), 10 * 50);
    }
}
