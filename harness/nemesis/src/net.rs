//! Applies network faults on hosts over SSH: partitions (iptables DROP per peer), packet
//! loss (iptables `statistic`), rate limits (tc `tbf`) and netem delay/duplicate/reorder.
//!
//! Every rule goes into faultline's own chain (`faultline_control::heal::CHAIN_INPUT`) and
//! every qdisc gets faultline's handle, so `cluster heal` finds them; the normal undo
//! deletes exactly the rules this module added. Rules only ever name peer test hosts, so
//! the controller's own SSH traffic is never dropped.

use crate::grudge::Grudge;
use crate::schedule::PacketFault;
use faultline_control::heal::{ensure_chains, CHAIN_INPUT, TC_HANDLE};
use faultline_control::{ControlError, Remote};
use std::collections::BTreeMap;

/// Adds (`-A`, skipping rules already there) or deletes (`-D`, ignoring rules already gone)
/// one DROP rule per peer address. $1: -A or -D, $2: chain, $3: extra match (may be empty),
/// then the peer addresses. Exits 1 when a rule could not be added or deleted (for example
/// the chain is missing), so the caller can create the chains and try again.
const RULES_SCRIPT: &str = r#"op=$1; chain=$2; extra=$3; shift 3
for peer in "$@"; do
  # shellcheck disable=SC2086
  if iptables -w -C "$chain" -s "$peer" $extra -j DROP 2>/dev/null; then
    if [ "$op" = -D ]; then iptables -w -D "$chain" -s "$peer" $extra -j DROP || exit 1; fi
  else
    if [ "$op" = -A ]; then iptables -w -A "$chain" -s "$peer" $extra -j DROP || exit 1; fi
  fi
done
exit 0"#;

