//! The values the Raft core exchanges with its peers and its host: log entries, durable
//! state, snapshots and peer messages.

use serde::{Deserialize, Serialize};

/// A node's name, as given on the command line (`n1`).
pub type NodeId = String;

/// One log entry. Empty `data` is the no-op a new leader appends to commit its term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub data: Vec<u8>,
}

/// What must be durable before the node answers anyone (Raft §5.1): term, vote, and the
/// commit index (the last only to re-apply quickly after a restart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<NodeId>,
    pub commit: u64,
}

/// A state-machine snapshot covering the log up to and including `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

/// A message between peers; `term` is the sender's term (or, for a pre-vote, the term the
/// sender would campaign in).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: u64,
    pub body: Body,
}

/// The kinds of peer message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// RequestVote, or PreVote when `pre` (Raft thesis §9.6).
    Vote {
        pre: bool,
        last_index: u64,
        last_term: u64,
    },
    VoteResp {
        pre: bool,
        granted: bool,
    },
    /// AppendEntries; with no entries it is a heartbeat. `read_seq` numbers heartbeat rounds
    /// for ReadIndex and leases: a response echoes it.
    Append {
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
        read_seq: u64,
    },
    /// On success `index` is the follower's match index; on rejection it is the rejected
    /// `prev_index` and `hint` is the follower's last index.
    AppendResp {
        success: bool,
        index: u64,
        hint: u64,
        read_seq: u64,
    },
    /// InstallSnapshot (Raft §7), answered with an `AppendResp`.
    Snapshot {
        snapshot: Snapshot,
        read_seq: u64,
    },
}

/// A linearizable read may be served once the state machine has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub ctx: u64,
    pub index: u64,
}
