//! CASPaxos, pure: the acceptor's two rules and the proposer's round as a state machine
//! (messages in, messages and an outcome out), with no I/O, so tests drive rounds between
//! many proposers deterministically. One independent register (Paxos instance) per key:
//! every read, write or cas is a round that prepares, applies a change function to the
//! highest accepted value from a majority, and has the result accepted by a majority.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// A node's name (`n1`).
pub type NodeId = String;

/// A proposal number, totally ordered by (counter, node); unique because a node never
/// reuses a counter (the counter survives restarts).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub counter: u64,
    pub node: NodeId,
}

/// A register's content: the value (canonical JSON text, `None` = absent) and the request
/// id of the change that wrote it, so a retried request recognises its own write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    pub value: Option<String>,
    pub writer: Option<String>,
}

/// One acceptor's durable state for one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptorState {
    pub promised: Ballot,
    pub accepted: Ballot,
    pub register: Register,
}

/// The peer messages of a round; `op` names the proposer's round so answers find it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Prepare {
        op: u64,
        key: String,
        ballot: Ballot,
    },
    /// `ok`: promised; else `promised` is the higher promise that refused it.
    Promise {
        op: u64,
        ok: bool,
        promised: Ballot,
        accepted: Ballot,
        register: Register,
    },
    Accept {
        op: u64,
        key: String,
        ballot: Ballot,
        register: Register,
    },
    Accepted {
        op: u64,
        ok: bool,
        promised: Ballot,
    },
}

/// A message between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub body: Body,
}

/// The acceptor: per-key state and the two rules. The caller must persist the states of
/// the keys returned by [`Acceptor::handle`] before sending its answer.
#[derive(Debug, Default)]
pub struct Acceptor {
    keys: HashMap<String, AcceptorState>,
}

impl Acceptor {
    /// An acceptor restored from persisted states.
    pub fn restore(keys: HashMap<String, AcceptorState>) -> Self {
        Self { keys }
    }

    pub fn state(&self, key: &str) -> Option<&AcceptorState> {
        self.keys.get(key)
    }

    pub fn keys(&self) -> &HashMap<String, AcceptorState> {
        &self.keys
    }

    /// Answers a Prepare or Accept; returns the answer and the key whose state changed.
    pub fn handle(&mut self, body: Body) -> Option<(Body, Option<String>)> {
        match body {
            Body::Prepare { op, key, ballot } => {
                let st = self.keys.entry(key.clone()).or_default();
                let ok = ballot > st.promised && ballot > st.accepted;
                if ok {
                    st.promised = ballot;
                }
                let answer = Body::Promise {
                    op,
                    ok,
                    promised: st.promised.clone(),
                    accepted: st.accepted.clone(),
                    register: st.register.clone(),
                };
                Some((answer, ok.then_some(key)))
            }
            Body::Accept {
                op,
                key,
                ballot,
                register,
            } => {
                let st = self.keys.entry(key.clone()).or_default();
                let ok = ballot >= st.promised && ballot > st.accepted;
                if ok {
                    st.promised = ballot.clone();
                    st.accepted = ballot;
                    st.register = register;
                }
                Some((
                    Body::Accepted {
                        op,
                        ok,
                        promised: st.promised.clone(),
                    },
                    ok.then_some(key),
                ))
            }
            _ => None,
        }
    }
}

/// What a round does to the register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Read,
    Write {
        value: Option<String>,
        request_id: String,
    },
    Cas {
        expected: Option<String>,
        new: Option<String>,
        request_id: String,
    },
}

/// The client-visible result of a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Read(Option<String>),
    Written,
    Cas { ok: bool, current: Option<String> },
}

impl Change {
    /// Applies the change to the current register: the register to accept and the answer.
    pub fn apply(&self, current: &Register) -> (Register, Outcome) {
        match self {
            Change::Read => (current.clone(), Outcome::Read(current.value.clone())),
            Change::Write { value, request_id } => {
                if current.writer.as_ref() == Some(request_id) {
                    // An earlier attempt of this very request was chosen; do not redo it.
                    return (current.clone(), Outcome::Written);
                }
                (
                    Register {
                        value: value.clone(),
                        writer: Some(request_id.clone()),
                    },
                    Outcome::Written,
                )
            }
            Change::Cas {
                expected,
                new,
                request_id,
            } => {
                if current.writer.as_ref() == Some(request_id) {
                    return (
                        current.clone(),
                        Outcome::Cas {
                            ok: true,
                            current: None,
                        },
                    );
                }
                if current.value == *expected {
                    let next = Register {
                        value: new.clone(),
                        writer: Some(request_id.clone()),
                    };
                    (
                        next,
                        Outcome::Cas {
                            ok: true,
                            current: None,
                        },
                    )
                } else {
                    (
                        current.clone(),
                        Outcome::Cas {
                            ok: false,
                            current: current.value.clone(),
                        },
                    )
                }
            }
        }
    }
}

