//! The durable history: events are numbered and timed in one place, then appended to
//! `history.jsonl` by a writer thread that writes and flushes one batch at a time.

use faultline_checker::history::{Key, OpType, Process};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The writer serialises at most this many events before it writes and flushes, so a
/// crash loses little even when the clients outrun the disk.
const BATCH_EVENTS_MAX: usize = 4096;

/// The writer wakes this often to write what was queued. Waking on a timer instead of on
/// every event keeps futex calls off the clients' path; it bounds how long an event can
/// sit in memory before it reaches the file.
const FLUSH_INTERVAL: Duration = Duration::from_millis(2);

/// Past this many queued events `backlogged` turns true and the client workers wait for
/// the writer, so a fast client cannot fill memory with unwritten history.
const QUEUE_EVENTS_MAX: usize = 200_000;

/// One event as a client or the nemesis reports it; `History::record` adds index and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: OpType,
    pub process: Process,
    pub f: String,
    pub key: Option<Key>,
    pub value: Value,
    pub node: Option<String>,
    pub error: Option<String>,
}

/// `Event` with a static op name and a shared node name (see `History::record_client`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientEvent {
    pub kind: OpType,
    pub process: Process,
    pub f: &'static str,
    pub key: Option<Key>,
    pub value: Value,
    pub node: Option<Arc<str>>,
    pub error: Option<String>,
}

/// A queued event: serialised exactly as `faultline_checker::history::Op` (same fields, same
/// order, same omissions), without the allocations building an `Op` would take.
#[derive(Serialize)]
struct Record {
    index: u64,
    time: u64,
    #[serde(rename = "type")]
    kind: OpType,
    process: Process,
    f: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Key>,
    value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A cheap handle for recording events; clone it into every client task and the nemesis.
#[derive(Clone)]
pub struct History {
    shared: Arc<Shared>,
}

/// Owns the writer thread; `finish` drains the queue, syncs the file and reports errors.
pub struct HistoryWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<u64>>>,
    path: PathBuf,
}

struct Shared {
    start: Instant,
    state: Mutex<State>,
    /// Signalled only by `finish`; the writer otherwise wakes every `FLUSH_INTERVAL`.
    closing: Condvar,
    queued: AtomicUsize,
}

struct State {
    next_index: u64,
    queue: Vec<Record>,
    closed: bool,
}

impl History {
    /// Creates (truncating) `path` and starts the writer thread. `start` is time zero of
    /// the test: every event's `time` is measured from it on the monotonic clock.
    pub fn create(path: &Path, start: Instant) -> io::Result<(History, HistoryWriter)> {
        let file = File::create(path)?;
        let shared = Arc::new(Shared {
            start,
            state: Mutex::new(State {
                next_index: 0,
                queue: Vec::with_capacity(BATCH_EVENTS_MAX),
                closed: false,
            }),
            closing: Condvar::new(),
            queued: AtomicUsize::new(0),
        });
        let writer_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || write_loop(&writer_shared, file))?;
        Ok((
            History {
                shared: shared.clone(),
            },
            HistoryWriter {
                shared,
                thread: Some(thread),
                path: path.to_owned(),
            },
        ))
    }

    /// Numbers, timestamps and queues one event; returns its index.
    ///
    /// Index and time are taken under the same lock, so file order is time order, and an
    /// event recorded after another returned is after it in the file: a completion
    /// recorded before an invoke is recorded really did precede it (real-time order).
    pub fn record(&self, event: Event) -> u64 {
        self.push(Record {
            index: 0,
            time: 0,
            kind: event.kind,
            process: event.process,
            f: Cow::Owned(event.f),
            key: event.key,
            value: event.value,
            node: event.node.map(Arc::from),
            error: event.error,
        })
    }

    /// `record` for the client workers' hot path: the op name is static and the node name
    /// shared, so recording allocates nothing of its own.
    pub fn record_client(&self, event: ClientEvent) -> u64 {
        self.push(Record {
            index: 0,
            time: 0,
            kind: event.kind,
            process: event.process,
            f: Cow::Borrowed(event.f),
            key: event.key,
            value: event.value,
            node: event.node,
            error: event.error,
        })
    }

    fn push(&self, mut record: Record) -> u64 {
        let mut state = self.lock();
        let index = state.next_index;
        state.next_index += 1;
        record.index = index;
        record.time = self.shared.start.elapsed().as_nanos() as u64;
        state.queue.push(record);
        self.shared
            .queued
            .store(state.queue.len(), Ordering::Relaxed);
        index
    }

    /// True while the writer is more than `QUEUE_EVENTS_MAX` events behind: producers
    /// should wait a little before recording more.
    pub fn backlogged(&self) -> bool {
        self.shared.queued.load(Ordering::Relaxed) > QUEUE_EVENTS_MAX
    }

    /// Nanoseconds since the test started, on the clock `record` uses.
    pub fn elapsed_ns(&self) -> u64 {
        self.shared.start.elapsed().as_nanos() as u64
    }

    /// How many events have been recorded so far.
    pub fn len(&self) -> u64 {
        self.lock().next_index
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-changed (every
        // critical section is a push or a swap), so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HistoryWriter {
    /// Writes what is queued, syncs the file to disk and returns how many events the file
    /// holds. Events recorded after this are dropped.
    pub fn finish(mut self) -> io::Result<u64> {
        self.close_and_join()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn close_and_join(&mut self) -> io::Result<u64> {
        {
            let mut state = self
                .shared
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.closed = true;
        }
        self.shared.closing.notify_one();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("the history writer thread panicked"))?,
            None => Err(io::Error::other("the history writer was already finished")),
        }
    }
}

