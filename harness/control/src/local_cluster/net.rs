//! The network of a local cluster: one namespace per host, veth pairs, a bridge in the root
//! namespace, and the one FORWARD rule bridged traffic needs. Also finds leftovers by name.

use super::sys::{
    bridge_forward_rule, create_bridge, iptables_rule_present, remove_bridge_and_rule, run, run_ok,
};
use std::fs;
use std::path::Path;

/// Namespace of host `i` (1-based) of cluster `id`.
pub fn netns_name(id: u8, i: usize) -> String {
    format!("fl{id}-n{i}")
}

/// The bridge in the root namespace joining cluster `id`'s hosts.
pub fn bridge_name(id: u8) -> String {
    format!("fl{id}br")
}

/// Root-side end of host `i`'s veth pair (at most 15 characters: `fl255v244`).
pub fn veth_name(id: u8, i: usize) -> String {
    format!("fl{id}v{i}")
}

pub fn subnet_prefix(id: u8) -> String {
    format!("10.77.{id}")
}

pub fn host_address(id: u8, i: usize) -> String {
    format!("10.77.{id}.{}", 10 + i)
}

/// The controller's address on the bridge.
pub fn controller_address(id: u8) -> String {
    format!("10.77.{id}.1")
}

/// The FORWARD rule of cluster `id`'s bridge.
fn forward_rule(id: u8) -> Vec<String> {
    bridge_forward_rule(&bridge_name(id), &format!("faultline-cluster-{id}"))
}

/// Numbers `i` of names `<prefix><i>` among `names`.
fn indices<'a>(names: impl Iterator<Item = &'a str>, prefix: &str) -> Vec<usize> {
    let mut out: Vec<usize> = names
        .filter_map(|n| n.strip_prefix(prefix))
        .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|rest| rest.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

fn dir_names(dir: &str) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Host indices of the namespaces of cluster `id` that exist now.
pub fn existing_namespaces(id: u8) -> Vec<usize> {
    let names = dir_names("/run/netns");
    indices(names.iter().map(String::as_str), &format!("fl{id}-n"))
}

/// Host indices of the root-side veths of cluster `id` that exist now.
pub fn existing_veths(id: u8) -> Vec<usize> {
    let names = dir_names("/sys/class/net");
    indices(names.iter().map(String::as_str), &format!("fl{id}v"))
}

pub use super::sys::link_exists;

pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// PIDs of every process whose network namespace is `ns`.
pub fn netns_pids(ns: &str) -> Vec<i32> {
    run("ip", &["netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn forward_rule_present(id: u8) -> bool {
    iptables_rule_present(&forward_rule(id))
}

/// Builds the bridge, the namespaces, the veths and the addresses for `nodes` hosts.
pub fn create(id: u8, nodes: usize) -> anyhow::Result<()> {
    let br = bridge_name(id);
    let prefix = subnet_prefix(id);
    create_bridge(&br, &format!("{prefix}.1/24"), &forward_rule(id))?;
    for i in 1..=nodes {
        let (ns, veth) = (netns_name(id, i), veth_name(id, i));
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run("ip", &["link", "set", &veth, "master", &br, "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        let addr = format!("{}/24", host_address(id, i));
        run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
    }
    Ok(())
}

/// Removes every veth, namespace and the bridge of cluster `id`, and the FORWARD rule.
/// Processes inside must already be gone. Veths go first and explicitly: a deleted namespace
/// kept alive by orphaned sockets would otherwise keep its veth, and the next `up` would fail
/// with "File exists".
pub fn remove(id: u8) {
    for i in existing_veths(id) {
        run_ok("ip", &["link", "del", &veth_name(id, i)]);
    }
    for i in existing_namespaces(id) {
        run_ok("ip", &["netns", "del", &netns_name(id, i)]);
    }
    remove_bridge_and_rule(&bridge_name(id), &forward_rule(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_do_not_collide_across_ids() {
        assert_eq!(veth_name(255, 244).len(), 9);
        assert!(bridge_name(255).len() <= 15);
        let names = ["fl1v1", "fl1v12", "fl11v2", "fl1br", "fl1v", "fl1vx"];
        assert_eq!(indices(names.iter().copied(), "fl1v"), vec![1, 12]);
        assert_eq!(indices(names.iter().copied(), "fl11v"), vec![2]);
        let ns = ["fl1-n1", "fl1-n2", "fl10-n1", "fl1-n"];
        assert_eq!(indices(ns.iter().copied(), "fl1-n"), vec![1, 2]);
    }

    #[test]
    fn addresses_follow_the_layout() {
        assert_eq!(host_address(3, 1), "10.77.3.11");
        assert_eq!(controller_address(0), "10.77.0.1");
    }
}
