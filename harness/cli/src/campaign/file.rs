//! The campaign file and its plan: the matrices expanded into named rows and seeded runs,
//! the same on every machine for the same file and seed.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// Seconds a run takes beyond its workload (setup, heal, final reads, teardown, check),
/// for balancing shards; measured on 3-5 local hosts it is 8-20 s.
pub const RUN_OVERHEAD_S: f64 = 15.0;

/// Most runs one campaign plans; far beyond any real campaign (nightly.toml is ~100).
pub const RUNS_MAX: u64 = 100_000;

/// The campaign file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    pub name: String,
    /// Seconds of workload per run.
    #[serde(default = "default_time_limit")]
    pub time_limit_s: f64,
    #[serde(default = "default_repetitions")]
    pub repetitions: u32,
    /// Seed of repetition i is `seeds[i % len]`; when empty, the campaign's seed (`--seed`,
    /// else random and recorded) plus i.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Further `faultline run` options for every run, e.g. `["--concurrency", "10"]`.
    #[serde(default)]
    pub run_args: Vec<String>,
    #[serde(default)]
    pub matrix: Vec<Matrix>,
}

fn default_time_limit() -> f64 {
    30.0
}

fn default_repetitions() -> u32 {
    1
}

/// A cross product of runs. `nemesis` entries are `--nemesis` values (`partition,kill`)
/// or `none`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// The row's name (default: db, workload, nemesis and bugs); with several dbs,
    /// workloads or nemeses those are appended to it.
    #[serde(default)]
    pub name: Option<String>,
    pub db: Vec<String>,
    pub workload: Vec<String>,
    #[serde(default = "no_nemesis")]
    pub nemesis: Vec<String>,
    /// Planted bugs for every run of this matrix.
    #[serde(default)]
    pub bug: Vec<String>,
    /// The verdict these runs should get: `valid` (default) or `invalid` (a planted bug the
    /// harness must catch).
    #[serde(default)]
    pub expect: Expect,
    /// For an `expect = "invalid"` row whose violation is a race the faults make likely
    /// but not certain (etcd's 2 s leases under pauses: 2 of 10 runs): the share of its
    /// runs that must catch it. Such a row is judged by its detection rate, as every
    /// planted-bug row is under `--fail-on detect>=X`, and a run that did not catch it is
    /// no failure by itself. Without it, every run of the row must be invalid.
    #[serde(default)]
    pub detect_at_least: Option<f64>,
    /// Seconds of workload of these runs (default: the campaign's).
    #[serde(default)]
    pub time_limit_s: Option<f64>,
    /// Further `faultline run` options for these runs only.
    #[serde(default)]
    pub run_args: Vec<String>,
}

fn no_nemesis() -> Vec<String> {
    vec!["none".into()]
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Valid,
    Invalid,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Valid => "valid",
            Expect::Invalid => "invalid",
        }
    }
}

/// One planned run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Position in the whole campaign's plan: merged shards are put back in this order.
    #[serde(default)]
    pub index: usize,
    /// The row's name, also the test name (its folder under the results dir).
    pub name: String,
    /// Which repetition of its row.
    #[serde(default)]
    pub rep: u32,
    pub db: String,
    pub workload: String,
    pub nemesis: String,
    pub bugs: Vec<String>,
    pub seed: u64,
    pub expect: Expect,
    /// Its row's `detect_at_least` (older plans have none).
    #[serde(default)]
    pub detect_at_least: Option<f64>,
    /// Seconds this run is expected to take, for balancing shards.
    #[serde(default)]
    pub expected_s: f64,
    pub args: Vec<String>,
}

impl PlannedRun {
    /// A register run of raft with no faults, for tests.
    #[cfg(test)]
    pub(crate) fn sample(index: usize, name: &str, expect: Expect, expected_s: f64) -> Self {
        PlannedRun {
            index,
            name: name.into(),
            rep: 0,
            db: "raft".into(),
            workload: "register".into(),
            nemesis: "none".into(),
            bugs: vec![],
            seed: 1,
            expect,
            detect_at_least: None,
            expected_s,
            args: vec![],
        }
    }

