//! `faultline vagrant-nodes`: writes a nodes file for `--nodes-file` from `vagrant ssh-config`.
//!
//! Vagrant's own SSH settings point at a NAT-forwarded port on 127.0.0.1 (VirtualBox), which
//! other VMs cannot reach, so a host named `n<i>` is listed at the private address the
//! Vagrantfile gives it (`<subnet>.<10+i>`); any other host at the `HostName` Vagrant reports
//! when that is not a loopback address.

use anyhow::{bail, Context};
use clap::Args;
use faultline_control::vm;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

#[derive(Args)]
pub struct VagrantNodesArgs {
    /// The folder holding the Vagrantfile.
    #[arg(long, default_value = "vagrant")]
    pub dir: PathBuf,
    /// Read this saved `vagrant ssh-config` output instead of running vagrant.
    #[arg(long)]
    pub ssh_config: Option<PathBuf>,
    /// First three octets of the Vagrantfile's private network (its FAULTLINE_SUBNET).
    #[arg(long, default_value = "192.168.56")]
    pub subnet: String,
    /// Where to write the nodes file.
    #[arg(long, default_value = "vagrant/nodes")]
    pub out: PathBuf,
}

/// One `Host` block of `vagrant ssh-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfigHost {
    pub name: String,
    pub host_name: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<String>,
}

/// Parses `ssh_config` text as Vagrant prints it. Unknown keywords are ignored; a malformed
/// value is an error naming its line.
pub fn parse_ssh_config(text: &str) -> anyhow::Result<Vec<SshConfigHost>> {
    let mut hosts: Vec<SshConfigHost> = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim().trim_matches('"')),
            None => (line, ""),
        };
        let keyword = keyword.to_ascii_lowercase();
        if keyword == "host" {
            if value.is_empty() {
                bail!("line {}: `Host` without a name", number + 1);
            }
            hosts.push(SshConfigHost {
                name: value.to_string(),
                host_name: None,
                port: None,
                user: None,
                identity_file: None,
            });
            continue;
        }
        let Some(host) = hosts.last_mut() else {
            // Global options before the first Host block do not name a VM.
            continue;
        };
        match keyword.as_str() {
            "hostname" => host.host_name = Some(value.to_string()),
            "user" => host.user = Some(value.to_string()),
            "identityfile" => host.identity_file = Some(value.to_string()),
            "port" => {
                host.port = Some(value.parse().with_context(|| {
                    format!("line {}: Port {value:?} is not a port number", number + 1)
                })?)
            }
            _ => {}
        }
    }
    Ok(hosts)
}

/// The address other hosts and the controller reach `host` at.
pub fn host_address(host: &SshConfigHost, subnet: &str) -> anyhow::Result<String> {
    if let Some(index) = host
        .name
        .strip_prefix('n')
        .and_then(|i| i.parse::<u32>().ok())
    {
        return Ok(format!("{subnet}.{}", 10 + index));
    }
    match &host.host_name {
        Some(name) if !is_loopback(name) => Ok(name.clone()),
        Some(name) => bail!(
            "host {}: vagrant reports {name}, a forwarded loopback port other VMs cannot reach; \
             name the VM n<i> so it gets the Vagrantfile's private address",
            host.name
        ),
        None => bail!("host {}: vagrant ssh-config gives no HostName", host.name),
    }
}

