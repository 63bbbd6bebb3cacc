//! One sshd per local host, started inside the host's network namespace under
//! `unshare --uts --mount`, so that it and every process started through it see the host's
//! own hostname, `/tmp`, `/opt/faultline`, `/etc/hosts` and home directory `/root` (which
//! also keeps the controller's `~/.bashrc` out: sshd runs commands through bash, which reads
//! it, and a slow one there, e.g. `pyenv init`, added half a second to every command).

use super::sys::{self, run, tool};
use anyhow::{bail, Context};
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one sshd may take to answer after start.
const READY_WAIT_MAX: Duration = Duration::from_secs(5);
const READY_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Generous: a slow banner on a busy machine must not make `up` tear down a healthy cluster.
const BANNER_WAIT_MAX: Duration = Duration::from_secs(2);

/// Mounts the host's own directories and hostname, then becomes sshd. Arguments: name,
/// tmp dir, opt dir, hosts file, home dir, sshd binary, config, log file.
const START_SCRIPT: &str = r#"set -e
hostname "$1"
mount --bind "$2" /tmp
mount --bind "$3" /opt/faultline
mount --bind "$4" /etc/hosts
mount --bind "$5" /root
exec "$6" -f "$7" -E "$8""#;

/// Files of one host on the controller.
pub struct HostFiles {
    pub name: String,
    pub address: String,
    pub netns: String,
    pub dir: PathBuf,
}

impl HostFiles {
    pub fn config(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("sshd.pid")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }
}

/// Makes an ed25519 key pair at `path` unless one is there already (keys are kept across
/// `down`/`up` so that host keys stay stable).
pub fn ensure_key(path: &Path, comment: &str) -> anyhow::Result<()> {
    if path.exists() && path.with_extension("pub").exists() {
        return Ok(());
    }
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let p = path.to_string_lossy();
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &p],
    )?;
    Ok(())
}

fn config_text(host: &HostFiles, host_key: &Path, authorized_keys: &Path) -> String {
    format!(
        "# faultline local host {name}; written by `faultline cluster up`\n\
         ListenAddress {address}:22\n\
         HostKey {key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {auth}\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         MaxSessions 100\n\
         MaxStartups 100:30:200\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         X11Forwarding no\n\
         Subsystem sftp internal-sftp\n\
         LogLevel INFO\n",
        name = host.name,
        address = host.address,
        key = host_key.display(),
        pid = host.pid_file().display(),
        auth = authorized_keys.display(),
    )
}

/// Lays out the host's directories and files: `opt/` (its `/opt/faultline`), `tmp/` (its
/// `/tmp`), `home/` (its `/root`), `hosts` (its `/etc/hosts`) and `sshd_config`.
pub fn prepare(
    host: &HostFiles,
    hosts_file: &str,
    host_key: &Path,
    authorized_keys: &Path,
) -> anyhow::Result<()> {
    let tmp = host.dir.join("tmp");
    fs::create_dir_all(host.dir.join("opt"))?;
    fs::create_dir_all(&tmp)?;
    let home = host.dir.join("home");
    fs::create_dir_all(&home)?;
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))?;
    fs::write(host.dir.join("hosts"), hosts_file)?;
    fs::write(host.config(), config_text(host, host_key, authorized_keys))?;
    Ok(())
}

/// Starts the host's sshd; it daemonizes, so this returns once it has forked.
pub fn start(host: &HostFiles) -> anyhow::Result<()> {
    let sshd = tool("sshd")?;
    let d = |p: PathBuf| p.to_string_lossy().into_owned();
    let args = [
        "netns".to_string(),
        "exec".into(),
        host.netns.clone(),
        d(tool("unshare")?),
        "--uts".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        START_SCRIPT.into(),
        "sh".into(),
        host.name.clone(),
        d(host.dir.join("tmp")),
        d(host.dir.join("opt")),
        d(host.dir.join("hosts")),
        d(host.dir.join("home")),
        d(sshd),
        d(host.config()),
        d(host.log()),
    ];
    run("ip", &args).with_context(|| format!("{}: cannot start sshd", host.name))?;
    Ok(())
}

/// The PID in the host's sshd PID file, if that process still runs sshd with our config.
pub fn running_pid(host: &HostFiles) -> Option<i32> {
    let pid: i32 = fs::read_to_string(host.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let config = host.config();
    let cmd = sys::cmdline(pid)?;
    (sys::alive(pid) && cmd.contains("sshd") && cmd.contains(&*config.to_string_lossy()))
        .then_some(pid)
}

/// True when something answers with an SSH banner on the host's port 22.
pub fn answers(address: &str) -> bool {
    let Ok(addr) = format!("{address}:22").parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, BANNER_WAIT_MAX) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(BANNER_WAIT_MAX));
    let mut banner = [0u8; 4];
    stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-"
}

/// Waits until every host's sshd runs (PID file) and answers; an sshd that failed to bind
/// still exits 0, so only this tells whether it works.
pub fn wait_ready(hosts: &[HostFiles]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_WAIT_MAX;
    let mut pending: Vec<&HostFiles> = hosts.iter().collect();
    while !pending.is_empty() {
        pending.retain(|h| !(running_pid(h).is_some() && answers(&h.address)));
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let h = pending[0];
            let log = fs::read_to_string(h.log()).unwrap_or_default();
            bail!(
                "sshd of {} ({}) not answering after {READY_WAIT_MAX:?}; its log {}: {}",
                h.name,
                h.address,
                h.log().display(),
                log.trim()
            );
        }
        std::thread::sleep(READY_POLL_INTERVAL);
    }
    Ok(())
}
