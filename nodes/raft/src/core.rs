//! The Raft core: a pure state machine with no I/O, clocks or threads. The host feeds it
//! peer messages (`step`), logical ticks (`tick`), proposals and read requests, tells it the
//! time for leases (`set_now_ms`), and drains a [`Ready`]: state and entries to persist,
//! then messages to send, entries to apply and reads that may be served.
//!
//! Implements leader election with randomized timeouts and PreVote (thesis §9.6), leader
//! stickiness and check-quorum (a follower that heard from a leader within the minimum
//! election timeout ignores votes; a leader that lost its quorum steps down), log
//! replication with probe/replicate flow control, commit by majority of the current term
//! (§5.4.2), snapshots (§7), ReadIndex and leader-lease reads (thesis §6.4).

use std::collections::{HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::log::RaftLog;
use crate::message::{Body, Entry, HardState, Message, NodeId, ReadState, Snapshot};

/// Static settings of one node.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Every member, this node included (fixed membership).
    pub peers: Vec<NodeId>,
    /// Minimum election timeout in ticks; the actual one is random in `[n, 2n)`.
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    /// Seeds the election-timeout randomness, so tests reproduce.
    pub seed: u64,
    /// Serve reads from a leader lease when it holds, else by ReadIndex.
    pub lease_reads: bool,
    /// Length of the lease, in the units of [`Raft::set_now_ms`], counted from the sending
    /// of the heartbeat round a quorum acknowledged.
    pub lease_ms: u64,
    /// Part of the `lease-unsafe` bug: a leader whose lease holds (by its own clock) keeps
    /// leading without a quorum, instead of stepping down by check-quorum.
    pub lease_overrides_quorum: bool,
    /// Most entries in one append message.
    pub append_entries_max: usize,
    /// Most entries handed out for applying in one [`Ready`].
    pub apply_entries_max: usize,
}

impl Config {
    /// Defaults for a member `id` of `peers`.
    pub fn new(id: impl Into<NodeId>, peers: Vec<NodeId>) -> Self {
        Self {
            id: id.into(),
            peers,
            election_ticks: 10,
            heartbeat_ticks: 2,
            seed: 0,
            lease_reads: false,
            lease_ms: 0,
            lease_overrides_quorum: false,
            append_entries_max: 1024,
            apply_entries_max: 4096,
        }
    }
}

/// What a node currently is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    /// The name used by the status endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "precandidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// Refusal of a proposal or read: this node is not the leader (the leader it knows, if any).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader: {0:?})")]
pub struct NotLeader(pub Option<NodeId>);

/// Output of the core, drained by [`Raft::ready`]. The host must, in this order: persist
/// `snapshot`, `entries` (an entry overwrites any stored one at the same or a later index)
/// and `hard_state` (fsync if `must_sync`); then send `messages`; then install `snapshot`
/// into the state machine; then apply `committed`; then serve `read_states` once the
/// state machine has applied their index.
#[derive(Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub must_sync: bool,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub committed: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// Read contexts that will never be served here (leadership lost): answer them.
    pub dropped_reads: Vec<u64>,
}

#[derive(Clone, Debug, Default)]
struct Progress {
    match_index: u64,
    next_index: u64,
    /// Probing: the follower's log position is unknown, send one append at a time.
    probing: bool,
    /// In probe state, an append is in flight; wait for its answer or the next heartbeat.
    paused: bool,
    /// Heard from since the last check-quorum.
    active: bool,
    read_seq_acked: u64,
    /// Heartbeats to wait before sending the snapshot again.
    snapshot_wait: u32,
    /// Highest commit index sent to it.
    commit_sent: u64,
}

