//! Partitions as values: a grudge says, for each host, which hosts it drops traffic from.
//!
//! Computed by pure functions (as Jepsen's `jepsen.nemesis` does) so that every shape is
//! tested without a network; one effectful layer applies a grudge with iptables.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Host → the hosts whose packets it drops. Hosts with nothing to drop are absent.
/// A `BTreeMap` so that the grudge recorded in the history is stable and readable.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// The partition shapes Jepsen users know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// The first half of the hosts (in their given order) against the rest.
    Halves,
    /// Shuffled hosts cut into halves.
    RandomHalves,
    /// One random host isolated from all others.
    One,
    /// Each host sees a majority, and no two hosts see the same one.
    MajorityRing,
    /// Two halves that both see one bridge host, which sees everyone.
    Bridge,
    /// The current primaries (leaders) isolated from the rest.
    Primaries,
    /// One random host that is not a primary isolated from all others (the leader among
    /// them): where a system that serves reads locally goes stale.
    Follower,
}

impl PartitionKind {
    pub const ALL: [PartitionKind; 7] = [
        PartitionKind::Halves,
        PartitionKind::RandomHalves,
        PartitionKind::One,
        PartitionKind::MajorityRing,
        PartitionKind::Bridge,
        PartitionKind::Primaries,
        PartitionKind::Follower,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::Halves => "halves",
            PartitionKind::RandomHalves => "random-halves",
            PartitionKind::One => "one",
            PartitionKind::MajorityRing => "majority-ring",
            PartitionKind::Bridge => "bridge",
            PartitionKind::Primaries => "primaries",
            PartitionKind::Follower => "follower",
        }
    }
}

impl fmt::Display for PartitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PartitionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PartitionKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = PartitionKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown partition {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Every host drops every host outside its own component.
pub fn complete_grudge(components: &[Vec<String>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (i, component) in components.iter().enumerate() {
        let others: BTreeSet<String> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, c)| c.iter().cloned())
            .collect();
        if others.is_empty() {
            continue;
        }
        for host in component {
            grudge.insert(host.clone(), others.clone());
        }
    }
    grudge
}

/// Cuts hosts into two halves; the smaller half first, as Jepsen's `bisect` does.
pub fn bisect(hosts: &[String]) -> Vec<Vec<String>> {
    let (a, b) = hosts.split_at(hosts.len() / 2);
    vec![a.to_vec(), b.to_vec()]
}

/// Each host sees the hosts within `d` steps of it on a shuffled ring, with the smallest
/// `d` that makes that a majority. With 5 hosts each one sees itself and its two ring
/// neighbours, so every host is in a majority and yet no two hosts agree on which.
///
/// The window is symmetric (unlike a plain window of `majority` hosts, which for an even
/// majority leaves one side unseen): a drop rule on either end cuts TCP both ways, so an
/// asymmetric window would leave hosts in no majority at all. With 3 hosts no such ring
/// exists and the grudge is empty.
pub fn majority_ring(ring: &[String]) -> Grudge {
    let n = ring.len();
    let majority = n / 2 + 1;
    let reach = majority / 2; // ceil((majority - 1) / 2)
    let all: BTreeSet<String> = ring.iter().cloned().collect();
    let mut grudge = Grudge::new();
    for centre in 0..n {
        let visible: BTreeSet<String> = (0..=2 * reach)
            .map(|k| ring[(centre + n * 2 + k - reach) % n].clone())
            .collect();
        let dropped: BTreeSet<String> = all.difference(&visible).cloned().collect();
        if !dropped.is_empty() {
            grudge.insert(ring[centre].clone(), dropped);
        }
    }
    grudge
}

/// Two halves that cannot see each other, but both see the first host of the second half.
pub fn bridge(hosts: &[String]) -> Grudge {
    let halves = bisect(hosts);
    let Some(bridge_host) = halves[1].first().cloned() else {
        return Grudge::new();
    };
    let mut grudge = complete_grudge(&halves);
    grudge.remove(&bridge_host);
    for dropped in grudge.values_mut() {
        dropped.remove(&bridge_host);
    }
    grudge.retain(|_, dropped| !dropped.is_empty());
    grudge
}

/// Computes the grudge for `kind`. `primaries` is only consulted for
/// [`PartitionKind::Primaries`] and [`PartitionKind::Follower`]; when the db names no
/// primary, nothing is cut.
pub fn grudge_for<R: Rng>(
    kind: PartitionKind,
    hosts: &[String],
    primaries: &[String],
    rng: &mut R,
) -> Grudge {
    match kind {
        PartitionKind::Halves => complete_grudge(&bisect(hosts)),
        PartitionKind::RandomHalves => {
            let mut shuffled = hosts.to_vec();
            shuffled.shuffle(rng);
            complete_grudge(&bisect(&shuffled))
        }
        PartitionKind::One => {
            if hosts.len() < 2 {
                return Grudge::new();
            }
            let lonely = hosts[rng.random_range(0..hosts.len())].clone();
            let rest: Vec<String> = hosts.iter().filter(|h| **h != lonely).cloned().collect();
            complete_grudge(&[vec![lonely], rest])
        }
        PartitionKind::MajorityRing => {
            let mut ring = hosts.to_vec();
            ring.shuffle(rng);
            majority_ring(&ring)
        }
        PartitionKind::Bridge => {
            let mut shuffled = hosts.to_vec();
            shuffled.shuffle(rng);
            bridge(&shuffled)
        }
        PartitionKind::Primaries => {
            let isolated: Vec<String> = hosts
                .iter()
                .filter(|h| primaries.contains(h))
                .cloned()
                .collect();
            let rest: Vec<String> = hosts
                .iter()
                .filter(|h| !primaries.contains(h))
                .cloned()
                .collect();
            if isolated.is_empty() || rest.is_empty() {
                return Grudge::new();
            }
            complete_grudge(&[isolated, rest])
        }
        PartitionKind::Follower => {
            let followers: Vec<&String> = hosts.iter().filter(|h| !primaries.contains(h)).collect();
            if primaries.is_empty() || followers.is_empty() {
                return Grudge::new();
            }
            let lonely = followers[rng.random_range(0..followers.len())].clone();
            let rest: Vec<String> = hosts.iter().filter(|h| **h != lonely).cloned().collect();
            complete_grudge(&[vec![lonely], rest])
        }
    }
}

