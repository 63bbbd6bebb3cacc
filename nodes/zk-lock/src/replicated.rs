//! The lock machine as a Raft state machine: JSON operations in, outcomes out, and a signal
//! after every applied entry so waiting acquires look again.

use faultline_raft::state_machine::StateMachine;
use tokio::sync::watch;

use crate::machine::{Machine, Op, Outcome, SessionId};

pub struct ZkStateMachine {
    machine: Machine,
    applied: watch::Sender<u64>,
}

impl ZkStateMachine {
    /// A fresh machine and the receiver that sees the index of every applied entry.
    pub fn new() -> (ZkStateMachine, watch::Receiver<u64>) {
        let (applied, rx) = watch::channel(0);
        (
            ZkStateMachine {
                machine: Machine::new(),
                applied,
            },
            rx,
        )
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// `(session, timeout_ms)` of every open session.
    pub fn session_timeouts(&self) -> Vec<(SessionId, u64)> {
        self.machine
            .sessions()
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect()
    }
}

/// A log entry's bytes.
pub fn encode(op: &Op) -> Vec<u8> {
    serde_json::to_vec(op).expect("operations serialise")
}

impl StateMachine for ZkStateMachine {
    type Output = Outcome;

    fn apply(&mut self, index: u64, data: &[u8]) -> Outcome {
        let outcome = match serde_json::from_slice::<Op>(data) {
            Ok(op) => {
                let (outcome, grants) = self.machine.apply(index, &op);
                for g in grants {
                    tracing::info!(lock = %g.lock, session = g.session, token = g.token, "granted");
                }
                if let Op::Expire { session } = op {
                    tracing::info!(session, "session expired");
                }
                outcome
            }
            Err(e) => Outcome::Rejected(format!("undecodable log entry at {index}: {e}")),
        };
        self.applied.send_replace(index);
        outcome
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.machine).expect("the machine serialises")
    }

    fn restore(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.machine = if data.is_empty() {
            Machine::new()
        } else {
            serde_json::from_slice(data)
                .map_err(|e| anyhow::anyhow!("the lock snapshot does not decode: {e}"))?
        };
        self.applied.send_modify(|_| {});
        Ok(())
    }

    fn check_snapshot(&self, data: &[u8]) -> anyhow::Result<()> {
        if !data.is_empty() {
            serde_json::from_slice::<Machine>(data)
                .map_err(|e| anyhow::anyhow!("the lock snapshot does not decode: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_restore_the_same_state_and_garbage_is_rejected() {
        let (mut sm, rx) = ZkStateMachine::new();
        sm.apply(1, &encode(&Op::OpenSession { timeout_ms: 500 }));
        let out = sm.apply(
            2,
            &encode(&Op::Acquire {
                session: 1,
                lock: "l".into(),
            }),
        );
        assert_eq!(out, Outcome::Held { token: 2 });
        assert_eq!(*rx.borrow(), 2);
        let (mut copy, _) = ZkStateMachine::new();
        copy.restore(&sm.snapshot()).unwrap();
        assert_eq!(copy.machine(), sm.machine());
        assert!(matches!(
            sm.apply(3, b"\xff not json"),
            Outcome::Rejected(_)
        ));
        assert!(copy.restore(b"{\"sessions\": 5}").is_err());
        assert_eq!(sm.machine().held_by(1, "l"), Some(2));
        // What restore refuses, check_snapshot refuses first, and it changes nothing.
        assert!(sm.check_snapshot(b"{\"sessions\": 5}").is_err());
        assert!(sm.check_snapshot(&copy.snapshot()).is_ok());
        assert!(sm.check_snapshot(b"").is_ok());
        assert_eq!(sm.machine().held_by(1, "l"), Some(2));
    }
}