/// One Raft node's consensus state.
pub struct Raft {
    cfg: Config,
    quorum: usize,
    term: u64,
    vote: Option<NodeId>,
    commit: u64,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    applied: u64,
    persisted: HardState,
    unstable_from: Option<u64>,
    received_snapshot: Option<Snapshot>,
    msgs: Vec<Message>,
    votes: HashMap<NodeId, bool>,
    progress: HashMap<NodeId, Progress>,
    rng: ChaCha8Rng,
    election_elapsed: u32,
    randomized_timeout: u32,
    heartbeat_elapsed: u32,
    check_quorum_elapsed: u32,
    since_leader_contact: u32,
    term_start_index: u64,
    append_needed: bool,
    heartbeat_needed: bool,
    now_ms: u64,
    read_seq: u64,
    seq_sent_at: VecDeque<(u64, u64)>,
    lease_until_ms: u64,
    pending_reads: VecDeque<(u64, u64, u64)>,
    reads_before_term_commit: Vec<u64>,
    read_states: Vec<ReadState>,
    dropped_reads: Vec<u64>,
}

impl Raft {
    /// A node restored from what it persisted (all defaults for a fresh node). The host
    /// must have restored its state machine from `snapshot`.
    pub fn new(
        cfg: Config,
        hard_state: HardState,
        snapshot: Snapshot,
        entries: Vec<Entry>,
    ) -> Self {
        let log = RaftLog::restore(snapshot, entries);
        let applied = log.snapshot().index;
        let commit = hard_state.commit.clamp(applied, log.last_index());
        let quorum = cfg.peers.len() / 2 + 1;
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut raft = Self {
            quorum,
            term: hard_state.term,
            vote: hard_state.vote.clone(),
            commit,
            role: Role::Follower,
            leader: None,
            log,
            applied,
            persisted: HardState {
                commit,
                ..hard_state
            },
            unstable_from: None,
            received_snapshot: None,
            msgs: Vec::new(),
            votes: HashMap::new(),
            progress: HashMap::new(),
            rng,
            election_elapsed: 0,
            randomized_timeout: 0,
            heartbeat_elapsed: 0,
            check_quorum_elapsed: 0,
            // A restarted node may have promised a leader not to vote; keep the promise.
            since_leader_contact: 0,
            term_start_index: u64::MAX,
            append_needed: false,
            heartbeat_needed: false,
            now_ms: 0,
            read_seq: 0,
            seq_sent_at: VecDeque::new(),
            lease_until_ms: 0,
            pending_reads: VecDeque::new(),
            reads_before_term_commit: Vec::new(),
            read_states: Vec::new(),
            dropped_reads: Vec::new(),
            cfg,
        };
        raft.reset_election_timer();
        raft
    }

    pub fn id(&self) -> &NodeId {
        &self.cfg.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> u64 {
        self.term
    }
    pub fn leader(&self) -> Option<&NodeId> {
        self.leader.as_ref()
    }
    pub fn commit_index(&self) -> u64 {
        self.commit
    }
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }
    /// Index of the latest snapshot (0 if none).
    pub fn snapshot_index(&self) -> u64 {
        self.log.snapshot().index
    }
    /// The latest snapshot, to persist after [`Raft::compact`].
    pub fn snapshot(&self) -> &Snapshot {
        self.log.snapshot()
    }
    /// The log entries still held in memory, up to `max` from `from`.
    pub fn entries(&self, from: u64, max: usize) -> Vec<Entry> {
        self.log.slice(from, self.log.last_index(), max)
    }

    /// The time, in ms of whatever clock the host chose, used for leader leases.
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// True while this node holds a valid read lease (leader, term committed).
    pub fn lease_valid(&self) -> bool {
        self.role == Role::Leader
            && self.commit >= self.term_start_index
            && self.now_ms < self.lease_until_ms
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.since_leader_contact = self.since_leader_contact.saturating_add(1);
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.randomized_timeout {
                self.pre_campaign();
            }
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
        self.check_quorum_elapsed += 1;
        if self.check_quorum_elapsed >= self.cfg.election_ticks {
            self.check_quorum_elapsed = 0;
            let active = 1 + self.progress.values().filter(|p| p.active).count();
            let trusting_lease = self.cfg.lease_overrides_quorum && self.lease_valid();
            if active >= self.quorum || trusting_lease {
                self.since_leader_contact = 0;
                self.progress.values_mut().for_each(|p| p.active = false);
            } else {
                tracing::info!(
                    term = self.term,
                    active,
                    "leader lost its quorum; stepping down"
                );
                self.become_follower(self.term, None);
            }
        }
    }

