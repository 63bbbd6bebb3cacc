//! The `register` workload: reads, writes and compare-and-sets of small integers on a few
//! independent keys, checked for linearizability per key against a cas-register.

use faultline_checker::history::Key;
use faultline_core::generator::{Invocation, OpGenerator};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// Values are drawn from `0..DEFAULT_VALUES` unless told otherwise: few values make cas
/// succeed often enough to matter and keep the checker's state space small, as Jepsen's
/// register tests do.
pub const DEFAULT_VALUES: u64 = 5;

/// Generates an even mix of read, write and cas of values in `0..values`.
///
/// More values trade cas successes for detection power: an indeterminate write of the very
/// value a stale read returned explains that read away, and with five values one of the
/// timed-out writes of a partitioned minority usually does.
#[derive(Debug, Clone, Copy)]
pub struct RegisterGenerator {
    pub values: u64,
}

impl Default for RegisterGenerator {
    fn default() -> Self {
        RegisterGenerator {
            values: DEFAULT_VALUES,
        }
    }
}

impl OpGenerator for RegisterGenerator {
    fn next_op(&self, key: &Key, rng: &mut ChaCha8Rng) -> Invocation {
        let (f, value) = match rng.random_range(0..3u8) {
            0 => ("read", Value::Null),
            1 => ("write", json!(rng.random_range(0..self.values))),
            _ => (
                "cas",
                json!([
                    rng.random_range(0..self.values),
                    rng.random_range(0..self.values),
                ]),
            ),
        };
        Invocation {
            f,
            key: Some(key.clone()),
            value,
        }
    }

    fn final_op(&self, key: &Key) -> Option<Invocation> {
        Some(Invocation {
            f: "read",
            key: Some(key.clone()),
            value: Value::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::generator::worker_rng;

    #[test]
    fn mixes_all_three_ops_with_well_formed_values() {
        let mut rng = worker_rng(7, 0);
        let key = Key::Int(3);
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..600 {
            let op = RegisterGenerator::default().next_op(&key, &mut rng);
            assert_eq!(op.key, Some(key.clone()));
            match op.f {
                "read" => assert_eq!(op.value, Value::Null),
                "write" => assert!(op.value.as_u64().is_some_and(|v| v < DEFAULT_VALUES)),
                "cas" => {
                    let pair = op.value.as_array().expect("cas value is [expected, new]");
                    assert_eq!(pair.len(), 2);
                    assert!(pair
                        .iter()
                        .all(|v| v.as_u64().is_some_and(|v| v < DEFAULT_VALUES)));
                }
                other => panic!("unexpected op {other}"),
            }
            *seen.entry(op.f).or_insert(0) += 1;
        }
        assert!(seen.values().all(|&n| n > 150), "{seen:?}");
        assert_eq!(
            RegisterGenerator::default().final_op(&key).unwrap().f,
            "read"
        );
    }
}
