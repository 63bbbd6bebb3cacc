//! `--db etcd`: Debian's etcd 3.4 as the system under test — its lifecycle on the hosts
//! (`db`), its clients over the gRPC API (`client`), its options and what faults reach it.
//!
//! Workloads: `register` (get / put / txn-cas per key, `--read-consistency linearizable`
//! or `serializable`), `lock` (etcd's Lock API on a lease, token = the lock key's create
//! revision) and `lock-set` (the lock-guarded set, `--fencing` guards the write by a txn on
//! that revision).

pub mod client;
pub mod db;

use crate::lock::{Holding, LockGenerator};
use crate::lock_set::{LockSetFactory, LockSetGenerator};
use crate::register::RegisterGenerator;
use client::{EtcdLockFactory, EtcdRegisterFactory, EtcdSetFactory, EtcdSettings};
use db::{endpoint, EtcdDb, EtcdTiming};
use faultline_core::nemesis::NoNemesis;
use faultline_core::run::{RunOptions, Test};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What `--db etcd` serves.
pub const WORKLOADS: [&str; 3] = ["register", "lock", "lock-set"];
/// `--read-consistency` values: etcd's own read option.
pub const READ_CONSISTENCIES: [&str; 2] = ["linearizable", "serializable"];
/// Jepsen's lock tests use 2 s; it is also etcd's minimum TTL with a 1 s election timeout.
const DEFAULT_LEASE_TTL_S: u64 = 2;

/// The options of an etcd test.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    pub workload: String,
    /// `linearizable` (default) or `serializable`.
    pub read_consistency: Option<String>,
    /// A lock grant's lease in ms (whole seconds; etcd's TTLs are seconds).
    pub lease_ms: Option<u64>,
    /// lock-set: guard every write with the grant's token.
    pub fencing: bool,
    pub client_timeout: Duration,
    pub register_values: u64,
}

/// Checks an etcd test's options before anything starts; each error names the option.
pub fn validate(o: &EtcdOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        WORKLOADS.contains(&o.workload.as_str()),
        "--workload {} does not run on --db etcd; etcd serves {}",
        o.workload,
        WORKLOADS.join(", ")
    );
    if let Some(c) = &o.read_consistency {
        anyhow::ensure!(
            READ_CONSISTENCIES.contains(&c.as_str()),
            "--read-consistency {c:?} is not one of {}",
            READ_CONSISTENCIES.join(", ")
        );
    }
    if let Some(ms) = o.lease_ms {
        anyhow::ensure!(
            ms >= 1000 && ms % 1000 == 0,
            "--lock-ttl-ms {ms}: etcd's lease TTLs are whole seconds (1000, 2000, …)"
        );
        anyhow::ensure!(
            o.workload != "register",
            "--lock-ttl-ms is for the lock and lock-set workloads"
        );
    }
    anyhow::ensure!(
        !o.fencing || o.workload == "lock-set",
        "--fencing guards the lock-set workload's writes; it does not apply to {}",
        o.workload
    );
    Ok(())
}

/// The test of `o` on `options.hosts`, without faults.
pub fn build_test(o: &EtcdOptions, mut options: RunOptions) -> anyhow::Result<Test> {
    validate(o)?;
    anyhow::ensure!(!options.hosts.is_empty(), "etcd needs hosts to run on");
    let consistency = o
        .read_consistency
        .clone()
        .unwrap_or_else(|| "linearizable".into());
    let lease_ttl_s = o.lease_ms.map_or(DEFAULT_LEASE_TTL_S, |ms| ms / 1000);
    let settings = EtcdSettings {
        members: options
            .hosts
            .iter()
            .map(|h| (h.name.clone(), endpoint(&h.address)))
            .collect(),
        request_timeout: o.client_timeout,
        serializable: consistency == "serializable",
        lease_ttl_s: lease_ttl_s as i64,
    };
    let timing = EtcdTiming::default();
    let fields = [
        ("db", json!("etcd")),
        ("workload", json!(o.workload)),
        ("read_consistency", json!(consistency)),
        (
            "client_timeout_ms",
            json!(o.client_timeout.as_millis() as u64),
        ),
        ("etcd_heartbeat_ms", json!(timing.heartbeat_ms)),
        ("etcd_election_ms", json!(timing.election_ms)),
    ];
    for (k, v) in fields {
        options.test_fields.entry(k).or_insert(v);
    }
    if settings.serializable {
        // The report says how such a read is served when it explains a stale one.
        options
            .test_fields
            .entry("stale_read_note")
            .or_insert(json!(
                "etcd answers a serializable read from the member's own store, without asking \
             the leader or a quorum: a member cut off from the majority, or behind it, \
             returns a value the majority has since overwritten."
            ));
    }
    let db = Arc::new(EtcdDb::new(timing));
    let (client, generator): (
        Arc<dyn faultline_core::client::ClientFactory>,
        Arc<dyn faultline_core::generator::OpGenerator>,
    ) = match o.workload.as_str() {
        "register" => {
            options.check.model = Some("cas-register".into());
            options
                .test_fields
                .entry("register_values")
                .or_insert(json!(o.register_values));
            (
                Arc::new(EtcdRegisterFactory { settings }),
                Arc::new(RegisterGenerator {
                    values: o.register_values,
                }),
            )
        }
        "lock" => {
            // A group keeps its lock for the whole run: a worker must release what it holds.
            options.ops_per_key = u64::MAX;
            options.check.model = None;
            options.check.mutex = Some(true);
            options
                .test_fields
                .entry("lease_ms")
                .or_insert(json!(lease_ttl_s * 1000));
            let holding = Holding::default();
            (
                Arc::new(EtcdLockFactory {
                    settings,
                    holding: holding.clone(),
                }),
                Arc::new(LockGenerator::new(holding)),
            )
        }
        _ => {
            options.check.model = None;
            options.check.mutex = Some(false);
            options.check.set = Some(true);
            for (k, v) in [
                ("lease_ms", json!(lease_ttl_s * 1000)),
                ("fencing", json!(o.fencing)),
            ] {
                options.test_fields.entry(k).or_insert(v);
            }
            (
                Arc::new(LockSetFactory::new(EtcdSetFactory { settings }, o.fencing)),
                Arc::new(LockSetGenerator::default()),
            )
        }
    };
    Ok(Test {
        options,
        db,
        client,
        generator,
        nemesis: Arc::new(NoNemesis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(workload: &str) -> EtcdOptions {
        EtcdOptions {
            workload: workload.into(),
            read_consistency: None,
            lease_ms: None,
            fencing: false,
            client_timeout: Duration::from_secs(1),
            register_values: 5,
        }
    }

    #[test]
    fn options_are_refused_with_the_reason() {
        assert!(validate(&options("register")).is_ok());
        let cases = [
            (
                EtcdOptions {
                    workload: "append".into(),
                    ..options("register")
                },
                "etcd serves",
            ),
            (
                EtcdOptions {
                    read_consistency: Some("stale".into()),
                    ..options("register")
                },
                "--read-consistency",
            ),
            (
                EtcdOptions {
                    lease_ms: Some(1500),
                    ..options("lock")
                },
                "whole seconds",
            ),
            (
                EtcdOptions {
                    fencing: true,
                    ..options("lock")
                },
                "--fencing",
            ),
        ];
        for (o, expected) in cases {
            let err = validate(&o).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        assert!(validate(&EtcdOptions {
            fencing: true,
            ..options("lock-set")
        })
        .is_ok());
    }
}
