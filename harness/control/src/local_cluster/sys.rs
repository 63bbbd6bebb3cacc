//! Small system helpers of the local cluster: finding tools, running them with errors that
//! say what failed, signalling processes by PID, and a cross-process lock.

use anyhow::{bail, Context};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where tools live on Debian, in case `PATH` (e.g. under sudo or cargo) lacks the sbin dirs.
const TOOL_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The absolute path of a tool, from `PATH` or the standard directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(TOOL_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

pub fn tool(name: &str) -> anyhow::Result<PathBuf> {
    find_tool(name).with_context(|| format!("`{name}` not found in PATH or {TOOL_DIRS:?}"))
}

/// Runs a tool and returns its stdout; a failure names the command, status and stderr.
pub fn run<S: AsRef<OsStr>>(name: &str, args: &[S]) -> anyhow::Result<String> {
    let program = tool(name)?;
    let out = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", program.display()))?;
    if !out.status.success() {
        let line: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        bail!(
            "`{name} {}` failed ({}): {}",
            line.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a tool whose failure is expected at times (deleting what may not exist).
pub fn run_ok<S: AsRef<OsStr>>(name: &str, args: &[S]) -> bool {
    run(name, args).is_ok()
}

/// Whether a network interface of this name exists in the root namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Whether the iptables `rule` (a chain and its match, without `-A`/`-D`) is in place.
pub fn iptables_rule_present(rule: &[String]) -> bool {
    let mut args = vec!["-w".to_string(), "-C".to_string()];
    args.extend_from_slice(rule);
    run_ok("iptables", &args)
}

/// The FORWARD rule that lets frames cross `bridge`: with
/// `net.bridge.bridge-nf-call-iptables=1` they traverse the root namespace's FORWARD chain,
/// where a DROP policy (Docker sets one) would cut the cluster's hosts apart. `comment` names
/// the cluster, so the rule is found and removed exactly.
pub fn bridge_forward_rule(bridge: &str, comment: &str) -> Vec<String> {
    [
        "FORWARD",
        "-i",
        bridge,
        "-o",
        bridge,
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
        "ACCEPT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Creates `bridge` holding the controller's `address` (CIDR), brings it up, and inserts the
/// iptables `rule` that lets its traffic through unless it is there already.
pub fn create_bridge(bridge: &str, address: &str, rule: &[String]) -> anyhow::Result<()> {
    run("ip", &["link", "add", bridge, "type", "bridge"])?;
    run("ip", &["addr", "add", address, "dev", bridge])?;
    run("ip", &["link", "set", bridge, "up"])?;
    if !iptables_rule_present(rule) {
        let mut args = vec!["-w".to_string(), "-I".to_string()];
        args.extend_from_slice(rule);
        run("iptables", &args).context("cannot allow bridged traffic in FORWARD")?;
    }
    Ok(())
}

/// Deletes `bridge` if it exists, and every copy of the iptables `rule` that a cluster's
/// `up` added to let bridged traffic through.
pub fn remove_bridge_and_rule(bridge: &str, rule: &[String]) {
    if link_exists(bridge) {
        run_ok("ip", &["link", "del", bridge]);
    }
    // Bounded: one rule per `up`, so a handful at most even after repeated crashes.
    for _ in 0..16 {
        let mut args = vec!["-w".to_string(), "-D".to_string()];
        args.extend_from_slice(rule);
        if !run_ok("iptables", &args) {
            break;
        }
    }
}

/// True while the process exists and is not a zombie (a zombie is dead, just not reaped).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => false,
    }
}

/// The process's command line, arguments joined by spaces.
pub fn cmdline(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

pub fn signal(pid: i32, sig: i32) {
    if pid > 1 {
        // SAFETY: kill has no memory-safety preconditions; a stale PID just fails.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Sends TERM to every PID, waits up to `wait` for them to die, then KILLs the rest and
/// waits once more. Returns the PIDs that still live (should be none).
pub fn terminate(pids: &[i32], wait: Duration) -> Vec<i32> {
    let mut pids: Vec<i32> = pids.iter().copied().filter(|&p| p > 1).collect();
    pids.sort_unstable();
    pids.dedup();
    for &pid in &pids {
        signal(pid, libc::SIGTERM);
    }
    for sig in [Some(libc::SIGKILL), None] {
        let deadline = Instant::now() + wait;
        while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        pids.retain(|&p| alive(p));
        if let Some(sig) = sig {
            for &pid in &pids {
                signal(pid, sig);
            }
        }
    }
    pids
}

/// An exclusive `flock` on a file, released on drop. Serialises cluster set-up and teardown
/// across processes (concurrent first-time `ip netns add` calls race on `/run/netns`).
pub struct FileLock {
    _file: fs::File,
}

impl FileLock {
    pub fn acquire(path: &Path) -> anyhow::Result<FileLock> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        // SAFETY: the descriptor is valid for the life of `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            bail!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminate_kills_by_pid_and_counts_zombies_as_dead() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(alive(pid));
        // Until the child has exec'd, its command line is still ours.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cmdline(pid).unwrap_or_default().starts_with("sleep 30") {
            assert!(Instant::now() < deadline, "child never became `sleep 30`");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The child stays a zombie until we reap it: `terminate` must still see it as dead.
        let left = terminate(&[pid], Duration::from_secs(2));
        assert!(left.is_empty());
        assert!(!child.wait().unwrap().success());
    }

    #[test]
    fn run_reports_command_and_stderr() {
        let err = run("ls", &["/nonexistent-faultline-dir"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ls /nonexistent-faultline-dir"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
        assert!(find_tool("sh").is_some());
    }
}
