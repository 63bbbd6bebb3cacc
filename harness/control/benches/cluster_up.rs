//! Measures the local cluster (needs root): `up` of 5 hosts from nothing (goal: under 5 s),
//! `up` when already up, connecting to all hosts, one command's round trip, and `down`.
//! Run: `cargo bench -p faultline-control --bench cluster_up`. Uses cluster id 4.

use faultline_control::local_cluster::{self, ClusterConfig};
use faultline_control::Control;
use std::time::{Duration, Instant};

const CLUSTER_ID: u8 = 4;
const NODES: usize = 5;
const ROUNDS: usize = 3;
const EXEC_SAMPLES: usize = 50;
const UP_GOAL: Duration = Duration::from_secs(5);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let cfg = ClusterConfig {
        id: CLUSTER_ID,
        nodes: NODES,
    };
    local_cluster::down(CLUSTER_ID)?;
    let mut worst_up = Duration::ZERO;
    for round in 1..=ROUNDS {
        let t = Instant::now();
        let cluster = local_cluster::up(&cfg)?;
        let cold = t.elapsed();
        worst_up = worst_up.max(cold);

        let t = Instant::now();
        local_cluster::up(&cfg)?;
        let warm = t.elapsed();

        let (connect, exec_p50, exec_max) = runtime.block_on(async {
            let t = Instant::now();
            let control = Control::connect(&cluster.hosts, &cluster.ssh).await?;
            let connect = t.elapsed();
            let remote = &control.remotes()[0];
            let mut samples = Vec::with_capacity(EXEC_SAMPLES);
            for _ in 0..EXEC_SAMPLES {
                let t = Instant::now();
                remote.exec(&["true"]).await?;
                samples.push(t.elapsed());
            }
            samples.sort();
            control.close().await;
            anyhow::Ok((
                connect,
                samples[EXEC_SAMPLES / 2],
                samples[EXEC_SAMPLES - 1],
            ))
        })?;

        let t = Instant::now();
        local_cluster::down(CLUSTER_ID)?;
        let down = t.elapsed();
        println!(
            "round {round}: up {NODES} hosts {:.0} ms (already up: {:.1} ms), connect all {:.0} ms, exec p50 {:.1} ms max {:.1} ms, down {:.0} ms",
            ms(cold), ms(warm), ms(connect), ms(exec_p50), ms(exec_max), ms(down)
        );
    }
    println!(
        "worst `cluster up` of {NODES} hosts: {:.0} ms (goal < {} ms): {}",
        ms(worst_up),
        UP_GOAL.as_millis(),
        if worst_up < UP_GOAL { "met" } else { "MISSED" }
    );
    Ok(())
}
