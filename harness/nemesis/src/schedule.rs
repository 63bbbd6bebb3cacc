//! The fault schedule: which fault starts and stops when, computed up front from a seed so
//! that a run can be replayed with the same faults at the same offsets.

use crate::grudge::PartitionKind;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The fault families of `--nemesis partition,clock,kill,pause,packet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Partition,
    Clock,
    Kill,
    Pause,
    Packet,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::Partition,
        Family::Clock,
        Family::Kill,
        Family::Pause,
        Family::Packet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Partition => "partition",
            Family::Clock => "clock",
            Family::Kill => "kill",
            Family::Pause => "pause",
            Family::Packet => "packet",
        }
    }

    /// The history `f` names that open and close one period of this fault, and the colour
    /// the report shades it with (Jepsen's `:perf` metadata).
    pub fn perf(self) -> Perf {
        let (start, stop, color): (&[&str], &[&str], &str) = match self {
            Family::Partition => (&["start-partition"], &["stop-partition"], "#e9b8ff"),
            Family::Clock => (
                &["bump-clock", "strobe-clock", "skew-clock"],
                &["reset-clock"],
                "#ffd59e",
            ),
            Family::Kill => (&["kill"], &["restart"], "#ffb3b3"),
            Family::Pause => (&["pause"], &["resume"], "#b3d4ff"),
            Family::Packet => (&["start-packet"], &["stop-packet"], "#c2f0c2"),
        };
        Perf {
            name: self.name().to_string(),
            start: start.iter().map(|s| s.to_string()).collect(),
            stop: stop.iter().map(|s| s.to_string()).collect(),
            color: color.to_string(),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|family| family.name() == s)
            .ok_or_else(|| {
                format!("unknown nemesis {s:?}; expected partition, clock, kill, pause or packet")
            })
    }
}

/// Report metadata for one fault family (`nemesis_perf` in test.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perf {
    pub name: String,
    pub start: Vec<String>,
    pub stop: Vec<String>,
    pub color: String,
}

/// Which hosts a process fault or clock fault aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    One,
    Minority,
    Majority,
    All,
    Primaries,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "one" => Ok(Target::One),
            "minority" => Ok(Target::Minority),
            "majority" => Ok(Target::Majority),
            "all" => Ok(Target::All),
            "primaries" => Ok(Target::Primaries),
            other => Err(format!(
                "unknown target {other:?}; expected one, minority, majority, all or primaries"
            )),
        }
    }
}

/// A clock fault, applied to each targeted host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ClockFault {
    /// Jump the clock by this many milliseconds (negative: back).
    Bump { delta_ms: i64 },
    /// Flip between +delta and 0 every `period_ms`, for `duration_ms`.
    Strobe {
        delta_ms: i64,
        period_ms: u64,
        duration_ms: u64,
    },
    /// Run the clock at this rate (e.g. 1.5 = fast, 0.5 = slow).
    Skew { rate: f64 },
}

/// The kinds of clock fault a schedule draws from (`--clock-faults`). `bump` and `skew`
/// pick their direction at random; the `-back`/`-ahead` and `-slow`/`-fast` forms fix it,
/// e.g. to make a leader's clock lag, which is what a wall-clock lease trusts wrongly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockKind {
    Bump,
    BumpBack,
    BumpAhead,
    Strobe,
    Skew,
    SkewSlow,
    SkewFast,
}

impl ClockKind {
    pub const ALL: [ClockKind; 7] = [
        ClockKind::Bump,
        ClockKind::BumpBack,
        ClockKind::BumpAhead,
        ClockKind::Strobe,
        ClockKind::Skew,
        ClockKind::SkewSlow,
        ClockKind::SkewFast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClockKind::Bump => "bump",
            ClockKind::BumpBack => "bump-back",
            ClockKind::BumpAhead => "bump-ahead",
            ClockKind::Strobe => "strobe",
            ClockKind::Skew => "skew",
            ClockKind::SkewSlow => "skew-slow",
            ClockKind::SkewFast => "skew-fast",
        }
    }
}

impl FromStr for ClockKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClockKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ClockKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown clock fault {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

fn default_clock_kinds() -> Vec<ClockKind> {
    vec![ClockKind::Bump, ClockKind::Strobe, ClockKind::Skew]
}

/// A packet fault, applied on each targeted host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum PacketFault {
    /// Drop this fraction of incoming packets (iptables `statistic`).
    Loss { probability: f64 },
    /// Rate limit outgoing traffic (tc `tbf`).
    Rate { kbit: u32 },
    /// Delay outgoing packets (tc netem; needs `sch_netem`).
    Delay { delay_ms: u32, jitter_ms: u32 },
    /// Duplicate outgoing packets (tc netem).
    Duplicate { probability: f64 },
    /// Reorder outgoing packets (tc netem).
    Reorder { probability: f64, delay_ms: u32 },
}

impl PacketFault {
    /// Whether this fault needs the kernel's `sch_netem`, which some kernels lack.
    pub fn needs_netem(&self) -> bool {
        matches!(
            self,
            PacketFault::Delay { .. } | PacketFault::Duplicate { .. } | PacketFault::Reorder { .. }
        )
    }
}

/// One fault to start. Concrete hosts are chosen when it is applied (primaries must be asked
/// of the db then), with the run's seeded RNG, and recorded in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "fault")]
pub enum Fault {
    Partition { kind: PartitionKind },
    Clock { target: Target, clock: ClockFault },
    Kill { target: Target },
    Pause { target: Target },
    Packet { target: Target, packet: PacketFault },
}

impl Fault {
    pub fn family(&self) -> Family {
        match self {
            Fault::Partition { .. } => Family::Partition,
            Fault::Clock { .. } => Family::Clock,
            Fault::Kill { .. } => Family::Kill,
            Fault::Pause { .. } => Family::Pause,
            Fault::Packet { .. } => Family::Packet,
        }
    }
}

/// What the nemesis does at one point of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    Start(Fault),
    /// Undo the running fault of this family.
    Stop {
        family: Family,
    },
}

impl Action {
    /// The family whose timeline this step belongs to.
    pub fn family(&self) -> Family {
        match self {
            Action::Start(fault) => fault.family(),
            Action::Stop { family } => *family,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Milliseconds after the workload started.
    pub at_ms: u64,
    pub action: Action,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleOptions {
    pub families: Vec<Family>,
    /// Mean seconds between a fault's start and its stop, and between a stop and the next start.
    pub interval_s: f64,
    pub partitions: Vec<PartitionKind>,
    pub process_targets: Vec<Target>,
    pub clock_targets: Vec<Target>,
    pub packet_faults: Vec<PacketFault>,
    /// Largest clock bump, in milliseconds.
    pub clock_delta_ms_max: i64,
    /// The clock faults to draw from.
    #[serde(default = "default_clock_kinds")]
    pub clock_kinds: Vec<ClockKind>,
    /// Each family on its own timeline, so faults of different families overlap (a leader
    /// cut off while its clock lags); otherwise one fault at a time.
    #[serde(default)]
    pub overlap: bool,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions {
            families: vec![Family::Partition],
            interval_s: 10.0,
            partitions: vec![
                PartitionKind::Halves,
                PartitionKind::RandomHalves,
                PartitionKind::One,
                PartitionKind::MajorityRing,
                PartitionKind::Bridge,
                PartitionKind::Primaries,
            ],
            process_targets: vec![Target::One, Target::Minority, Target::Primaries],
            clock_targets: vec![Target::One, Target::Minority, Target::Primaries],
            packet_faults: vec![
                PacketFault::Loss { probability: 0.2 },
                PacketFault::Rate { kbit: 1000 },
            ],
            clock_delta_ms_max: 60_000,
            clock_kinds: default_clock_kinds(),
            overlap: false,
        }
    }
}

/// Draws a wait around `mean_ms` (uniform in [mean/2, 3·mean/2]) so faults do not line up
/// with periodic behaviour of the system, yet every wait stays bounded.
fn wait_ms<R: Rng>(rng: &mut R, mean_ms: u64) -> u64 {
    let mean_ms = mean_ms.max(2);
    rng.random_range(mean_ms / 2..=mean_ms + mean_ms / 2)
}

fn draw_fault<R: Rng>(rng: &mut R, family: Family, opts: &ScheduleOptions) -> Option<Fault> {
    let pick_target = |rng: &mut R, targets: &[Target]| targets.choose(rng).copied();
    Some(match family {
        Family::Partition => Fault::Partition {
            kind: *opts.partitions.choose(rng)?,
        },
        Family::Kill => Fault::Kill {
            target: pick_target(rng, &opts.process_targets)?,
        },
        Family::Pause => Fault::Pause {
            target: pick_target(rng, &opts.process_targets)?,
        },
        Family::Clock => {
            let max = opts.clock_delta_ms_max.max(1);
            let magnitude = rng.random_range(max / 10..=max).max(1);
            let kind = *opts.clock_kinds.choose(rng)?;
            let back = match kind {
                ClockKind::BumpBack | ClockKind::SkewSlow => true,
                ClockKind::BumpAhead | ClockKind::SkewFast => false,
                ClockKind::Bump | ClockKind::Strobe | ClockKind::Skew => rng.random_bool(0.5),
            };
            let delta_ms = if back { -magnitude } else { magnitude };
            let clock = match kind {
                ClockKind::Bump | ClockKind::BumpBack | ClockKind::BumpAhead => {
                    ClockFault::Bump { delta_ms }
                }
                ClockKind::Strobe => ClockFault::Strobe {
                    delta_ms,
                    period_ms: rng.random_range(10..=200),
                    duration_ms: rng.random_range(1_000..=5_000),
                },
                ClockKind::Skew | ClockKind::SkewSlow | ClockKind::SkewFast => ClockFault::Skew {
                    rate: if back { 0.5 } else { 2.0 },
                },
            };
            Fault::Clock {
                target: pick_target(rng, &opts.clock_targets)?,
                clock,
            }
        }
        Family::Packet => Fault::Packet {
            target: pick_target(rng, &opts.process_targets)?,
            packet: *opts.packet_faults.choose(rng)?,
        },
    })
}

/// The whole schedule for a workload phase of `time_limit_ms`. By default faults start and
/// stop one at a time, alternating quiet and faulty periods; with `overlap` every family
/// runs its own such alternation and the timelines are merged, so faults of different
/// families coincide. Every fault stops before the time limit, and the run heals everything
/// again afterwards.
pub fn schedule(opts: &ScheduleOptions, time_limit_ms: u64, seed: u64) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mean_ms = (opts.interval_s.max(0.001) * 1000.0) as u64;
    if opts.families.is_empty() {
        return Vec::new();
    }
    if !opts.overlap {
        return timeline(&mut rng, opts, &opts.families, mean_ms, time_limit_ms);
    }
    let mut steps: Vec<Step> = Vec::new();
    for family in &opts.families {
        steps.extend(timeline(
            &mut rng,
            opts,
            std::slice::from_ref(family),
            mean_ms,
            time_limit_ms,
        ));
    }
    // Stable: at equal times a family's stop stays after its own start.
    steps.sort_by_key(|step| step.at_ms);
    steps
}

/// One alternation of quiet and faulty periods, each fault drawn from `families`.
fn timeline(
    rng: &mut ChaCha8Rng,
    opts: &ScheduleOptions,
    families: &[Family],
    mean_ms: u64,
    time_limit_ms: u64,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut now = wait_ms(rng, mean_ms);
    while now < time_limit_ms {
        let Some(&family) = families.choose(rng) else {
            break;
        };
        let Some(fault) = draw_fault(rng, family, opts) else {
            break;
        };
        let stop_at = (now + wait_ms(rng, mean_ms)).min(time_limit_ms);
        steps.push(Step {
            at_ms: now,
            action: Action::Start(fault),
        });
        steps.push(Step {
            at_ms: stop_at,
            action: Action::Stop { family },
        });
        now = stop_at + wait_ms(rng, mean_ms);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ScheduleOptions {
        fn default_with(family: Family) -> ScheduleOptions {
            ScheduleOptions {
                families: vec![family],
                interval_s: 1.0,
                ..ScheduleOptions::default()
            }
        }
    }

    fn all_families() -> ScheduleOptions {
        ScheduleOptions {
            families: Family::ALL.to_vec(),
            interval_s: 2.0,
            ..ScheduleOptions::default()
        }
    }

    #[test]
    fn same_seed_same_schedule_and_different_seed_differs() {
        let opts = all_families();
        assert_eq!(schedule(&opts, 60_000, 42), schedule(&opts, 60_000, 42));
        assert_ne!(schedule(&opts, 60_000, 42), schedule(&opts, 60_000, 43));
    }

    #[test]
    fn every_start_is_stopped_in_order_before_the_time_limit() {
        let opts = all_families();
        for seed in 0..50 {
            let steps = schedule(&opts, 30_000, seed);
            assert!(!steps.is_empty());
            let mut last = 0;
            for pair in steps.chunks(2) {
                let [start, stop] = pair else {
                    panic!("unpaired step in {steps:?}")
                };
                let Action::Start(fault) = &start.action else {
                    panic!("expected a start: {start:?}")
                };
                assert_eq!(
                    stop.action,
                    Action::Stop {
                        family: fault.family()
                    }
                );
                assert!(last <= start.at_ms && start.at_ms <= stop.at_ms);
                assert!(stop.at_ms <= 30_000);
                last = stop.at_ms;
            }
        }
    }

    #[test]
    fn only_requested_families_appear() {
        let opts = ScheduleOptions {
            families: vec![Family::Kill],
            interval_s: 1.0,
            ..ScheduleOptions::default()
        };
        for step in schedule(&opts, 20_000, 5) {
            match step.action {
                Action::Start(fault) => assert_eq!(fault.family(), Family::Kill),
                Action::Stop { family } => assert_eq!(family, Family::Kill),
            }
        }
    }

    #[test]
    fn mean_interval_is_respected_roughly() {
        let opts = ScheduleOptions {
            families: vec![Family::Partition],
            interval_s: 5.0,
            ..ScheduleOptions::default()
        };
        let steps = schedule(&opts, 600_000, 9);
        // 600 s with a start and a stop every ~5 s each: about 60 faults.
        let starts = steps.len() / 2;
        assert!((45..=75).contains(&starts), "{starts} faults in 600 s");
    }

    #[test]
    fn schedule_round_trips_through_json() {
        let steps = schedule(&all_families(), 60_000, 1);
        let text = serde_json::to_string(&steps).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Step>>(&text).unwrap(), steps);
    }

    #[test]
    fn overlapping_families_each_alternate_and_do_coincide() {
        let opts = ScheduleOptions {
            families: vec![Family::Partition, Family::Clock],
            interval_s: 2.0,
            overlap: true,
            ..ScheduleOptions::default()
        };
        let mut coincide = 0;
        for seed in 0..20 {
            let steps = schedule(&opts, 30_000, seed);
            let mut active: Vec<Family> = Vec::new();
            let mut last = 0;
            for step in &steps {
                assert!(last <= step.at_ms && step.at_ms <= 30_000, "{steps:?}");
                last = step.at_ms;
                match &step.action {
                    Action::Start(fault) => {
                        assert!(!active.contains(&fault.family()), "{steps:?}");
                        active.push(fault.family());
                        if active.len() == 2 {
                            coincide += 1;
                        }
                    }
                    Action::Stop { family } => {
                        assert!(active.contains(family), "{steps:?}");
                        active.retain(|f| f != family);
                    }
                }
            }
            assert!(active.is_empty(), "every fault stops: {steps:?}");
        }
        assert!(coincide >= 20, "only {coincide} overlaps in 20 runs");
        // Without overlap, the same options never have two faults at once.
        let single = ScheduleOptions {
            overlap: false,
            ..opts
        };
        let steps = schedule(&single, 30_000, 3);
        assert!(steps.chunks(2).all(|pair| matches!(
            (&pair[0].action, &pair[1].action),
            (Action::Start(f), Action::Stop { family }) if f.family() == *family
        )));
    }

    #[test]
    fn clock_kinds_fix_the_direction_when_asked() {
        let opts = |kinds: Vec<ClockKind>| ScheduleOptions {
            families: vec![Family::Clock],
            interval_s: 1.0,
            clock_kinds: kinds,
            ..ScheduleOptions::default()
        };
        let clocks = |opts: &ScheduleOptions| -> Vec<ClockFault> {
            (0..10)
                .flat_map(|seed| schedule(opts, 20_000, seed))
                .filter_map(|step| match step.action {
                    Action::Start(Fault::Clock { clock, .. }) => Some(clock),
                    _ => None,
                })
                .collect()
        };
        let back = clocks(&opts(vec![ClockKind::BumpBack, ClockKind::SkewSlow]));
        assert!(back.len() > 20);
        assert!(back.iter().all(|c| match c {
            ClockFault::Bump { delta_ms } => *delta_ms < 0,
            ClockFault::Skew { rate } => *rate < 1.0,
            ClockFault::Strobe { .. } => false,
        }));
        let ahead = clocks(&opts(vec![ClockKind::BumpAhead]));
        assert!(ahead
            .iter()
            .all(|c| matches!(c, ClockFault::Bump { delta_ms } if *delta_ms > 0)));
        let any = clocks(&ScheduleOptions::default_with(Family::Clock));
        assert!(any.iter().any(|c| matches!(c, ClockFault::Strobe { .. })));
        assert!(any
            .iter()
            .any(|c| matches!(c, ClockFault::Bump { delta_ms } if *delta_ms < 0)));
        assert!(any
            .iter()
            .any(|c| matches!(c, ClockFault::Bump { delta_ms } if *delta_ms > 0)));
        assert_eq!("skew-slow".parse(), Ok(ClockKind::SkewSlow));
        assert!("sideways".parse::<ClockKind>().is_err());
    }

    #[test]
    fn netem_faults_are_flagged() {
        assert!(PacketFault::Delay {
            delay_ms: 100,
            jitter_ms: 10
        }
        .needs_netem());
        assert!(!PacketFault::Loss { probability: 0.1 }.needs_netem());
        assert!(!PacketFault::Rate { kbit: 100 }.needs_netem());
    }
}
