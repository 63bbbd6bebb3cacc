//! The leader's view of session liveness: when each session was last heard from, and which
//! sessions have missed their timeout and must be expired through the log.
//!
//! Pure, with time passed in. Only a leader tracks liveness, and a node that becomes leader
//! (or leader of a new term) starts every session's timer afresh: it cannot know when the old
//! leader last heard from a client, so it gives every client a whole timeout to reach it.
//! What it heard itself while leading that same term still counts: each sighting carries the
//! term in which it was made, because the expiry loop may first notice the new term only after
//! clients have already reached the new leader.

use std::collections::{HashMap, HashSet};

use crate::machine::SessionId;

#[derive(Debug, Default)]
pub struct Liveness {
    /// The term this node leads in, while it leads.
    leader_term: Option<u64>,
    /// When each session was last heard from, and the term this node led when it heard it
    /// (`None`: heard while not leading).
    last_seen_ms: HashMap<SessionId, (u64, Option<u64>)>,
    /// Expiries proposed and not yet resolved, so each is proposed once.
    expiring: HashSet<SessionId>,
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness::default()
    }

    /// Records that `session`'s client was heard from (a keepalive or any request), while this
    /// node led `leader_term` (`None` if it did not lead).
    pub fn touch(&mut self, session: SessionId, now_ms: u64, leader_term: Option<u64>) {
        self.last_seen_ms.insert(session, (now_ms, leader_term));
    }

    /// Brings the tracker up to date with this node's role and the sessions in its state
    /// (`(id, timeout_ms)`); returns the sessions to expire now.
    pub fn check(
        &mut self,
        leader_term: Option<u64>,
        sessions: &[(SessionId, u64)],
        now_ms: u64,
    ) -> Vec<SessionId> {
        if leader_term != self.leader_term {
            self.leader_term = leader_term;
            self.last_seen_ms
                .retain(|_, (_, term)| term.is_some() && *term == leader_term);
            self.expiring.clear();
        }
        if leader_term.is_none() {
            return Vec::new();
        }
        let present: HashSet<SessionId> = sessions.iter().map(|(id, _)| *id).collect();
        self.last_seen_ms.retain(|id, _| present.contains(id));
        self.expiring.retain(|id| present.contains(id));
        let mut due = Vec::new();
        for &(id, timeout_ms) in sessions {
            let (seen, _) = *self.last_seen_ms.entry(id).or_insert((now_ms, leader_term));
            // A clock that went backwards reads as "just seen", never as overdue.
            if now_ms.saturating_sub(seen) >= timeout_ms && self.expiring.insert(id) {
                due.push(id);
            }
        }
        due
    }

    /// An expiry proposal failed (e.g. leadership lost): allow proposing it again.
    pub fn expiry_failed(&mut self, session: SessionId) {
        self.expiring.remove(&session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_session_is_due_once_after_its_timeout() {
        let mut l = Liveness::new();
        let sessions = [(1, 100), (2, 100)];
        assert!(l.check(Some(3), &sessions, 1_000).is_empty());
        l.touch(2, 1_050, Some(3));
        assert!(l.check(Some(3), &sessions, 1_099).is_empty());
        assert_eq!(l.check(Some(3), &sessions, 1_100), vec![1]);
        assert!(
            l.check(Some(3), &sessions, 1_120).is_empty(),
            "proposed once"
        );
        assert_eq!(l.check(Some(3), &sessions, 1_150), vec![2]);
        l.expiry_failed(1);
        assert_eq!(
            l.check(Some(3), &sessions, 1_160),
            vec![1],
            "retried after a failed proposal"
        );
    }

    #[test]
    fn a_new_leader_restarts_every_timer() {
        let mut l = Liveness::new();
        let sessions = [(1, 100)];
        l.check(Some(3), &sessions, 0);
        assert!(
            l.check(None, &sessions, 90).is_empty(),
            "followers expire nothing"
        );
        // Leader again in a later term at 150: the old timer (from 0) must not count.
        assert!(l.check(Some(5), &sessions, 150).is_empty());
        assert!(l.check(Some(5), &sessions, 249).is_empty());
        assert_eq!(l.check(Some(5), &sessions, 250), vec![1]);
    }

    #[test]
    fn sightings_made_while_leading_count_even_before_the_loop_notices_the_term() {
        let mut l = Liveness::new();
        let sessions = [(1, 100), (2, 100)];
        // Heard from 1 as leader of term 4, from 2 while still a follower, before any check.
        l.touch(1, 1_000, Some(4));
        l.touch(2, 1_000, None);
        // The first check as leader comes late: 1's timer runs from its sighting, 2's afresh.
        assert_eq!(l.check(Some(4), &sessions, 1_100), vec![1]);
        assert!(l.check(Some(4), &sessions, 1_199).is_empty());
        assert_eq!(l.check(Some(4), &sessions, 1_200), vec![2]);
        // A sighting from an older term never counts in a newer one.
        let mut l = Liveness::new();
        l.touch(1, 1_000, Some(3));
        assert!(l.check(Some(4), &sessions[..1], 1_150).is_empty());
    }

    #[test]
    fn a_clock_going_backwards_expires_nothing() {
        let mut l = Liveness::new();
        l.check(Some(1), &[(1, 100)], 10_000);
        assert!(l.check(Some(1), &[(1, 100)], 5_000).is_empty());
    }

    #[test]
    fn closed_sessions_are_forgotten() {
        let mut l = Liveness::new();
        l.check(Some(1), &[(1, 100), (2, 100)], 0);
        l.check(Some(1), &[(2, 100)], 10);
        assert_eq!(l.last_seen_ms.len(), 1);
    }
}
