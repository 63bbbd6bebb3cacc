//! SSH control of hosts: one multiplexed OpenSSH master connection per host, commands with
//! escaped arguments and timeouts, file upload and file/folder download.
//!
//! Every command runs on the host as `sh -c '<script>'`, where the script runs the escaped
//! argv under coreutils `timeout` (so a timed-out command is killed on the host, not just
//! abandoned) and then prints the exit status to stderr behind a marker. The status thus
//! travels separately from SSH's own exit code, which cannot tell "the command exited 255"
//! from "the connection broke" and which the `openssh` crate rewrites for 127.

use crate::ctldir;
use crate::error::ControlError;
use crate::escape::{shell_escape, shell_join};
use crate::hosts::HostSpec;
use openssh::Stdio;
use openssh::{KnownHosts, Session, SessionBuilder};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Concurrent commands per host; stock sshd allows 10 sessions per connection (`MaxSessions`).
pub const SESSIONS_PER_HOST_MAX: usize = 8;

/// Extra time the controller waits past a command's timeout for the host to kill it and
/// report, before giving up on the SSH channel itself.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// After the remote `timeout` sends TERM, how long until it sends KILL.
const KILL_AFTER_SECS: u32 = 2;

/// Keep-alive probes of the master; three missed probes close a dead connection.
const SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Marks the exit-status line the wrapper script appends to stderr.
const STATUS_MARKER: &[u8] = b"\n\x01faultline-exit:";

/// How to log in to the hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// Remote user; anything but `root` runs commands through `sudo -n`.
    pub username: String,
    /// Private key file; `None` uses the user's SSH agent and default keys.
    pub private_key: Option<PathBuf>,
    /// `true`: the host key must already be in `~/.ssh/known_hosts`. `false`: accept any key
    /// and record it in the control directory's `known_hosts` ([`Control::known_hosts`]).
    pub strict_host_key_checking: bool,
    /// Limit for setting up one master connection.
    pub connect_timeout: Duration,
    /// Limit for one command when no other is given ([`Remote::exec_timeout`]).
    pub command_timeout: Duration,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            username: "root".to_string(),
            private_key: None,
            strict_host_key_checking: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
        }
    }
}

/// What a finished remote command printed, and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Master connections to a set of hosts. Close it with [`Control::close`]; dropping it also
/// ends the masters once the last [`Remote`] clone is gone.
pub struct Control {
    remotes: Vec<Remote>,
    dir: Arc<tempfile::TempDir>,
}

/// One host under control. Cheap to clone; clones share the master connection.
#[derive(Clone)]
pub struct Remote {
    inner: Arc<RemoteInner>,
}

struct RemoteInner {
    spec: HostSpec,
    // Declared before `_dir` so the master exits before its control directory is removed.
    session: Session,
    sudo: bool,
    command_timeout: Duration,
    sessions: Semaphore,
    _dir: Arc<tempfile::TempDir>,
}

