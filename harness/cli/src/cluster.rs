//! `faultline cluster up|down|status|heal`: the local cluster of namespace hosts (or, with
//! `--vm`, of QEMU VMs), and undoing faults on any cluster.

use anyhow::Context;
use clap::{Args, Subcommand};
use faultline_control::heal;
use faultline_control::local_cluster::{self, ClusterConfig, LocalCluster};
use faultline_control::vm::{self, VmCluster, VmConfig};
use faultline_control::{Control, SshArgs};
use std::path::PathBuf;
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
        /// Number of hosts (n1, n2, …); default 5, or 3 with --vm.
        #[arg(long)]
        nodes: Option<usize>,
        /// Cluster id; several clusters can run side by side (subnet 10.77.<id>.0/24, or
        /// 10.78.<id>.0/24 with --vm).
        #[arg(long, default_value_t = 0)]
        id: u8,
        /// Debian VMs under QEMU instead of namespaces: own kernel and clock, so system-clock
        /// and netem faults work. Builds the image once (mmdebstrap, ~2 min); ~30-60 s to boot
        /// without KVM. Writes /var/lib/faultline/vm-<id>/nodes for --nodes-file.
        #[arg(long)]
        vm: bool,
        /// With --vm: boot this image directory (rootfs.img, vmlinuz, initrd.img) instead of
        /// building the recipe's.
        #[arg(long, value_name = "DIR", requires = "vm")]
        vm_image: Option<PathBuf>,
    },
    /// Tear the local cluster down: kill its processes (by PID), remove its namespaces,
    /// veths, bridge and per-host files (with --vm: its QEMUs, taps, bridge and overlays).
    Down {
        #[arg(long, default_value_t = 0)]
        id: u8,
        #[arg(long)]
        vm: bool,
    },
    /// Show the local cluster's hosts, or what is left of it. Exits 1 when it is not up.
    Status {
        #[arg(long, default_value_t = 0)]
        id: u8,
        #[arg(long)]
        vm: bool,
    },
    /// Undo every fault faultline may have left on the hosts: iptables chains, tc qdiscs,
    /// paused processes, skewed fake clocks. Heals the local cluster unless --nodes or
    /// --nodes-file name other hosts. On VMs (--vm, or a nodes file `cluster up --vm` wrote)
    /// each host's system clock is also set to the controller's.
    Heal {
        #[command(flatten)]
        ssh: SshArgs,
        /// Local cluster id, when healing the local cluster.
        #[arg(long, default_value_t = 0)]
        id: u8,
        /// Heal the VM cluster `--id`, or treat --nodes hosts as VMs.
        #[arg(long)]
        vm: bool,
    },
}

pub fn run(args: ClusterArgs) -> anyhow::Result<u8> {
    match args.action {
        Action::Up {
            nodes,
            id,
            vm: true,
            vm_image,
        } => {
            let started = Instant::now();
            let cfg = VmConfig {
                id,
                nodes: nodes.unwrap_or(3),
                image: vm_image,
            };
            let cluster = vm::up(&cfg, &|line| eprintln!("faultline: {line}"))?;
            println!(
                "VM cluster {id} up with {} VMs ({}) in {:.1} s",
                cluster.hosts.len(),
                cluster.accel.name(),
                started.elapsed().as_secs_f64()
            );
            print_vms(&cluster);
            Ok(0)
        }
        Action::Down { id, vm: true } => {
            vm::down(id)?;
            println!("VM cluster {id} is down");
            Ok(0)
        }
        Action::Status { id, vm: true } => match vm::status(id)? {
            Some(cluster) => {
                println!("VM cluster {id} is up");
                print_vms(&cluster);
                Ok(0)
            }
            None => {
                println!("VM cluster {id} is not up");
                print_leftovers(vm::leftovers(id), &format!("--vm --id {id}"));
                Ok(1)
            }
        },
        Action::Up {
            nodes,
            id,
            vm: false,
            ..
        } => {
            let started = Instant::now();
            let nodes = nodes.unwrap_or(5);
            let cluster = local_cluster::up(&ClusterConfig { id, nodes })?;
            println!(
                "local cluster {id} up with {} hosts in {:.2} s",
                cluster.hosts.len(),
                started.elapsed().as_secs_f64()
            );
            print_hosts(&cluster);
            Ok(0)
        }
        Action::Down { id, vm: false } => {
            local_cluster::down(id)?;
            println!("local cluster {id} is down");
            Ok(0)
        }
        Action::Status { id, vm: false } => match local_cluster::status(id)? {
            Some(cluster) => {
                println!("local cluster {id} is up");
                print_hosts(&cluster);
                Ok(0)
            }
            None => {
                println!("local cluster {id} is not up");
                print_leftovers(local_cluster::leftovers(id), &format!("--id {id}"));
                Ok(1)
            }
        },
        Action::Heal { ssh, id, vm } => {
            let vms = vm || ssh.nodes_file.as_deref().is_some_and(vm::nodes_file_is_vm);
            let (hosts, config) = match ssh.hosts()? {
                Some(hosts) => (hosts, ssh.ssh_config()),
                None if vm => {
                    let cluster = vm::status(id)?.with_context(|| {
                        format!(
                            "VM cluster {id} is not up; name hosts with --nodes or --nodes-file"
                        )
                    })?;
                    (cluster.hosts, cluster.ssh)
                }
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
                let clocks = if vms {
                    reset_system_clocks(&control).await
                } else {
                    Ok(Vec::new())
                };
                control.close().await;
                for report in reports? {
                    println!("{}", report.summary());
                }
                for line in clocks? {
                    println!("{line}");
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

/// Sets the system clock to `$1` (seconds since the epoch, with a fraction) and prints what it
/// read before, in milliseconds.
const SET_CLOCK_SCRIPT: &str =
    r#"before=$(date +%s%3N) && date -s "@$1" >/dev/null && echo "$before""#;

/// Sets every VM's system clock to the controller's, the undo of a system-clock fault that a
/// controller killed mid-run left behind. One line per host, with how far off it was (to
/// within the SSH round trip).
async fn reset_system_clocks(control: &Control) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for remote in control.remotes() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let stamp = format!("{}.{:03}", now.as_secs(), now.subsec_millis());
        let out = remote
            .exec(&["sh", "-c", SET_CLOCK_SCRIPT, "sh", &stamp])
            .await?;
        let before: i128 = out.stdout.trim().parse().with_context(|| {
            format!("{}: `date +%s%3N` printed {:?}", remote.name(), out.stdout)
        })?;
        let off_ms = before - now.as_millis() as i128;
        lines.push(format!(
            "{}: system clock set to the controller's (it was off by {off_ms} ms)",
            remote.name()
        ));
    }
    Ok(lines)
}

fn print_leftovers(left: Vec<String>, down_args: &str) {
    if !left.is_empty() {
        println!("left over (removed by `faultline cluster down {down_args}`):");
        for item in left {
            println!("  {item}");
        }
    }
}

fn print_vms(cluster: &VmCluster) {
    let key = cluster
        .ssh
        .private_key
        .as_ref()
        .map(|k| k.display().to_string())
        .unwrap_or_default();
    for host in &cluster.hosts {
        println!(
            "  {:<4} {:<12} ssh -i {key} root@{}",
            host.name, host.address, host.address
        );
    }
    println!(
        "  nodes file: {}\n  run: faultline run --nodes-file {} --ssh-private-key {key} …",
        cluster.nodes_file.display(),
        cluster.nodes_file.display()
    );
}
