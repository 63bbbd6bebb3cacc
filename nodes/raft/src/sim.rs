//! A deterministic simulated network that drives several Raft cores without sockets,
//! threads or sleeps, and the scenario tests that use it (named after the Raft paper's
//! sections they exercise).

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::core::{Config, Raft, Role};
use crate::message::{Body, Entry, HardState, Message, NodeId, ReadState, Snapshot};

/// What a node has on disk: exactly what the cores handed out to persist.
#[derive(Default, Clone)]
struct Disk {
    hard_state: HardState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

struct SimNode {
    cfg: Config,
    raft: Option<Raft>,
    disk: Disk,
    /// The state machine: every applied non-noop entry as (index, data).
    applied: Vec<(u64, Vec<u8>)>,
    applied_index: u64,
    reads: Vec<ReadState>,
    dropped_reads: Vec<u64>,
}

pub(crate) struct Net {
    nodes: BTreeMap<NodeId, SimNode>,
    queue: VecDeque<Message>,
    cut: HashSet<(NodeId, NodeId)>,
    delivered: usize,
}

fn id(i: usize) -> NodeId {
    format!("n{i}")
}

impl Net {
    pub(crate) fn new(n: usize, seed: u64, tweak: impl Fn(&mut Config)) -> Self {
        let peers: Vec<NodeId> = (1..=n).map(id).collect();
        let mut nodes = BTreeMap::new();
        for (i, p) in peers.iter().enumerate() {
            let mut cfg = Config::new(p.clone(), peers.clone());
            cfg.seed = seed * 1000 + i as u64;
            tweak(&mut cfg);
            let raft = Raft::new(
                cfg.clone(),
                HardState::default(),
                Snapshot::default(),
                Vec::new(),
            );
            let node = SimNode {
                cfg,
                raft: Some(raft),
                disk: Disk::default(),
                applied: Vec::new(),
                applied_index: 0,
                reads: Vec::new(),
                dropped_reads: Vec::new(),
            };
            nodes.insert(p.clone(), node);
        }
        Self {
            nodes,
            queue: VecDeque::new(),
            cut: HashSet::new(),
            delivered: 0,
        }
    }

    fn raft(&mut self, id: &str) -> &mut Raft {
        self.nodes
            .get_mut(id)
            .and_then(|n| n.raft.as_mut())
            .expect("node is up")
    }

    fn role(&self, id: &str) -> Option<Role> {
        self.nodes[id].raft.as_ref().map(|r| r.role())
    }

    fn term(&self, id: &str) -> u64 {
        self.nodes[id].raft.as_ref().map_or(0, |r| r.term())
    }

    /// Drops all traffic between `id` and everyone else.
    fn isolate(&mut self, id: &str) {
        let others: Vec<NodeId> = self.nodes.keys().filter(|k| *k != id).cloned().collect();
        for o in others {
            self.cut.insert((id.to_string(), o.clone()));
            self.cut.insert((o, id.to_string()));
        }
    }