impl Control {
    /// Opens one master connection per host, all in parallel. Fails if any host cannot be
    /// reached (the error lists every failed host); connections already made are closed.
    pub async fn connect(hosts: &[HostSpec], ssh: &SshConfig) -> Result<Control, ControlError> {
        let all = || {
            hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (i, h) in hosts.iter().enumerate() {
            if hosts[..i].iter().any(|o| o.name == h.name) {
                return Err(ControlError::Connect {
                    host: h.name.clone(),
                    reason: "host name listed twice".into(),
                });
            }
        }
        // Blocking: the first call of a process also cleans up stale masters (`ssh -O exit`).
        let dir = tokio::task::spawn_blocking(ctldir::new_control_dir)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
            .map_err(|e| ControlError::Connect {
                host: all(),
                reason: format!("cannot create SSH control directory: {e}"),
            })?;
        let dir = Arc::new(dir);
        let mut tasks = tokio::task::JoinSet::new();
        for (i, spec) in hosts.iter().cloned().enumerate() {
            let (ssh, dir) = (ssh.clone(), dir.clone());
            tasks.spawn(async move { (i, connect_one(spec, &ssh, dir).await) });
        }
        let mut slots: Vec<Option<Remote>> = vec![None; hosts.len()];
        let mut failures = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, Ok(remote))) => slots[i] = Some(remote),
                Ok((i, Err(reason))) => failures.push((i, reason)),
                Err(e) => failures.push((usize::MAX, format!("connect task failed: {e}"))),
            }
        }
        let remotes: Vec<Remote> = slots.into_iter().flatten().collect();
        if !failures.is_empty() {
            failures.sort();
            let name = |i: usize| hosts.get(i).map_or("?", |h| h.name.as_str()).to_string();
            let host = failures
                .iter()
                .map(|(i, _)| name(*i))
                .collect::<Vec<_>>()
                .join(", ");
            let reason = failures
                .iter()
                .map(|(i, r)| format!("{}: {r}", name(*i)))
                .collect::<Vec<_>>()
                .join("; ");
            Control { remotes, dir }.close().await;
            return Err(ControlError::Connect { host, reason });
        }
        Ok(Control { remotes, dir })
    }

    pub fn remotes(&self) -> &[Remote] {
        &self.remotes
    }

    pub fn remote(&self, name: &str) -> Option<&Remote> {
        self.remotes.iter().find(|r| r.name() == name)
    }

    /// The file where accepted host keys are recorded (when not strict). It lives in the
    /// control directory and disappears with it; copy it into a run folder to keep it.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Ends every master connection and removes the control directory.
    pub async fn close(self) {
        for remote in self.remotes {
            match Arc::try_unwrap(remote.inner) {
                Ok(inner) => {
                    if let Err(e) = inner.session.close().await {
                        tracing::debug!(host = %inner.spec.name, error = %e, "closing SSH master");
                    }
                }
                // Clones are still out there; end the master anyway, their commands fail.
                Err(shared) => {
                    let socket = shared.session.control_socket().to_path_buf();
                    let _ = tokio::task::spawn_blocking(move || ctldir::exit_master(&socket)).await;
                }
            }
        }
    }
}

async fn connect_one(
    spec: HostSpec,
    ssh: &SshConfig,
    dir: Arc<tempfile::TempDir>,
) -> Result<Remote, String> {
    let mut builder = SessionBuilder::default();
    builder
        .user(ssh.username.clone())
        .port(spec.port)
        .connect_timeout(ssh.connect_timeout)
        .server_alive_interval(SERVER_ALIVE_INTERVAL)
        .control_directory(dir.path());
    if let Some(key) = &ssh.private_key {
        builder.keyfile(key);
    }
    if ssh.strict_host_key_checking {
        builder.known_hosts_check(KnownHosts::Strict);
    } else {
        builder
            .known_hosts_check(KnownHosts::Accept)
            .user_known_hosts_file(dir.path().join("known_hosts"));
    }
    // ConnectTimeout covers TCP and the SSH handshake only; bound authentication too.
    let limit = ssh.connect_timeout * 2 + TIMEOUT_GRACE;
    let session = match tokio::time::timeout(limit, builder.connect(&spec.address)).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return Err(format!("{}:{}: {e}", spec.address, spec.port)),
        Err(_) => {
            return Err(format!(
                "{}:{}: no connection after {limit:?}",
                spec.address, spec.port
            ))
        }
    };
    Ok(Remote {
        inner: Arc::new(RemoteInner {
            spec,
            session,
            sudo: ssh.username != "root",
            command_timeout: ssh.command_timeout,
            sessions: Semaphore::new(SESSIONS_PER_HOST_MAX),
            _dir: dir,
        }),
    })
}

