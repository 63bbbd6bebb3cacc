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
use crate::lock_set::LockSetPlan;
use crate::system::{Capabilities, ClockReach, Named, System, SystemRequest, WorkloadParts};
use crate::systems::{fencing, named, refuse_program_flags, FENCING, LOCK_TTL_MS};
use client::{EtcdLockFactory, EtcdRegisterFactory, EtcdSetFactory, EtcdSettings};
use db::{endpoint, EtcdDb, EtcdTiming};
use faultline_core::run::{RunOptions, Test};
use serde_json::json;
use std::sync::Arc;

/// `--read-consistency` (also `--db-opt read-consistency=…`): etcd's own read option.
pub const READ_CONSISTENCY: &str = "read-consistency";
pub const READ_CONSISTENCIES: [&str; 2] = ["linearizable", "serializable"];
/// Jepsen's lock tests use 2 s; it is also etcd's minimum TTL with a 1 s election timeout.
const DEFAULT_LEASE_TTL_S: u64 = 2;

/// Debian's etcd 3.4.
pub struct EtcdSystem;

impl System for EtcdSystem {
    fn name(&self) -> &str {
        "etcd"
    }
    fn description(&self) -> &str {
        "Debian's etcd 3.4 (etcd-server), started by faultline on every host; gRPC clients"
    }
    fn workloads(&self) -> Vec<String> {
        ["register", "lock", "lock-set"].map(String::from).to_vec()
    }
    fn options(&self) -> Vec<Named> {
        named(&[
            (
                READ_CONSISTENCY,
                "register reads: linearizable (default, a quorum read) or serializable (the member's own store)",
            ),
            (
                LOCK_TTL_MS,
                "lock and lock-set: the lease's TTL in ms, whole seconds (default 2000)",
            ),
            (
                FENCING,
                "lock-set: guard each write with a txn on the lock key's create revision",
            ),
        ])
    }
    fn capabilities(&self, _request: &SystemRequest) -> Capabilities {
        Capabilities {
            primaries: true,
            clock: ClockReach {
                faketime: Err(
                    "libfaketime does not reach etcd: Go reads the kernel clock \
                               directly (vDSO), not through libc"
                        .into(),
                ),
                system: Ok(()),
            },
            ..Capabilities::default()
        }
    }
    fn check(&self, request: &SystemRequest) -> anyhow::Result<()> {
        refuse_program_flags(self.name(), request)?;
        if let Some(c) = request.option(READ_CONSISTENCY) {
            anyhow::ensure!(
                READ_CONSISTENCIES.contains(&c),
                "--read-consistency {c:?} is not one of {}",
                READ_CONSISTENCIES.join(", ")
            );
            anyhow::ensure!(
                request.workload == "register",
                "--read-consistency is for the register workload"
            );
        }
        if let Some(ms) = request.parsed::<u64>(LOCK_TTL_MS)? {
            anyhow::ensure!(
                ms >= 1000 && ms % 1000 == 0,
                "--lock-ttl-ms {ms}: etcd's lease TTLs are whole seconds (1000, 2000, …)"
            );
            anyhow::ensure!(
                request.workload != "register",
                "--lock-ttl-ms is for the lock and lock-set workloads"
            );
        }
        fencing(request)?;
        Ok(())
    }
    fn build(
        &self,
        request: &SystemRequest,
        mut workload: WorkloadParts,
        mut options: RunOptions,
    ) -> anyhow::Result<Test> {
        let consistency = request
            .option(READ_CONSISTENCY)
            .unwrap_or("linearizable")
            .to_owned();
        let lease_ttl_s = request
            .parsed::<u64>(LOCK_TTL_MS)?
            .map_or(DEFAULT_LEASE_TTL_S, |ms| ms / 1000);
        let settings = EtcdSettings {
            members: options
                .hosts
                .iter()
                .map(|h| (h.name.clone(), endpoint(&h.address)))
                .collect(),
            request_timeout: request.client_timeout,
            serializable: consistency == "serializable",
            lease_ttl_s: lease_ttl_s as i64,
        };
        let timing = EtcdTiming::default();
        let mut fields = vec![
            ("etcd_heartbeat_ms", json!(timing.heartbeat_ms)),
            ("etcd_election_ms", json!(timing.election_ms)),
        ];
        if settings.serializable {
            // The report says how such a read is served when it explains a stale one.
            fields.push((
                "stale_read_note",
                json!(
                    "etcd answers a serializable read from the member's own store, without \
                     asking the leader or a quorum: a member cut off from the majority, or \
                     behind it, returns a value the majority has since overwritten."
                ),
            ));
        }
        let mut lock_set = None;
        let client: Arc<dyn faultline_core::client::ClientFactory> = match request.workload.as_str()
        {
            "register" => {
                fields.push(("read_consistency", json!(consistency)));
                Arc::new(EtcdRegisterFactory { settings })
            }
            "lock" => {
                fields.push(("lease_ms", json!(lease_ttl_s * 1000)));
                let holding = Holding::default();
                workload.generator = Arc::new(LockGenerator::new(holding.clone()));
                Arc::new(EtcdLockFactory { settings, holding })
            }
            _ => {
                fields.push(("lease_ms", json!(lease_ttl_s * 1000)));
                let plan = LockSetPlan::new(request, &mut options)?;
                let client = plan.factory(EtcdSetFactory { settings });
                lock_set = Some(plan);
                Arc::new(client)
            }
        };
        for (k, v) in fields {
            options.test_fields.entry(k).or_insert(v);
        }
        let mut test = workload.into_test(options, Arc::new(EtcdDb::new(timing)), client);
        if let Some(plan) = &lock_set {
            plan.install(&mut test);
        }
        Ok(test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Registry;

    use crate::systems::test_request as request;

    #[test]
    fn options_are_refused_with_the_reason() {
        let registry = Registry::stock();
        let check = |r: SystemRequest| registry.check(&EtcdSystem, &r).map_err(|e| e.to_string());
        assert!(check(request("register", &[])).is_ok());
        let cases = [
            (request("no-such-workload", &[]), "unknown --workload"),
            (
                request("register", &[(READ_CONSISTENCY, "stale")]),
                "--read-consistency",
            ),
            (request("lock", &[(LOCK_TTL_MS, "1500")]), "whole seconds"),
            (request("lock", &[(FENCING, "true")]), "--fencing"),
            (request("register", &[("read-mode", "lease")]), "read-mode"),
        ];
        for (r, expected) in cases {
            let err = check(r).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        assert!(check(request("lock-set", &[(FENCING, "true")])).is_ok());
    }
}
