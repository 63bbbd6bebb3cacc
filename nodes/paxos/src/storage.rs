//! Durable CASPaxos state: acceptor states in an append-only record file (the latest
//! record per key wins; rewritten compactly when it grows), fsynced once per batch (group
//! commit), and the proposer's ballot counter, reserved in blocks so a restarted node
//! never reuses a ballot.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use faultline_nodes_common::records::RecordFile;
use faultline_nodes_common::{codec, fsutil};

use crate::core::AcceptorState;

/// Ballot counters reserved on disk at a time.
pub const BALLOT_BLOCK: u64 = 1000;
/// Rewrite the acceptor file when it holds this many records more than there are keys.
pub const STALE_RECORDS_MAX: usize = 100_000;

/// The acceptor's file.
pub struct AcceptorStore {
    file: RecordFile,
    records: usize,
}

impl AcceptorStore {
    /// Opens `dir/acceptor.log` and returns the latest state of every key.
    pub fn open(dir: &Path) -> anyhow::Result<(Self, HashMap<String, AcceptorState>)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let path = dir.join("acceptor.log");
        let (file, raw) =
            RecordFile::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut keys = HashMap::new();
        for (i, r) in raw.iter().enumerate() {
            let (k, st): (String, AcceptorState) = codec::decode(r)
                .with_context(|| format!("{}: record {i} does not decode", path.display()))?;
            keys.insert(k, st);
        }
        Ok((
            Self {
                file,
                records: raw.len(),
            },
            keys,
        ))
    }

    /// Queues the new state of `key`; durable after [`AcceptorStore::sync`].
    pub fn record(&mut self, key: &str, state: &AcceptorState) {
        self.file.append(&codec::encode(&(key, state)));
        self.records += 1;
    }

    /// Writes and fsyncs everything queued; compacts the file when mostly stale.
    pub fn sync(&mut self, all: &HashMap<String, AcceptorState>) -> io::Result<()> {
        if self.records > all.len() + STALE_RECORDS_MAX {
            let encoded: Vec<Vec<u8>> = all.iter().map(|(k, s)| codec::encode(&(k, s))).collect();
            self.file.rewrite(encoded.iter().map(|e| e.as_slice()))?;
            self.records = all.len();
            return Ok(());
        }
        self.file.flush(true)
    }
}

/// The proposer's ballot counter.
pub struct BallotStore {
    path: PathBuf,
    next: u64,
    reserved: u64,
}

impl BallotStore {
    /// Opens `dir/ballot`; counters below the reserved mark may have been used before a
    /// crash, so the new run starts above it.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("ballot");
        let reserved = match std::fs::read_to_string(&path) {
            Ok(t) => t
                .trim()
                .parse::<u64>()
                .with_context(|| format!("{}: not a number", path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self {
            path,
            next: reserved + 1,
            reserved,
        })
    }

    /// The highest counter this node has used or seen.
    pub fn current(&self) -> u64 {
        self.next - 1
    }

    /// A fresh counter above `at_least`, durably reserved before it is returned.
    pub fn next_above(&mut self, at_least: u64) -> io::Result<u64> {
        self.next = self.next.max(at_least + 1);
        let c = self.next;
        if c > self.reserved {
            let reserved = c + BALLOT_BLOCK;
            fsutil::write_atomic(&self.path, format!("{reserved}\n").as_bytes())?;
            self.reserved = reserved;
        }
        self.next += 1;
        Ok(c)
    }

    /// Notes a counter seen from another node, so the next ballot is above it.
    pub fn observe(&mut self, counter: u64) {
        self.next = self.next.max(counter + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Ballot, Register};

    #[test]
    fn ballots_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BallotStore::open(dir.path()).unwrap();
        let a = s.next_above(0).unwrap();
        let b = s.next_above(0).unwrap();
        assert!(b > a);
        s.observe(5000);
        let c = s.next_above(0).unwrap();
        assert!(c > 5000);
        drop(s);
        let mut s = BallotStore::open(dir.path()).unwrap();
        assert!(
            s.next_above(0).unwrap() > c,
            "a restarted node starts above every ballot it used"
        );
    }

    #[test]
    fn acceptor_state_survives_restart_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, keys) = AcceptorStore::open(dir.path()).unwrap();
        assert!(keys.is_empty());
        let mut all = HashMap::new();
        for i in 0..5u64 {
            let s = AcceptorState {
                promised: Ballot {
                    counter: i,
                    node: "n1".into(),
                },
                accepted: Ballot {
                    counter: i,
                    node: "n1".into(),
                },
                register: Register {
                    value: Some(i.to_string()),
                    writer: None,
                },
            };
            st.record("k", &s);
            all.insert("k".to_string(), s);
        }
        st.sync(&all).unwrap();
        drop(st);
        let (_, keys) = AcceptorStore::open(dir.path()).unwrap();
        assert_eq!(keys["k"].register.value.as_deref(), Some("4"));
    }
}
