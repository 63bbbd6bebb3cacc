//! `--db zookeeper`: Debian's ZooKeeper 3.8 — its lifecycle on the hosts (`db`), its
//! clients (`client`), and here the options it takes, what it can be faulted with, and the
//! `Test` of each workload it serves (register, lock).
//!
//! What the workloads show: writes (setData, and cas as setData with the version read) are
//! linearizable; plain reads are only sequentially consistent — a follower cut off from
//! the leader keeps answering from what it has for up to syncLimit × tickTime — and the
//! register checker says so. The lock recipe's fencing token is the lock node's sequence
//! number.

pub mod client;
pub mod db;

use crate::lock::{Holding, LockGenerator};
use crate::lock_set::LockSetPlan;
use crate::system::{Capabilities, Named, System, SystemRequest, WorkloadParts};
use crate::systems::{fencing, named, refuse_program_flags, FENCING, LOCK_TTL_MS, READ_MODE};
use client::{ReadMode, ZkLockFactory, ZkRegisterFactory, ZkSetFactory, ZkSettings};
use db::{ZooKeeperDb, CLIENT_PORT, SYNC_LIMIT_TICKS, TICK_MS};
use faultline_core::run::{RunOptions, Test};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A register client's session timeout: long enough to ride out a short partition of its
/// server, within the server's 2–20 tick bounds.
const REGISTER_SESSION_MS: u64 = 4000;
/// The lock's lease by default: the session timeout of a lock client.
const LOCK_SESSION_MS: u64 = 3000;
/// How long an acquire waits for its predecessors before it gives up.
const ACQUIRE_WAIT: Duration = Duration::from_millis(1000);
/// The session timeouts the servers accept (ZooKeeper's defaults: 2 and 20 ticks).
const SESSION_MS_MIN: u64 = 2 * TICK_MS;
const SESSION_MS_MAX: u64 = 20 * TICK_MS;

/// Debian's ZooKeeper 3.8.
pub struct ZooKeeperSystem;

impl ZooKeeperSystem {
    fn read_mode(request: &SystemRequest) -> anyhow::Result<ReadMode> {
        request
            .option(READ_MODE)
            .unwrap_or("plain")
            .parse()
            .map_err(anyhow::Error::msg)
    }
}

