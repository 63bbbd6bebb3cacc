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
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
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
}

/// Streams the ops of a `history.jsonl` one line at a time, so a history larger than memory
/// can be filtered or counted. Blank lines are skipped; any other bad line is an error that
/// names the file and the line.
pub struct JsonlReader<R> {
    lines: std::io::Lines<R>,
    line: usize,
    file: String,
}

impl<R: std::io::BufRead> JsonlReader<R> {
    /// `file` is only used to name the source in errors.
    pub fn new(reader: R, file: impl Into<String>) -> Self {
        JsonlReader {
            lines: reader.lines(),
            line: 0,
            file: file.into(),
        }
    }
}

impl<R: std::io::BufRead> Iterator for JsonlReader<R> {
    type Item = Result<Op, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = match self.lines.next()? {
                Ok(text) => text,
                Err(source) => {
                    return Some(Err(HistoryError::Io {
                        file: self.file.clone(),
                        source,
                    }))
                }
            };
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            return Some(serde_json::from_str::<Op>(&text).map_err(|e| {
                HistoryError::parse(
                    &self.file,
                    self.line,
                    format!(
                        "expected one op object {{index, time, type, process, f, key?, value}}: {e}"
                    ),
                )
            }));
        }
    }
}

/// Reads a whole `history.jsonl`.
pub fn read_jsonl(path: impl AsRef<std::path::Path>) -> Result<Vec<Op>, HistoryError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| HistoryError::Io {
        file: name.clone(),
        source,
    })?;
    JsonlReader::new(std::io::BufReader::new(file), name).collect()
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

/// One operation: the position of its invoke event and of its completion (`None`: still
/// pending when the history ended), as positions in the history slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub invoke: usize,
    pub complete: Option<usize>,
}

/// Pairs each client invoke with the next completion of the same process (DESIGN §2: a
/// process is sequential). Nemesis events are left out, and so is an `info` with no open
/// invoke (Knossos does the same). Returns operations in invoke order.
pub fn pair_operations(ops: &[Op]) -> Result<Vec<Operation>, String> {
    let mut open: rustc_hash::FxHashMap<u64, usize> = Default::default();
    let mut out: Vec<Operation> = Vec::new();
    for (pos, op) in ops.iter().enumerate() {
        let Process::Client(p) = op.process else {
            continue;
        };
        match op.kind {
            OpType::Invoke => {
                if let Some(prev) = open.insert(p, out.len()) {
                    return Err(format!(
                        "op index {}: process {p} invokes while its op at index {} is still open",
                        op.index, ops[out[prev].invoke].index
                    ));
                }
                out.push(Operation {
                    invoke: pos,
                    complete: None,
                });
            }
            OpType::Ok | OpType::Fail | OpType::Info => match open.remove(&p) {
                Some(i) => {
                    if ops[out[i].invoke].f != op.f {
                        return Err(format!(
                            "op index {}: process {p} completes {:?} but its open op is {:?}",
                            op.index, op.f, ops[out[i].invoke].f
                        ));
                    }
                    out[i].complete = Some(pos);
                }
                None if op.kind == OpType::Info => {}
                None => {
                    return Err(format!(
                        "op index {}: {:?} completion of process {p} has no open invoke",
                        op.index, op.kind
                    ))
                }
            },
        }
    }
    Ok(out)
}