/// Whether `from` can send to `to` under `grudge`: `to` must not drop `from`, and since
/// replies are dropped too, `from` must not drop `to` for a TCP exchange to work.
pub fn can_talk(grudge: &Grudge, a: &str, b: &str) -> bool {
    let drops = |x: &str, y: &str| grudge.get(x).is_some_and(|d| d.contains(y));
    !drops(a, b) && !drops(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// Connected components of the "can talk" graph, for shape assertions.
    fn reachable_pairs(grudge: &Grudge, hosts: &[String]) -> BTreeSet<(String, String)> {
        let mut pairs = BTreeSet::new();
        for a in hosts {
            for b in hosts {
                if a < b && can_talk(grudge, a, b) {
                    pairs.insert((a.clone(), b.clone()));
                }
            }
        }
        pairs
    }

    #[test]
    fn halves_cut_smaller_half_from_larger() {
        let g = complete_grudge(&bisect(&hosts(5)));
        assert_eq!(g["n1"], ["n3", "n4", "n5"].map(String::from).into());
        assert_eq!(g["n5"], ["n1", "n2"].map(String::from).into());
        let pairs = reachable_pairs(&g, &hosts(5));
        // n1-n2 inside the minority, and three pairs inside the majority.
        assert_eq!(pairs.len(), 1 + 3);
    }

    #[test]
    fn one_isolates_exactly_one_host() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            let g = grudge_for(PartitionKind::One, &hosts(5), &[], &mut rng);
            let isolated: Vec<_> = g.iter().filter(|(_, d)| d.len() == 4).collect();
            assert_eq!(isolated.len(), 1, "{g:?}");
            assert_eq!(
                reachable_pairs(&g, &hosts(5)).len(),
                6,
                "the other four see each other"
            );
        }
    }

    #[test]
    fn majority_ring_gives_every_host_a_distinct_majority() {
        for n in [3, 4, 5, 6, 7] {
            let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
            let all = hosts(n);
            let g = grudge_for(PartitionKind::MajorityRing, &all, &[], &mut rng);
            let mut views = BTreeSet::new();
            for h in &all {
                let visible: BTreeSet<_> = all
                    .iter()
                    .filter(|o| *o == h || can_talk(&g, h, o))
                    .cloned()
                    .collect();
                assert!(visible.len() > n / 2, "{h} sees a majority in {g:?}");
                views.insert(visible);
            }
            if n > 3 {
                assert_eq!(views.len(), n, "no two hosts share a majority");
            } else {
                assert!(g.is_empty(), "with 3 hosts no ring can differ: {g:?}");
            }
        }
    }

    #[test]
    fn follower_partition_isolates_a_host_that_is_not_the_primary() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let g = grudge_for(PartitionKind::Follower, &hosts(3), &["n2".into()], &mut rng);
            let lonely: Vec<&String> = g
                .iter()
                .filter(|(_, d)| d.len() == 2)
                .map(|(h, _)| h)
                .collect();
            assert_eq!(lonely.len(), 1, "{g:?}");
            assert_ne!(lonely[0], "n2", "{g:?}");
            assert!(!can_talk(&g, lonely[0], "n2"));
        }
        assert!(grudge_for(PartitionKind::Follower, &hosts(3), &[], &mut rng).is_empty());
    }

    #[test]
    fn bridge_host_sees_everyone_and_halves_do_not_see_each_other() {
        let g = bridge(&hosts(5));
        // halves [n1 n2] and [n3 n4 n5]; n3 is the bridge.
        assert!(!g.contains_key("n3"));
        for h in ["n1", "n2", "n4", "n5"] {
            assert!(can_talk(&g, "n3", h));
        }
        assert!(!can_talk(&g, "n1", "n4"));
        assert!(!can_talk(&g, "n2", "n5"));
        assert!(can_talk(&g, "n1", "n2"));
        assert!(can_talk(&g, "n4", "n5"));
    }

    #[test]
    fn primaries_isolates_the_leader_and_nothing_without_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let g = grudge_for(
            PartitionKind::Primaries,
            &hosts(3),
            &["n2".into()],
            &mut rng,
        );
        assert!(!can_talk(&g, "n2", "n1") && !can_talk(&g, "n2", "n3"));
        assert!(can_talk(&g, "n1", "n3"));
        assert!(grudge_for(PartitionKind::Primaries, &hosts(3), &[], &mut rng).is_empty());
    }

    #[test]
    fn grudges_are_symmetric_so_tcp_is_cut_both_ways() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for kind in PartitionKind::ALL {
            let g = grudge_for(kind, &hosts(5), &["n1".into()], &mut rng);
            for (a, dropped) in &g {
                for b in dropped {
                    assert!(
                        g[b].contains(a),
                        "{kind}: {a} drops {b} but not back: {g:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in PartitionKind::ALL {
            assert_eq!(kind.name().parse::<PartitionKind>().unwrap(), kind);
        }
        assert!("sideways"
            .parse::<PartitionKind>()
            .unwrap_err()
            .contains("majority-ring"));
    }
}
