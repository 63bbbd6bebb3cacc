//! Daemons on a host, by PID file — Jepsen's `start-daemon!` / `stop-daemon!`: start a
//! program detached with a PID file, signal it, ask whether it runs, stop it.
//!
//! Every helper runs over [`Remote`] (so on any host: local namespace hosts, VMs, cloud
//! machines) and sends its arguments as positional parameters of a fixed `sh -c` script:
//! nothing a caller passes is ever part of a shell line, so paths, arguments and
//! environment values may contain any byte a shell treats specially.
//!
//! PIDs are reused and the local test hosts share one PID space, so a PID file alone is
//! not enough to know a process is ours: every helper also checks that the PID still runs
//! the [`Daemon::executable`] it expects (the basename of `/proc/PID/exe`, of `argv[0]`,
//! or the process name), and treats a PID that runs something else as not running. A
//! zombie (state `Z`) counts as dead: a killed daemon whose parent has not reaped it yet
//! holds no port and no file.
//!
//! ```no_run
//! # async fn demo(node: &faultline_control::Remote) -> anyhow::Result<()> {
//! use faultline_control::daemon::{Daemon, PidFileBy, Signal, Start};
//! let daemon = Daemon::new("faultline-node", "/opt/faultline/run/raft.pid", "/opt/faultline/log/raft.stdout");
//! daemon
//!     .start(node, &Start::new(["/opt/faultline/bin/faultline-node", "raft", "--id", "n1"])
//!         .env("RUST_LOG", "info")
//!         .chdir("/opt/faultline")
//!         .pid_file_by(PidFileBy::Program))
//!     .await?;
//! daemon.signal(node, Signal::Stop).await?; // pause
//! daemon.signal(node, Signal::Cont).await?; // resume
//! assert!(daemon.is_running(node).await?);
//! daemon.stop(node).await?; // TERM, then KILL after the grace period
//! # Ok(()) }
//! ```

use crate::control::Remote;
use std::fmt;
use std::time::Duration;

/// How long a stop waits for the process to exit after SIGTERM before it sends SIGKILL,
/// and again after SIGKILL before it reports the process as unkillable.
pub const STOP_GRACE_DEFAULT: Duration = Duration::from_secs(5);
/// How long a start waits for the PID file when the program writes it itself.
pub const START_TIMEOUT_DEFAULT: Duration = Duration::from_secs(15);
/// Lines of the daemon's output quoted in the error of a failed start.
const LOG_TAIL_LINES: &str = "20";

/// A daemon on a host: its PID file, the executable its PID must run, and the file its
/// stdout and stderr go to. The same value starts, signals and stops it, on any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// The name the PID must run (e.g. `faultline-node`, `etcd`, `redis-server`, `java`):
    /// compared with the basename of `/proc/PID/exe` (a ` (deleted)` suffix ignored, since
    /// an upload replaces the binary under a running process), with the basename of
    /// `argv[0]`, and with the kernel's process name (first 15 bytes).
    pub executable: String,
    /// The PID file: the program's own (see [`PidFileBy::Program`]) or the launcher's.
    pub pid_file: String,
    /// Where stdout and stderr go (appended to; the folder must exist).
    pub log_file: String,
    /// How long [`Daemon::stop`] waits after SIGTERM, and again after SIGKILL.
    pub stop_grace: Duration,
}

/// Who writes the daemon's PID file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PidFileBy {
    /// The launcher writes the PID of the process it started, at once. For programs that
    /// do not write PID files (or that write them somewhere faultline does not choose).
    #[default]
    Launcher,
    /// The program writes the PID file itself, typically once it serves; the start waits
    /// for the file. The launcher still records the PID it started in
    /// [`Daemon::launch_pid_file`], so that a program that dies or hangs before writing
    /// its file is found and stopped.
    Program,
}

/// How to start a daemon: the command, its environment and working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The program and its arguments, as words (never a shell line).
    pub argv: Vec<String>,
    /// Variables added to the program's environment (e.g. libfaketime's).
    pub env: Vec<(String, String)>,
    /// The working directory; `/` when `None`, so the daemon holds no caller's folder.
    pub chdir: Option<String>,
    pub pid_file_by: PidFileBy,
    /// With [`PidFileBy::Program`]: how long the program may take to write its PID file.
    pub timeout: Duration,
}