impl System for ZooKeeperSystem {
    fn name(&self) -> &str {
        "zookeeper"
    }
    fn description(&self) -> &str {
        "Debian's ZooKeeper 3.8 (a JVM started by faultline on every host); register and the lock recipe"
    }
    fn workloads(&self) -> Vec<String> {
        ["register", "lock", "lock-set"].map(String::from).to_vec()
    }
    fn options(&self) -> Vec<Named> {
        named(&[
            (
                READ_MODE,
                "register reads: plain (getData, sequentially consistent) or sync (sync, then getData)",
            ),
            (
                LOCK_TTL_MS,
                "lock and lock-set: the lock client's session timeout in ms (default 3000; 2 to 20 ticks of 500 ms)",
            ),
            (
                FENCING,
                "lock-set: write the set in a multi that checks the lock node still exists",
            ),
        ])
    }
    fn capabilities(&self, _request: &SystemRequest) -> Capabilities {
        // libfaketime moves the JVM's System.currentTimeMillis, not the monotonic nanoTime
        // its timeouts use (docs/zookeeper.md): the fault reaches it, and shows what little
        // the wall clock governs.
        Capabilities {
            primaries: true,
            ..Capabilities::default()
        }
    }
    fn check(&self, request: &SystemRequest) -> anyhow::Result<()> {
        refuse_program_flags(self.name(), request)?;
        if request.option(READ_MODE).is_some() {
            anyhow::ensure!(
                request.workload == "register",
                "--read-mode is for the register workload"
            );
            Self::read_mode(request)?;
        }
        fencing(request)?;
        if let Some(ttl) = request.parsed::<u64>(LOCK_TTL_MS)? {
            anyhow::ensure!(
                request.workload != "register",
                "--lock-ttl-ms is for the lock and lock-set workloads"
            );
            anyhow::ensure!(
                (SESSION_MS_MIN..=SESSION_MS_MAX).contains(&ttl),
                "--lock-ttl-ms {ttl} is the lock's session timeout: ZooKeeper (tickTime {TICK_MS} ms) \
                 accepts {SESSION_MS_MIN} to {SESSION_MS_MAX} ms"
            );
        }
        Ok(())
    }
    fn build(
        &self,
        request: &SystemRequest,
        mut workload: WorkloadParts,
        mut options: RunOptions,
    ) -> anyhow::Result<Test> {
        let servers: Vec<(String, String)> = options
            .hosts
            .iter()
            .map(|h| (h.name.clone(), format!("{}:{CLIENT_PORT}", h.address)))
            .collect();
        let mut fields = vec![
            ("zookeeper_tick_ms", json!(TICK_MS)),
            ("zookeeper_sync_limit_ticks", json!(SYNC_LIMIT_TICKS)),
        ];
        // A lock client's session timeout is the lock's lease; a register client's rides
        // out a short partition of its server.
        let session_ms = match request.workload.as_str() {
            "register" => REGISTER_SESSION_MS,
            _ => {
                let lease_ms = request
                    .parsed::<u64>(LOCK_TTL_MS)?
                    .unwrap_or(LOCK_SESSION_MS);
                fields.push(("lease_ms", json!(lease_ms)));
                lease_ms
            }
        };
        let settings = ZkSettings {
            servers,
            request_timeout: request.client_timeout,
            session_timeout: Duration::from_millis(session_ms),
        };
        let mut lock_set = None;
        let client: Arc<dyn faultline_core::client::ClientFactory> = match request.workload.as_str()
        {
            "lock-set" => {
                let plan = LockSetPlan::new(request, &mut options)?;
                let client = plan.factory(ZkSetFactory {
                    settings,
                    acquire_wait: ACQUIRE_WAIT,
                    pausable: plan.pause.is_some(),
                });
                lock_set = Some(plan);
                Arc::new(client)
            }
            "lock" => {
                let holding = Holding::default();
                workload.generator = Arc::new(LockGenerator::new(holding.clone()));
                Arc::new(ZkLockFactory::new(settings, holding, ACQUIRE_WAIT)?)
            }
            _ => {
                let read_mode = Self::read_mode(request)?;
                fields.push(("read_mode", json!(read_mode.name())));
                Arc::new(ZkRegisterFactory::new(settings, read_mode)?)
            }
        };
        for (key, value) in fields {
            options.test_fields.entry(key).or_insert(value);
        }
        let mut test = workload.into_test(options, Arc::new(ZooKeeperDb), client);
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
    fn options_of_other_systems_are_refused_by_name() {
        let registry = Registry::stock();
        let check = |r: SystemRequest| {
            registry
                .check(&ZooKeeperSystem, &r)
                .map_err(|e| e.to_string())
        };
        assert!(check(request("register", &[])).is_ok());
        assert!(check(request("lock", &[])).is_ok());
        assert!(check(request("lock-set", &[(FENCING, "true")])).is_ok());
        let err = check(request("lock", &[(FENCING, "true")])).unwrap_err();
        assert!(err.contains("--fencing"), "{err}");
        let mut bug = request("register", &[]);
        bug.bugs.push("stale-read".into());
        assert!(check(bug).unwrap_err().contains("no planted bugs"));
        let err = check(request("register", &[(READ_MODE, "readindex")])).unwrap_err();
        assert!(err.contains("plain, sync"), "{err}");
        let err = check(request("lock", &[(LOCK_TTL_MS, "60000")])).unwrap_err();
        assert!(err.contains("5000 ms"), "{err}");
        let mut node = request("register", &[]);
        node.program_args.push("--tick-ms".into());
        assert!(check(node).unwrap_err().contains("--node-opt"));
    }
}
