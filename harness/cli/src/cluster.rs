//! `faultline cluster up|down|status|heal`: the local cluster of namespace hosts, and undoing
//! faults on any cluster.

use anyhow::Context;
use clap::{Args, Subcommand};
use faultline_control::heal;
use faultline_control::local_cluster::{self, ClusterConfig, LocalCluster};
use faultline_control::{Control, SshArgs};
use std::time::Instant;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Bring the local cluster up (needs root): one network namespace per host with its own
    /// address, hostname, sshd and files. Does nothing if it already runs with that size.
    Up {
        /// Number of hosts (n1, n2, …).
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Cluster id; several clusters can run side by side (subnet 10.77.<id>.0/24).
        #[arg(long, default_value_t = 0)]
        id: u8,
    },
    /// Tear the local cluster down: kill its processes (by PID), remove its namespaces,
    /// veths, bridge and per-host files.
    Down {
        #[arg(long, default_value_t = 0)]
        id: u8,
    },
    /// Show the local cluster's hosts, or what is left of it. Exits 1 when it is not up.
    Status {
        #[arg(long, default_value_t = 0)]
        id: u8,
    },
    /// Undo every fault faultline may have left on the hosts: iptables chains, tc qdiscs,
    /// paused processes, skewed fake clocks. Heals the local cluster unless --nodes or
    /// --nodes-file name other hosts.
    Heal {
        #[command(flatten)]
        ssh: SshArgs,
        /// Local cluster id, when healing the local cluster.
        #[arg(long, default_value_t = 0)]
        id: u8,
    },
}

pub fn run(args: ClusterArgs) -> anyhow::Result<u8> {
    match args.action {
        Action::Up { nodes, id } => {
            let started = Instant::now();
            let cluster = local_cluster::up(&ClusterConfig { id, nodes })?;
            println!(
                "local cluster {id} up with {} hosts in {:.2} s",
                cluster.hosts.len(),
                started.elapsed().as_secs_f64()
            );
            print_hosts(&cluster);
            Ok(0)
        }
        Action::Down { id } => {
            local_cluster::down(id)?;
            println!("local cluster {id} is down");
            Ok(0)
        }
        Action::Status { id } => match local_cluster::status(id)? {
            Some(cluster) => {
                println!("local cluster {id} is up");
                print_hosts(&cluster);
                Ok(0)
            }
            None => {
                println!("local cluster {id} is not up");
                let left = local_cluster::leftovers(id);
                if !left.is_empty() {
                    println!("left over (removed by `faultline cluster down --id {id}`):");
                    for item in left {
                        println!("  {item}");
                    }
                }
                Ok(1)
            }
        },
        Action::Heal { ssh, id } => {
            let (hosts, config) = match ssh.hosts()? {
                Some(hosts) => (hosts, ssh.ssh_config()),
                None => {
                    let cluster = local_cluster::status(id)?.with_context(|| {
                        format!(
                            "local cluster {id} is not up; name hosts with --nodes or --nodes-file"
                        )
                    })?;
                    (cluster.hosts, cluster.ssh)
                }
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let control = Control::connect(&hosts, &config).await?;
                let reports = heal::heal_all(&control).await;
                control.close().await;
                for report in reports? {
                    println!("{}", report.summary());
                }
                Ok(0)
            })
        }
    }
}

fn print_hosts(cluster: &LocalCluster) {
    let key = cluster
        .ssh
        .private_key
        .as_ref()
        .map(|k| k.display().to_string())
        .unwrap_or_default();
    for host in &cluster.hosts {
        println!(
            "  {:<4} {:<12} ssh -i {key} root@{}   files: {}",
            host.name,
            host.address,
            host.address,
            cluster.host_dir(&host.name).display()
        );
    }
}