    /// The run's identity within its campaign: its row and repetition.
    pub fn id(&self) -> String {
        format!("{}#{}", self.name, self.rep)
    }
}

/// A campaign file read from disk, with what identifies it across machines.
pub struct Loaded {
    pub campaign: CampaignFile,
    /// SHA-256 of the file's bytes: shards of another file (or another version of it) are
    /// refused by `merge`.
    pub sha256: String,
}

/// The campaign in `text`, the contents of the file at `path` (errors name it).
pub fn parse(text: &str, path: &Path) -> anyhow::Result<CampaignFile> {
    toml::from_str(text).with_context(|| format!("in campaign file {}", path.display()))
}

pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("campaign file {} is not UTF-8", path.display()))?;
    let campaign = parse(text, path)?;
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Loaded { campaign, sha256 })
}

/// A test name made of safe characters, since it becomes a folder.
pub fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The workload seconds a run's arguments ask for: the last `--time-limit` wins, as it
/// does for `faultline run`.
fn time_limit_of(args: &[String], default: f64) -> f64 {
    args.windows(2)
        .filter(|w| w[0] == "--time-limit")
        .filter_map(|w| w[1].parse::<f64>().ok())
        .next_back()
        .unwrap_or(default)
}

/// The row names of a campaign's matrices, one per (matrix, db, workload, nemesis), unique:
/// a name used twice gets `-2`, `-3`, … in file order.
fn row_names(campaign: &CampaignFile) -> Vec<Vec<String>> {
    let mut used: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for m in &campaign.matrix {
        let combos = m.db.len() * m.workload.len() * m.nemesis.len();
        let mut names = Vec::new();
        for db in &m.db {
            for workload in &m.workload {
                for nemesis in &m.nemesis {
                    let mut label = match &m.name {
                        Some(name) if combos == 1 => format!("{}-{name}", campaign.name),
                        Some(name) => format!("{}-{name}-{db}-{workload}-{nemesis}", campaign.name),
                        None => {
                            let mut l = format!("{}-{db}-{workload}-{nemesis}", campaign.name);
                            for bug in &m.bug {
                                l.push_str(&format!("-{bug}"));
                            }
                            l
                        }
                    };
                    label = slug(&label);
                    let seen = used.entry(label.clone()).or_insert(0);
                    *seen += 1;
                    if *seen > 1 {
                        label = format!("{label}-{seen}");
                    }
                    names.push(label);
                }
            }
        }
        out.push(names);
    }
    out
}

