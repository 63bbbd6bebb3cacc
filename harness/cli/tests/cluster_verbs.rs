//! `faultline cluster up|status|heal|down` as a user runs them (needs root). Uses local
//! cluster id 2 (the control crate's tests run in another test binary, never at the same time).

mod common;

use common::{faultline, text};
use std::process::Command;

const ID: &str = "2";

/// Takes the cluster down even when an assertion fails.
struct Down;
impl Drop for Down {
    fn drop(&mut self) {
        faultline(&["cluster", "down", "--id", ID]);
    }
}

#[test]
fn cluster_verbs_bring_up_show_heal_and_take_down() {
    let _down = Down;
    let up = faultline(&["cluster", "up", "--id", ID, "--nodes", "2"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("10.77.2.12"), "{}", text(&up));

    let status = faultline(&["cluster", "status", "--id", ID]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(text(&status).contains("is up"), "{}", text(&status));

    // A fault heal must find: a rule in faultline's chain on n2, added by hand over SSH.
    let key = format!("/var/lib/faultline/cluster-{ID}/id_ed25519");
    let add_rule = "iptables -w -N FAULTLINE-INPUT && iptables -w -I INPUT -j FAULTLINE-INPUT \
                    && iptables -w -A FAULTLINE-INPUT -s 10.77.2.11 -j DROP";
    let ssh = Command::new("ssh")
        .args(["-i", &key, "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
        .args(["root@10.77.2.12", add_rule])
        .output()
        .unwrap();
    assert!(ssh.status.success(), "{}", text(&ssh));
    let heal = faultline(&["cluster", "heal", "--id", ID]);
    assert!(heal.status.success(), "{}", text(&heal));
    let healed = text(&heal);
    assert!(
        healed.contains("n2: 1 iptables rule(s) removed"),
        "{healed}"
    );
    assert!(healed.contains("n1: nothing to heal"), "{healed}");

    let down = faultline(&["cluster", "down", "--id", ID]);
    assert!(down.status.success(), "{}", text(&down));
    let status = faultline(&["cluster", "status", "--id", ID]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(text(&status).contains("is not up"), "{}", text(&status));

    // Healing a cluster that is not up is a harness error (exit 3), not a silent no-op.
    let heal = faultline(&["cluster", "heal", "--id", ID]);
    assert_eq!(heal.status.code(), Some(3), "{}", text(&heal));
}