    /// Splits the cluster: traffic flows only inside each group.
    fn partition(&mut self, groups: &[&[&str]]) {
        self.heal();
        for a in self.nodes.keys() {
            for b in self.nodes.keys() {
                let same = groups
                    .iter()
                    .any(|g| g.contains(&a.as_str()) && g.contains(&b.as_str()));
                if !same {
                    self.cut.insert((a.clone(), b.clone()));
                }
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn crash(&mut self, id: &str) {
        let node = self.nodes.get_mut(id).unwrap();
        node.raft = None;
        node.applied.clear();
        node.applied_index = 0;
    }

    /// Restarts a crashed node from its disk, as the real server does.
    fn restart(&mut self, id: &str) {
        let node = self.nodes.get_mut(id).unwrap();
        let d = node.disk.clone();
        node.applied = if d.snapshot.data.is_empty() {
            Vec::new()
        } else {
            bincode::deserialize(&d.snapshot.data).unwrap()
        };
        node.applied_index = d.snapshot.index;
        node.raft = Some(Raft::new(
            node.cfg.clone(),
            d.hard_state,
            d.snapshot,
            d.entries,
        ));
    }

    /// The node's applied state becomes a snapshot and its log is compacted.
    fn compact(&mut self, id: &str) {
        let node = self.nodes.get_mut(id).unwrap();
        let data = bincode::serialize(&node.applied).unwrap();
        let raft = node.raft.as_mut().unwrap();
        raft.compact(node.applied_index, data);
        node.disk.snapshot = raft.snapshot().clone();
        let index = node.disk.snapshot.index;
        node.disk.entries.retain(|e| e.index > index);
    }

    fn process_ready(&mut self, id: &str) {
        let node = self.nodes.get_mut(id).unwrap();
        let Some(raft) = node.raft.as_mut() else {
            return;
        };
        while raft.has_ready() {
            let rd = raft.ready();
            if let Some(s) = rd.snapshot {
                node.applied = bincode::deserialize(&s.data).unwrap();
                node.applied_index = s.index;
                node.disk.entries.clear();
                node.disk.snapshot = s;
            }
            for e in rd.entries {
                node.disk.entries.retain(|d| d.index < e.index);
                node.disk.entries.push(e);
            }
            if let Some(hs) = rd.hard_state {
                node.disk.hard_state = hs;
            }
            self.queue.extend(rd.messages);
            for e in rd.committed {
                assert_eq!(
                    e.index,
                    node.applied_index + 1,
                    "{id} applies in order without gaps"
                );
                node.applied_index = e.index;
                if !e.data.is_empty() {
                    node.applied.push((e.index, e.data));
                }
            }
            node.reads.extend(rd.read_states);
            node.dropped_reads.extend(rd.dropped_reads);
        }
    }

    /// Runs every node's output and delivers messages until the network is quiet.
    fn settle(&mut self) {
        for _round in 0..10_000 {
            let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
            for i in &ids {
                self.process_ready(i);
            }
            if self.queue.is_empty() {
                self.check_safety();
                return;
            }
            while let Some(m) = self.queue.pop_front() {
                if self.cut.contains(&(m.from.clone(), m.to.clone())) {
                    continue;
                }
                if let Some(r) = self.nodes.get_mut(&m.to).and_then(|n| n.raft.as_mut()) {
                    self.delivered += 1;
                    r.step(m);
                }
            }
        }
        panic!("network did not settle");
    }

    fn tick_all(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for n in self.nodes.values_mut() {
                if let Some(r) = n.raft.as_mut() {
                    r.tick();
                }
            }
            self.settle();
        }
    }

    /// Ticks only `ids` (the others are paused, e.g. by SIGSTOP).
    fn tick_only(&mut self, ids: &[NodeId], ticks: usize) {
        for _ in 0..ticks {
            for id in ids {
                if let Some(r) = self.nodes.get_mut(id).and_then(|n| n.raft.as_mut()) {
                    r.tick();
                }
            }
            self.settle();
        }
    }

    /// Ticks until some node leads (at most `ticks_max`), returning it.
    fn elect(&mut self, ticks_max: usize) -> NodeId {
        for _ in 0..ticks_max {
            self.tick_all(1);
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader after {ticks_max} ticks");
    }

    /// The live leader with the highest term, if any.
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raft.as_ref().is_some_and(|r| r.role() == Role::Leader))
            .max_by_key(|(_, n)| n.raft.as_ref().unwrap().term())
            .map(|(k, _)| k.clone())
    }

    fn propose(&mut self, id: &str, data: &[u8]) -> u64 {
        let index = self
            .raft(id)
            .propose(data.to_vec())
            .expect("proposing on the leader");
        self.settle();
        index
    }

    fn applied(&self, id: &str) -> Vec<Vec<u8>> {
        self.nodes[id]
            .applied
            .iter()
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// State machine safety (§5.4.3): any two nodes applied the same entry at each index,
    /// and at most one leader per term (§5.2).
    fn check_safety(&self) {
        let lists: Vec<&Vec<(u64, Vec<u8>)>> = self.nodes.values().map(|n| &n.applied).collect();
        for a in &lists {
            for b in &lists {
                for (x, y) in a.iter().zip(b.iter()) {
                    assert_eq!(x, y, "two nodes applied different entries");
                }
            }
        }
        let mut leaders = HashSet::new();
        for n in self.nodes.values() {
            if let Some(r) = n.raft.as_ref().filter(|r| r.role() == Role::Leader) {
                assert!(leaders.insert(r.term()), "two leaders in term {}", r.term());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: usize, seed: u64) -> (Net, NodeId) {
        let mut net = Net::new(n, seed, |_| {});
        let leader = net.elect(200);
        (net, leader)
    }

    #[test]
    fn s5_2_election_elects_exactly_one_leader_with_3_and_5_nodes() {
        for n in [3, 5] {
            for seed in 0..5 {
                let (net, leader) = cluster(n, seed);
                let followers = net
                    .nodes
                    .keys()
                    .filter(|k| net.role(k) == Some(Role::Follower))
                    .count();
                assert_eq!(
                    followers,
                    n - 1,
                    "{n} nodes, seed {seed}: all others follow {leader}"
                );
                let term = net.term(&leader);
                assert!(net.nodes.keys().all(|k| net.term(k) == term));
            }
        }
    }

    #[test]
    fn s5_3_replication_reaches_every_node_in_order() {
        for n in [3, 5] {
            let (mut net, leader) = cluster(n, 7);
            for i in 0..20u8 {
                net.propose(&leader, &[i]);
            }
            net.tick_all(3);
            let want: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i]).collect();
            for id in net.nodes.keys().cloned().collect::<Vec<_>>() {
                assert_eq!(net.applied(&id), want, "node {id} of {n}");
            }
        }
    }

    #[test]
    fn s5_4_leader_crash_elects_a_new_leader_that_keeps_committed_entries() {
        for n in [3, 5] {
            let (mut net, old) = cluster(n, 3);
            net.propose(&old, b"a");
            net.tick_all(2);
            net.crash(&old);
            let new = net.elect(200);
            assert_ne!(new, old);
            assert!(net.term(&new) > 1);
            net.propose(&new, b"b");
            net.tick_all(2);
            assert_eq!(net.applied(&new), vec![b"a".to_vec(), b"b".to_vec()]);
            // The old leader restarts from disk, rejoins as a follower and catches up.
            net.restart(&old);
            net.tick_all(30);
            assert_eq!(net.role(&old), Some(Role::Follower));
            assert_eq!(net.applied(&old), vec![b"a".to_vec(), b"b".to_vec()]);
        }
    }

    #[test]
    fn s5_3_follower_restart_catches_up_from_its_log_and_the_leaders() {
        let (mut net, leader) = cluster(3, 11);
        let follower = net.nodes.keys().find(|k| **k != leader).unwrap().clone();
        net.propose(&leader, b"before");
        net.tick_all(2);
        net.crash(&follower);
        for i in 0..10u8 {
            net.propose(&leader, &[i]);
        }
        net.restart(&follower);
        // Its own log replays what it had persisted before the crash.
        net.tick_all(1);
        assert_eq!(net.applied(&follower)[0], b"before".to_vec());
        net.tick_all(10);
        assert_eq!(net.applied(&follower), net.applied(&leader));
        assert_eq!(net.applied(&follower).len(), 11);
    }

    #[test]
    fn s7_lagging_follower_catches_up_from_a_snapshot() {
        let (mut net, leader) = cluster(3, 5);
        let follower = net.nodes.keys().find(|k| **k != leader).unwrap().clone();
        net.crash(&follower);
        for i in 0..30u8 {
            net.propose(&leader, &[i]);
        }
        net.tick_all(2);
        net.compact(&leader);
        assert!(net.raft(&leader).snapshot_index() >= 31);
        net.restart(&follower);
        net.tick_all(20);
        assert_eq!(net.applied(&follower).len(), 30);
        assert_eq!(net.applied(&follower), net.applied(&leader));
        assert!(
            net.nodes[&follower].disk.snapshot.index >= 31,
            "the snapshot was installed"
        );
        // And the follower keeps replicating normally after the snapshot.
        net.propose(&leader, b"after");
        net.tick_all(3);
        assert_eq!(net.applied(&follower).last().unwrap(), b"after");
        // Restarting from the installed snapshot gives the same state.
        net.crash(&follower);
        net.restart(&follower);
        net.tick_all(5);
        assert_eq!(net.applied(&follower), net.applied(&leader));
    }

    #[test]
    fn a_follower_that_lost_its_disk_is_caught_up_by_the_same_leader() {
        let (mut net, leader) = cluster(3, 7);
        let follower = net.nodes.keys().find(|k| **k != leader).unwrap().clone();
        for i in 0..20u8 {
            net.propose(&leader, &[i]);
        }
        let term = net.term(&leader);
        net.crash(&follower);
        net.nodes.get_mut(&follower).unwrap().disk = Disk::default();
        net.restart(&follower);
        net.tick_all(20);
        assert_eq!(net.leader().as_deref(), Some(leader.as_str()));
        assert_eq!(net.term(&leader), term, "no election was needed");
        assert_eq!(net.applied(&follower), net.applied(&leader));
        assert_eq!(net.applied(&follower).len(), 20);
    }

    #[test]
    fn malformed_appends_from_a_peer_change_nothing() {
        let (mut net, leader) = cluster(3, 8);
        let follower = net.nodes.keys().find(|k| **k != leader).unwrap().clone();
        net.propose(&leader, b"a");
        let term = net.term(&leader);
        let before = net.raft(&follower).hard_state();
        let entry = |index, term| Entry {
            term,
            index,
            data: b"evil".to_vec(),
        };
        let append = |prev_index, prev_term, entries| Message {
            from: leader.clone(),
            to: follower.clone(),
            term,
            body: Body::Append {
                prev_index,
                prev_term,
                entries,
                commit: 1_000,
                read_seq: 0,
            },
        };
        for m in [
            append(2, term, vec![entry(7, term)]),
            append(2, term, vec![entry(3, term), entry(3, term)]),
            append(2, term, vec![entry(3, term + 5)]),
            append(u64::MAX, term, vec![entry(0, term)]),
        ] {
            net.raft(&follower).step(m);
        }
        assert_eq!(net.raft(&follower).hard_state(), before);
        net.tick_all(3);
        assert_eq!(net.applied(&follower), net.applied(&leader));
        assert!(net.applied(&follower).iter().all(|d| d != b"evil"));
    }

    #[test]
    fn s5_4_minority_partition_cannot_commit_while_majority_can() {
        let (mut net, leader) = cluster(5, 9);
        net.propose(&leader, b"shared");
        net.tick_all(2);
        let others: Vec<NodeId> = net
            .nodes
            .keys()
            .filter(|k| **k != leader)
            .cloned()
            .collect();
        let minority = [leader.as_str(), others[0].as_str()];
        let majority = [others[1].as_str(), others[2].as_str(), others[3].as_str()];
        net.partition(&[&minority, &majority]);
        let lost = net.propose(&leader, b"minority-write");
        net.tick_all(5);
        assert!(
            net.raft(&leader).commit_index() < lost,
            "minority leader cannot commit"
        );
        let new_leader = (0..300)
            .find_map(|_| {
                net.tick_all(1);
                majority
                    .iter()
                    .find(|m| net.role(m) == Some(Role::Leader))
                    .map(|m| m.to_string())
            })
            .expect("majority elects a leader");
        net.propose(&new_leader, b"majority-write");
        net.tick_all(2);
        assert_eq!(
            net.applied(&new_leader),
            vec![b"shared".to_vec(), b"majority-write".to_vec()]
        );
        // The minority leader stepped down by check-quorum.
        net.tick_all(25);
        assert_ne!(net.role(&leader), Some(Role::Leader));
        net.heal();
        net.tick_all(30);
        for id in net.nodes.keys().cloned().collect::<Vec<_>>() {
            assert_eq!(
                net.applied(&id),
                vec![b"shared".to_vec(), b"majority-write".to_vec()],
                "{id}"
            );
        }
    }

    #[test]
    fn s9_6_prevote_keeps_a_rejoining_partitioned_node_from_disrupting_the_leader() {
        let (mut net, leader) = cluster(3, 2);
        let term = net.term(&leader);
        let loner = net.nodes.keys().find(|k| **k != leader).unwrap().clone();
        net.isolate(&loner);
        net.tick_all(200);
        assert_eq!(
            net.term(&loner),
            term,
            "pre-votes fail, so the term does not grow"
        );
        assert_eq!(net.role(&loner), Some(Role::PreCandidate));
        net.heal();
        net.tick_all(10);
        assert_eq!(net.leader(), Some(leader.clone()));
        assert_eq!(net.term(&leader), term);
        assert_eq!(net.role(&loner), Some(Role::Follower));
    }

    #[test]
    fn s5_4_1_election_restriction_keeps_stale_logs_from_leading() {
        let (mut net, leader) = cluster(3, 4);
        let others: Vec<NodeId> = net
            .nodes
            .keys()
            .filter(|k| **k != leader)
            .cloned()
            .collect();
        net.isolate(&others[0]);
        net.propose(&leader, b"x");
        net.tick_all(2);
        // Only the stale node and the one without... the up-to-date follower survive the leader.
        net.crash(&leader);
        net.heal();
        let new = net.elect(300);
        assert_eq!(
            new, others[1],
            "only the node holding the committed entry can win"
        );
        assert_eq!(net.applied(&new), vec![b"x".to_vec()]);
    }

    #[test]
    fn read_index_needs_a_quorum_round_and_is_dropped_on_step_down() {
        let (mut net, leader) = cluster(3, 6);
        net.propose(&leader, b"v");
        net.raft(&leader).read_index(1).unwrap();
        net.settle();
        let reads = &net.nodes[&leader].reads;
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].ctx, 1);
        assert!(
            reads[0].index >= 2,
            "the read waits for the committed write"
        );
        // An isolated leader cannot confirm leadership: no read state, then it steps down.
        net.isolate(&leader);
        net.raft(&leader).read_index(2).unwrap();
        net.tick_all(25);
        assert_eq!(net.nodes[&leader].reads.len(), 1);
        assert_eq!(net.nodes[&leader].dropped_reads, vec![2]);
        let follower = net.nodes.keys().find(|k| **k != leader).unwrap().clone();
        assert!(net.raft(&follower).read_index(3).is_err());
    }

