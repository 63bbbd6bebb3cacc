//! The network plan of a VM cluster and each VM's kernel command line: pure functions of the
//! cluster id, the host index and the controller's public key.
//!
//! VM cluster `id` uses bridge `flvm{id}br`, taps `flvm{id}t{i}`, subnet `10.78.{id}.0/24`
//! (host `n{i}` at `.{10+i}`, the controller at `.1`) and MAC `52:54:00:78:{id}:{10+i}` (hex),
//! beside the namespace clusters' `10.77.{id}.0/24`.

use anyhow::{bail, Context};

/// The bridge joining cluster `id`'s taps, holding the controller's address.
pub fn bridge_name(id: u8) -> String {
    format!("flvm{id}br")
}

/// Host `i`'s tap (at most 15 characters: `flvm255t64`).
pub fn tap_name(id: u8, i: usize) -> String {
    format!("flvm{id}t{i}")
}

pub fn host_name(i: usize) -> String {
    format!("n{i}")
}

pub fn host_address(id: u8, i: usize) -> String {
    format!("10.78.{id}.{}", 10 + i)
}

pub fn controller_address(id: u8) -> String {
    format!("10.78.{id}.1")
}

/// Fixed per cluster and host, in QEMU's locally administered range, so a VM's interface
/// (and anything keyed on it) is the same on every boot.
pub fn mac_address(id: u8, i: usize) -> String {
    format!("52:54:00:78:{id:02x}:{:02x}", 10 + i)
}

/// One VM of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPlan {
    pub index: usize,
    pub name: String,
    pub address: String,
    pub tap: String,
    pub mac: String,
}

/// Every VM of cluster `id` with `nodes` hosts.
pub fn plan(id: u8, nodes: usize) -> Vec<VmPlan> {
    (1..=nodes)
        .map(|i| VmPlan {
            index: i,
            name: host_name(i),
            address: host_address(id, i),
            tap: tap_name(id, i),
            mac: mac_address(id, i),
        })
        .collect()
}

/// The key part of an OpenSSH public key line (`type base64 [comment]`) as one kernel
/// command-line word, `type,base64`; the comment is dropped (it may hold spaces).
pub fn key_word(public_key_line: &str) -> anyhow::Result<String> {
    let mut words = public_key_line.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        bail!("public key {public_key_line:?} is not `type base64 [comment]`");
    };
    let kind_ok = kind
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-@.".contains(&b));
    let blob_ok = blob
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if !kind_ok || !blob_ok {
        bail!("public key {public_key_line:?} has characters a kernel command line cannot carry");
    }
    Ok(format!("{kind},{blob}"))
}

/// The kernel command line of VM `vm` of cluster `id`: root on the virtio disk, console on
/// the serial port, `eth0` as the NIC's name, and the `faultline.*` words the image's boot
/// script reads (hostname, address, every host's name for `/etc/hosts`, root's key).
pub fn kernel_cmdline(id: u8, vm: &VmPlan, all: &[VmPlan], key: &str) -> String {
    let mut hosts = vec![format!("controller={}", controller_address(id))];
    hosts.extend(all.iter().map(|h| format!("{}={}", h.name, h.address)));
    format!(
        "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 \
         faultline.hostname={} faultline.ip={}/24 faultline.hosts={} faultline.key={key}",
        vm.name,
        vm.address,
        hosts.join(",")
    )
}

/// The nodes file of the cluster (the `--nodes-file` format, `name address` per line). Its
/// first line marks the hosts as VMs, which `faultline run` reads to pick the system clock
/// strategy (see [`super::nodes_file_is_vm`]).
pub fn nodes_file(id: u8, vms: &[VmPlan]) -> String {
    let mut text = format!(
        "{}\n# VM cluster {id}, written by `faultline cluster up --vm`\n",
        super::VM_MARKER
    );
    for vm in vms {
        text.push_str(&format!("{} {}\n", vm.name, vm.address));
    }
    text
}

/// Parses `n<i>` back to `i` (for leftovers found by name).
pub fn parse_index(text: &str, prefix: &str) -> Option<usize> {
    let rest = text.strip_prefix(prefix)?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Checks the plan's limits: 1 to `max` hosts.
pub fn check_size(nodes: usize, max: usize) -> anyhow::Result<()> {
    if nodes == 0 || nodes > max {
        bail!("a VM cluster has 1 to {max} hosts, not {nodes}");
    }
    Ok(())
}

/// Reads a public key file and returns its [`key_word`].
pub fn key_word_of_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read public key {}", path.display()))?;
    key_word(text.trim()).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::parse_nodes_file;

    #[test]
    fn names_fit_interface_limits_and_addresses_follow_the_layout() {
        assert!(tap_name(255, 64).len() <= 15);
        assert!(bridge_name(255).len() <= 15);
        let vms = plan(3, 2);
        assert_eq!(
            vms[1],
            VmPlan {
                index: 2,
                name: "n2".into(),
                address: "10.78.3.12".into(),
                tap: "flvm3t2".into(),
                mac: "52:54:00:78:03:0c".into(),
            }
        );
        assert_eq!(controller_address(3), "10.78.3.1");
        // Distinct per cluster and per host.
        assert_ne!(mac_address(1, 2), mac_address(2, 1));
        assert_eq!(mac_address(255, 64), "52:54:00:78:ff:4a");
    }

    #[test]
    fn kernel_cmdline_carries_name_address_hosts_and_key_without_spaces_inside_words() {
        let vms = plan(0, 3);
        let key = key_word("ssh-ed25519 AAAAC3Nza+/= faultline controller").unwrap();
        assert_eq!(key, "ssh-ed25519,AAAAC3Nza+/=");
        let line = kernel_cmdline(0, &vms[1], &vms, &key);
        let words: Vec<&str> = line.split(' ').collect();
        assert!(words.contains(&"root=/dev/vda"));
        assert!(words.contains(&"faultline.hostname=n2"));
        assert!(words.contains(&"faultline.ip=10.78.0.12/24"));
        assert!(words.contains(
            &"faultline.hosts=controller=10.78.0.1,n1=10.78.0.11,n2=10.78.0.12,n3=10.78.0.13"
        ));
        assert!(words.contains(&"faultline.key=ssh-ed25519,AAAAC3Nza+/="));
        // x86's command-line limit.
        assert!(line.len() < 2048);
    }

    #[test]
    fn keys_that_would_break_the_command_line_are_refused() {
        for bad in ["", "ssh-ed25519", "ssh-ed25519 AA;rm", "ssh ed25519,x AAA"] {
            assert!(key_word(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nodes_file_parses_and_is_marked_as_vms() {
        let vms = plan(1, 3);
        let text = nodes_file(1, &vms);
        let hosts = parse_nodes_file(&text, 22).unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[2].name, "n3");
        assert_eq!(hosts[2].address, "10.78.1.13");
        assert!(text.starts_with(super::super::VM_MARKER));
        assert_eq!(parse_index("flvm1t12", "flvm1t"), Some(12));
        assert_eq!(parse_index("flvm1t", "flvm1t"), None);
        assert_eq!(parse_index("flvm11t2", "flvm1t"), None);
        assert!(check_size(0, 3).is_err() && check_size(4, 3).is_err());
        assert!(check_size(3, 3).is_ok());
    }
}
