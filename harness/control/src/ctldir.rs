//! Control directories of the SSH master connections, and the clean-up of masters that a
//! crashed controller left behind.
//!
//! Every controller process keeps its master sockets under `/tmp/fl-ssh-<uid>/<pid>/`, next to
//! an `owner` file holding its PID and start time. A controller killed with SIGKILL leaves its
//! masters running (they persist until told to exit); the next controller finds directories
//! whose owner is gone, asks each master to exit through its socket, and removes them.
//! The root is short and fixed because a Unix socket path must stay short: OpenSSH binds the
//! control socket under a name 17 characters longer than `ControlPath`.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest control socket path we accept; beyond it `ssh` fails with an unhelpful message.
pub const SOCKET_PATH_CHARS_MAX: usize = 61;

/// How long one `ssh -O exit` may take before we give up on that master.
const MASTER_EXIT_WAIT_MAX: Duration = Duration::from_secs(3);

/// The root of all control directories of this user.
pub fn control_root() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    PathBuf::from(format!("/tmp/fl-ssh-{uid}"))
}

/// This process's control directory, created (after cleaning up stale ones) on first use.
pub fn process_dir() -> io::Result<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    let root = control_root();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)?;
    let cleaned = cleanup_stale_masters();
    if !cleaned.is_empty() {
        tracing::info!(dirs = ?cleaned, "removed SSH control dirs of dead controllers");
    }
    let pid = std::process::id();
    let dir = root.join(pid.to_string());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let start = process_start_time(pid).unwrap_or(0);
    fs::write(dir.join("owner"), format!("{pid} {start}\n"))?;
    Ok(DIR.get_or_init(|| dir))
}

/// A fresh directory for one [`crate::Control`]: masters, known_hosts. Removed on drop.
pub fn new_control_dir() -> io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("c")
        .rand_bytes(4)
        .tempdir_in(process_dir()?)?;
    // openssh adds `/.ssh-connectionXXXXXX/master` (29 chars) below it.
    let longest = dir.path().as_os_str().len() + 29;
    if longest > SOCKET_PATH_CHARS_MAX {
        return Err(io::Error::other(format!(
            "SSH control socket path under {} would be {longest} characters, over the limit of {SOCKET_PATH_CHARS_MAX}",
            dir.path().display()
        )));
    }
    Ok(dir)
}

/// Finds control directories whose controller process is dead, asks every master socket in
/// them to exit (`ssh -O exit -S <socket>`), and removes them. Returns the removed directories.
/// Runs automatically before the first connection of a process; safe to call any time.
pub fn cleanup_stale_masters() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(control_root()) else {
        return Vec::new();
    };
    let own = std::process::id();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || owner_alive(&path, pid) {
            continue;
        }
        for socket in master_sockets(&path) {
            exit_master(&socket);
        }
        if fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// True when the process that created `dir` still runs: same PID and same start time, so a
/// recycled PID does not keep a dead controller's masters alive.
fn owner_alive(dir: &Path, pid: u32) -> bool {
    let Some(now) = process_start_time(pid) else {
        return false;
    };
    match fs::read_to_string(dir.join("owner")) {
        Ok(text) => {
            let recorded = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u64>().ok());
            recorded.is_none_or(|r| r == now)
        }
        // Created but not yet written: the owner is alive if the PID is.
        Err(_) => true,
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot).
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Every Unix socket up to three levels below `dir`.
pub fn master_sockets(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_socket() {
                out.push(entry.path());
            } else if kind.is_dir() && depth > 0 {
                walk(&entry.path(), depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 3, &mut out);
    out
}

/// Asks the master behind `socket` to exit; bounded in time, errors ignored (a dead master's
/// socket just fails to connect).
pub fn exit_master(socket: &Path) {
    let child = Command::new("ssh")
        .arg("-O")
        .arg("exit")
        .arg("-S")
        .arg(socket)
        .arg("faultline-stale-master")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return;
    };
    let deadline = Instant::now() + MASTER_EXIT_WAIT_MAX;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable_and_stable() {
        let pid = std::process::id();
        let a = process_start_time(pid).expect("own /proc stat");
        assert_eq!(process_start_time(pid), Some(a));
        assert_eq!(process_start_time(u32::MAX), None);
    }

    #[test]
    fn control_dir_paths_fit_the_socket_limit() {
        let dir = new_control_dir().unwrap();
        assert!(dir.path().starts_with(process_dir().unwrap()));
        assert!(dir.path().as_os_str().len() + 29 <= SOCKET_PATH_CHARS_MAX);
    }
}