/// Where a round stands after a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Keep waiting for answers.
    Wait,
    /// Send these (the accept phase has begun).
    Send(Vec<Message>),
    /// Chosen: the register a majority accepted and the client's answer.
    Done(Register, Outcome),
    /// A higher ballot refused us; retry above `seen`. If [`Round::accept_sent`], our value
    /// may already be accepted somewhere (an outcome unknown, not failed).
    Conflict { seen: Ballot },
}

/// One proposer round for one key.
#[derive(Debug)]
pub struct Round {
    me: NodeId,
    op: u64,
    key: String,
    ballot: Ballot,
    change: Change,
    peers: Vec<NodeId>,
    quorum: usize,
    accepting: bool,
    promises: HashMap<NodeId, (Ballot, Register)>,
    accepted: HashSet<NodeId>,
    refused: HashSet<NodeId>,
    highest_seen: Ballot,
    proposal: Option<(Register, Outcome)>,
}

impl Round {
    /// Starts a round with a prepare phase; returns it and the Prepare messages.
    pub fn prepare(
        me: &str,
        op: u64,
        key: &str,
        ballot: Ballot,
        change: Change,
        peers: &[NodeId],
    ) -> (Self, Vec<Message>) {
        let round = Self::new(me, op, key, ballot, change, peers);
        let msgs = round.to_all(|r| Body::Prepare {
            op: r.op,
            key: r.key.clone(),
            ballot: r.ballot.clone(),
        });
        (round, msgs)
    }

    /// Starts a round that skips the prepare phase, applying the change to `assumed` (the
    /// `skip-prepare` bug: `assumed` may be stale, so the change can lose updates).
    pub fn accept_directly(
        me: &str,
        op: u64,
        key: &str,
        ballot: Ballot,
        change: Change,
        peers: &[NodeId],
        assumed: &Register,
    ) -> (Self, Vec<Message>) {
        let mut round = Self::new(me, op, key, ballot, change, peers);
        let msgs = round.begin_accept(assumed);
        (round, msgs)
    }

    fn new(me: &str, op: u64, key: &str, ballot: Ballot, change: Change, peers: &[NodeId]) -> Self {
        Self {
            me: me.to_string(),
            op,
            key: key.to_string(),
            highest_seen: ballot.clone(),
            ballot,
            change,
            peers: peers.to_vec(),
            quorum: peers.len() / 2 + 1,
            accepting: false,
            promises: HashMap::new(),
            accepted: HashSet::new(),
            refused: HashSet::new(),
            proposal: None,
        }
    }

    /// True once Accept messages have been produced.
    pub fn accept_sent(&self) -> bool {
        self.accepting
    }

    pub fn op(&self) -> u64 {
        self.op
    }

    fn to_all(&self, body: impl Fn(&Self) -> Body) -> Vec<Message> {
        self.peers
            .iter()
            .map(|p| Message {
                from: self.me.clone(),
                to: p.clone(),
                body: body(self),
            })
            .collect()
    }

    fn begin_accept(&mut self, current: &Register) -> Vec<Message> {
        let (register, outcome) = self.change.apply(current);
        self.proposal = Some((register, outcome));
        self.accepting = true;
        self.refused.clear();
        let register = self
            .proposal
            .as_ref()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        self.to_all(|r| Body::Accept {
            op: r.op,
            key: r.key.clone(),
            ballot: r.ballot.clone(),
            register: register.clone(),
        })
    }

    /// Feeds one answer from `from`.
    pub fn on_message(&mut self, from: &str, body: Body) -> Progress {
        match body {
            Body::Promise {
                op,
                ok,
                promised,
                accepted,
                register,
            } if op == self.op && !self.accepting => {
                if !ok {
                    return self.refusal(from, promised);
                }
                self.promises.insert(from.to_string(), (accepted, register));
                if self.promises.len() < self.quorum {
                    return Progress::Wait;
                }
                let current = self
                    .promises
                    .values()
                    .max_by(|a, b| a.0.cmp(&b.0))
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default();
                Progress::Send(self.begin_accept(&current))
            }
            Body::Accepted { op, ok, promised } if op == self.op && self.accepting => {
                if !ok {
                    return self.refusal(from, promised);
                }
                self.accepted.insert(from.to_string());
                if self.accepted.len() >= self.quorum {
                    let (register, outcome) =
                        self.proposal.clone().expect("accepting implies a proposal");
                    return Progress::Done(register, outcome);
                }
                Progress::Wait
            }
            _ => Progress::Wait,
        }
    }

