//! One event of a history, exactly as a line of `history.jsonl` stores it (DESIGN §2).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What an event says about its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation started.
    Invoke,
    /// It happened, with this value.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may have happened at any time after its invoke, or never.
    Info,
}

/// Who issued an event: a client process, or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(id) => s.serialize_u64(*id),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(u64),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Id(id) => Ok(Process::Client(id)),
            Raw::Name(name) if name == "nemesis" => Ok(Process::Nemesis),
            Raw::Name(other) => Err(serde::de::Error::custom(format!(
                "process must be a non-negative integer or \"nemesis\", got {other:?}"
            ))),
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(id) => write!(f, "{id}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

/// The key an operation acts on. Operations on different keys are independent and are
/// checked apart (P-compositionality).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Key {
    Int(i64),
    Str(String),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(k) => write!(f, "{k}"),
            Key::Str(k) => f.write_str(k),
        }
    }
}

/// One event of a history (one line of `history.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// 0, 1, 2, … in file order.
    pub index: u64,
    /// Nanoseconds since the test started, from the controller's monotonic clock.
    pub time: u64,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub process: Process,
    /// Operation name: `read`, `write`, `cas`, `acquire`, … or a nemesis verb.
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// `[expected, new]` for cas; `null` where unknown (a read's invoke).
    #[serde(default)]
    pub value: serde_json::Value,
    /// The host the client talked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a history could not be read. Every variant names the file and, for bad content,
/// the 1-based line, so a person can open the file at the right place.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    // The I/O error is part of the message, not a `source`: printed with its chain it
    // would otherwise appear twice.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
}

impl HistoryError {
    pub(crate) fn parse(file: &str, line: usize, message: impl Into<String>) -> Self {
        HistoryError::Parse {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn io(file: &str, error: std::io::Error) -> Self {
        HistoryError::Io {
            file: file.to_string(),
            error,
        }
    }
}

/// A last line that ends without a newline and does not parse: the controller (or its
/// machine) died in the middle of writing it. It is skipped, and said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// 1-based line number of the torn line.
    pub line: usize,
    pub bytes: usize,
}

/// What a whole read found besides the events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Lines read, blank ones included, the torn one not.
    pub lines: usize,
    pub events: usize,
    pub torn_tail: Option<TornTail>,
}

impl ReadSummary {
    /// The one warning a torn tail deserves, for the terminal and results.json.
    pub fn warning(&self, file: &str) -> Option<String> {
        self.torn_tail.as_ref().map(|t| {
            format!(
                "{file}:{}: the last line is torn ({} bytes without a newline, as a crash \
                 mid-write leaves it); skipped it and kept the {} line(s) before it",
                t.line, t.bytes, self.lines
            )
        })
    }
}

/// Event indexes seen so far. Indexes of a faultline history are 0, 1, 2, … so a bitmap
/// covers them; an index far beyond the events read (an imported or hostile file) goes to
/// a set instead of growing the bitmap.
#[derive(Default)]
pub(crate) struct SeenIndexes {
    bits: Vec<u64>,
    sparse: rustc_hash::FxHashSet<u64>,
}

/// The bitmap grows up to this many indexes past the number of events read.
const DENSE_INDEX_SLACK: u64 = 1 << 20;

impl SeenIndexes {
    /// False when `index` was seen before.
    pub(crate) fn insert(&mut self, index: u64, events: u64) -> bool {
        if index < events.saturating_add(DENSE_INDEX_SLACK) {
            let (word, bit) = ((index / 64) as usize, index % 64);
            if word >= self.bits.len() {
                self.bits.resize(word + 1, 0);
            }
            let fresh = self.bits[word] & (1 << bit) == 0;
            self.bits[word] |= 1 << bit;
            fresh && !self.sparse.contains(&index)
        } else {
            self.sparse.insert(index)
        }
    }
}

/// The error of an event index used twice (both readers of `history.jsonl` say it).
pub(crate) fn duplicate_index(index: u64) -> String {
    format!(
        "event index {index} appears twice (an earlier line has it); every event must have \
         its own index"
    )
}

