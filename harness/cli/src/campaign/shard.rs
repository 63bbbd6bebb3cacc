//! Splitting a campaign's runs into N shards of about equal expected duration, the same
//! split on every machine (a CI matrix runs one shard per job).

use super::file::PlannedRun;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// More shards than this is a typo, not a CI matrix (GitHub caps a matrix at 256 jobs).
pub const SHARDS_MAX: u32 = 256;

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("--shard wants I/N with 1 <= I <= N <= {SHARDS_MAX}, e.g. 2/3; got {s:?}");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count || count > SHARDS_MAX {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Which shard (0-based) each run goes to: longest expected run first onto the shard with
/// the least expected time so far (ties: the lower shard, then plan order), so the shards
/// end at about the same time. Only the plan decides, never the machine.
pub fn assign(runs: &[PlannedRun], count: u32) -> Vec<u32> {
    let count = count.max(1) as usize;
    let mut order: Vec<usize> = (0..runs.len()).collect();
    // Stable: equal durations keep plan order, so a repetition's rows spread round-robin.
    order.sort_by(|&a, &b| runs[b].expected_s.total_cmp(&runs[a].expected_s));
    let mut load = vec![0.0f64; count];
    let mut shard_of = vec![0u32; runs.len()];
    for i in order {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(&b.0)))
            .expect("at least one shard");
        load[least] += runs[i].expected_s;
        shard_of[i] = least as u32;
    }
    shard_of
}

/// The runs of one shard, in plan order.
pub fn select(runs: &[PlannedRun], shard: Shard) -> Vec<PlannedRun> {
    let shard_of = assign(runs, shard.count);
    runs.iter()
        .zip(shard_of)
        .filter(|(_, s)| *s == shard.index - 1)
        .map(|(r, _)| r.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::file::Expect;

    fn run(index: usize, expected_s: f64) -> PlannedRun {
        PlannedRun::sample(index, &format!("r{index}"), Expect::Valid, expected_s)
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "1/1000", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 1, count: 4 }.to_string(), "1/4");
    }

    #[test]
    fn every_run_lands_in_exactly_one_shard_balanced_by_duration() {
        // One long run and many short ones: the long one gets a shard nearly to itself.
        let mut runs = vec![run(0, 100.0)];
        runs.extend((1..=10).map(|i| run(i, 20.0)));
        let shards: Vec<Vec<PlannedRun>> = (1..=3)
            .map(|index| select(&runs, Shard { index, count: 3 }))
            .collect();
        let mut all: Vec<usize> = shards.iter().flatten().map(|r| r.index).collect();
        all.sort();
        assert_eq!(all, (0..=10).collect::<Vec<_>>());
        let totals: Vec<f64> = shards
            .iter()
            .map(|s| s.iter().map(|r| r.expected_s).sum())
            .collect();
        // 300 s in all: 100 | 100 | 100 is the best split and LPT finds it here.
        assert_eq!(totals, [100.0, 100.0, 100.0]);
        assert!(shards
            .iter()
            .all(|s| s.windows(2).all(|w| w[0].index < w[1].index)));
    }

    #[test]
    fn equal_runs_go_round_robin_and_the_split_is_stable() {
        let runs: Vec<PlannedRun> = (0..7).map(|i| run(i, 45.0)).collect();
        assert_eq!(assign(&runs, 3), [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(assign(&runs, 3), assign(&runs.clone(), 3));
        assert_eq!(assign(&runs, 1), [0; 7]);
        // More shards than runs: the last ones are empty, not an error.
        assert!(select(&runs, Shard { index: 9, count: 9 }).is_empty());
    }
}