    #[test]
    fn lease_reads_skip_the_round_while_the_lease_holds() {
        let mut net = Net::new(3, 8, |c| {
            c.lease_reads = true;
            c.lease_ms = 400;
        });
        let leader = net.elect(200);
        net.raft(&leader).set_now_ms(1000);
        net.tick_all(2);
        net.settle();
        assert!(net.raft(&leader).lease_valid());
        let before = net.delivered;
        net.raft(&leader).read_index(1).unwrap();
        net.settle();
        assert_eq!(net.delivered, before, "no messages for a lease read");
        assert_eq!(net.nodes[&leader].reads.len(), 1);
        net.raft(&leader).set_now_ms(1000 + 401);
        assert!(!net.raft(&leader).lease_valid());
        net.raft(&leader).read_index(2).unwrap();
        net.settle();
        assert!(
            net.delivered > before,
            "an expired lease falls back to a ReadIndex round"
        );
        assert_eq!(net.nodes[&leader].reads.len(), 2);
    }

    #[test]
    fn random_partitions_and_crashes_never_break_safety() {
        use rand::{Rng, SeedableRng};
        for seed in 0..4 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut net = Net::new(5, seed, |c| c.append_entries_max = 3);
            let ids: Vec<NodeId> = net.nodes.keys().cloned().collect();
            let mut proposed = 0u32;
            for step in 0..300 {
                match rng.random_range(0..10) {
                    0 => {
                        let a = &ids[rng.random_range(0..5)];
                        net.isolate(a);
                    }
                    1 => net.heal(),
                    2 => {
                        let a = ids[rng.random_range(0..5)].clone();
                        if net.nodes[&a].raft.is_some() {
                            net.crash(&a);
                        } else {
                            net.restart(&a);
                        }
                    }
                    3 => {
                        if let Some(l) = net.leader() {
                            net.compact(&l);
                        }
                    }
                    _ => {
                        if let Some(l) = net.leader() {
                            proposed += 1;
                            let _ = net.raft(&l).propose(format!("{seed}-{step}").into_bytes());
                        }
                    }
                }
                net.tick_all(1);
            }
            net.heal();
            for id in &ids {
                if net.nodes[id].raft.is_none() {
                    net.restart(id);
                }
            }
            let leader = net.elect(300);
            net.propose(&leader, b"final");
            net.tick_all(40);
            let want = net.applied(&leader);
            assert!(want.len() > 1 && proposed > 0);
            for id in &ids {
                assert_eq!(net.applied(id), want, "seed {seed}: {id} converged");
            }
        }
    }