/// Streams the ops of a `history.jsonl` one line at a time, so a history larger than memory
/// can be filtered or counted. Blank lines are skipped; a torn last line is skipped and
/// reported in [`HistoryReader::summary`]; any other bad line (not UTF-8, not an event, an
/// event index used twice) is an error that names the file and the line.
pub struct HistoryReader<R> {
    reader: R,
    buf: Vec<u8>,
    file: String,
    summary: ReadSummary,
    seen: SeenIndexes,
    done: bool,
}

impl<R: std::io::BufRead> HistoryReader<R> {
    /// `file` is only used to name the source in errors.
    pub fn new(reader: R, file: impl Into<String>) -> Self {
        HistoryReader {
            reader,
            buf: Vec::new(),
            file: file.into(),
            summary: ReadSummary::default(),
            seen: SeenIndexes::default(),
            done: false,
        }
    }

    /// Lines and events read so far, and the torn tail once the end is reached.
    pub fn summary(&self) -> &ReadSummary {
        &self.summary
    }

    /// Ends the read at a torn last line, noting it.
    fn torn(&mut self, line: usize, bytes: usize) -> Option<Result<Op, HistoryError>> {
        self.summary.torn_tail = Some(TornTail { line, bytes });
        self.done = true;
        None
    }

    fn fail(&mut self, err: HistoryError) -> Option<Result<Op, HistoryError>> {
        self.done = true;
        Some(Err(err))
    }
}

impl<R: std::io::BufRead> Iterator for HistoryReader<R> {
    type Item = Result<Op, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(error) => return self.fail(HistoryError::io(&self.file, error)),
            };
            if n == 0 {
                self.done = true;
                return None;
            }
            let line = self.summary.lines + 1;
            let complete = self.buf.last() == Some(&b'\n');
            let text = match std::str::from_utf8(&self.buf) {
                Ok(text) => text,
                Err(_) if !complete => return self.torn(line, n),
                Err(e) => {
                    let message =
                        format!("not UTF-8 (invalid byte at column {})", e.valid_up_to() + 1);
                    let err = HistoryError::parse(&self.file, line, message);
                    return self.fail(err);
                }
            };
            if text.trim().is_empty() {
                self.summary.lines = line;
                continue;
            }
            let op = match serde_json::from_str::<Op>(text) {
                Ok(op) => op,
                // Only a last line can be torn; a bad line with a newline after it is not.
                Err(_) if !complete => return self.torn(line, n),
                Err(e) => {
                    let message = format!(
                        "expected one op object {{index, time, type, process, f, key?, value}}: {e}"
                    );
                    let err = HistoryError::parse(&self.file, line, message);
                    return self.fail(err);
                }
            };
            self.summary.lines = line;
            if !self.seen.insert(op.index, self.summary.events as u64) {
                let err = HistoryError::parse(&self.file, line, duplicate_index(op.index));
                return self.fail(err);
            }
            self.summary.events += 1;
            return Some(Ok(op));
        }
    }
}

/// A whole history read into memory, with what the read found.
#[derive(Debug, Clone, Default)]
pub struct ReadHistory {
    pub ops: Vec<Op>,
    pub summary: ReadSummary,
}

/// Reads a whole `history.jsonl` (see [`HistoryReader`] for what it accepts).
pub fn read_history(path: impl AsRef<std::path::Path>) -> Result<ReadHistory, HistoryError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| HistoryError::io(&name, e))?;
    let mut reader = HistoryReader::new(std::io::BufReader::new(file), name);
    let ops = reader.by_ref().collect::<Result<Vec<Op>, _>>()?;
    Ok(ReadHistory {
        ops,
        summary: reader.summary().clone(),
    })
}

/// Reads a whole `history.jsonl`, its ops only (a torn tail is dropped silently; use
/// [`read_history`] to hear of it).
pub fn read_jsonl(path: impl AsRef<std::path::Path>) -> Result<Vec<Op>, HistoryError> {
    read_history(path).map(|h| h.ops)
}

/// Writes ops as `history.jsonl` lines (used by importers' tests and the generator; the
/// controller has its own appending writer).
pub fn write_jsonl<W: std::io::Write>(mut w: W, ops: &[Op]) -> std::io::Result<()> {
    for op in ops {
        serde_json::to_writer(&mut w, op)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// How an operation ended; `Pending`: it never completed before the history ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
        }
    }
}

