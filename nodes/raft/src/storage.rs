//! Durable Raft state: a write-ahead log of hard-state and entry records (CRC-framed, torn
//! tails cut on recovery) and a snapshot file replaced atomically. `persist` appends one
//! batch and fsyncs once, so every proposal gathered by one loop iteration shares a single
//! fsync (group commit).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_nodes_common::records::RecordFile;
use faultline_nodes_common::{codec, fsutil};
use serde::{Deserialize, Serialize};

use crate::message::{Entry, HardState, Snapshot};

/// With the `no-fsync` bug, how long appended records may sit in memory before being
/// written (still without fsync).
pub const NO_FSYNC_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
enum WalRecord {
    HardState(HardState),
    /// Entries from `entries[0].index` on; they replace any stored at or after that index.
    Entries(Vec<Entry>),
}

/// What a node finds on disk at start.
#[derive(Debug, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
}

/// The on-disk state of one Raft node.
pub struct Storage {
    dir: PathBuf,
    wal: RecordFile,
    /// The `no-fsync` bug: acknowledge before the log is durable.
    no_fsync: bool,
    last_flush: Instant,
}

impl Storage {
    /// Opens (creating) the data directory and recovers what it holds.
    pub fn open(dir: &Path, no_fsync: bool) -> anyhow::Result<(Self, Recovered)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let snapshot = read_snapshot(&dir.join("snapshot.bin"))?;
        let wal_path = dir.join("wal.log");
        let (wal, records) = RecordFile::open(&wal_path)
            .with_context(|| format!("opening {}", wal_path.display()))?;
        let mut hard_state = HardState::default();
        let mut entries: Vec<Entry> = Vec::new();
        for (i, raw) in records.iter().enumerate() {
            let record: WalRecord = codec::decode(raw)
                .with_context(|| format!("{}: record {i} does not decode", wal_path.display()))?;
            match record {
                WalRecord::HardState(hs) => hard_state = hs,
                WalRecord::Entries(batch) => {
                    let Some(first) = batch.first() else { continue };
                    let keep = entries.partition_point(|e| e.index < first.index);
                    entries.truncate(keep);
                    entries.extend(batch);
                }
            }
        }
        entries.retain(|e| e.index > snapshot.index);
        if hard_state.term < snapshot.term {
            hard_state.term = snapshot.term;
        }
        let storage = Self {
            dir: dir.to_path_buf(),
            wal,
            no_fsync,
            last_flush: Instant::now(),
        };
        Ok((
            storage,
            Recovered {
                hard_state,
                snapshot,
                entries,
            },
        ))
    }

    /// Appends a hard state and entries; durable on return when `must_sync` (unless the
    /// `no-fsync` bug is planted).
    pub fn persist(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[Entry],
        must_sync: bool,
    ) -> io::Result<()> {
        if !entries.is_empty() {
            self.wal
                .append(&codec::encode(&WalRecord::Entries(entries.to_vec())));
        }
        if let Some(hs) = hard_state {
            self.wal
                .append(&codec::encode(&WalRecord::HardState(hs.clone())));
        }
        if self.no_fsync {
            return self.tick();
        }
        self.wal.flush(must_sync)
    }

    /// Periodic work: with `no-fsync`, write (never fsync) what has waited long enough.
    pub fn tick(&mut self) -> io::Result<()> {
        if self.no_fsync && self.last_flush.elapsed() >= NO_FSYNC_FLUSH_INTERVAL {
            self.last_flush = Instant::now();
            self.wal.flush(false)?;
        }
        Ok(())
    }

    /// Saves a snapshot and rewrites the log to hold only `hard_state` and `entries` after
    /// it. The snapshot goes first: a crash in between leaves a snapshot plus a log whose
    /// older entries recovery skips.
    pub fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
        hard_state: &HardState,
        entries: &[Entry],
    ) -> io::Result<()> {
        let body = codec::encode(snapshot);
        let mut bytes = crc32fast::hash(&body).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        fsutil::write_atomic(&self.dir.join("snapshot.bin"), &bytes)?;
        let mut records = vec![codec::encode(&WalRecord::HardState(hard_state.clone()))];
        if !entries.is_empty() {
            records.push(codec::encode(&WalRecord::Entries(entries.to_vec())));
        }
        self.wal.rewrite(records.iter().map(|r| r.as_slice()))
    }

    /// Writes and fsyncs everything (clean shutdown).
    pub fn sync(&mut self) -> io::Result<()> {
        self.wal.flush(true)
    }

    /// Loses what was not written, as SIGKILL would (tests of `no-fsync`).
    pub fn simulate_crash(mut self) {
        self.wal.discard_unflushed();
    }
}

fn read_snapshot(path: &Path) -> anyhow::Result<Snapshot> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Snapshot::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    anyhow::ensure!(
        bytes.len() >= 4,
        "{}: too short to be a snapshot",
        path.display()
    );
    let (crc, body) = bytes.split_at(4);
    anyhow::ensure!(
        crc32fast::hash(body).to_le_bytes() == crc,
        "{}: checksum mismatch (the file was written atomically, so this is corruption)",
        path.display()
    );
    codec::decode(body).with_context(|| format!("{}: does not decode", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(term: u64, index: u64, d: &str) -> Entry {
        Entry {
            term,
            index,
            data: d.as_bytes().to_vec(),
        }
    }

    #[test]
    fn recovery_replays_overwrites_and_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rec) = Storage::open(dir.path(), false).unwrap();
        assert_eq!(rec.entries.len(), 0);
        let hs = HardState {
            term: 2,
            vote: Some("n1".into()),
            commit: 1,
        };
        s.persist(Some(&hs), &[e(1, 1, "a"), e(1, 2, "b"), e(1, 3, "c")], true)
            .unwrap();
        s.persist(None, &[e(2, 2, "B")], true).unwrap();
        drop(s);
        let (mut s, rec) = Storage::open(dir.path(), false).unwrap();
        assert_eq!(rec.hard_state, hs);
        assert_eq!(rec.entries, vec![e(1, 1, "a"), e(2, 2, "B")]);
        let snap = Snapshot {
            index: 1,
            term: 1,
            data: b"state".to_vec(),
        };
        s.save_snapshot(&snap, &hs, &[e(2, 2, "B")]).unwrap();
        s.persist(None, &[e(2, 3, "C")], true).unwrap();
        drop(s);
        let (_, rec) = Storage::open(dir.path(), false).unwrap();
        assert_eq!(rec.snapshot, snap);
        assert_eq!(rec.entries, vec![e(2, 2, "B"), e(2, 3, "C")]);
    }

    #[test]
    fn bug_no_fsync_loses_acknowledged_entries_on_crash() {
        for (no_fsync, survives) in [(false, true), (true, false)] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, _) = Storage::open(dir.path(), no_fsync).unwrap();
            // `persist` returning is what the server treats as "durable, may acknowledge".
            s.persist(None, &[e(1, 1, "acked")], true).unwrap();
            s.simulate_crash();
            let (_, rec) = Storage::open(dir.path(), no_fsync).unwrap();
            assert_eq!(!rec.entries.is_empty(), survives, "no_fsync={no_fsync}");
        }
    }

    #[test]
    fn corrupt_snapshot_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot.bin"), b"garbage!").unwrap();
        let err = Storage::open(dir.path(), false).err().unwrap();
        assert!(format!("{err:#}").contains("snapshot.bin"));
    }
}
