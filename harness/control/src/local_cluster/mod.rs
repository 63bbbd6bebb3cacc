//! The local cluster: test hosts made of Linux network namespaces on one machine, each with
//! its own address, hostname, sshd and files, reached over real SSH like any VM (DESIGN §5).
//!
//! Cluster `id` (0 is the CLI's default) uses namespaces `fl{id}-n1…`, bridge `fl{id}br`,
//! veths `fl{id}v{i}`, subnet `10.77.{id}.0/24` (host i at `.{10+i}`, the controller at `.1`)
//! and keeps its state under `/var/lib/faultline/cluster-{id}/`:
//! `id_ed25519` (the controller's key), `authorized_keys`, `host-keys/` (kept across `down`
//! so host keys stay stable), `hosts/<name>/` (the host's `opt/`, `tmp/`, `hosts`,
//! `sshd_config`, `sshd.pid`, `sshd.log`; removed by `down`) and `cluster.json`.

mod net;
pub(crate) mod sshd;
pub(crate) mod sys;

use crate::control::SshConfig;
use crate::hosts::HostSpec;
use anyhow::{bail, Context};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use net::{bridge_name, controller_address, host_address, netns_name, veth_name};

/// Where every cluster keeps its state.
pub const STATE_ROOT: &str = "/var/lib/faultline";

/// The per-host directory of the host layout contract (a bind mount on local hosts).
pub const HOST_DIR: &str = "/opt/faultline";

/// Most hosts one cluster may have (addresses `.11` up to `.74`).
pub const NODES_MAX: usize = 64;

/// How long `down` waits for processes to exit after TERM, and again after KILL.
const PROCESS_EXIT_WAIT: Duration = Duration::from_secs(2);

/// Tools the local cluster runs, and the Debian package of each.
const REQUIRED_TOOLS: [(&str, &str); 9] = [
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("iptables", "iptables"),
    ("unshare", "util-linux"),
    ("timeout", "coreutils"),
    ("tar", "tar"),
];

/// Which cluster to bring up, and how many hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub id: u8,
    pub nodes: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { id: 0, nodes: 5 }
    }
}

/// A running local cluster: its hosts and how to log in to them.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    pub hosts: Vec<HostSpec>,
    pub ssh: SshConfig,
    id: u8,
    state_dir: PathBuf,
}

impl LocalCluster {
    pub fn id(&self) -> u8 {
        self.id
    }

    /// `/var/lib/faultline/cluster-{id}`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The host's directory on the controller; its `opt/` is the host's `/opt/faultline` and
    /// its `tmp/` the host's `/tmp`.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join("hosts").join(name)
    }

    /// The controller's address on the cluster's bridge, as the hosts see it.
    pub fn controller_address(&self) -> String {
        controller_address(self.id)
    }
}

/// The Debian packages whose tools the local cluster needs and that are missing.
pub fn missing_packages() -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for (tool, package) in REQUIRED_TOOLS {
        if sys::find_tool(tool).is_none() && !missing.iter().any(|m| m == package) {
            missing.push(package.to_string());
        }
    }
    missing
}

fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the local cluster needs root (namespaces, bridges, sshd); run as root or with sudo");
    }
    Ok(())
}

fn preflight() -> anyhow::Result<()> {
    require_root()?;
    let missing = missing_packages();
    if !missing.is_empty() {
        bail!(
            "the local cluster needs Debian packages that are missing: {m}; install them with `apt-get install {m}`",
            m = missing.join(" ")
        );
    }
    Ok(())
}

fn state_dir(id: u8) -> PathBuf {
    Path::new(STATE_ROOT).join(format!("cluster-{id}"))
}

fn lock() -> anyhow::Result<sys::FileLock> {
    fs::create_dir_all(STATE_ROOT).with_context(|| format!("cannot create {STATE_ROOT}"))?;
    sys::FileLock::acquire(&Path::new(STATE_ROOT).join("lock"))
}