/// Adds or deletes faultline's root qdisc on the interface that reaches $2.
/// $1: add or del, $2: a peer address, then the qdisc's own words.
const QDISC_SCRIPT: &str = r#"op=$1; peer=$2; shift 2
dev=$(ip -o route get "$peer" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
[ -n "$dev" ] || { echo "no route to $peer" >&2; exit 1; }
if [ "$op" = add ]; then
  tc qdisc replace dev "$dev" root handle "$FAULTLINE_TC_HANDLE" "$@"
else
  tc qdisc del dev "$dev" root handle "$FAULTLINE_TC_HANDLE" 2>/dev/null || true
fi"#;

/// Tries a netem qdisc on the host's loopback and removes it again.
const NETEM_PROBE_SCRIPT: &str = r#"if tc qdisc add dev lo root handle "$1" netem delay 1ms 2>/tmp/faultline-netem-probe; then
  tc qdisc del dev lo root handle "$1"; echo yes
else
  cat /tmp/faultline-netem-probe; rm -f /tmp/faultline-netem-probe
fi"#;

/// Host name → address, for every host.
pub fn addresses(hosts: &[Remote]) -> BTreeMap<String, String> {
    hosts
        .iter()
        .map(|r| (r.name().to_string(), r.address().to_string()))
        .collect()
}

async fn drop_rules(
    remote: &Remote,
    op: &str,
    extra: &str,
    peers: &[String],
) -> Result<(), ControlError> {
    if peers.is_empty() {
        return Ok(());
    }
    let mut argv = vec!["sh", "-c", RULES_SCRIPT, "sh", op, CHAIN_INPUT, extra];
    argv.extend(peers.iter().map(String::as_str));
    // One round trip when the chains exist (the usual case: the nemesis makes them at
    // setup); on slow hosts every SSH command costs seconds of the fault's timing.
    match remote.exec(&argv).await {
        Err(ControlError::Failed { .. }) if op == "-A" => {
            ensure_chains(remote).await?;
            remote.exec(&argv).await.map(|_| ())
        }
        outcome => outcome.map(|_| ()),
    }
}

/// Creates faultline's chains on every host, in parallel, so the first fault that adds
/// rules does not pay for it.
pub async fn prepare_chains(hosts: &[Remote]) -> Result<(), ControlError> {
    let plan = hosts
        .iter()
        .map(|r| (r.name().to_string(), Vec::new()))
        .collect();
    on_hosts(hosts, &plan, |remote, _| async move {
        ensure_chains(&remote).await
    })
    .await
}

/// Runs `per_host` on every host named in `plan`, in parallel; every host is tried, and the
/// first error is returned after all have finished (an undo must not stop half-way).
async fn on_hosts<F, Fut>(
    hosts: &[Remote],
    plan: &BTreeMap<String, Vec<String>>,
    per_host: F,
) -> Result<(), ControlError>
where
    F: Fn(Remote, Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(), ControlError>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (host, peers) in plan {
        if let Some(remote) = hosts.iter().find(|r| r.name() == host) {
            tasks.spawn(per_host(remote.clone(), peers.clone()));
        }
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Err(err)) = joined {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The grudge with host names turned into the addresses the rules match on.
fn peer_plan(hosts: &[Remote], grudge: &Grudge) -> BTreeMap<String, Vec<String>> {
    let addresses = addresses(hosts);
    grudge
        .iter()
        .map(|(host, dropped)| {
            let peers = dropped
                .iter()
                .filter_map(|peer| addresses.get(peer).cloned())
                .collect();
            (host.clone(), peers)
        })
        .collect()
}

/// Cuts the network as `grudge` says: each host drops packets from the hosts it holds a
/// grudge against (and so replies to them are lost too).
///
/// The hosts install their rules in waves, those cut off from the most peers first (the
/// minority side; see [`install_waves`]). Rules only drop what arrives, so while a host has
/// not yet installed its own it still hears the other side; on hosts that take seconds per
/// SSH command (emulated VMs), a majority that installed first elected a new leader whose
/// messages still reached the old one, which stepped down before it was ever cut off.
pub async fn start_partition(hosts: &[Remote], grudge: &Grudge) -> Result<(), ControlError> {
    let plan = peer_plan(hosts, grudge);
    for wave in install_waves(grudge) {
        let wave_plan: BTreeMap<String, Vec<String>> = plan
            .iter()
            .filter(|(host, _)| wave.contains(host))
            .map(|(host, peers)| (host.clone(), peers.clone()))
            .collect();
        on_hosts(hosts, &wave_plan, |remote, peers| async move {
            drop_rules(&remote, "-A", "", &peers).await
        })
        .await?;
    }
    Ok(())
}

/// The hosts of `grudge` that drop anything, grouped by how many peers each drops, most
/// first: one wave per group.
fn install_waves(grudge: &Grudge) -> Vec<Vec<String>> {
    let mut by_size: BTreeMap<std::cmp::Reverse<usize>, Vec<String>> = BTreeMap::new();
    for (host, dropped) in grudge.iter() {
        if !dropped.is_empty() {
            by_size
                .entry(std::cmp::Reverse(dropped.len()))
                .or_default()
                .push(host.clone());
        }
    }
    by_size.into_values().collect()
}

/// Removes exactly the rules [`start_partition`] added for `grudge`.
pub async fn stop_partition(hosts: &[Remote], grudge: &Grudge) -> Result<(), ControlError> {
    let plan = peer_plan(hosts, grudge);
    on_hosts(hosts, &plan, |remote, peers| async move {
        drop_rules(&remote, "-D", "", &peers).await
    })
    .await
}

/// Whether every host can run netem qdiscs. Returns the hosts that cannot, with the reason
/// the kernel gave.
pub async fn netem_unsupported(hosts: &[Remote]) -> Vec<(String, String)> {
    let mut missing = Vec::new();
    for remote in hosts {
        let out = remote
            .exec_status(&["sh", "-c", NETEM_PROBE_SCRIPT, "sh", TC_HANDLE])
            .await;
        match out {
            Ok(out) if out.stdout.trim() == "yes" => {}
            Ok(out) => missing.push((
                remote.name().to_string(),
                format!("{}{}", out.stdout.trim(), out.stderr.trim()),
            )),
            Err(err) => missing.push((remote.name().to_string(), err.to_string())),
        }
    }
    missing
}

/// The tc words for a qdisc fault, or `None` for faults done with iptables.
fn qdisc_words(fault: &PacketFault) -> Option<Vec<String>> {
    let words: Vec<String> = match *fault {
        PacketFault::Loss { .. } => return None,
        PacketFault::Rate { kbit } => format!("tbf rate {kbit}kbit burst 32kbit latency 400ms")
            .split(' ')
            .map(String::from)
            .collect(),
        PacketFault::Delay {
            delay_ms,
            jitter_ms,
        } => format!("netem delay {delay_ms}ms {jitter_ms}ms")
            .split(' ')
            .map(String::from)
            .collect(),
        PacketFault::Duplicate { probability } => {
            format!("netem duplicate {:.3}%", probability * 100.0)
                .split(' ')
                .map(String::from)
                .collect()
        }
        PacketFault::Reorder {
            probability,
            delay_ms,
        } => format!(
            "netem delay {delay_ms}ms reorder {:.3}%",
            probability * 100.0
        )
        .split(' ')
        .map(String::from)
        .collect(),
    };
    Some(words)
}

fn loss_match(probability: f64) -> String {
    format!("-m statistic --mode random --probability {probability:.4}")
}

/// Starts a packet fault on `hosts` (traffic between them and every other test host).
pub async fn start_packet(
    all: &[Remote],
    hosts: &[String],
    fault: &PacketFault,
) -> Result<(), ControlError> {
    packet(all, hosts, fault, true).await
}

/// Undoes exactly what [`start_packet`] did.
pub async fn stop_packet(
    all: &[Remote],
    hosts: &[String],
    fault: &PacketFault,
) -> Result<(), ControlError> {
    packet(all, hosts, fault, false).await
}

async fn packet(
    all: &[Remote],
    hosts: &[String],
    fault: &PacketFault,
    start: bool,
) -> Result<(), ControlError> {
    let addresses = addresses(all);
    let plan: BTreeMap<String, Vec<String>> = hosts
        .iter()
        .map(|host| {
            let peers = addresses
                .iter()
                .filter(|(name, _)| *name != host)
                .map(|(_, address)| address.clone())
                .collect();
            (host.clone(), peers)
        })
        .collect();
    match (qdisc_words(fault), *fault) {
        (None, PacketFault::Loss { probability }) => {
            let extra = loss_match(probability);
            let op = if start { "-A" } else { "-D" };
            on_hosts(all, &plan, move |remote, peers| {
                let extra = extra.clone();
                async move { drop_rules(&remote, op, &extra, &peers).await }
            })
            .await
        }
        (Some(words), _) => {
            on_hosts(all, &plan, move |remote, peers| {
                let words = words.clone();
                async move {
                    let Some(peer) = peers.first() else {
                        return Ok(());
                    };
                    let script = format!("FAULTLINE_TC_HANDLE={TC_HANDLE}\n{QDISC_SCRIPT}");
                    let op = if start { "add" } else { "del" };
                    let mut argv = vec!["sh", "-c", script.as_str(), "sh", op, peer.as_str()];
                    argv.extend(words.iter().map(String::as_str));
                    remote.exec(&argv).await.map(|_| ())
                }
            })
            .await
        }
        (None, _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qdisc_words_name_the_right_discipline() {
        assert_eq!(qdisc_words(&PacketFault::Loss { probability: 0.1 }), None);
        assert_eq!(
            qdisc_words(&PacketFault::Rate { kbit: 500 }).unwrap()[..3],
            ["tbf", "rate", "500kbit"].map(String::from)
        );
        assert_eq!(
            qdisc_words(&PacketFault::Delay {
                delay_ms: 100,
                jitter_ms: 20
            })
            .unwrap(),
            ["netem", "delay", "100ms", "20ms"].map(String::from)
        );
        assert_eq!(
            qdisc_words(&PacketFault::Duplicate { probability: 0.05 }).unwrap(),
            ["netem", "duplicate", "5.000%"].map(String::from)
        );
    }

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn names(wave: &[&str]) -> Vec<String> {
        wave.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn the_side_cut_off_from_most_peers_installs_first() {
        use crate::grudge::{grudge_for, PartitionKind};
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let primary = grudge_for(
            PartitionKind::Primaries,
            &hosts(3),
            &names(&["n2"]),
            &mut rng,
        );
        assert_eq!(
            install_waves(&primary),
            vec![names(&["n2"]), names(&["n1", "n3"])]
        );
        // Halves of five: the two-host side drops three peers each, the other side two.
        let halves = grudge_for(PartitionKind::Halves, &hosts(5), &[], &mut rng);
        let waves = install_waves(&halves);
        assert_eq!(waves.len(), 2, "{waves:?}");
        assert_eq!(waves[0].len(), 2, "{waves:?}");
        assert!(waves[0].iter().all(|h| halves[h].len() == 3), "{waves:?}");
        // A bridge host drops nothing, so it is in no wave; every host that drops is in one.
        let bridge = grudge_for(PartitionKind::Bridge, &hosts(5), &[], &mut rng);
        let waves = install_waves(&bridge);
        let dropping = bridge.values().filter(|d| !d.is_empty()).count();
        assert_eq!(waves.iter().map(Vec::len).sum::<usize>(), dropping);
        assert!(dropping < 5);
        // A majority ring: every host drops as many peers, so all install at once.
        let ring = grudge_for(PartitionKind::MajorityRing, &hosts(5), &[], &mut rng);
        assert_eq!(install_waves(&ring).len(), 1);
    }

    #[test]
    fn loss_matches_a_fraction_of_packets() {
        assert_eq!(
            loss_match(0.25),
            "-m statistic --mode random --probability 0.2500"
        );
    }
}
