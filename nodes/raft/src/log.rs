//! The in-memory Raft log: a snapshot point followed by contiguous entries.

use crate::message::{Entry, Snapshot};

/// Entries `(snapshot.index, last]`; everything up to `snapshot.index` is compacted away.
#[derive(Debug, Default)]
pub struct RaftLog {
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl RaftLog {
    /// A log restored from a snapshot and the entries after it; entries not following the
    /// snapshot contiguously are dropped.
    pub fn restore(snapshot: Snapshot, entries: Vec<Entry>) -> Self {
        let mut log = Self {
            snapshot,
            entries: Vec::new(),
        };
        for e in entries {
            if e.index == log.last_index() + 1 {
                log.entries.push(e);
            } else if e.index > log.snapshot.index {
                break;
            }
        }
        log
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term of entry `index`, if this log still knows it.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        self.entries.get((index - self.snapshot.index - 1) as usize)
    }

    /// Entries `[from, to]`, at most `max` of them; empty when out of range.
    pub fn slice(&self, from: u64, to: u64, max: usize) -> Vec<Entry> {
        if from <= self.snapshot.index || from > to || from > self.last_index() {
            return Vec::new();
        }
        let start = (from - self.snapshot.index - 1) as usize;
        let end = ((to.min(self.last_index()) - self.snapshot.index) as usize)
            .min(start.saturating_add(max));
        self.entries[start..end].to_vec()
    }

    /// Appends `entry`, first dropping any entries at or after its index.
    pub fn append(&mut self, entry: Entry) {
        debug_assert!(entry.index > self.snapshot.index && entry.index <= self.last_index() + 1);
        self.entries
            .truncate((entry.index - self.snapshot.index - 1) as usize);
        self.entries.push(entry);
    }

    /// Drops entries up to `snapshot.index`, which the host has captured in `snapshot`.
    pub fn compact(&mut self, snapshot: Snapshot) {
        if snapshot.index <= self.snapshot.index {
            return;
        }
        let keep_from = (snapshot.index - self.snapshot.index) as usize;
        self.entries.drain(..keep_from.min(self.entries.len()));
        self.snapshot = snapshot;
    }

    /// Replaces the whole log by a snapshot received from the leader.
    pub fn reset(&mut self, snapshot: Snapshot) {
        self.entries.clear();
        self.snapshot = snapshot;
    }

    /// True when a log ending at (`last_term`, `last_index`) is at least as up to date as
    /// this one (Raft §5.4.1, the election restriction).
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(term: u64, index: u64) -> Entry {
        Entry {
            term,
            index,
            data: vec![],
        }
    }

    #[test]
    fn append_truncates_conflicts_and_compaction_keeps_the_tail() {
        let mut log = RaftLog::default();
        for i in 1..=5 {
            log.append(e(1, i));
        }
        log.append(e(2, 4));
        assert_eq!((log.last_index(), log.last_term()), (4, 2));
        log.compact(Snapshot {
            index: 2,
            term: 1,
            data: vec![],
        });
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(1), None);
        assert_eq!(log.slice(3, 10, 100).len(), 2);
        assert_eq!(log.slice(2, 10, 100).len(), 0);
        assert!(log.is_up_to_date(4, 2) && !log.is_up_to_date(9, 1));
        let restored = RaftLog::restore(
            Snapshot {
                index: 2,
                term: 1,
                data: vec![],
            },
            vec![e(1, 1), e(1, 3), e(2, 5)],
        );
        assert_eq!(restored.last_index(), 3);
    }
}