fn is_loopback(name: &str) -> bool {
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The nodes file text: `name address` per line, in the order Vagrant listed the hosts. Its
/// first line marks the hosts as VMs, as `cluster up --vm` does, so that `faultline run` and
/// `cluster heal` change their system clocks without `--clock-strategy system`.
pub fn nodes_file(hosts: &[SshConfigHost], subnet: &str) -> anyhow::Result<String> {
    let mut out = format!(
        "{}\n# written by `faultline vagrant-nodes` from `vagrant ssh-config`\n",
        vm::VM_MARKER
    );
    for host in hosts {
        out.push_str(&format!("{} {}\n", host.name, host_address(host, subnet)?));
    }
    Ok(out)
}

pub fn run(args: VagrantNodesArgs) -> anyhow::Result<u8> {
    let text = match &args.ssh_config {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => {
            let output = Command::new("vagrant")
                .arg("ssh-config")
                .current_dir(&args.dir)
                .env("VAGRANT_CHECKPOINT_DISABLE", "1")
                .output()
                .with_context(|| {
                    format!("running `vagrant ssh-config` in {}", args.dir.display())
                })?;
            if !output.status.success() {
                bail!(
                    "`vagrant ssh-config` in {} exited with {}: {}",
                    args.dir.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            String::from_utf8(output.stdout).context("`vagrant ssh-config` printed non-UTF-8")?
        }
    };
    let hosts = parse_ssh_config(&text)?;
    if hosts.is_empty() {
        bail!("`vagrant ssh-config` lists no host; are the VMs up?");
    }
    std::fs::write(&args.out, nodes_file(&hosts, &args.subnet)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let key = args.dir.join(".faultline/id_ed25519");
    println!(
        "wrote {} ({} hosts); use: faultline run --nodes-file {} --ssh-private-key {}",
        args.out.display(),
        hosts.len(),
        args.out.display(),
        key.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of `vagrant ssh-config` for a VirtualBox pair, as Vagrant 2.3 prints it.
    const VIRTUALBOX: &str = "Host n1
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /home/ana/faultline/vagrant/.vagrant/machines/n1/virtualbox/private_key
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

Host n2
  HostName 127.0.0.1
  User vagrant
  Port 2200
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile \"/home/ana/my vms/vagrant/.vagrant/machines/n2/virtualbox/private_key\"
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

";

    /// vagrant-libvirt reports the VM's management address.
    const LIBVIRT: &str = "Host control
  HostName 192.168.121.45
  User vagrant
  Port 22
  IdentityFile /home/ana/.vagrant.d/insecure_private_key
";

    #[test]
    fn parses_every_block_of_a_virtualbox_sample() {
        let hosts = parse_ssh_config(VIRTUALBOX).unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].name, "n1");
        assert_eq!(hosts[0].port, Some(2222));
        assert_eq!(hosts[1].port, Some(2200));
        assert_eq!(hosts[0].user.as_deref(), Some("vagrant"));
        assert_eq!(
            hosts[1].identity_file.as_deref(),
            Some("/home/ana/my vms/vagrant/.vagrant/machines/n2/virtualbox/private_key")
        );
    }

    #[test]
    fn forwarded_loopback_hosts_get_their_private_address() {
        let hosts = parse_ssh_config(VIRTUALBOX).unwrap();
        assert_eq!(
            nodes_file(&hosts, "192.168.56").unwrap(),
            "# faultline: hosts are VMs\n\
             # written by `faultline vagrant-nodes` from `vagrant ssh-config`\n\
             n1 192.168.56.11\nn2 192.168.56.12\n"
        );
    }

    /// What `run` writes is what `faultline run` reads as a VM nodes file (system clocks).
    #[test]
    fn the_written_file_marks_its_hosts_as_vms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes");
        let saved = dir.path().join("ssh-config");
        std::fs::write(&saved, VIRTUALBOX).unwrap();
        let code = run(VagrantNodesArgs {
            dir: dir.path().to_path_buf(),
            ssh_config: Some(saved),
            subnet: "192.168.56".into(),
            out: path.clone(),
        })
        .unwrap();
        assert_eq!(code, 0);
        assert!(vm::nodes_file_is_vm(&path));
    }

    #[test]
    fn other_hosts_keep_a_reachable_host_name_and_loopback_ones_are_refused() {
        let hosts = parse_ssh_config(LIBVIRT).unwrap();
        assert_eq!(host_address(&hosts[0], "10.0.0").unwrap(), "192.168.121.45");
        let loopback = parse_ssh_config("Host box\n  HostName 127.0.0.1\n").unwrap();
        let err = host_address(&loopback[0], "10.0.0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("box") && err.contains("loopback"), "{err}");
    }

    #[test]
    fn a_bad_port_names_its_line() {
        let err = parse_ssh_config("Host n1\n  Port twenty\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("twenty"), "{err}");
    }
}