    #[test]
    fn bug_lease_unsafe_a_clock_jumping_back_serves_a_stale_read() {
        // `lease-unsafe` feeds the core the wall clock; the correct mode feeds a monotonic
        // clock, which keeps running while the leader is paused and never jumps back.
        for wall_clock_jumps_back in [false, true] {
            let mut net = Net::new(3, 12, |c| {
                c.lease_reads = true;
                c.lease_ms = 450;
                c.lease_overrides_quorum = wall_clock_jumps_back;
            });
            let old = net.elect(200);
            net.raft(&old).set_now_ms(10_000);
            net.propose(&old, b"v1");
            net.tick_all(2);
            assert!(net.raft(&old).lease_valid());
            let stale_commit = net.raft(&old).commit_index();
            // The old leader is paused and cut off; the others elect a leader and write.
            net.isolate(&old);
            let others: Vec<NodeId> = net.nodes.keys().filter(|k| **k != old).cloned().collect();
            let new = (0..300)
                .find_map(|_| {
                    net.tick_only(&others, 1);
                    others
                        .iter()
                        .find(|o| net.role(o) == Some(Role::Leader))
                        .cloned()
                })
                .expect("the majority elects a new leader");
            let v2 = net.propose(&new, b"v2");
            net.tick_only(&others, 2);
            assert!(net.raft(&new).commit_index() >= v2);
            // The old leader resumes, still believing it leads.
            let now = if wall_clock_jumps_back {
                9_000
            } else {
                10_000 + 3_000
            };
            net.raft(&old).set_now_ms(now);
            assert_eq!(net.role(&old), Some(Role::Leader));
            net.raft(&old).read_index(1).unwrap();
            net.settle();
            let reads = net.nodes[&old].reads.clone();
            if wall_clock_jumps_back {
                assert_eq!(
                    reads,
                    vec![ReadState {
                        ctx: 1,
                        index: stale_commit
                    }],
                    "served from the old state"
                );
                assert!(
                    stale_commit < v2,
                    "a read that misses the acknowledged v2 is stale"
                );
                // Trusting its lease, it keeps leading (and reading stale) while cut off.
                net.tick_all(30);
                assert_eq!(net.role(&old), Some(Role::Leader));
                net.raft(&old).read_index(2).unwrap();
                net.settle();
                assert_eq!(net.nodes[&old].reads.len(), 2);
            } else {
                assert!(
                    reads.is_empty(),
                    "the expired lease forces a ReadIndex round, which cannot succeed"
                );
            }
        }
    }
}
