//! The nemesis options of `faultline run` (`--nemesis partition,clock,…` and friends), and
//! turning them into the scheduled nemesis.

use clap::Args;
use faultline_nemesis::clock::ClockStrategy;
use faultline_nemesis::grudge::PartitionKind;
use faultline_nemesis::runner::NemesisConfig;
use faultline_nemesis::schedule::{ClockKind, Family, PacketFault, ScheduleOptions, Target};
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct NemesisArgs {
    /// Fault families to inject, comma-separated: partition, clock, kill, pause, packet
    /// (or none).
    #[arg(long, value_delimiter = ',', value_name = "FAULTS")]
    pub nemesis: Vec<String>,
    /// Mean seconds a fault lasts, and between one fault's end and the next's start.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub nemesis_interval: f64,
    /// Partition shapes to choose from: halves, random-halves, one, majority-ring, bridge,
    /// primaries, follower (one host that is not a primary).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SHAPES",
        default_value = "halves,random-halves,one,majority-ring,bridge,primaries"
    )]
    pub partition: Vec<PartitionKind>,
    /// Hosts that kill, pause and packet faults aim at: one, minority, majority, all, primaries.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "TARGETS",
        default_value = "one,minority,primaries"
    )]
    pub process_targets: Vec<Target>,
    /// Hosts that clock faults aim at: one, minority, majority, all, primaries.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "TARGETS",
        default_value = "one,minority,primaries"
    )]
    pub clock_targets: Vec<Target>,
    /// Packet faults to choose from: loss:P, rate:KBIT, delay:MS[:JITTER_MS], duplicate:P,
    /// reorder:P[:DELAY_MS]. delay, duplicate and reorder need the kernel's sch_netem.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "FAULTS",
        default_value = "loss:0.2,rate:1000"
    )]
    pub packet: Vec<String>,
    /// Clock faults to choose from: bump, strobe, skew (random direction), or bump-back,
    /// bump-ahead, skew-slow, skew-fast (fixed direction).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "FAULTS",
        default_value = "bump,strobe,skew"
    )]
    pub clock_faults: Vec<ClockKind>,
    /// Largest clock jump, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    pub clock_delta_ms_max: i64,
    /// How clocks are changed: faketime (libfaketime in the node; local hosts) or system
    /// (the host's own clock; VMs with time sync off). Default: faketime, or system for a
    /// --nodes-file written by `cluster up --vm`.
    #[arg(long, value_name = "STRATEGY")]
    pub clock_strategy: Option<ClockStrategy>,
    /// Give every fault family its own schedule, so faults of different families overlap
    /// (e.g. a leader cut off while its clock lags); default: one fault at a time.
    #[arg(long)]
    pub nemesis_overlap: bool,
}

/// Parses one `--packet` entry.
pub fn parse_packet(text: &str) -> anyhow::Result<PacketFault> {
    let mut parts = text.split(':');
    let kind = parts.next().unwrap_or_default();
    let numbers: Vec<f64> = parts
        .map(|p| {
            p.parse::<f64>()
                .map_err(|_| anyhow::anyhow!("--packet {text:?}: {p:?} is not a number"))
        })
        .collect::<anyhow::Result<_>>()?;
    let arg = |i: usize, default: Option<f64>| {
        numbers
            .get(i)
            .copied()
            .or(default)
            .ok_or_else(|| anyhow::anyhow!("--packet {text:?} needs a value after {kind}:"))
    };
    let probability = |p: f64| {
        anyhow::ensure!(
            (0.0..=1.0).contains(&p),
            "--packet {text:?}: {p} is not a probability in 0..1"
        );
        Ok(p)
    };
    Ok(match kind {
        "loss" => PacketFault::Loss { probability: probability(arg(0, None)?)? },
        "rate" => PacketFault::Rate { kbit: arg(0, None)?.max(1.0) as u32 },
        "delay" => PacketFault::Delay {
            delay_ms: arg(0, None)? as u32,
            jitter_ms: arg(1, Some(0.0))? as u32,
        },
        "duplicate" => PacketFault::Duplicate { probability: probability(arg(0, None)?)? },
        "reorder" => PacketFault::Reorder {
            probability: probability(arg(0, None)?)?,
            delay_ms: arg(1, Some(50.0))? as u32,
        },
        other => anyhow::bail!(
            "--packet {text:?}: unknown packet fault {other:?}; expected loss, rate, delay, duplicate or reorder"
        ),
    })
}