impl Start {
    pub fn new<I, S>(argv: I) -> Start
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Start {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            chdir: None,
            pid_file_by: PidFileBy::Launcher,
            timeout: START_TIMEOUT_DEFAULT,
        }
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Start {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Start
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn chdir(mut self, dir: impl Into<String>) -> Start {
        self.chdir = Some(dir.into());
        self
    }

    pub fn pid_file_by(mut self, by: PidFileBy) -> Start {
        self.pid_file_by = by;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Start {
        self.timeout = timeout;
        self
    }
}

/// The signals faults and lifecycles send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Freeze (a pause fault).
    Stop,
    /// Thaw.
    Cont,
    /// Crash, with no chance to clean up (a kill fault).
    Kill,
    /// Ask to exit.
    Term,
    Hup,
    Int,
}

impl Signal {
    /// The name `kill -s` takes.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
            Signal::Kill => "KILL",
            Signal::Term => "TERM",
            Signal::Hup => "HUP",
            Signal::Int => "INT",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Signal, String> {
        let s = s.trim().trim_start_matches("SIG");
        Ok(match s.to_ascii_uppercase().as_str() {
            "STOP" => Signal::Stop,
            "CONT" => Signal::Cont,
            "KILL" => Signal::Kill,
            "TERM" => Signal::Term,
            "HUP" => Signal::Hup,
            "INT" => Signal::Int,
            _ => {
                return Err(format!(
                    "unknown signal {s:?}: expected STOP, CONT, KILL, TERM, HUP or INT"
                ))
            }
        })
    }
}

/// Why a daemon helper failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{host}: {what}: {source}")]
    Control {
        host: String,
        what: String,
        #[source]
        source: crate::ControlError,
    },
    #[error(
        "{host}: {executable} did not start: {why}; its output ({log_file}) ends with:\n{tail}"
    )]
    Start {
        host: String,
        executable: String,
        why: String,
        log_file: String,
        tail: String,
    },
    #[error(
        "{host}: {executable} (PID file {pid_file}) is not running, so it cannot get {signal}"
    )]
    NotRunning {
        host: String,
        executable: String,
        pid_file: String,
        signal: Signal,
    },
    #[error("{host}: invalid daemon setting: {0}", host = .1)]
    Invalid(String, String),
}

/// Shell functions shared by the scripts: `$p` is the PID, `$exe` the expected name.
/// `alive`: the PID exists and is no zombie. `ours`: it runs `$exe`.
const FUNCTIONS: &str = r#"alive() { [ -r /proc/$p/stat ] && [ "$(sed 's/.*) //' /proc/$p/stat | cut -c1)" != Z ]; }
ours() {
  e=$(readlink /proc/$p/exe 2>/dev/null); e=${e% (deleted)}; [ "${e##*/}" = "$exe" ] && return 0
  a=$(tr '\0' '\n' < /proc/$p/cmdline 2>/dev/null | head -n 1); [ -n "$a" ] && [ "${a##*/}" = "$exe" ] && return 0
  c=$(cat /proc/$p/comm 2>/dev/null); [ -n "$c" ] && [ "$c" = "$(printf %s "$exe" | cut -c1-15)" ]
}
readpid() { p=; [ -f "$1" ] && read -r p < "$1"; case $p in ''|*[!0-9]*) p=; return 1;; esac; }"#;

/// Stops the PID in `$2` (if it runs `$1`): CONT (a paused process cannot act on TERM),
/// TERM, wait `$3` tenths of a second, KILL, wait again; then removes the file. A missing,
/// empty or foreign PID file is removed as stale.
const STOP_SCRIPT: &str = r#"exe=$1; f=$2; n=$3
if readpid "$f" && alive && ours; then
  kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null
  i=0; while alive && [ $i -lt $n ]; do sleep 0.1; i=$((i+1)); done
  if alive; then
    kill -KILL "$p" 2>/dev/null
    i=0; while alive && [ $i -lt $n ]; do sleep 0.1; i=$((i+1)); done
  fi
  if alive; then echo "process $p survived SIGKILL" >&2; exit 1; fi
fi
rm -f "$f"
exit 0"#;

/// Sends `$3` to the PID in `$2` if it is a live `$1`; exit 3 when it is not.
const SIGNAL_SCRIPT: &str = r#"exe=$1; f=$2; sig=$3
readpid "$f" && alive && ours || exit 3
kill -s "$sig" "$p""#;

