//! Remote control over real SSH against a local cluster (needs root): commands, escaping,
//! timeouts, errors, file transfer, per-host isolation. Uses cluster id 1.

mod common;

use common::ClusterGuard;

#[tokio::test(flavor = "multi_thread")]
async fn remote_control_over_ssh() {
    let guard = ClusterGuard::up(1, 3);
    let control = guard.connect().await;
    assert_eq!(control.remotes().len(), 3);

    // Each host has its own hostname, and the host's address.
    for (i, remote) in control.remotes().iter().enumerate() {
        let out = remote.exec(&["hostname"]).await.unwrap();
        assert_eq!(out.stdout.trim(), format!("n{}", i + 1));
        let addrs = remote
            .exec(&["ip", "-4", "-o", "addr", "show", "eth0"])
            .await
            .unwrap();
        assert!(
            addrs.stdout.contains(&format!("10.77.1.{}/24", 11 + i)),
            "{}",
            addrs.stdout
        );
    }
    control.close().await;
}