impl NemesisArgs {
    /// The fault families asked for; empty for none.
    pub fn families(&self) -> anyhow::Result<Vec<Family>> {
        let mut families = Vec::new();
        for name in &self.nemesis {
            let name = name.trim();
            if name.is_empty() || name == "none" {
                continue;
            }
            let family: Family = name.parse().map_err(anyhow::Error::msg)?;
            if !families.contains(&family) {
                families.push(family);
            }
        }
        Ok(families)
    }

    /// The nemesis configuration, or `None` when no fault was asked for.
    pub fn config(
        &self,
        time_limit: Duration,
        db_clock_skewable: Result<(), String>,
    ) -> anyhow::Result<Option<NemesisConfig>> {
        let families = self.families()?;
        if families.is_empty() {
            return Ok(None);
        }
        anyhow::ensure!(
            self.nemesis_interval.is_finite() && self.nemesis_interval > 0.0,
            "--nemesis-interval must be a positive number of seconds"
        );
        let packet_faults = self
            .packet
            .iter()
            .map(|p| parse_packet(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!self.partition.is_empty(), "--partition names no shape");
        anyhow::ensure!(
            !self.process_targets.is_empty(),
            "--process-targets names no target"
        );
        anyhow::ensure!(
            !self.clock_targets.is_empty(),
            "--clock-targets names no target"
        );
        anyhow::ensure!(!packet_faults.is_empty(), "--packet names no fault");
        anyhow::ensure!(
            !self.clock_faults.is_empty(),
            "--clock-faults names no fault"
        );
        Ok(Some(NemesisConfig {
            schedule: ScheduleOptions {
                families,
                interval_s: self.nemesis_interval,
                partitions: self.partition.clone(),
                process_targets: self.process_targets.clone(),
                clock_targets: self.clock_targets.clone(),
                packet_faults,
                clock_delta_ms_max: self.clock_delta_ms_max.max(1),
                clock_kinds: self.clock_faults.clone(),
                overlap: self.nemesis_overlap,
            },
            clock_strategy: self.effective_clock_strategy(),
            time_limit,
            db_clock_skewable,
            netem: None,
        }))
    }

    /// `--clock-strategy`, or faketime when it was not given (and not set from the hosts).
    pub fn effective_clock_strategy(&self) -> ClockStrategy {
        self.clock_strategy.unwrap_or(ClockStrategy::Faketime)
    }

    /// Whether the nodes must start under libfaketime (clock faults on local hosts).
    pub fn needs_faketime(&self) -> bool {
        self.effective_clock_strategy() == ClockStrategy::Faketime
            && self.families().is_ok_and(|f| f.contains(&Family::Clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_faults_parse_with_defaults_and_refuse_nonsense() {
        assert_eq!(
            parse_packet("loss:0.25").unwrap(),
            PacketFault::Loss { probability: 0.25 }
        );
        assert_eq!(
            parse_packet("rate:500").unwrap(),
            PacketFault::Rate { kbit: 500 }
        );
        assert_eq!(
            parse_packet("delay:100").unwrap(),
            PacketFault::Delay {
                delay_ms: 100,
                jitter_ms: 0
            }
        );
        assert_eq!(
            parse_packet("reorder:0.1").unwrap(),
            PacketFault::Reorder {
                probability: 0.1,
                delay_ms: 50
            }
        );
        assert!(parse_packet("loss:2")
            .unwrap_err()
            .to_string()
            .contains("probability"));
        assert!(parse_packet("loss")
            .unwrap_err()
            .to_string()
            .contains("needs a value"));
        assert!(parse_packet("jam:1")
            .unwrap_err()
            .to_string()
            .contains("unknown packet fault"));
    }
}