fn host_files(id: u8, nodes: usize) -> Vec<sshd::HostFiles> {
    (1..=nodes)
        .map(|i| {
            let name = format!("n{i}");
            sshd::HostFiles {
                dir: state_dir(id).join("hosts").join(&name),
                address: host_address(id, i),
                netns: netns_name(id, i),
                name,
            }
        })
        .collect()
}

fn cluster_value(id: u8, nodes: usize) -> LocalCluster {
    let dir = state_dir(id);
    LocalCluster {
        hosts: host_files(id, nodes)
            .into_iter()
            .map(|h| HostSpec {
                name: h.name,
                address: h.address,
                port: 22,
            })
            .collect(),
        ssh: SshConfig {
            private_key: Some(dir.join("id_ed25519")),
            ..SshConfig::default()
        },
        id,
        state_dir: dir,
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    id: u8,
    nodes: usize,
}

/// Brings cluster `cfg.id` up with `cfg.nodes` hosts. If it already runs with that many
/// healthy hosts it is returned as is; anything else of that id (a different size, the
/// remains of a crash) is torn down first. Blocking (about a second for 5 hosts): from async
/// code call it through `tokio::task::spawn_blocking`. Needs root.
pub fn up(cfg: &ClusterConfig) -> anyhow::Result<LocalCluster> {
    preflight()?;
    if cfg.nodes == 0 || cfg.nodes > NODES_MAX {
        bail!(
            "a local cluster has 1 to {NODES_MAX} hosts, not {}",
            cfg.nodes
        );
    }
    let _lock = lock()?;
    if let Some(running) = healthy(cfg.id) {
        if running.hosts.len() == cfg.nodes {
            return Ok(running);
        }
    }
    teardown(cfg.id)?;
    match create(cfg) {
        Ok(cluster) => Ok(cluster),
        Err(err) => {
            // Never leave half a cluster behind.
            if let Err(e) = teardown(cfg.id) {
                tracing::warn!(error = %e, "cleaning up after a failed cluster up");
            }
            Err(err.context(format!("cannot bring local cluster {} up", cfg.id)))
        }
    }
}

fn create(cfg: &ClusterConfig) -> anyhow::Result<LocalCluster> {
    let (id, dir) = (cfg.id, state_dir(cfg.id));
    fs::create_dir_all(dir.join("host-keys"))?;
    // Mount points that must exist in the shared root file system, and sshd's privsep dir.
    fs::create_dir_all(HOST_DIR)?;
    fs::create_dir_all("/run/sshd")?;
    let hosts = host_files(id, cfg.nodes);

    let client_key = dir.join("id_ed25519");
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut jobs = vec![s.spawn(|| sshd::ensure_key(&client_key, "faultline-controller"))];
        for h in &hosts {
            let key = dir.join("host-keys").join(&h.name);
            jobs.push(s.spawn(move || sshd::ensure_key(&key, &h.name)));
        }
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .unwrap_or_else(|_| bail!("ssh-keygen thread panicked"))
        })
    })?;
    let authorized_keys = dir.join("authorized_keys");
    fs::copy(client_key.with_extension("pub"), &authorized_keys)?;

    net::create(id, cfg.nodes)?;

    let mut hosts_file = format!(
        "127.0.0.1 localhost\n{} controller\n",
        controller_address(id)
    );
    for h in &hosts {
        hosts_file.push_str(&format!("{} {}\n", h.address, h.name));
    }
    for h in &hosts {
        let key = dir.join("host-keys").join(&h.name);
        sshd::prepare(h, &hosts_file, &key, &authorized_keys)
            .with_context(|| format!("{}: cannot lay out {}", h.name, h.dir.display()))?;
    }
    std::thread::scope(|s| -> anyhow::Result<()> {
        let jobs: Vec<_> = hosts.iter().map(|h| s.spawn(|| sshd::start(h))).collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .unwrap_or_else(|_| bail!("sshd start thread panicked"))
        })
    })?;
    sshd::wait_ready(&hosts)?;

    let state = serde_json::to_string_pretty(&StateFile {
        id,
        nodes: cfg.nodes,
    })?;
    fs::write(dir.join("cluster.json"), state)?;
    Ok(cluster_value(id, cfg.nodes))
}