/// Expands the matrices into runs, repetition by repetition in file order. Seeds come from
/// the file, else from `campaign_seed` + repetition.
pub fn plan(campaign: &CampaignFile, campaign_seed: u64) -> anyhow::Result<Vec<PlannedRun>> {
    if campaign.matrix.is_empty() {
        bail!("campaign {:?} has no [[matrix]]", campaign.name);
    }
    let positive = |s: f64| s.is_finite() && s > 0.0;
    if !positive(campaign.time_limit_s) {
        bail!("time_limit_s must be a positive number of seconds");
    }
    if let Some(i) = campaign
        .matrix
        .iter()
        .position(|m| m.time_limit_s.is_some_and(|s| !positive(s)))
    {
        bail!(
            "matrix {}: time_limit_s must be a positive number of seconds",
            i + 1
        );
    }
    for (i, m) in campaign.matrix.iter().enumerate() {
        if let Some(x) = m.detect_at_least {
            if m.expect != Expect::Invalid {
                bail!(
                    "matrix {}: detect_at_least is a detection rate, for an expect = \"invalid\" row",
                    i + 1
                );
            }
            if !(x > 0.0 && x <= 1.0) {
                bail!(
                    "matrix {}: detect_at_least must be a share of runs above 0 and at most 1, not {x}",
                    i + 1
                );
            }
        }
    }
    // `repetitions = 4294967295` made the plan exhaust memory and abort.
    let per_rep = campaign.matrix.iter().fold(0u64, |n, m| {
        n.saturating_add(
            (m.db.len() as u64).saturating_mul((m.workload.len() * m.nemesis.len()) as u64),
        )
    });
    let total = per_rep.saturating_mul(u64::from(campaign.repetitions));
    if total > RUNS_MAX {
        bail!(
            "{total} runs ({per_rep} per repetition × repetitions = {}): more than {RUNS_MAX}",
            campaign.repetitions
        );
    }
    let names = row_names(campaign);
    let mut runs = Vec::new();
    for rep in 0..campaign.repetitions {
        let seed = match campaign.seeds.is_empty() {
            true => campaign_seed.wrapping_add(rep as u64),
            false => campaign.seeds[rep as usize % campaign.seeds.len()],
        };
        for (m, names) in campaign.matrix.iter().zip(&names) {
            let time_limit = m.time_limit_s.unwrap_or(campaign.time_limit_s);
            let mut names = names.iter();
            for db in &m.db {
                for workload in &m.workload {
                    for nemesis in &m.nemesis {
                        let name = names.next().expect("one name per combination").clone();
                        let mut args = vec![
                            "--db".to_string(),
                            db.clone(),
                            "--workload".into(),
                            workload.clone(),
                            "--time-limit".into(),
                            time_limit.to_string(),
                            "--seed".into(),
                            seed.to_string(),
                            "--name".into(),
                            name.clone(),
                        ];
                        if nemesis != "none" {
                            args.extend(["--nemesis".into(), nemesis.clone()]);
                        }
                        for bug in &m.bug {
                            args.extend(["--bug".into(), bug.clone()]);
                        }
                        args.extend(campaign.run_args.iter().cloned());
                        args.extend(m.run_args.iter().cloned());
                        runs.push(PlannedRun {
                            index: runs.len(),
                            name,
                            rep,
                            db: db.clone(),
                            workload: workload.clone(),
                            nemesis: nemesis.clone(),
                            bugs: m.bug.clone(),
                            seed,
                            expect: m.expect,
                            detect_at_least: m.detect_at_least,
                            expected_s: time_limit_of(&args, time_limit) + RUN_OVERHEAD_S,
                            args,
                        });
                    }
                }
            }
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const FILE: &str = r#"
name = "mini"
time_limit_s = 5
repetitions = 2
seeds = [7, 8]
run_args = ["--concurrency", "4"]

[[matrix]]
db = ["raft", "paxos"]
workload = ["register"]
nemesis = ["none", "partition,kill"]

[[matrix]]
db = ["raft"]
workload = ["register"]
nemesis = ["partition"]
bug = ["stale-read"]
expect = "invalid"
time_limit_s = 20
"#;

    #[test]
    fn plans_the_cross_product_with_seeds_per_repetition() {
        let campaign: CampaignFile = toml::from_str(FILE).unwrap();
        let runs = plan(&campaign, 0).unwrap();
        assert_eq!(runs.len(), 2 * (2 * 2 + 1));
        assert!(runs[..5].iter().all(|r| r.seed == 7 && r.rep == 0));
        assert!(runs[5..].iter().all(|r| r.seed == 8 && r.rep == 1));
        assert!(runs.iter().enumerate().all(|(i, r)| r.index == i));
        let bugged = &runs[4];
        assert_eq!(bugged.name, "mini-raft-register-partition-stale-read");
        assert_eq!(bugged.id(), "mini-raft-register-partition-stale-read#0");
        assert_eq!(bugged.expect, Expect::Invalid);
        assert!(bugged.args.windows(2).any(|w| w == ["--bug", "stale-read"]));
        assert!(bugged.args.windows(2).any(|w| w == ["--time-limit", "20"]));
        assert_eq!(bugged.expected_s, 20.0 + RUN_OVERHEAD_S);
        let quiet = &runs[0];
        assert_eq!(quiet.expected_s, 5.0 + RUN_OVERHEAD_S);
        assert!(!quiet.args.contains(&"--nemesis".to_string()));
        assert!(runs[1]
            .args
            .windows(2)
            .any(|w| w == ["--nemesis", "partition,kill"]));
        assert!(quiet.args.windows(2).any(|w| w == ["--concurrency", "4"]));
        assert_eq!(runs[1].name, "mini-raft-register-partition-kill");
    }

    #[test]
    fn rows_are_named_uniquely_and_seeds_follow_the_campaign_seed() {
        let text = r#"
name = "n"
repetitions = 3
[[matrix]]
name = "control"
db = ["raft"]
workload = ["register"]
[[matrix]]
db = ["raft"]
workload = ["register"]
run_args = ["--read-mode", "lease", "--time-limit", "12"]
[[matrix]]
db = ["raft"]
workload = ["register"]
"#;
        let campaign: CampaignFile = toml::from_str(text).unwrap();
        let runs = plan(&campaign, 40).unwrap();
        let names: Vec<&str> = runs[..3].iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "n-control",
                "n-raft-register-none",
                "n-raft-register-none-2"
            ]
        );
        assert_eq!(
            runs.iter().map(|r| r.seed).collect::<Vec<_>>(),
            [40, 40, 40, 41, 41, 41, 42, 42, 42]
        );
        // The run's own --time-limit is what it will take.
        assert_eq!(runs[1].expected_s, 12.0 + RUN_OVERHEAD_S);
        assert_eq!(plan(&campaign, 40).unwrap(), runs, "deterministic");
    }

    #[test]
    fn unknown_fields_and_empty_matrices_are_refused() {
        let err = toml::from_str::<CampaignFile>("name = \"x\"\ntime_limit = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("time_limit"), "{err}");
        let campaign: CampaignFile = toml::from_str("name = \"x\"").unwrap();
        assert!(plan(&campaign, 1)
            .unwrap_err()
            .to_string()
            .contains("no [[matrix]]"));
        let bad: CampaignFile = toml::from_str(
            "name = \"x\"\n[[matrix]]\ndb = [\"raft\"]\nworkload = [\"register\"]\ntime_limit_s = -1\n",
        )
        .unwrap();
        assert!(plan(&bad, 1).unwrap_err().to_string().contains("matrix 1"));
    }

    #[test]
    fn detect_at_least_is_a_share_for_rows_expecting_invalid() {
        let row = |extra: &str| {
            let text = format!(
                "name = \"x\"\n[[matrix]]\ndb = [\"raft\"]\nworkload = [\"register\"]\n{extra}\n"
            );
            let campaign: CampaignFile = toml::from_str(&text).unwrap();
            plan(&campaign, 1)
        };
        let runs = row("expect = \"invalid\"\ndetect_at_least = 0.2").unwrap();
        assert_eq!(runs[0].detect_at_least, Some(0.2));
        let err = row("detect_at_least = 0.2").unwrap_err().to_string();
        assert!(err.contains("expect = \"invalid\""), "{err}");
        for bad in ["0", "1.5", "nan"] {
            let err = row(&format!("expect = \"invalid\"\ndetect_at_least = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("above 0 and at most 1"), "{bad}: {err}");
        }
        // Plans written before the field existed still read.
        let old = r#"{"name":"r","db":"raft","workload":"register","nemesis":"none","bugs":[],"seed":1,"expect":"invalid","args":[]}"#;
        let run: PlannedRun = serde_json::from_str(old).unwrap();
        assert_eq!(run.detect_at_least, None);
    }

    #[test]
    fn shipped_campaigns_parse_and_plan() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workloads/campaigns");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let loaded = load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            let runs = plan(&loaded.campaign, 3).unwrap();
            assert!(!runs.is_empty(), "{} plans runs", path.display());
            let mut ids: Vec<String> = runs.iter().map(PlannedRun::id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(
                ids.len(),
                runs.len(),
                "{}: run ids are unique",
                path.display()
            );
        }
    }
}
