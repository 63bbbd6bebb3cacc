//! The replicated state machine a Raft server drives. Implement it to put another service
//! (for example sessions and ephemeral nodes of a lock service) on the same log and server.

/// A deterministic state machine fed committed log entries in order, on every replica.
pub trait StateMachine: Send + 'static {
    /// What applying one command answers to the client that proposed it.
    type Output: Send + 'static;

    /// Applies the command `data` committed at `index`. Must be deterministic and must not
    /// panic on any bytes: every replica applies the same entries.
    fn apply(&mut self, index: u64, data: &[u8]) -> Self::Output;

    /// Serializes the whole state (for log compaction and lagging followers).
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state by a snapshot.
    fn restore(&mut self, data: &[u8]) -> anyhow::Result<()>;

    /// Whether `restore` would accept `data`, without changing anything. A snapshot from a
    /// peer is checked with it before the log is replaced, so a node never persists a
    /// snapshot it cannot restore (a restart would fail on it forever).
    fn check_snapshot(&self, data: &[u8]) -> anyhow::Result<()>;
}
