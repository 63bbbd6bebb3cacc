//! Command-line options for reaching hosts over SSH, named as Jepsen users know them.

use crate::control::SshConfig;
use crate::hosts::{parse_nodes_file, HostSpec};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Duration;

/// SSH options shared by every verb that talks to hosts; flatten into a verb's arguments.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct SshArgs {
    /// Hosts to test, comma-separated: `address`, `address:port` or `name=address[:port]`.
    /// Without --nodes or --nodes-file the local cluster of namespace hosts is used.
    #[arg(long, value_delimiter = ',', conflicts_with = "nodes_file")]
    pub nodes: Vec<String>,

    /// File listing the hosts, one per line: `name address[:port]` or `address[:port]`.
    #[arg(long, value_name = "FILE")]
    pub nodes_file: Option<PathBuf>,

    /// User to log in as; anything but root runs commands through `sudo -n`.
    #[arg(long, default_value = "root")]
    pub username: String,

    /// Private key to log in with (default: the SSH agent and ~/.ssh keys).
    #[arg(long, value_name = "FILE")]
    pub ssh_private_key: Option<PathBuf>,

    /// SSH port for hosts that name none.
    #[arg(long, default_value_t = 22)]
    pub ssh_port: u16,

    /// Require host keys to be known already (~/.ssh/known_hosts) instead of accepting and
    /// recording them.
    #[arg(long)]
    pub strict_host_key_checking: bool,

    /// Seconds to wait for one SSH connection.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub ssh_connect_timeout: u64,
}

impl SshArgs {
    /// The hosts named by --nodes or --nodes-file; `None` when neither is given (use the
    /// local cluster).
    pub fn hosts(&self) -> anyhow::Result<Option<Vec<HostSpec>>> {
        if let Some(path) = &self.nodes_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read nodes file {}", path.display()))?;
            let hosts = parse_nodes_file(&text, self.ssh_port)
                .with_context(|| format!("in nodes file {}", path.display()))?;
            return Ok(Some(hosts));
        }
        if self.nodes.is_empty() {
            return Ok(None);
        }
        let mut hosts: Vec<HostSpec> = Vec::new();
        for text in &self.nodes {
            let host = HostSpec::parse(text, self.ssh_port).context("in --nodes")?;
            if hosts.iter().any(|h| h.name == host.name) {
                bail!("--nodes lists {:?} twice", host.name);
            }
            hosts.push(host);
        }
        Ok(Some(hosts))
    }

    /// The SSH settings these options describe; the command timeout is the default one.
    pub fn ssh_config(&self) -> SshConfig {
        SshConfig {
            username: self.username.clone(),
            private_key: self.ssh_private_key.clone(),
            strict_host_key_checking: self.strict_host_key_checking,
            connect_timeout: Duration::from_secs(self.ssh_connect_timeout),
            ..SshConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ssh: SshArgs,
    }

    #[test]
    fn jepsen_style_options_parse() {
        let cli = Cli::try_parse_from([
            "t",
            "--nodes",
            "n1=10.0.0.1,10.0.0.2:2200",
            "--username",
            "admin",
            "--ssh-private-key",
            "/k",
            "--ssh-port",
            "2222",
            "--strict-host-key-checking",
        ])
        .unwrap();
        let hosts = cli.ssh.hosts().unwrap().unwrap();
        assert_eq!(hosts[0].name, "n1");
        assert_eq!(hosts[0].port, 2222);
        assert_eq!(hosts[1].port, 2200);
        let cfg = cli.ssh.ssh_config();
        assert_eq!(cfg.username, "admin");
        assert!(cfg.strict_host_key_checking);
        assert_eq!(cfg.private_key, Some(PathBuf::from("/k")));

        let none = Cli::try_parse_from(["t"]).unwrap();
        assert_eq!(none.ssh.hosts().unwrap(), None);
        assert_eq!(none.ssh.ssh_config(), SshConfig::default());
        assert!(Cli::try_parse_from(["t", "--nodes", "a", "--nodes-file", "f"]).is_err());
        let dup = Cli::try_parse_from(["t", "--nodes", "a,a"]).unwrap();
        assert!(dup.ssh.hosts().is_err());
    }
}