    fn refusal(&mut self, from: &str, promised: Ballot) -> Progress {
        if promised > self.highest_seen {
            self.highest_seen = promised;
        }
        self.refused.insert(from.to_string());
        // Once a majority is out of reach, give up this ballot.
        if self.refused.len() > self.peers.len() - self.quorum {
            return Progress::Conflict {
                seen: self.highest_seen.clone(),
            };
        }
        Progress::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::VecDeque;

    fn peers() -> Vec<NodeId> {
        vec!["a1".into(), "a2".into(), "a3".into()]
    }

    fn b(counter: u64, node: &str) -> Ballot {
        Ballot {
            counter,
            node: node.into(),
        }
    }

    /// Delivers messages in a random order until every round finishes or conflicts.
    struct Sim {
        acceptors: HashMap<NodeId, Acceptor>,
        rng: rand_chacha::ChaCha8Rng,
    }

    impl Sim {
        fn new(seed: u64) -> Self {
            let acceptors = peers()
                .into_iter()
                .map(|p| (p, Acceptor::default()))
                .collect();
            Self {
                acceptors,
                rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            }
        }

        /// Runs rounds concurrently; returns each round's final progress.
        fn run(&mut self, rounds: Vec<(Round, Vec<Message>)>) -> Vec<Progress> {
            self.run_flagged(rounds)
                .into_iter()
                .map(|(p, _)| p)
                .collect()
        }

        /// Like `run`, also telling for each round whether it sent accepts.
        fn run_flagged(&mut self, mut rounds: Vec<(Round, Vec<Message>)>) -> Vec<(Progress, bool)> {
            let mut queue: VecDeque<Message> = VecDeque::new();
            let mut results: Vec<Option<Progress>> = vec![None; rounds.len()];
            for (_, msgs) in rounds.iter_mut() {
                queue.extend(msgs.drain(..));
            }
            while !queue.is_empty() {
                let i = self.rng.random_range(0..queue.len());
                let m = queue.remove(i).unwrap();
                if let Some(acc) = self.acceptors.get_mut(&m.to) {
                    if let Some((answer, _)) = acc.handle(m.body) {
                        queue.push_back(Message {
                            from: m.to,
                            to: m.from,
                            body: answer,
                        });
                    }
                    continue;
                }
                let op = match &m.body {
                    Body::Promise { op, .. } | Body::Accepted { op, .. } => *op,
                    _ => unreachable!(),
                };
                let idx = rounds.iter().position(|(r, _)| r.op() == op).unwrap();
                if results[idx].is_some() {
                    continue;
                }
                match rounds[idx].0.on_message(&m.from, m.body) {
                    Progress::Wait => {}
                    Progress::Send(msgs) => queue.extend(msgs),
                    done => results[idx] = Some(done),
                }
            }
            results
                .into_iter()
                .zip(rounds)
                .map(|(r, (round, _))| (r.unwrap_or(Progress::Wait), round.accept_sent()))
                .collect()
        }
    }

    #[test]
    fn acceptor_refuses_lower_ballots_and_keeps_the_highest_accepted() {
        let mut a = Acceptor::default();
        let (ans, changed) = a
            .handle(Body::Prepare {
                op: 1,
                key: "k".into(),
                ballot: b(2, "p"),
            })
            .unwrap();
        assert!(matches!(ans, Body::Promise { ok: true, .. }) && changed.is_some());
        let (ans, changed) = a
            .handle(Body::Prepare {
                op: 2,
                key: "k".into(),
                ballot: b(1, "q"),
            })
            .unwrap();
        assert!(
            matches!(ans, Body::Promise { ok: false, ref promised, .. } if *promised == b(2, "p"))
        );
        assert!(changed.is_none());
        let reg = Register {
            value: Some("1".into()),
            writer: None,
        };
        let (ans, _) = a
            .handle(Body::Accept {
                op: 3,
                key: "k".into(),
                ballot: b(1, "q"),
                register: reg.clone(),
            })
            .unwrap();
        assert!(matches!(ans, Body::Accepted { ok: false, .. }));
        let (ans, _) = a
            .handle(Body::Accept {
                op: 1,
                key: "k".into(),
                ballot: b(2, "p"),
                register: reg.clone(),
            })
            .unwrap();
        assert!(matches!(ans, Body::Accepted { ok: true, .. }));
        assert_eq!(a.state("k").unwrap().register, reg);
    }

    #[test]
    fn concurrent_cas_from_several_proposers_never_loses_an_increment() {
        for seed in 0..20 {
            let mut sim = Sim::new(seed);
            let mut counters: HashMap<&str, u64> = HashMap::from([("p1", 0), ("p2", 0), ("p3", 0)]);
            let mut successes = 0u64;
            let mut unknown = 0u64;
            let mut succeeded_from = HashSet::new();
            let mut next_op = 0;
            for _ in 0..15 {
                // Each proposer reads, then tries cas(v -> v+1), all three concurrently.
                let mut rounds = Vec::new();
                let mut expected = Vec::new();
                for p in ["p1", "p2", "p3"] {
                    next_op += 1;
                    let c = counters.get_mut(p).unwrap();
                    *c += 1;
                    let read = Round::prepare(p, next_op, "k", b(*c, p), Change::Read, &peers());
                    let Progress::Done(_, Outcome::Read(v)) = sim.run(vec![read]).remove(0) else {
                        continue;
                    };
                    let n: u64 = v.as_deref().map_or(0, |t| t.parse().unwrap());
                    next_op += 1;
                    *c += 1;
                    let change = Change::Cas {
                        expected: v,
                        new: Some((n + 1).to_string()),
                        request_id: format!("{p}-{next_op}"),
                    };
                    rounds.push(Round::prepare(p, next_op, "k", b(*c, p), change, &peers()));
                    expected.push(n);
                }
                for ((progress, accept_sent), n) in
                    sim.run_flagged(rounds).into_iter().zip(expected)
                {
                    match progress {
                        Progress::Done(_, Outcome::Cas { ok: true, .. }) => {
                            successes += 1;
                            assert!(
                                succeeded_from.insert(n),
                                "seed {seed}: two cas succeeded from {n}"
                            );
                        }
                        Progress::Done(_, Outcome::Cas { ok: false, .. }) => {}
                        // Accepted by some acceptor, then refused: it may yet be chosen.
                        Progress::Conflict { .. } if accept_sent => unknown += 1,
                        Progress::Conflict { .. } => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
                // Proposers learn of each other's ballots, as after a conflict.
                let top = counters.values().copied().max().unwrap();
                counters.values_mut().for_each(|c| *c = top);
            }
            let read = Round::prepare("p1", 10_000, "k", b(10_000, "p1"), Change::Read, &peers());
            let Progress::Done(_, Outcome::Read(v)) = sim.run(vec![read]).remove(0) else {
                panic!("final read")
            };
            let final_value: u64 = v.map_or(0, |t| t.parse().unwrap());
            assert!(
                successes <= final_value && final_value <= successes + unknown,
                "seed {seed}: {successes} successes, {unknown} unknown, final {final_value}"
            );
            assert!(successes > 0);
        }
    }

    #[test]
    fn bug_skip_prepare_loses_an_update_under_contention() {
        for bug in [false, true] {
            let mut sim = Sim::new(1);
            let x = Some("\"x\"".to_string());
            let y = Some("\"y\"".to_string());
            let w = |v: &Option<String>, id: &str| Change::Write {
                value: v.clone(),
                request_id: id.into(),
            };
            // p1 writes x; its cache now says x.
            let r = Round::prepare("p1", 1, "k", b(1, "p1"), w(&x, "w1"), &peers());
            let Progress::Done(cached, _) = sim.run(vec![r]).remove(0) else {
                panic!()
            };
            // p2 writes y with a higher ballot.
            let r = Round::prepare("p2", 2, "k", b(1, "p2"), w(&y, "w2"), &peers());
            assert!(matches!(sim.run(vec![r]).remove(0), Progress::Done(..)));
            // p1 now does cas(x -> z) with its next ballot.
            let cas = Change::Cas {
                expected: x.clone(),
                new: Some("\"z\"".into()),
                request_id: "c1".into(),
            };
            let r = if bug {
                Round::accept_directly("p1", 3, "k", b(2, "p1"), cas, &peers(), &cached)
            } else {
                Round::prepare("p1", 3, "k", b(2, "p1"), cas, &peers())
            };
            let got = sim.run(vec![r]).remove(0);
            if bug {
                // The cas "succeeds" against x although y was the value: y's update is lost.
                assert!(matches!(
                    got,
                    Progress::Done(_, Outcome::Cas { ok: true, .. })
                ));
            } else {
                assert_eq!(
                    got,
                    Progress::Done(
                        Register {
                            value: y.clone(),
                            writer: Some("w2".into())
                        },
                        Outcome::Cas {
                            ok: false,
                            current: y.clone()
                        },
                    )
                );
            }
        }
    }

    #[test]
    fn a_retried_request_recognises_its_own_chosen_write() {
        let cur = Register {
            value: Some("5".into()),
            writer: Some("c7".into()),
        };
        let cas = Change::Cas {
            expected: Some("4".into()),
            new: Some("5".into()),
            request_id: "c7".into(),
        };
        assert_eq!(
            cas.apply(&cur),
            (
                cur.clone(),
                Outcome::Cas {
                    ok: true,
                    current: None
                }
            )
        );
        let other = Change::Cas {
            expected: Some("4".into()),
            new: Some("6".into()),
            request_id: "c8".into(),
        };
        assert_eq!(
            other.apply(&cur).1,
            Outcome::Cas {
                ok: false,
                current: Some("5".into())
            }
        );
    }
}
