//! Network faults on a real local cluster (needs root): every partition shape produces the
//! reachability matrix its grudge promises, measured by TCP probes between every pair of
//! hosts; stopping a partition restores full reachability; packet loss and netem refusal
//! behave as documented. Cluster ids 10 and 11, one per test, since tests run in parallel
//! (ids 1–9 belong to other crates' tests).

use faultline_control::heal::{heal_all, CHAIN_INPUT};
use faultline_control::local_cluster::{self, ClusterConfig, LocalCluster};
use faultline_control::Control;
use faultline_nemesis::grudge::{can_talk, grudge_for, Grudge, PartitionKind};
use faultline_nemesis::net;
use faultline_nemesis::schedule::PacketFault;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Tears the cluster down on drop, also when an assertion fails.
struct ClusterGuard {
    cluster: LocalCluster,
    id: u8,
}

impl ClusterGuard {
    fn up(id: u8, nodes: usize) -> ClusterGuard {
        let cluster = local_cluster::up(&ClusterConfig { id, nodes })
            .unwrap_or_else(|e| panic!("cluster {id} up: {e:#}"));
        ClusterGuard { cluster, id }
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(e) = local_cluster::down(self.id) {
            eprintln!("cluster {} down failed: {e:#}", self.id);
        }
    }
}

/// Probes TCP from every host to every other host's sshd (port 22), in parallel from each
/// host; returns the pairs (a, b) with a < b where a connection in both directions worked.
async fn reachability(control: &Control) -> BTreeMap<(String, String), bool> {
    let addresses = net::addresses(control.remotes());
    let mut tasks = tokio::task::JoinSet::new();
    for remote in control.remotes() {
        let remote = remote.clone();
        let targets: Vec<(String, String)> = addresses
            .iter()
            .filter(|(name, _)| name.as_str() != remote.name())
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        tasks.spawn(async move {
            // One round trip per host: probe all peers concurrently with a short timeout.
            let script = r#"for t in "$@"; do
  name=${t%%=*}; addr=${t#*=}
  ( if timeout 1.5 bash -c "exec 3<>/dev/tcp/$addr/22" 2>/dev/null; then echo "$name up"; else echo "$name down"; fi ) &
done; wait"#;
            let pairs: Vec<String> = targets.iter().map(|(n, a)| format!("{n}={a}")).collect();
            let mut argv = vec!["bash", "-c", script, "probe"];
            argv.extend(pairs.iter().map(String::as_str));
            let out = remote.exec(&argv).await.expect("probe");
            let seen: Vec<(String, bool)> = out
                .stdout
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(n, s)| (n.to_string(), s == "up"))
                .collect();
            (remote.name().to_string(), seen)
        });
    }
    let mut directed: BTreeMap<(String, String), bool> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (from, seen) = joined.expect("probe task");
        for (to, up) in seen {
            directed.insert((from.clone(), to), up);
        }
    }
    let mut matrix = BTreeMap::new();
    for ((a, b), up) in &directed {
        if a < b {
            let back = directed
                .get(&(b.clone(), a.clone()))
                .copied()
                .unwrap_or(false);
            matrix.insert((a.clone(), b.clone()), *up && back);
        }
    }
    matrix
}

fn expected(grudge: &Grudge, hosts: &[String]) -> BTreeMap<(String, String), bool> {
    let mut matrix = BTreeMap::new();
    for a in hosts {
        for b in hosts {
            if a < b {
                matrix.insert((a.clone(), b.clone()), can_talk(grudge, a, b));
            }
        }
    }
    matrix
}

async fn rule_count(control: &Control) -> usize {
    let mut total = 0;
    for remote in control.remotes() {
        let out = remote
            .exec_status(&["iptables", "-w", "-S", CHAIN_INPUT])
            .await
            .expect("iptables -S");
        total += out.stdout.lines().filter(|l| l.starts_with("-A")).count();
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_cut_exactly_what_their_grudge_says_and_heal_fully() {
    let guard = ClusterGuard::up(10, 5);
    let control = Control::connect(&guard.cluster.hosts, &guard.cluster.ssh)
        .await
        .expect("connect");
    let hosts: Vec<String> = control
        .remotes()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    let all_up = expected(&Grudge::new(), &hosts);
    assert_eq!(
        reachability(&control).await,
        all_up,
        "fully connected at start"
    );

    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    for kind in PartitionKind::ALL {
        let grudge = grudge_for(kind, &hosts, &["n2".to_string()], &mut rng);
        assert!(!grudge.is_empty(), "{kind} cuts something on 5 hosts");
        net::start_partition(control.remotes(), &grudge)
            .await
            .expect("start");
        // Applying twice must not stack rules (a retried start after a timeout).
        net::start_partition(control.remotes(), &grudge)
            .await
            .expect("start again");
        let rules: usize = grudge.values().map(|d| d.len()).sum();
        assert_eq!(
            rule_count(&control).await,
            rules,
            "{kind}: one rule per grudge entry"
        );
        assert_eq!(
            reachability(&control).await,
            expected(&grudge, &hosts),
            "{kind}: reachability matches the grudge {grudge:?}"
        );
        net::stop_partition(control.remotes(), &grudge)
            .await
            .expect("stop");
        assert_eq!(
            rule_count(&control).await,
            0,
            "{kind}: stop removes every rule"
        );
        assert_eq!(reachability(&control).await, all_up, "{kind}: healed");
    }

    // Packet loss of 100% cuts a host off; stopping it removes exactly its rules.
    let lossy = vec!["n3".to_string()];
    let total_loss = PacketFault::Loss { probability: 1.0 };
    net::start_packet(control.remotes(), &lossy, &total_loss)
        .await
        .expect("start loss");
    let matrix = reachability(&control).await;
    for ((a, b), up) in &matrix {
        let touches_n3 = a == "n3" || b == "n3";
        assert_eq!(*up, !touches_n3, "{a}-{b} under total loss on n3");
    }
    net::stop_packet(control.remotes(), &lossy, &total_loss)
        .await
        .expect("stop loss");
    assert_eq!(rule_count(&control).await, 0);
    assert_eq!(reachability(&control).await, all_up);

    // A partition left behind (as by a killed controller) is removed by heal.
    let grudge = grudge_for(PartitionKind::Halves, &hosts, &[], &mut rng);
    net::start_partition(control.remotes(), &grudge)
        .await
        .expect("start");
    let reports = heal_all(&control).await.expect("heal");
    let removed: usize = reports
        .iter()
        .flat_map(|r| r.chains.iter().map(|(_, n)| n))
        .sum();
    assert_eq!(removed, grudge.values().map(|d| d.len()).sum::<usize>());
    assert_eq!(
        reachability(&control).await,
        all_up,
        "heal restores reachability"
    );

    control.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn netem_support_is_detected_per_host() {
    let guard = ClusterGuard::up(11, 2);
    let control = Control::connect(&guard.cluster.hosts, &guard.cluster.ssh)
        .await
        .expect("connect");
    let kernel_has_netem = std::path::Path::new("/sys/module/sch_netem").exists()
        || std::process::Command::new("modprobe")
            .args(["-n", "sch_netem"])
            .status()
            .is_ok_and(|s| s.success());
    let missing = net::netem_unsupported(control.remotes()).await;
    if kernel_has_netem {
        assert!(
            missing.is_empty(),
            "netem is loadable yet refused: {missing:?}"
        );
    } else {
        assert_eq!(missing.len(), 2, "every host reports the missing qdisc");
        for (_, reason) in &missing {
            assert!(!reason.is_empty(), "a reason is given");
        }
    }
    control.close().await;
}
