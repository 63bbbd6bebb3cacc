//! Control of test hosts over SSH, and the local cluster of network-namespace hosts.
//!
//! Layout:
//! - [`control`]: [`Control`] holds one OpenSSH master connection per host; [`Remote`] runs
//!   commands (escaped, with timeouts), uploads and downloads files on one host.
//! - [`daemon`]: start, signal and stop daemons on any host by PID file (Jepsen's
//!   `start-daemon!` / `stop-daemon!`), used by every system under test.
//! - [`escape`]: [`shell_escape`], used for every word sent to a remote shell.
//! - [`hosts`]: [`HostSpec`] and the nodes-file format; [`args`]: the Jepsen-style SSH options.
//! - [`ctldir`]: control directories of the masters, and clean-up after a crashed controller.
//! - [`local_cluster`]: hosts made of network namespaces on this machine (`faultline cluster`).
//! - [`heal`]: undo every fault faultline can leave on a host.
//! - [`vm`]: Debian VMs under QEMU on this machine (`faultline cluster up --vm`).
//!
//! Host layout contract (true on local hosts, to be made true on VMs): `/opt/faultline/` is a
//! per-host writable directory for binaries, data, logs and PID files; `/tmp` is per host;
//! the hostname is the host's name; hosts reach each other by address.

pub mod args;
pub mod control;
pub mod ctldir;
pub mod daemon;
pub mod error;
pub mod escape;
pub mod heal;
pub mod hosts;
pub mod local_cluster;
pub mod vm;

pub use args::SshArgs;
pub use control::{Control, ExecOutput, Remote, SshConfig};
pub use error::ControlError;
pub use escape::{shell_escape, shell_join};
pub use hosts::{read_nodes_file, HostSpec};
