//! The local cluster's life cycle (needs root): sizes, idempotent `up`, `up` after a crash,
//! `down` killing what runs inside. Each test owns one cluster id (2, 3, 4) so they can run
//! in parallel.

mod common;

use common::ClusterGuard;
use faultline_control::local_cluster::{self, ClusterConfig};
use faultline_control::Control;
use std::path::Path;
use std::process::Command;

fn sh(line: &str) {
    let status = Command::new("sh").arg("-c").arg(line).status().unwrap();
    assert!(status.success(), "`{line}` failed");
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn sshd_pids(guard: &ClusterGuard) -> Vec<i32> {
    guard
        .cluster
        .hosts
        .iter()
        .map(|h| {
            let file = guard.cluster.host_dir(&h.name).join("sshd.pid");
            std::fs::read_to_string(&file)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect()
}

/// Every host answers over SSH with its own hostname.
async fn assert_hosts_answer(control: &Control, nodes: usize) {
    assert_eq!(control.remotes().len(), nodes);
    for (i, remote) in control.remotes().iter().enumerate() {
        let out = remote.exec(&["hostname"]).await.unwrap();
        assert_eq!(out.stdout.trim(), format!("n{}", i + 1));
    }
}

fn assert_nothing_left(id: u8) {
    assert!(local_cluster::status(id).unwrap().is_none());
    assert_eq!(local_cluster::leftovers(id), Vec::<String>::new());
    let prefix = format!("fl{id}-");
    let namespaces: Vec<_> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(namespaces.is_empty(), "{namespaces:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn up_and_down_with_three_then_five_hosts() {
    let id = 2;
    let guard = ClusterGuard::up(id, 3);
    let status = local_cluster::status(id).unwrap().expect("up after up");
    assert_eq!(status.hosts, guard.cluster.hosts);
    let control = guard.connect().await;
    assert_hosts_answer(&control, 3).await;
    control.close().await;

    // A different size replaces the cluster.
    let guard5 = ClusterGuard::up(id, 5);
    assert_eq!(guard5.cluster.hosts.len(), 5);
    assert_eq!(guard5.cluster.hosts[4].address, "10.77.2.15");
    let control = guard5.connect().await;
    assert_hosts_answer(&control, 5).await;
    control.close().await;

    local_cluster::down(id).unwrap();
    assert_nothing_left(id);
    drop((guard, guard5));
}

#[tokio::test(flavor = "multi_thread")]
async fn up_twice_in_a_row_keeps_the_running_cluster() {
    let id = 3;
    let guard = ClusterGuard::up(id, 3);
    let control = guard.connect().await;
    let n1 = control.remote("n1").unwrap();
    n1.exec(&["sh", "-c", "echo kept > /opt/faultline/marker"])
        .await
        .unwrap();
    let before = sshd_pids(&guard);

    let again = local_cluster::up(&ClusterConfig { id, nodes: 3 }).unwrap();
    assert_eq!(again.hosts, guard.cluster.hosts);
    assert_eq!(sshd_pids(&guard), before, "second up restarted sshd");
    // The connection made before the second `up` still works, and the host kept its files.
    let out = n1.exec(&["cat", "/opt/faultline/marker"]).await.unwrap();
    assert_eq!(out.stdout, "kept\n");
    control.close().await;

    local_cluster::down(id).unwrap();
    local_cluster::down(id).unwrap();
    assert_nothing_left(id);
    for pid in before {
        assert!(!alive(pid), "sshd {pid} survived down");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_after_a_crash_removes_what_was_left_behind() {
    let id = 4;
    let guard = ClusterGuard::up(id, 3);
    let control = guard.connect().await;
    let n2 = control.remote("n2").unwrap();
    let daemon = "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > /opt/faultline/sleep.pid";
    n2.exec(&["sh", "-c", daemon]).await.unwrap();
    let sleep_pid: i32 = n2
        .exec(&["cat", "/opt/faultline/sleep.pid"])
        .await
        .unwrap()
        .stdout
        .trim()
        .parse()
        .unwrap();
    assert!(alive(sleep_pid));
    let old_sshds = sshd_pids(&guard);
    control.close().await;

    // The crash: the state file is gone (as when `up` dies half-way), a namespace of a larger
    // earlier cluster remains with a process in it, and n1's namespace was deleted while its
    // sshd still ran in it: the namespace lives on unnamed and keeps its veth in the root
    // namespace (as orphaned sockets do), so only the PID file and the veth's name find them.
    std::fs::remove_file(guard.cluster.state_dir().join("cluster.json")).unwrap();
    sh("ip netns add fl4-n7 && ip link add fl4v7 type veth peer name eth0 netns fl4-n7");
    let mut in_stale_ns = Command::new("ip")
        .args(["netns", "exec", "fl4-n7", "sleep", "1000"])
        .spawn()
        .unwrap();
    // Wait until it has joined the namespace, or `up` could miss it.
    let joined = (0..500).any(|_| {
        let pids = Command::new("ip")
            .args(["netns", "pids", "fl4-n7"])
            .output()
            .unwrap();
        let found = pids.stdout.iter().any(u8::is_ascii_digit);
        if !found {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        found
    });
    assert!(joined, "sleep never joined fl4-n7");
    sh("ip netns del fl4-n1");
    assert!(Path::new("/sys/class/net/fl4v1").exists());
    assert!(alive(old_sshds[0]));
    assert!(local_cluster::status(id).unwrap().is_none());

    let cluster = local_cluster::up(&ClusterConfig { id, nodes: 3 }).unwrap();
    assert!(!alive(sleep_pid), "process inside n2 survived");
    for pid in old_sshds {
        assert!(!alive(pid), "old sshd {pid} survived");
    }
    let _ = in_stale_ns.wait();
    assert!(!Path::new("/run/netns/fl4-n7").exists());
    assert!(!Path::new("/sys/class/net/fl4v7").exists());
    let control = Control::connect(&cluster.hosts, &cluster.ssh)
        .await
        .unwrap();
    assert_hosts_answer(&control, 3).await;
    control.close().await;

    local_cluster::down(id).unwrap();
    assert_nothing_left(id);
}
