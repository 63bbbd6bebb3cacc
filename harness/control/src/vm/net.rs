//! The network of a VM cluster on the controller: one bridge holding the controller's
//! address, one tap per VM on it, and the FORWARD rule bridged traffic needs. Also finds
//! leftovers by name, so `down` cleans up after a crash.

use super::plan::{bridge_name, controller_address, parse_index, tap_name};
use crate::local_cluster::sys::{
    bridge_forward_rule, create_bridge, iptables_rule_present, remove_bridge_and_rule, run, run_ok,
};
use std::fs;

/// The FORWARD rule of VM cluster `id`'s bridge.
fn forward_rule(id: u8) -> Vec<String> {
    bridge_forward_rule(&bridge_name(id), &format!("faultline-vm-{id}"))
}

pub use crate::local_cluster::sys::link_exists;

pub fn forward_rule_present(id: u8) -> bool {
    iptables_rule_present(&forward_rule(id))
}

/// Host indices of cluster `id`'s taps that exist now.
pub fn existing_taps(id: u8) -> Vec<usize> {
    let prefix = format!("flvm{id}t");
    let mut out: Vec<usize> = fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| parse_index(e.file_name().to_str()?, &prefix))
        .collect();
    out.sort_unstable();
    out
}

/// Creates the bridge with the controller's address, and the taps for `nodes` VMs.
pub fn create(id: u8, nodes: usize) -> anyhow::Result<()> {
    let br = bridge_name(id);
    let address = format!("{}/24", controller_address(id));
    create_bridge(&br, &address, &forward_rule(id))?;
    for i in 1..=nodes {
        let tap = tap_name(id, i);
        run("ip", &["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        run("ip", &["link", "set", &tap, "master", &br, "up"])?;
    }
    Ok(())
}

/// Removes every tap, the bridge and the FORWARD rule of cluster `id`; whatever of it
/// exists. QEMU must be gone first (a tap held open by QEMU cannot be deleted).
pub fn remove(id: u8) {
    for i in existing_taps(id) {
        run_ok("ip", &["link", "del", &tap_name(id, i)]);
    }
    remove_bridge_and_rule(&bridge_name(id), &forward_rule(id));
}