/// Tears cluster `id` down: kills every process inside its namespaces and its sshds (by
/// PID), removes veths, namespaces, bridge and FORWARD rule, and the per-host directories.
/// Safe to call when nothing (or only part) of it exists.
pub fn down(id: u8) -> anyhow::Result<()> {
    require_root()?;
    let _lock = lock()?;
    teardown(id)
}

fn teardown(id: u8) -> anyhow::Result<()> {
    let mut pids: Vec<i32> = Vec::new();
    for i in net::existing_namespaces(id) {
        pids.extend(net::netns_pids(&netns_name(id, i)));
    }
    // sshds whose namespace is already gone (deleted by hand) are found by PID file.
    let hosts_dir = state_dir(id).join("hosts");
    for name in fs::read_dir(&hosts_dir).into_iter().flatten().flatten() {
        let host = sshd::HostFiles {
            name: name.file_name().to_string_lossy().into_owned(),
            address: String::new(),
            netns: String::new(),
            dir: name.path(),
        };
        pids.extend(sshd::running_pid(&host));
    }
    let own = std::process::id() as i32;
    pids.retain(|&p| p != own);
    let left = sys::terminate(&pids, PROCESS_EXIT_WAIT);
    if !left.is_empty() {
        bail!("processes of local cluster {id} survived SIGKILL: {left:?}");
    }
    net::remove(id);
    if hosts_dir.exists() {
        fs::remove_dir_all(&hosts_dir)
            .with_context(|| format!("cannot remove {}", hosts_dir.display()))?;
    }
    let _ = fs::remove_file(state_dir(id).join("cluster.json"));
    Ok(())
}

/// The cluster if it is up and every host's sshd answers; `None` otherwise.
pub fn status(id: u8) -> anyhow::Result<Option<LocalCluster>> {
    Ok(healthy(id))
}

fn healthy(id: u8) -> Option<LocalCluster> {
    let text = fs::read_to_string(state_dir(id).join("cluster.json")).ok()?;
    let state: StateFile = serde_json::from_str(&text).ok()?;
    if state.id != id || state.nodes == 0 || state.nodes > NODES_MAX {
        return None;
    }
    if !net::link_exists(&bridge_name(id)) {
        return None;
    }
    let hosts = host_files(id, state.nodes);
    let all_up = hosts.iter().all(|h| {
        net::netns_exists(&h.netns) && sshd::running_pid(h).is_some() && sshd::answers(&h.address)
    });
    all_up.then(|| cluster_value(id, state.nodes))
}

/// What of cluster `id` exists now, for `cluster status` when it is not (fully) up:
/// namespaces, veths, bridge, FORWARD rule, running sshds.
pub fn leftovers(id: u8) -> Vec<String> {
    let mut out: Vec<String> = net::existing_namespaces(id)
        .into_iter()
        .map(|i| format!("namespace {}", netns_name(id, i)))
        .collect();
    out.extend(
        net::existing_veths(id)
            .into_iter()
            .map(|i| format!("veth {}", veth_name(id, i))),
    );
    if net::link_exists(&bridge_name(id)) {
        out.push(format!("bridge {}", bridge_name(id)));
    }
    if net::forward_rule_present(id) {
        out.push(format!("iptables FORWARD rule for {}", bridge_name(id)));
    }
    let hosts_dir = state_dir(id).join("hosts");
    for entry in fs::read_dir(&hosts_dir).into_iter().flatten().flatten() {
        let host = sshd::HostFiles {
            name: entry.file_name().to_string_lossy().into_owned(),
            address: String::new(),
            netns: String::new(),
            dir: entry.path(),
        };
        if let Some(pid) = sshd::running_pid(&host) {
            out.push(format!("sshd of {} (PID {pid})", host.name));
        }
    }
    out
}