    /// Appends `data` to the log if this node leads; returns its index.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<u64, NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader(self.leader.clone()));
        }
        let index = self.log.last_index() + 1;
        self.append_own(Entry {
            term: self.term,
            index,
            data,
        });
        self.append_needed = true;
        Ok(index)
    }

    /// Asks for a linearizable read point; `ctx` comes back in a [`ReadState`] (or in
    /// `dropped_reads` if leadership is lost first).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader(self.leader.clone()));
        }
        if self.commit < self.term_start_index {
            // Until its no-op commits, a new leader does not know the commit index (§6.4).
            self.reads_before_term_commit.push(ctx);
        } else {
            self.start_read(ctx);
        }
        Ok(())
    }

    fn start_read(&mut self, ctx: u64) {
        if self.quorum == 1 || (self.cfg.lease_reads && self.now_ms < self.lease_until_ms) {
            self.read_states.push(ReadState {
                ctx,
                index: self.commit,
            });
        } else {
            self.pending_reads
                .push_back((ctx, self.commit, self.read_seq + 1));
            self.heartbeat_needed = true;
        }
    }

    /// Replaces the log up to `index` (applied by the host) by the snapshot `data`.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) {
        if index > self.applied || index <= self.log.snapshot().index {
            return;
        }
        let term = self
            .log
            .term(index)
            .expect("an applied, uncompacted index has a term");
        self.log.compact(Snapshot { index, term, data });
    }

    /// True when [`Raft::ready`] has something to hand out.
    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || self.unstable_from.is_some()
            || self.received_snapshot.is_some()
            || self.append_needed
            || self.heartbeat_needed
            || self.commit > self.applied
            || !self.read_states.is_empty()
            || !self.dropped_reads.is_empty()
            || self.hard_state() != self.persisted
    }

    /// Drains the work for the host (see [`Ready`]).
    pub fn ready(&mut self) -> Ready {
        if self.append_needed {
            self.append_needed = false;
            self.broadcast_append();
            if self.quorum == 1 {
                self.maybe_commit();
            }
        }
        if self.heartbeat_needed {
            self.broadcast_heartbeat();
        }
        let entries = match self.unstable_from.take() {
            Some(from) => self.log.slice(from, self.log.last_index(), usize::MAX),
            None => Vec::new(),
        };
        let snapshot = self.received_snapshot.take();
        let hs = self.hard_state();
        let term_or_vote_changed = hs.term != self.persisted.term || hs.vote != self.persisted.vote;
        let hard_state = (hs != self.persisted).then(|| hs.clone());
        self.persisted = hs;
        let committed = self
            .log
            .slice(self.applied + 1, self.commit, self.cfg.apply_entries_max);
        if let Some(last) = committed.last() {
            self.applied = last.index;
        }
        Ready {
            must_sync: term_or_vote_changed || !entries.is_empty() || snapshot.is_some(),
            hard_state,
            snapshot,
            entries,
            messages: std::mem::take(&mut self.msgs),
            committed,
            read_states: std::mem::take(&mut self.read_states),
            dropped_reads: std::mem::take(&mut self.dropped_reads),
        }
    }

    /// The state that must be durable.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote.clone(),
            commit: self.commit,
        }
    }

    /// Handles one message from a peer.
    pub fn step(&mut self, m: Message) {
        if m.to != self.cfg.id || m.from == self.cfg.id || !self.cfg.peers.contains(&m.from) {
            return;
        }
        if let Err(why) = well_formed(&m) {
            // A message no correct peer sends must not change the log or the durable term.
            tracing::warn!(from = %m.from, term = m.term, "dropping a malformed peer message: {why}");
            return;
        }
        if m.term > self.term {
            match &m.body {
                Body::Vote { pre, .. } => {
                    if self.in_lease() {
                        // Leader stickiness: a live leader exists, so this candidate is
                        // disruptive (or partitioned); ignore it without adopting its term.
                        return;
                    }
                    if !pre {
                        self.become_follower(m.term, None);
                    }
                }
                Body::VoteResp {
                    pre: true,
                    granted: true,
                } => {}
                Body::Append { .. } | Body::Snapshot { .. } => {
                    self.become_follower(m.term, Some(m.from.clone()))
                }
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            match m.body {
                // Tell a stale leader or pre-candidate about the newer term.
                Body::Append { .. } | Body::Snapshot { .. } => self.send(
                    &m.from,
                    Body::AppendResp {
                        success: false,
                        index: 0,
                        hint: 0,
                        read_seq: 0,
                    },
                ),
                Body::Vote { pre: true, .. } => self.send(
                    &m.from,
                    Body::VoteResp {
                        pre: true,
                        granted: false,
                    },
                ),
                _ => {}
            }
            return;
        }
        match m.body {
            Body::Vote {
                pre,
                last_index,
                last_term,
            } => self.handle_vote(m.from, m.term, pre, last_index, last_term),
            Body::VoteResp { pre, granted } => self.handle_vote_resp(m.from, m.term, pre, granted),
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_seq,
            } => {
                self.follow(&m.from);
                self.handle_append(m.from, prev_index, prev_term, entries, commit, read_seq);
            }
            Body::AppendResp {
                success,
                index,
                hint,
                read_seq,
            } => self.handle_append_resp(m.from, success, index, hint, read_seq),
            Body::Snapshot { snapshot, read_seq } => {
                self.follow(&m.from);
                self.handle_snapshot(m.from, snapshot, read_seq);
            }
        }
    }

    fn in_lease(&self) -> bool {
        self.since_leader_contact < self.cfg.election_ticks
    }

    fn handle_vote(&mut self, from: NodeId, term: u64, pre: bool, last_index: u64, last_term: u64) {
        let up_to_date = self.log.is_up_to_date(last_index, last_term);
        let grant = if pre {
            term > self.term && up_to_date
        } else {
            term == self.term && self.vote.as_ref().is_none_or(|v| *v == from) && up_to_date
        };
        if grant && !pre {
            self.vote = Some(from.clone());
            self.election_elapsed = 0;
        }
        let reply_term = if pre && grant { term } else { self.term };
        self.msgs.push(Message {
            from: self.cfg.id.clone(),
            to: from,
            term: reply_term,
            body: Body::VoteResp {
                pre,
                granted: grant,
            },
        });
    }

    fn handle_vote_resp(&mut self, from: NodeId, term: u64, pre: bool, granted: bool) {
        let counts = match (pre, self.role) {
            (true, Role::PreCandidate) => term <= self.term + 1,
            (false, Role::Candidate) => term == self.term,
            _ => false,
        };
        if !counts {
            return;
        }
        self.votes.insert(from, granted);
        let yes = self.votes.values().filter(|g| **g).count();
        let no = self.votes.len() - yes;
        if yes >= self.quorum {
            if pre {
                self.campaign();
            } else {
                self.become_leader();
            }
        } else if no >= self.quorum {
            self.become_follower(self.term, None);
        }
    }

    /// An append or snapshot from the leader of our term: follow it.
    fn follow(&mut self, leader: &NodeId) {
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(leader.clone()));
        }
        self.leader = Some(leader.clone());
        self.election_elapsed = 0;
        self.since_leader_contact = 0;
    }

    /// Answers an append we did not take, with our last index as the hint where to resume.
    fn reject_append(&mut self, to: &NodeId, prev_index: u64, read_seq: u64) {
        let hint = self.log.last_index();
        self.send(
            to,
            Body::AppendResp {
                success: false,
                index: prev_index,
                hint,
                read_seq,
            },
        );
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        mut prev_index: u64,
        mut prev_term: u64,
        mut entries: Vec<Entry>,
        leader_commit: u64,
        read_seq: u64,
    ) {
        if prev_index < self.commit {
            // Entries up to our commit index are committed, hence identical to the leader's.
            let skip = ((self.commit - prev_index) as usize).min(entries.len());
            entries.drain(..skip);
            prev_index = self.commit;
            prev_term = self.log.term(self.commit).unwrap_or(0);
            if entries.is_empty() {
                let index = self.commit;
                return self.send(
                    &from,
                    Body::AppendResp {
                        success: true,
                        index,
                        hint: 0,
                        read_seq,
                    },
                );
            }
        }
        if self.log.term(prev_index) != Some(prev_term) {
            return self.reject_append(&from, prev_index, read_seq);
        }
        let last_new = prev_index + entries.len() as u64;
        if entries
            .iter()
            .any(|e| e.index <= self.commit && self.log.term(e.index) != Some(e.term))
        {
            // Only a broken or hostile peer asks to rewrite committed entries: refuse.
            tracing::error!(%from, prev_index, "refusing an append that conflicts with committed entries");
            return self.reject_append(&from, prev_index, read_seq);
        }
        for e in entries {
            if self.log.term(e.index) == Some(e.term) {
                continue;
            }
            self.unstable_from = Some(self.unstable_from.map_or(e.index, |u| u.min(e.index)));
            self.log.append(e);
        }
        self.commit = self.commit.max(leader_commit.min(last_new));
        self.send(
            &from,
            Body::AppendResp {
                success: true,
                index: last_new,
                hint: 0,
                read_seq,
            },
        );
    }

    fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot, read_seq: u64) {
        let index = snapshot.index;
        if index <= self.commit {
            let commit = self.commit;
            return self.send(
                &from,
                Body::AppendResp {
                    success: true,
                    index: commit,
                    hint: 0,
                    read_seq,
                },
            );
        }
        if self.log.term(index) == Some(snapshot.term) {
            self.commit = index;
        } else {
            tracing::info!(
                index,
                term = snapshot.term,
                "installing snapshot from leader"
            );
            self.log.reset(snapshot.clone());
            self.commit = index;
            self.applied = index;
            self.unstable_from = None;
            self.received_snapshot = Some(snapshot);
        }
        self.send(
            &from,
            Body::AppendResp {
                success: true,
                index,
                hint: 0,
                read_seq,
            },
        );
    }

    fn handle_append_resp(
        &mut self,
        from: NodeId,
        success: bool,
        index: u64,
        hint: u64,
        read_seq: u64,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        if read_seq > pr.read_seq_acked {
            pr.read_seq_acked = read_seq;
            self.advance_reads();
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if success {
            pr.match_index = pr.match_index.max(index);
            pr.next_index = pr.next_index.max(index + 1);
            pr.probing = false;
            pr.paused = false;
            pr.snapshot_wait = 0;
            let behind = pr.next_index <= self.log.last_index();
            if self.maybe_commit() {
                // Followers learn the new commit index promptly, not at the next heartbeat.
                self.append_needed = true;
            }
            if behind {
                self.send_append(&from);
            }
        } else {
            let stale = if pr.probing {
                index + 1 != pr.next_index
            } else {
                index <= pr.match_index
            };
            if hint < pr.match_index {
                // It lost entries it had acknowledged (its data directory was wiped or
                // restored from an old copy): start over from what it has, or it would
                // never be caught up while this leader lasts (next_index never went below
                // match_index + 1). Lowering a match index only delays commits, so a
                // delayed old rejection taken this way costs one probe.
                tracing::warn!(peer = %from, hint, match_index = pr.match_index, "follower lost acknowledged entries; probing again");
                pr.match_index = hint;
            } else if stale {
                return;
            }
            pr.next_index = (pr.match_index + 1).max(index.min(hint + 1));
            pr.probing = true;
            pr.paused = false;
            self.send_append(&from);
        }
    }

    /// Advances the commit index to the highest index a quorum holds, if it is of this term.
    fn maybe_commit(&mut self) -> bool {
        let mut matches: Vec<u64> = self.progress.values().map(|p| p.match_index).collect();
        matches.push(self.log.last_index());
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let n = matches[self.quorum - 1];
        if n <= self.commit || self.log.term(n) != Some(self.term) {
            return false;
        }
        let first_in_term = self.commit < self.term_start_index;
        self.commit = n;
        if first_in_term && self.commit >= self.term_start_index {
            for ctx in std::mem::take(&mut self.reads_before_term_commit) {
                self.start_read(ctx);
            }
        }
        true
    }

    fn advance_reads(&mut self) {
        let mut acked: Vec<u64> = self.progress.values().map(|p| p.read_seq_acked).collect();
        acked.push(self.read_seq);
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_seq = acked[self.quorum - 1];
        while let Some(&(seq, sent_at)) = self.seq_sent_at.front() {
            if seq > quorum_seq {
                break;
            }
            self.seq_sent_at.pop_front();
            self.lease_until_ms = self.lease_until_ms.max(sent_at + self.cfg.lease_ms);
        }
        while let Some(&(ctx, index, seq)) = self.pending_reads.front() {
            if seq > quorum_seq {
                break;
            }
            self.pending_reads.pop_front();
            self.read_states.push(ReadState { ctx, index });
        }
    }

    fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().cloned().collect();
        for p in peers {
            if !self.progress[&p].paused {
                self.send_append(&p);
            }
        }
    }

    /// A heartbeat round: numbered for reads, and it resumes paused probes.
    fn broadcast_heartbeat(&mut self) {
        self.heartbeat_needed = false;
        self.read_seq += 1;
        self.seq_sent_at.push_back((self.read_seq, self.now_ms));
        let peers: Vec<NodeId> = self.progress.keys().cloned().collect();
        for p in peers {
            let pr = self.progress.get_mut(&p).expect("peer has progress");
            pr.paused = false;
            pr.snapshot_wait = pr.snapshot_wait.saturating_sub(1);
            let prev = pr.next_index - 1;
            match self.log.term(prev) {
                Some(prev_term) if !pr.probing => {
                    pr.commit_sent = self.commit;
                    let body = Body::Append {
                        prev_index: prev,
                        prev_term,
                        entries: Vec::new(),
                        commit: self.commit,
                        read_seq: self.read_seq,
                    };
                    self.send(&p, body);
                }
                _ => self.send_append(&p),
            }
        }
    }

    fn send_append(&mut self, to: &NodeId) {
        let Some(pr) = self.progress.get_mut(to) else {
            return;
        };
        let prev_index = pr.next_index - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            // The entries it needs are compacted: send the snapshot, at most once a while.
            if pr.snapshot_wait > 0 {
                return;
            }
            pr.snapshot_wait = self.cfg.election_ticks / self.cfg.heartbeat_ticks.max(1) + 1;
            pr.probing = true;
            pr.paused = true;
            let body = Body::Snapshot {
                snapshot: self.log.snapshot().clone(),
                read_seq: self.read_seq,
            };
            return self.send(to, body);
        };
        let entries = self.log.slice(
            pr.next_index,
            self.log.last_index(),
            self.cfg.append_entries_max,
        );
        if pr.probing {
            pr.paused = true;
        } else if let Some(last) = entries.last() {
            // Replicate state: optimistically assume delivery and pipeline the next batch.
            pr.next_index = last.index + 1;
        } else if pr.commit_sent >= self.commit {
            // Nothing new for it, not even the commit index.
            return;
        }
        pr.commit_sent = self.commit;
        let body = Body::Append {
            prev_index,
            prev_term,
            entries,
            commit: self.commit,
            read_seq: self.read_seq,
        };
        self.send(to, body);
    }

    fn send(&mut self, to: &NodeId, body: Body) {
        self.msgs.push(Message {
            from: self.cfg.id.clone(),
            to: to.clone(),
            term: self.term,
            body,
        });
    }

    fn pre_campaign(&mut self) {
        self.reset_election_timer();
        if self.quorum == 1 {
            return self.campaign();
        }
        tracing::debug!(term = self.term, "election timeout; asking for pre-votes");
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes = HashMap::from([(self.cfg.id.clone(), true)]);
        self.request_votes(true);
    }

    fn campaign(&mut self) {
        self.reset_election_timer();
        self.term += 1;
        self.vote = Some(self.cfg.id.clone());
        self.role = Role::Candidate;
        self.leader = None;
        self.votes = HashMap::from([(self.cfg.id.clone(), true)]);
        tracing::info!(term = self.term, "starting election");
        if self.quorum == 1 {
            return self.become_leader();
        }
        self.request_votes(false);
    }

    fn request_votes(&mut self, pre: bool) {
        let term = if pre { self.term + 1 } else { self.term };
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for p in self.cfg.peers.iter().filter(|p| **p != self.cfg.id) {
            self.msgs.push(Message {
                from: self.cfg.id.clone(),
                to: p.clone(),
                term,
                body: Body::Vote {
                    pre,
                    last_index,
                    last_term,
                },
            });
        }
    }

    fn become_leader(&mut self) {
        tracing::info!(term = self.term, "became leader");
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id.clone());
        let next_index = self.log.last_index() + 1;
        self.progress = self
            .cfg
            .peers
            .iter()
            .filter(|p| **p != self.cfg.id)
            .map(|p| {
                (
                    p.clone(),
                    Progress {
                        next_index,
                        probing: true,
                        ..Progress::default()
                    },
                )
            })
            .collect();
        self.heartbeat_elapsed = 0;
        self.check_quorum_elapsed = 0;
        self.since_leader_contact = 0;
        self.lease_until_ms = 0;
        self.seq_sent_at.clear();
        self.term_start_index = next_index;
        self.append_own(Entry {
            term: self.term,
            index: next_index,
            data: Vec::new(),
        });
        self.append_needed = true;
    }

    fn append_own(&mut self, entry: Entry) {
        self.unstable_from = Some(
            self.unstable_from
                .map_or(entry.index, |u| u.min(entry.index)),
        );
        self.log.append(entry);
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if self.role == Role::Leader {
            self.dropped_reads
                .extend(self.pending_reads.drain(..).map(|(ctx, _, _)| ctx));
            self.dropped_reads
                .append(&mut self.reads_before_term_commit);
            self.progress.clear();
            self.lease_until_ms = 0;
            self.term_start_index = u64::MAX;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.reset_election_timer();
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let n = self.cfg.election_ticks.max(1);
        self.randomized_timeout = self.rng.random_range(n..2 * n);
    }
}

/// Checks what a correct peer always satisfies: appended entries are numbered on from
/// `prev_index`, their terms never decrease and none is newer than the message's term; a
/// snapshot is not newer than its message.
fn well_formed(m: &Message) -> Result<(), String> {
    match &m.body {
        Body::Append {
            prev_index,
            prev_term,
            entries,
            ..
        } => {
            if *prev_term > m.term {
                return Err(format!(
                    "prev_term {prev_term} is after the term {}",
                    m.term
                ));
            }
            let mut term = *prev_term;
            for (i, e) in entries.iter().enumerate() {
                let want = prev_index.checked_add(i as u64 + 1);
                if Some(e.index) != want {
                    return Err(format!(
                        "entry {i} has index {} after prev_index {prev_index}",
                        e.index
                    ));
                }
                if e.term < term || e.term > m.term {
                    return Err(format!(
                        "entry {} has term {} out of order",
                        e.index, e.term
                    ));
                }
                term = e.term;
            }
            Ok(())
        }
        Body::Snapshot { snapshot, .. } if snapshot.term > m.term => Err(format!(
            "snapshot term {} is after the term {}",
            snapshot.term, m.term
        )),
        _ => Ok(()),
    }
}