/// What to feed a command's stdin.
enum Input<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A finished command with raw stdout.
struct RawOutput {
    status: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// Streams a folder as tar or a file as is, behind a one-byte type marker (`D` or `F`).
/// GNU tar exits 1 when a file changed while it was read (a live log): still a good copy.
const DOWNLOAD_SCRIPT: &str = r#"if [ -d "$1" ]; then printf D; tar -C "$1" -cf - . || [ $? -eq 1 ]; elif [ -f "$1" ]; then printf F; cat -- "$1"; else echo "no such file or folder: $1" >&2; exit 1; fi"#;

/// Writes stdin to a temporary file next to the target, then renames it into place, so a
/// running binary is replaced rather than overwritten ("text file busy") and readers never
/// see half a file. The size check ($3) keeps a transfer cut short (the controller's stdin
/// closed early) from replacing the target with a truncated copy.
const UPLOAD_SCRIPT: &str = r#"set -e; t="$1.fl-upload.$$"; trap 'rm -f -- "$t"' EXIT; mkdir -p -- "$(dirname -- "$1")"; cat > "$t"; n=$(wc -c < "$t"); if [ "$n" -ne "$3" ]; then echo "upload cut short: got $n of $3 bytes" >&2; exit 1; fi; chmod "$2" "$t"; mv -f -- "$t" "$1""#;

impl Remote {
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    pub fn address(&self) -> &str {
        &self.inner.spec.address
    }

    pub fn spec(&self) -> &HostSpec {
        &self.inner.spec
    }

    /// Runs `argv` (each word shell-escaped; `argv[0]` must be an executable, so wrap shell
    /// builtins and pipelines in `sh -c`) with the default command timeout; fails on a
    /// non-zero exit status.
    pub async fn exec(&self, argv: &[&str]) -> Result<ExecOutput, ControlError> {
        self.exec_timeout(argv, self.inner.command_timeout).await
    }

