//! Reading `tests/data/MANIFEST.tsv`: which file, which format and model, what
//! verdict upstream asserts and what Porcupine took. Used by the bench-data test and the
//! benchmark.

use crate::import::Format;
use crate::verdict::Validity;
use std::path::{Path, PathBuf};

/// One row of MANIFEST.tsv.
#[derive(Debug, Clone)]
pub struct Row {
    pub path: PathBuf,
    pub format: Format,
    /// Our model name for the row's model and format (conventions included).
    pub model: &'static str,
    pub initial: Option<serde_json::Value>,
    pub expected: Validity,
    pub op_count: usize,
    pub porcupine_s: Option<f64>,
    /// Porcupine with the unpartitioned kv model (kv rows only); `None` also when it timed out.
    pub porcupine_nopartition_s: Option<String>,
}

/// The third-party histories kept in the repository (`harness/checker/tests/data`, see its README).
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Reads MANIFEST.tsv of `dir`; errors name the line.
pub fn read_manifest(dir: &Path) -> Result<Vec<Row>, String> {
    let file = dir.join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("{}: no column {name}", file.display()))
    };
    let (c_path, c_format, c_model, c_ops, c_expected, c_initial, c_porc, c_nopart) = (
        col("path")?,
        col("format")?,
        col("model")?,
        col("op_count")?,
        col("expected_verdict")?,
        col("initial_state")?,
        col("porcupine_median_seconds")?,
        col("porcupine_kv_nopartition_median_seconds")?,
    );
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let at = |i: usize| fields.get(i).copied().unwrap_or("");
        let bad = |what: String| format!("{}:{}: {what}", file.display(), n + 2);
        let format = Format::parse(at(c_format))
            .ok_or_else(|| bad(format!("unknown format {:?}", at(c_format))))?;
        let (model, initial) = match (format, at(c_model), at(c_initial)) {
            (Format::PorcupineEtcd, "cas-register", _) => ("cas-register:porcupine", None),
            (Format::PorcupineKv, "kv", _) => ("kv", None),
            (Format::KnossosEdn, "cas-register", init) => (
                "cas-register:knossos",
                Some(
                    serde_json::from_str(init)
                        .map_err(|e| bad(format!("initial {init:?}: {e}")))?,
                ),
            ),
            (Format::KnossosEdn, "multi-register", _) => {
                ("multi-register", Some(serde_json::json!({"x": 0, "y": 0})))
            }
            (Format::KnossosEdn, "mutex", _) => ("mutex", None),
            (f, m, _) => return Err(bad(format!("no model for {m} in {}", f.name()))),
        };
        let expected = match at(c_expected) {
            "linearizable" => Validity::Valid,
            "not-linearizable" => Validity::Invalid,
            "unknown" => Validity::Unknown,
            other => return Err(bad(format!("unknown verdict {other:?}"))),
        };
        rows.push(Row {
            path: dir.join(at(c_path)),
            format,
            model,
            initial,
            expected,
            op_count: at(c_ops).parse().map_err(|_| bad("bad op_count".into()))?,
            porcupine_s: at(c_porc).parse().ok(),
            porcupine_nopartition_s: Some(at(c_nopart).to_string()).filter(|s| !s.is_empty()),
        });
    }
    Ok(rows)
}

/// The load average (1, 5, 15 min) as /proc/loadavg says, printed beside every benchmark:
/// the development machine is shared.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The median of some timings (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