/// Prints the PID in `$2` if it is a live `$1`; exit 3 when it is not.
const PID_SCRIPT: &str = r#"exe=$1; f=$2
readpid "$f" && alive && ours || exit 3
echo "$p""#;

/// Starts `$@` (after the fixed parameters) detached: its own session (no controlling
/// terminal, no SIGHUP when the SSH session ends), stdin from /dev/null and stdout/stderr
/// appended to the log, so the SSH command returns at once. Writes the started PID to
/// `$3`. `$1`: working dir, `$2`: log file. `env --` carries the variables.
const LAUNCH_SCRIPT: &str = r#"dir=$1; log=$2; pidf=$3; shift 3
cd "$dir" || exit 1
setsid "$@" </dev/null >>"$log" 2>&1 &
echo $! > "$pidf.tmp.$$" && mv -f "$pidf.tmp.$$" "$pidf""#;

impl Daemon {
    /// A daemon whose PID runs `executable`, with its PID file and log file, stopped with
    /// [`STOP_GRACE_DEFAULT`].
    pub fn new(
        executable: impl Into<String>,
        pid_file: impl Into<String>,
        log_file: impl Into<String>,
    ) -> Daemon {
        Daemon {
            executable: executable.into(),
            pid_file: pid_file.into(),
            log_file: log_file.into(),
            stop_grace: STOP_GRACE_DEFAULT,
        }
    }

    pub fn with_stop_grace(mut self, grace: Duration) -> Daemon {
        self.stop_grace = grace;
        self
    }

    /// The launcher's record of the PID it started when the program writes
    /// [`Daemon::pid_file`] itself: `x.pid` → `x.launch.pid`.
    pub fn launch_pid_file(&self) -> String {
        match self.pid_file.strip_suffix(".pid") {
            Some(stem) => format!("{stem}.launch.pid"),
            None => format!("{}.launch", self.pid_file),
        }
    }

    async fn script(
        &self,
        node: &Remote,
        script: &str,
        args: &[&str],
        what: &str,
    ) -> Result<crate::ExecOutput, DaemonError> {
        let full = format!("{FUNCTIONS}\n{script}");
        let mut argv = vec!["sh", "-c", full.as_str(), "sh"];
        argv.extend_from_slice(args);
        node.exec_status(&argv)
            .await
            .map_err(|source| DaemonError::Control {
                host: node.name().to_owned(),
                what: what.to_owned(),
                source,
            })
    }

    fn invalid(&self, node: &Remote, why: String) -> DaemonError {
        DaemonError::Invalid(why, node.name().to_owned())
    }

