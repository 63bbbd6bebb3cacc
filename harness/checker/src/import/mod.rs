//! Importers for other checkers' history files (`tests/data/FORMATS.md`), and
//! format guessing. Every importer yields faultline `Op`s in file order, with `index` the
//! event's position; the model's `Convention` then gives `fail` and nil reads the meaning
//! the source format has.

mod edn;
mod etcd;
pub mod txn_edn;

use crate::history::{HistoryError, Op};
use std::path::Path;

/// A history file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// faultline's `history.jsonl` (DESIGN §2).
    Jsonl,
    /// Jepsen etcd logs as Porcupine's tests read them.
    PorcupineEtcd,
    /// Porcupine's kv logs (one EDN map per line).
    PorcupineKv,
    /// Knossos/Jepsen EDN histories.
    KnossosEdn,
    /// Jepsen/Elle transactional EDN histories (`:f :txn`, list-append or rw-register).
    ElleEdn,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &[
        "jsonl",
        "porcupine-etcd",
        "porcupine-kv",
        "knossos-edn",
        "elle-edn",
    ];

    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "jsonl" => Format::Jsonl,
            "porcupine-etcd" | "porcupine-etcd-log" => Format::PorcupineEtcd,
            "porcupine-kv" => Format::PorcupineKv,
            "knossos-edn" | "edn" => Format::KnossosEdn,
            "elle-edn" => Format::ElleEdn,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::PorcupineEtcd => "porcupine-etcd",
            Format::PorcupineKv => "porcupine-kv",
            Format::KnossosEdn => "knossos-edn",
            Format::ElleEdn => "elle-edn",
        }
    }

    /// The model (and its conventions) a history of this format is checked with unless
    /// the user names one; `None`: decide from the ops (`guess_model`).
    pub fn default_model(self, ops: &[Op]) -> Option<&'static str> {
        match self {
            Format::Jsonl => crate::guess_model(ops),
            Format::PorcupineEtcd => Some("cas-register:porcupine"),
            Format::PorcupineKv => Some("kv"),
            Format::ElleEdn => None,
            Format::KnossosEdn => match crate::guess_model(ops) {
                None => Some("mutex"),
                Some("cas-register") => Some("cas-register:knossos"),
                other => other,
            },
        }
    }

    /// The model's initial state in this format's source tests, when it differs from the
    /// model's own default (Knossos' multi-register tests start from x = y = 0).
    pub fn default_initial(self, model: &str) -> Option<serde_json::Value> {
        match (self, model) {
            (Format::KnossosEdn, "multi-register") => Some(serde_json::json!({"x": 0, "y": 0})),
            _ => None,
        }
    }
}

/// Guesses a format from the start of a file's text.
pub fn guess_format(text: &str) -> Format {
    let start = text.trim_start();
    if txn_edn::looks_like(text) {
        Format::ElleEdn
    } else if start.starts_with("INFO") {
        Format::PorcupineEtcd
    } else if start.starts_with("{:") {
        Format::PorcupineKv
    } else if start.starts_with('[') || start.starts_with('(') || start.starts_with(';') {
        Format::KnossosEdn
    } else {
        Format::Jsonl
    }
}

/// Parses a history's text; `file` only names the source in errors.
pub fn parse(text: &str, format: Format, file: &str) -> Result<Vec<Op>, HistoryError> {
    match format {
        Format::Jsonl => {
            crate::history::HistoryReader::new(std::io::Cursor::new(text.as_bytes()), file)
                .collect()
        }
        Format::PorcupineEtcd => etcd::parse(text, file),
        Format::PorcupineKv => edn::parse_kv(text, file),
        Format::KnossosEdn => edn::parse_knossos(text, file),
        Format::ElleEdn => txn_edn::parse(text, file),
    }
}

/// How many bytes the format is guessed from: the first event of every format fits.
const GUESS_BYTES: usize = 4096;

/// A history file read by [`read_history_file`]: its format, its ops and, for `history.jsonl`,
/// what the read found (a torn last line).
#[derive(Debug, Clone)]
pub struct ReadFile {
    pub format: Format,
    pub history: crate::history::ReadHistory,
}

/// Reads a history file in `format`, or in the format guessed from its start. A
/// `history.jsonl` is streamed line by line (never held as text); the other formats are
/// small files of other tools and are parsed from their text.
pub fn read_history_file(path: &Path, format: Option<Format>) -> Result<ReadFile, HistoryError> {
    use std::io::{BufRead, Read};
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| HistoryError::io(&name, e))?;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let format = match format {
        Some(format) => format,
        None => {
            let start = reader.fill_buf().map_err(|e| HistoryError::io(&name, e))?;
            let start = &start[..start.len().min(GUESS_BYTES)];
            guess_format(&String::from_utf8_lossy(start))
        }
    };
    let history = match format {
        Format::Jsonl => {
            let mut lines = crate::history::HistoryReader::new(reader, name);
            let ops = lines.by_ref().collect::<Result<Vec<Op>, _>>()?;
            crate::history::ReadHistory {
                ops,
                summary: lines.summary().clone(),
            }
        }
        _ => {
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .map_err(|e| HistoryError::io(&name, e))?;
            crate::history::ReadHistory {
                ops: parse(&text, format, &name)?,
                summary: Default::default(),
            }
        }
    };
    Ok(ReadFile { format, history })
}

/// [`read_history_file`], its format and ops only.
pub fn read_file(path: &Path, format: Option<Format>) -> Result<(Format, Vec<Op>), HistoryError> {
    read_history_file(path, format).map(|r| (r.format, r.history.ops))
}
