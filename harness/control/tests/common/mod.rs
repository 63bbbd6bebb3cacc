//! Shared by the integration tests: a local cluster that is torn down even when a test fails.

#![allow(dead_code)]

use faultline_control::local_cluster::{self, ClusterConfig, LocalCluster};
use faultline_control::Control;

/// Brings cluster `id` up and tears it down on drop (also when the test panics).
pub struct ClusterGuard {
    pub cluster: LocalCluster,
    id: u8,
}

impl ClusterGuard {
    pub fn up(id: u8, nodes: usize) -> ClusterGuard {
        let cluster = local_cluster::up(&ClusterConfig { id, nodes })
            .unwrap_or_else(|e| panic!("cluster {id} up: {e:#}"));
        ClusterGuard { cluster, id }
    }

    pub async fn connect(&self) -> Control {
        Control::connect(&self.cluster.hosts, &self.cluster.ssh)
            .await
            .unwrap_or_else(|e| panic!("connect to cluster {}: {e}", self.id))
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(e) = local_cluster::down(self.id) {
            eprintln!("cluster {} down failed: {e:#}", self.id);
        }
    }
}
