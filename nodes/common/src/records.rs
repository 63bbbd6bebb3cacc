//! An append-only file of CRC-checked records (`[len u32][crc32 u32][payload]`, little
//! endian). Appends are buffered and written by `flush`, so one fsync covers many appends
//! (group commit). On open, a torn or corrupt tail is cut off at the last good record.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::fsutil;

/// Largest record accepted on read; a length over it marks the tail as garbage.
pub const RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;
const HEADER_BYTES: usize = 8;

/// An open record file.
pub struct RecordFile {
    path: PathBuf,
    file: File,
    buffer: Vec<u8>,
}

impl RecordFile {
    /// Opens (creating) `path` and returns every intact record in order. A torn tail (short
    /// header or payload, or a CRC mismatch) is truncated so later appends follow good data.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Vec<u8>>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, good_len) = parse(&bytes);
        if good_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                good_len,
                file_len = bytes.len(),
                "cutting a torn or corrupt tail off the record file"
            );
            file.set_len(good_len as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        if let Some(dir) = path.parent() {
            fsutil::sync_dir(dir)?;
        }
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
                buffer: Vec::new(),
            },
            records,
        ))
    }

    /// Queues one record; nothing reaches the file before [`RecordFile::flush`].
    pub fn append(&mut self, payload: &[u8]) {
        self.buffer
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buffer
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.buffer.extend_from_slice(payload);
    }

    /// Bytes queued and not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Writes the queued records; with `sync`, fsyncs them before returning.
    pub fn flush(&mut self, sync: bool) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.file.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Forgets queued records, as a process crash would (used by tests of `no-fsync`).
    pub fn discard_unflushed(&mut self) {
        self.buffer.clear();
    }

    /// Replaces the whole file by `records`, atomically and durably, and reopens it.
    pub fn rewrite<'a>(&mut self, records: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        let mut staging = Self {
            path: self.path.clone(),
            file: self.file.try_clone()?,
            buffer: Vec::new(),
        };
        for r in records {
            staging.append(r);
        }
        fsutil::write_atomic(&self.path, &staging.buffer)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.seek(SeekFrom::End(0))?;
        self.file = file;
        self.buffer.clear();
        Ok(())
    }
}

/// Splits `bytes` into intact records; returns them and the length of the good prefix.
pub fn parse(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= HEADER_BYTES {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        if len > RECORD_BYTES_MAX || bytes.len() - pos - HEADER_BYTES < len {
            break;
        }
        let payload = &bytes[pos + HEADER_BYTES..pos + HEADER_BYTES + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push(payload.to_vec());
        pos += HEADER_BYTES + len;
    }
    (records, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("faultline-records-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn records_survive_reopen_and_torn_tails_are_cut() {
        let dir = temp_dir("torn");
        let path = dir.join("wal");
        let (mut f, recs) = RecordFile::open(&path).unwrap();
        assert!(recs.is_empty());
        f.append(b"one");
        f.append(b"two");
        f.flush(true).unwrap();
        drop(f);
        // Simulate a torn write: half a header and a record whose payload is corrupt.
        let mut raw = std::fs::read(&path).unwrap();
        let good = raw.len();
        raw.extend_from_slice(&[5, 0, 0, 0, 1, 2, 3, 4, b'x']);
        std::fs::write(&path, &raw).unwrap();
        let (mut f, recs) = RecordFile::open(&path).unwrap();
        assert_eq!(recs, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good);
        f.append(b"three");
        f.discard_unflushed();
        f.append(b"four");
        f.flush(true).unwrap();
        drop(f);
        let (mut f, recs) = RecordFile::open(&path).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2], b"four");
        f.rewrite([b"only".as_slice()]).unwrap();
        f.append(b"after");
        f.flush(true).unwrap();
        drop(f);
        let (_, recs) = RecordFile::open(&path).unwrap();
        assert_eq!(recs, vec![b"only".to_vec(), b"after".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
