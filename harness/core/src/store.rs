//! The run folder of DESIGN §4: `results/<test-name>/<YYYYMMDDTHHMMSSZ>/`, its files, and the
//! `latest` link.

use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const TEST_JSON: &str = "test.json";
pub const HISTORY_JSONL: &str = "history.jsonl";
pub const RESULTS_JSON: &str = "results.json";
pub const LOG_FILE: &str = "faultline.log";
pub const NODES_DIR: &str = "nodes";
pub const LATEST: &str = "latest";

/// RFC 3339 in UTC with seconds, as test.json's `start_time`.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `YYYYMMDDTHHMMSSZ`: the run folder's name.
pub fn run_dir_name(at: SystemTime) -> String {
    rfc3339(at).replace(['-', ':'], "")
}

/// Creates the run folder with its `nodes/`; two runs in the same second get `…Z-1`, `…Z-2`.
pub fn create_run_dir(results: &Path, test_name: &str, at: SystemTime) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !test_name.is_empty()
            && !test_name.contains(['/', '\\'])
            && test_name != "."
            && test_name != "..",
        "test name {test_name:?} cannot be a folder name"
    );
    let test_dir = results.join(test_name);
    std::fs::create_dir_all(&test_dir)
        .with_context(|| format!("cannot create {}", test_dir.display()))?;
    let base = run_dir_name(at);
    for attempt in 0..1000 {
        let name = match attempt {
            0 => base.clone(),
            n => format!("{base}-{n}"),
        };
        let dir = test_dir.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::create_dir_all(dir.join(NODES_DIR))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    anyhow::bail!("too many runs of {test_name} in the second {base}")
}

/// Points `<test dir>/latest` at `run_dir` (a relative symlink), replacing an old link
/// atomically so a reader never sees it missing. Returns the link's path.
pub fn link_latest(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let name = run_dir
        .file_name()
        .with_context(|| format!("{} has no folder name", run_dir.display()))?;
    let test_dir = run_dir
        .parent()
        .with_context(|| format!("{} has no parent folder", run_dir.display()))?;
    let tmp = test_dir.join(format!(".latest.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let link = test_dir.join(LATEST);
    std::fs::rename(&tmp, &link).with_context(|| format!("cannot replace {}", link.display()))?;
    Ok(link)
}

/// Writes JSON (pretty, with a final newline) through a temporary file, so a reader never
/// sees half a file. test.json and results.json are written by this one function, by
/// `faultline run` and `faultline report` alike.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn folder_names_follow_design_and_never_collide() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_676_400); // 2026-11-26T07:00:00Z
        assert_eq!(rfc3339(at), "2026-11-26T07:00:00Z");
        assert_eq!(run_dir_name(at), "20261126T070000Z");
        let root = tempfile::tempdir().unwrap();
        let a = create_run_dir(root.path(), "raft-register", at).unwrap();
        let b = create_run_dir(root.path(), "raft-register", at).unwrap();
        assert!(a.ends_with("raft-register/20261126T070000Z"));
        assert!(b.ends_with("raft-register/20261126T070000Z-1"));
        assert!(a.join(NODES_DIR).is_dir());
        link_latest(&a).unwrap();
        link_latest(&b).unwrap();
        let latest = root.path().join("raft-register").join(LATEST);
        assert_eq!(
            std::fs::read_link(latest).unwrap(),
            Path::new("20261126T070000Z-1")
        );
        assert!(create_run_dir(root.path(), "../x", at).is_err());
    }
}