    /// Starts the daemon on `node` detached and returns once it has a PID file: at once
    /// with [`PidFileBy::Launcher`]; with [`PidFileBy::Program`], once the program wrote
    /// its file (failing early, with the end of its log, when it exits first or when
    /// `start.timeout` passes). Does not stop an earlier instance: call [`Daemon::stop`]
    /// first when one may be left.
    pub async fn start(&self, node: &Remote, start: &Start) -> Result<(), DaemonError> {
        if start.argv.is_empty() {
            return Err(self.invalid(node, "the start command is empty".into()));
        }
        if start.argv[0].contains('=') {
            // `env` would read it as one more variable.
            return Err(self.invalid(node, format!("program {:?} contains '='", start.argv[0])));
        }
        for (name, _) in &start.env {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(self.invalid(
                    node,
                    format!("{name:?} is not an environment variable name"),
                ));
            }
        }
        let launch_file = match start.pid_file_by {
            PidFileBy::Launcher => self.pid_file.clone(),
            PidFileBy::Program => self.launch_pid_file(),
        };
        let dir = start.chdir.clone().unwrap_or_else(|| "/".into());
        let assignments: Vec<String> = start.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = vec![&dir, &self.log_file, &launch_file, "env", "--"];
        args.extend(assignments.iter().map(String::as_str));
        args.extend(start.argv.iter().map(String::as_str));
        let out = self
            .script(node, LAUNCH_SCRIPT, &args, "starting a daemon")
            .await?;
        if out.status != 0 {
            return Err(self
                .start_failed(node, format!("the launcher failed ({})", out.stderr.trim()))
                .await);
        }
        if start.pid_file_by == PidFileBy::Launcher {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + start.timeout;
        loop {
            let probe = self
                .script(
                    node,
                    "test -s \"$1\"",
                    &[&self.pid_file],
                    "waiting for a PID file",
                )
                .await?;
            if probe.status == 0 {
                return Ok(());
            }
            // Only alive, not `ours`: the launched PID may still be `setsid` or `env` on
            // its way to exec the program.
            let alive = self
                .script(
                    node,
                    "readpid \"$1\" && alive",
                    &[&launch_file],
                    "reading a PID file",
                )
                .await?;
            if alive.status != 0 {
                return Err(self
                    .start_failed(node, "it exited before writing its PID file".into())
                    .await);
            }
            if tokio::time::Instant::now() >= deadline {
                let why = format!(
                    "it did not write its PID file {} within {} s",
                    self.pid_file,
                    start.timeout.as_secs_f64()
                );
                return Err(self.start_failed(node, why).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn start_failed(&self, node: &Remote, why: String) -> DaemonError {
        let tail = node
            .exec_status(&["tail", "-n", LOG_TAIL_LINES, &self.log_file])
            .await
            .map(|o| o.stdout)
            .unwrap_or_default();
        DaemonError::Start {
            host: node.name().to_owned(),
            executable: self.executable.clone(),
            why,
            log_file: self.log_file.clone(),
            tail,
        }
    }

    /// The PID of the running daemon, `None` when its PID file is missing, stale, or names
    /// a process that is dead, a zombie, or runs another executable.
    pub async fn pid(&self, node: &Remote) -> Result<Option<u32>, DaemonError> {
        let out = self
            .script(
                node,
                PID_SCRIPT,
                &[&self.executable, &self.pid_file],
                "reading a PID file",
            )
            .await?;
        Ok((out.status == 0)
            .then(|| out.stdout.trim().parse().ok())
            .flatten())
    }

    /// Whether the daemon runs (see [`Daemon::pid`]).
    pub async fn is_running(&self, node: &Remote) -> Result<bool, DaemonError> {
        Ok(self.pid(node).await?.is_some())
    }

    /// Sends `signal` to the daemon; [`DaemonError::NotRunning`] when it does not run.
    pub async fn signal(&self, node: &Remote, signal: Signal) -> Result<(), DaemonError> {
        let args = [self.executable.as_str(), &self.pid_file, signal.name()];
        let out = self
            .script(node, SIGNAL_SCRIPT, &args, "signalling a daemon")
            .await?;
        match out.status {
            0 => Ok(()),
            3 => Err(DaemonError::NotRunning {
                host: node.name().to_owned(),
                executable: self.executable.clone(),
                pid_file: self.pid_file.clone(),
                signal,
            }),
            status => Err(DaemonError::Invalid(
                format!("kill -s {signal} exited {status}: {}", out.stderr.trim()),
                node.name().to_owned(),
            )),
        }
    }

    /// Stops the daemon and waits for it to exit: SIGCONT, SIGTERM, SIGKILL after
    /// [`Daemon::stop_grace`]; then removes its PID file (and the launcher's record).
    /// Succeeds when it was not running; fails only when the process survives SIGKILL.
    pub async fn stop(&self, node: &Remote) -> Result<(), DaemonError> {
        let tenths = (self.stop_grace.as_millis() / 100).max(1).to_string();
        for file in [self.pid_file.clone(), self.launch_pid_file()] {
            let out = self
                .script(
                    node,
                    STOP_SCRIPT,
                    &[&self.executable, &file, &tenths],
                    "stopping a daemon",
                )
                .await?;
            if out.status != 0 {
                return Err(DaemonError::Invalid(
                    format!(
                        "stopping {} ({file}): {}",
                        self.executable,
                        out.stderr.trim()
                    ),
                    node.name().to_owned(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launch_record_sits_beside_the_pid_file() {
        let d = Daemon::new("x", "/opt/faultline/run/raft.pid", "/l");
        assert_eq!(d.launch_pid_file(), "/opt/faultline/run/raft.launch.pid");
        let d = Daemon::new("x", "/run/x", "/l");
        assert_eq!(d.launch_pid_file(), "/run/x.launch");
    }

    #[test]
    fn signals_parse_with_or_without_sig() {
        assert_eq!("SIGSTOP".parse::<Signal>().unwrap(), Signal::Stop);
        assert_eq!("kill".parse::<Signal>().unwrap(), Signal::Kill);
        assert!("USR9".parse::<Signal>().is_err());
    }
}