/// One operation: the position of its invoke event and of its completion (`None`: still
/// pending when the history ended), as positions in the history slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub invoke: usize,
    pub complete: Option<usize>,
    pub outcome: Outcome,
}

impl Operation {
    /// Latency in nanoseconds, for completed ops.
    pub fn latency_ns(&self, ops: &[Op]) -> Option<u64> {
        self.complete
            .map(|c| ops[c].time.saturating_sub(ops[self.invoke].time))
    }

    /// The value that best describes the op: the completion's when it has one (a read's
    /// result), else the invoke's.
    pub fn value<'a>(&self, ops: &'a [Op]) -> &'a serde_json::Value {
        match self.complete {
            Some(c) if !ops[c].value.is_null() => &ops[c].value,
            _ => &ops[self.invoke].value,
        }
    }
}

/// A history's events paired into operations.
#[derive(Debug, Clone, Default)]
pub struct Paired {
    /// Client operations in invoke order.
    pub clients: Vec<Operation>,
    /// Nemesis operations in invoke order (faults may overlap, so they pair by `f`).
    pub nemesis: Vec<Operation>,
    /// Events that break DESIGN §2's sequential processes, first one first. The pairing
    /// goes on past them (a report still draws the run); a checker refuses the history.
    pub problems: Vec<String>,
}

/// Pairs each client invoke with the next completion of the same process (DESIGN §2: a
/// process is sequential), and each nemesis invoke with the next completion of its `f`.
/// An `info` with no open invoke is left out (Knossos does the same); any other
/// irregularity is named in `problems` and the pairing goes on.
pub fn pair_ops(ops: &[Op]) -> Paired {
    let mut open_client: rustc_hash::FxHashMap<u64, usize> = Default::default();
    let mut open_nemesis: rustc_hash::FxHashMap<&str, usize> = Default::default();
    let mut out = Paired::default();
    for (pos, op) in ops.iter().enumerate() {
        let fresh = Operation {
            invoke: pos,
            complete: None,
            outcome: Outcome::Pending,
        };
        let outcome = match op.kind {
            OpType::Invoke => None,
            OpType::Ok => Some(Outcome::Ok),
            OpType::Fail => Some(Outcome::Fail),
            OpType::Info => Some(Outcome::Info),
        };
        let p = match op.process {
            Process::Client(p) => p,
            Process::Nemesis => {
                match outcome {
                    None => {
                        open_nemesis.insert(op.f.as_str(), out.nemesis.len());
                        out.nemesis.push(fresh);
                    }
                    Some(outcome) => {
                        if let Some(i) = open_nemesis.remove(op.f.as_str()) {
                            out.nemesis[i].complete = Some(pos);
                            out.nemesis[i].outcome = outcome;
                        }
                    }
                }
                continue;
            }
        };
        match outcome {
            None => {
                if let Some(prev) = open_client.insert(p, out.clients.len()) {
                    out.problems.push(format!(
                        "op index {}: process {p} invokes while its op at index {} is still open",
                        op.index, ops[out.clients[prev].invoke].index
                    ));
                }
                out.clients.push(fresh);
            }
            Some(outcome) => match open_client.remove(&p) {
                Some(i) => {
                    if ops[out.clients[i].invoke].f != op.f {
                        out.problems.push(format!(
                            "op index {}: process {p} completes {:?} but its open op is {:?}",
                            op.index, op.f, ops[out.clients[i].invoke].f
                        ));
                    }
                    out.clients[i].complete = Some(pos);
                    out.clients[i].outcome = outcome;
                }
                None if op.kind == OpType::Info => {}
                None => out.problems.push(format!(
                    "op index {}: {:?} completion of process {p} has no open invoke",
                    op.index, op.kind
                )),
            },
        }
    }
    out
}

/// The client operations of a well-formed history, in invoke order; the first problem of
/// [`pair_ops`] otherwise. What the checkers call.
pub fn pair_operations(ops: &[Op]) -> Result<Vec<Operation>, String> {
    let paired = pair_ops(ops);
    match paired.problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(paired.clients),
    }
}