    /// As [`Remote::exec`], with its own timeout; on timeout the command is killed on the host.
    pub async fn exec_timeout(
        &self,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput, ControlError> {
        let out = self.exec_status_timeout(argv, timeout).await?;
        if out.status != 0 {
            return Err(ControlError::Failed {
                host: self.name().to_string(),
                command: shell_join(argv),
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
            });
        }
        Ok(out)
    }

    /// Runs `argv` and returns its output whatever its exit status (timeouts and SSH failures
    /// are still errors).
    pub async fn exec_status(&self, argv: &[&str]) -> Result<ExecOutput, ControlError> {
        self.exec_status_timeout(argv, self.inner.command_timeout)
            .await
    }

    /// As [`Remote::exec_status`], with its own timeout.
    pub async fn exec_status_timeout(
        &self,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput, ControlError> {
        let raw = self.run(argv, Input::None, timeout).await?;
        Ok(ExecOutput {
            status: raw.status,
            stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
            stderr: raw.stderr,
        })
    }

    /// Copies the local file to `remote_path` (parent folders created) with mode `mode`.
    pub async fn upload(
        &self,
        local: &Path,
        remote_path: &str,
        mode: u32,
    ) -> Result<(), ControlError> {
        let len = match tokio::fs::metadata(local).await {
            Ok(meta) => meta.len(),
            Err(source) => {
                return Err(self.local_error(format!("cannot read {}", local.display()), source))
            }
        };
        self.upload_input(Input::File(local), len, remote_path, mode)
            .await
    }

    /// Writes `data` to `remote_path` (parent folders created) with mode `mode`.
    pub async fn upload_bytes(
        &self,
        data: &[u8],
        remote_path: &str,
        mode: u32,
    ) -> Result<(), ControlError> {
        self.upload_input(Input::Bytes(data), data.len() as u64, remote_path, mode)
            .await
    }

    async fn upload_input(
        &self,
        input: Input<'_>,
        len: u64,
        remote_path: &str,
        mode: u32,
    ) -> Result<(), ControlError> {
        let mode = format!("{:o}", mode & 0o7777);
        let len = len.to_string();
        let argv = ["sh", "-c", UPLOAD_SCRIPT, "sh", remote_path, &mode, &len];
        let raw = self.run(&argv, input, self.inner.command_timeout).await?;
        self.check(&argv, raw).map(|_| ())
    }

    /// Copies a remote file to the local path `local`, or a remote folder's contents into the
    /// local folder `local` (created if needed), streamed as tar over the SSH channel. The
    /// copy is held in memory on the way: meant for logs and data folders, not disk images.
    pub async fn download(&self, remote_path: &str, local: &Path) -> Result<(), ControlError> {
        let argv = ["sh", "-c", DOWNLOAD_SCRIPT, "sh", remote_path];
        let raw = self
            .run(&argv, Input::None, self.inner.command_timeout)
            .await?;
        let stdout = self.check(&argv, raw)?;
        let local_owned = local.to_path_buf();
        let unpacked = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            match stdout.split_first() {
                Some((b'D', tar)) => {
                    std::fs::create_dir_all(&local_owned)?;
                    tar::Archive::new(tar).unpack(&local_owned)
                }
                Some((b'F', data)) => {
                    if let Some(parent) = local_owned.parent().filter(|p| !p.as_os_str().is_empty())
                    {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&local_owned, data)
                }
                _ => Err(std::io::Error::other("download stream had no type marker")),
            }
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        unpacked.map_err(|e| {
            self.local_error(
                format!("cannot store {remote_path} at {}", local.display()),
                e,
            )
        })
    }

    fn check(&self, argv: &[&str], raw: RawOutput) -> Result<Vec<u8>, ControlError> {
        if raw.status == 0 {
            return Ok(raw.stdout);
        }
        Err(ControlError::Failed {
            host: self.name().to_string(),
            command: shell_join(argv),
            status: raw.status,
            stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
            stderr: raw.stderr,
        })
    }

    fn local_error(&self, context: String, source: std::io::Error) -> ControlError {
        ControlError::Local {
            host: self.name().to_string(),
            context,
            source,
        }
    }

    async fn run(
        &self,
        argv: &[&str],
        input: Input<'_>,
        timeout: Duration,
    ) -> Result<RawOutput, ControlError> {
        let command = shell_join(argv);
        let transport = |reason: String| ControlError::Transport {
            host: self.name().to_string(),
            command: command.clone(),
            reason,
        };
        if argv.is_empty() {
            return Err(transport("empty command".into()));
        }
        let script = wrapper_script(argv, timeout, self.inner.sudo);
        tracing::debug!(host = %self.name(), %command, "exec");
        let _permit = self
            .inner
            .sessions
            .acquire()
            .await
            .map_err(|e| transport(e.to_string()))?;
        let started = Instant::now();
        let mut cmd = self.inner.session.raw_command("sh");
        cmd.raw_arg("-c").raw_arg(shell_escape(&script));
        cmd.stdin(match input {
            Input::None => Stdio::null(),
            _ => Stdio::piped(),
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let work = async {
            let mut child = cmd.spawn().await.map_err(|e| e.to_string())?;
            if let Some(mut stdin) = child.stdin().take() {
                let fed = match input {
                    Input::None => Ok(()),
                    Input::Bytes(data) => stdin.write_all(data).await,
                    Input::File(path) => match tokio::fs::File::open(path).await {
                        Ok(mut file) => tokio::io::copy(&mut file, &mut stdin).await.map(|_| ()),
                        Err(e) => Err(e),
                    },
                };
                fed.map_err(|e| format!("writing stdin: {e}"))?;
                stdin
                    .shutdown()
                    .await
                    .map_err(|e| format!("closing stdin: {e}"))?;
            }
            child.wait_with_output().await.map_err(|e| e.to_string())
        };
        let output = match tokio::time::timeout(timeout + TIMEOUT_GRACE, work).await {
            Ok(Ok(output)) => output,
            Ok(Err(reason)) => return Err(transport(reason)),
            Err(_) => {
                return Err(ControlError::Timeout {
                    host: self.name().to_string(),
                    command,
                    timeout,
                    stderr: String::new(),
                })
            }
        };
        let Some((status, stderr)) = split_status(&output.stderr) else {
            let code = output
                .status
                .code()
                .map_or("a signal".into(), |c| c.to_string());
            return Err(transport(format!(
                "no exit status from the host (ssh exited with {code}); stderr: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        };
        // `timeout` exits 124 after TERM, 137 after KILL.
        if (status == 124 || status == 137) && started.elapsed() >= timeout {
            return Err(ControlError::Timeout {
                host: self.name().to_string(),
                command,
                timeout,
                stderr,
            });
        }
        Ok(RawOutput {
            status,
            stdout: output.stdout,
            stderr,
        })
    }
}

/// The script the host's `sh -c` runs for `argv`.
fn wrapper_script(argv: &[&str], timeout: Duration, sudo: bool) -> String {
    // Whole seconds stay integers: busybox `timeout` accepts no fractions.
    let secs = match timeout.subsec_millis() {
        0 => timeout.as_secs().max(1).to_string(),
        ms => format!("{}.{ms:03}", timeout.as_secs()),
    };
    let sudo = if sudo { "sudo -n -- " } else { "" };
    format!(
        "{sudo}timeout -k {KILL_AFTER_SECS} {secs} {}; printf '\\n\\001faultline-exit:%d\\n' \"$?\" >&2",
        shell_join(argv)
    )
}

/// Splits the wrapper's status line off `stderr`: `(status, the command's own stderr)`.
fn split_status(stderr: &[u8]) -> Option<(i32, String)> {
    let at = stderr
        .windows(STATUS_MARKER.len())
        .rposition(|w| w == STATUS_MARKER)?;
    let rest = &stderr[at + STATUS_MARKER.len()..];
    let digits = std::str::from_utf8(rest).ok()?.trim_end();
    let status = digits.parse().ok()?;
    Some((status, String::from_utf8_lossy(&stderr[..at]).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The wrapper runs through a real local `sh`, as the host would run it.
    fn run_locally(argv: &[&str], timeout: Duration) -> (Vec<u8>, Vec<u8>) {
        let script = wrapper_script(argv, timeout, false);
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "wrapper itself must exit 0: {script}");
        (out.stdout, out.stderr)
    }

    #[test]
    fn status_and_stderr_survive_the_wrapper() {
        let table: [(&[&str], i32, &str, &str); 4] = [
            (
                &["sh", "-c", "printf out; printf err >&2; exit 3"],
                3,
                "out",
                "err",
            ),
            (&["sh", "-c", "echo line >&2"], 0, "", "line\n"),
            (&["sh", "-c", "exit 255"], 255, "", ""),
            (&["true"], 0, "", ""),
        ];
        for (argv, status, stdout, stderr) in table {
            let (out, err) = run_locally(argv, Duration::from_secs(5));
            assert_eq!(String::from_utf8(out).unwrap(), stdout);
            assert_eq!(
                split_status(&err),
                Some((status, stderr.to_string())),
                "{argv:?}"
            );
        }
        let (_, err) = run_locally(&["/nonexistent/program"], Duration::from_secs(5));
        let (status, stderr) = split_status(&err).unwrap();
        assert_eq!(status, 127);
        assert!(stderr.contains("/nonexistent/program"), "{stderr}");
    }

    #[test]
    fn wrapper_kills_on_timeout() {
        let started = Instant::now();
        let (_, err) = run_locally(&["sleep", "30"], Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(split_status(&err).map(|s| s.0), Some(124));
    }

    #[test]
    fn upload_script_refuses_a_short_transfer() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/bin");
        let upload = |data: &str, len: &str| {
            let mut child = Command::new("sh")
                .args(["-c", UPLOAD_SCRIPT, "sh"])
                .arg(&target)
                .args(["755", len])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(data.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        };
        let out = upload("abc", "10");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("got 3 of 10 bytes"));
        assert!(!target.exists(), "a short upload replaced the target");
        assert!(upload("abcd", "4").status.success());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "abcd");
        // Nothing but the target is left in the folder (the temporary file is gone).
        assert_eq!(
            std::fs::read_dir(target.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn missing_marker_is_not_a_status() {
        assert_eq!(split_status(b"ssh: connect to host: refused\n"), None);
        assert_eq!(split_status(b"\n\x01faultline-exit:x\n"), None);
    }
}
