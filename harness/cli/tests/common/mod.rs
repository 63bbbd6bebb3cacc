//! What the CLI's integration tests share: running the `faultline` binary, the node binary a
//! run deploys, finding a run's folder, and lease-unsafe's row. Each test binary uses a part.
#![allow(dead_code)]

use faultline_workloads::binary::{env_or_build, NODE_BINARY};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `faultline` binary under test with `args` (stdin closed) and waits for it.
pub fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("run faultline")
}

/// Stdout and stderr of `out`, for assertion messages and `contains` checks.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The node binary runs deploy: `FAULTLINE_NODE_BINARY`, else built by cargo.
pub fn node_binary() -> PathBuf {
    env_or_build("FAULTLINE_NODE_BINARY", "faultline-node", NODE_BINARY)
        .expect("building faultline-node")
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The one run folder under `results/<name>/` (the `latest` link aside), once it exists.
pub fn find_run_dir(results: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(results.join(name))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "latest")
        .map(|e| e.path())
        .find(|p| p.is_dir())
}

/// The one run folder under `results/<name>/`, which must exist.
pub fn run_dir(results: &Path, name: &str) -> PathBuf {
    find_run_dir(results, name)
        .unwrap_or_else(|| panic!("no run folder under {}", results.join(name).display()))
}

/// A JSON file of a run folder (results.json, test.json).
pub fn json_file(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `bugs.toml`'s lease-unsafe row, with its timing as given: the leader is cut off while its
/// clock lags, and clients give up after `client_timeout_ms` so writes reach the new leader
/// while the old one still serves reads. 100 values, so that a stale read is not explained
/// away by a timed-out write of the same value.
pub fn lease_unsafe_row(
    nemesis_interval_s: &'static str,
    client_timeout_ms: &'static str,
    concurrency: &'static str,
) -> Vec<&'static str> {
    vec![
        "--db",
        "raft",
        "--read-mode",
        "lease",
        "--bug",
        "lease-unsafe",
        "--nemesis",
        "partition,clock",
        "--nemesis-overlap",
        "--partition",
        "primaries",
        "--clock-targets",
        "all",
        "--clock-faults",
        "bump-back",
        "--nemesis-interval",
        nemesis_interval_s,
        "--client-timeout-ms",
        client_timeout_ms,
        "--concurrency",
        concurrency,
        "--register-values",
        "100",
    ]
}