impl Drop for HistoryWriter {
    fn drop(&mut self) {
        // Never leave events in memory: a run that bails out still gets its history.
        if self.thread.is_some() {
            let _ = self.close_and_join();
        }
    }
}

fn write_loop(shared: &Shared, file: File) -> io::Result<u64> {
    let mut file = file;
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH_EVENTS_MAX);
    let mut bytes: Vec<u8> = Vec::with_capacity(BATCH_EVENTS_MAX * 160);
    let mut written = 0u64;
    loop {
        let closed = {
            let mut state = shared
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if state.queue.is_empty() && !state.closed {
                state = shared
                    .closing
                    .wait_timeout(state, FLUSH_INTERVAL)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            std::mem::swap(&mut state.queue, &mut batch);
            shared.queued.store(0, Ordering::Relaxed);
            state.closed && batch.is_empty()
        };
        if closed {
            file.sync_all()?;
            return Ok(written);
        }
        for chunk in batch.chunks(BATCH_EVENTS_MAX) {
            bytes.clear();
            for op in chunk {
                serde_json::to_writer(&mut bytes, op).map_err(io::Error::other)?;
                bytes.push(b'\n');
            }
            // One write per batch: the file is never more than one batch behind the
            // clients, and a SIGKILLed controller leaves only whole lines behind it
            // except, at worst, a torn last line of the batch being written.
            file.write_all(&bytes)?;
            written += chunk.len() as u64;
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::history::Op;
    use faultline_checker::read_jsonl as read_history;
    use serde_json::json;

    fn event(kind: OpType, process: u64, value: Value) -> Event {
        Event {
            kind,
            process: Process::Client(process),
            f: "write".into(),
            key: Some(Key::Int(1)),
            value,
            node: Some("n1".into()),
            error: None,
        }
    }

    #[test]
    fn events_from_many_threads_land_in_index_and_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let (history, writer) = History::create(&path, Instant::now()).unwrap();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let history = history.clone();
                std::thread::spawn(move || {
                    for i in 0..5000u64 {
                        history.record(event(OpType::Invoke, t, json!(i)));
                        history.record(event(OpType::Ok, t, json!(i)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(writer.finish().unwrap(), 40_000);
        let ops = read_history(&path).unwrap();
        assert_eq!(ops.len(), 40_000);
        for (i, pair) in ops.windows(2).enumerate() {
            assert_eq!(pair[0].index, i as u64);
            assert!(pair[0].time <= pair[1].time, "time went back at {i}");
        }
        // Each thread's own events keep their order: invoke i, ok i, invoke i+1, …
        for t in 0..4u64 {
            let mine: Vec<_> = ops
                .iter()
                .filter(|op| op.process == Process::Client(t))
                .collect();
            for (n, op) in mine.iter().enumerate() {
                assert_eq!(op.value, json!((n / 2) as u64));
                let want = if n % 2 == 0 {
                    OpType::Invoke
                } else {
                    OpType::Ok
                };
                assert_eq!(op.kind, want);
            }
        }
    }

    #[test]
    fn events_reach_the_file_before_the_writer_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let (history, writer) = History::create(&path, Instant::now()).unwrap();
        history.record(event(OpType::Invoke, 0, json!(7)));
        // Flushed as it happens: the line shows up while the writer still runs.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 1 {
                let op: Op = serde_json::from_str(text.trim()).unwrap();
                assert_eq!(op.value, json!(7));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the event never reached the file"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(writer);
    }

    #[test]
    fn a_record_serialises_exactly_as_an_op() {
        let op = Op {
            index: 3,
            time: 99,
            kind: OpType::Info,
            process: Process::Nemesis,
            f: "kill".into(),
            key: Some(Key::Str("k".into())),
            value: json!([1, 2]),
            node: Some("n2".into()),
            error: Some("timed out".into()),
        };
        let record = Record {
            index: 3,
            time: 99,
            kind: OpType::Info,
            process: Process::Nemesis,
            f: Cow::Borrowed("kill"),
            key: Some(Key::Str("k".into())),
            value: json!([1, 2]),
            node: Some(Arc::from("n2")),
            error: Some("timed out".into()),
        };
        assert_eq!(
            serde_json::to_string(&record).unwrap(),
            serde_json::to_string(&op).unwrap()
        );
        let bare = Record {
            key: None,
            node: None,
            error: None,
            ..record
        };
        let bare_op = Op {
            key: None,
            node: None,
            error: None,
            ..op
        };
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            serde_json::to_string(&bare_op).unwrap()
        );
    }
}
