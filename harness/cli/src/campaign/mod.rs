//! `faultline campaign`: runs a matrix of tests (dbs × workloads × nemeses × repetitions)
//! against one cluster, a whole campaign or one shard of it, and summarises them with
//! per-row rates; `plan` prints the shard split for a CI matrix, `merge` combines shards'
//! summaries into the campaign's, `history` lays a campaign's nights side by side.
//!
//! Layout: `file` (the campaign file and its plan), `shard` (the split), `rates` (counts,
//! Wilson intervals, `--fail-on`), `summary` (summary.{json,html}, JUnit, exit code),
//! `execute` (one run as a child process), `merge`, `trends` (the history page).
//!
//! Each run is a child `faultline run` process: a run that crashes or hangs cannot take the
//! campaign down with it, and every run folder is exactly what a single run writes.

mod execute;
pub mod file;
mod merge;
mod rates;
mod shard;
mod summary;
mod trends;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use faultline_control::local_cluster::{self, ClusterConfig};
use faultline_control::SshArgs;
use faultline_report::index::CAMPAIGNS_DIR;
use rates::FailOn;
use shard::Shard;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};
use summary::CampaignSummary;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CampaignCmd {
    #[command(subcommand)]
    pub command: Option<CampaignSub>,
    #[command(flatten)]
    pub run: CampaignArgs,
}

#[derive(Subcommand)]
pub enum CampaignSub {
    /// Print how `--shard I/N` splits a campaign's runs (for a CI job matrix).
    Plan(PlanArgs),
    /// Combine shards' summaries (e.g. CI artifacts) into the campaign's summary.
    Merge(merge::MergeArgs),
    /// A campaign's nights side by side per row: rate, interval, time to first violation.
    History(trends::HistoryArgs),
}

#[derive(Args)]
pub struct CampaignArgs {
    /// The campaign file (TOML; see workloads/campaigns/).
    #[arg(required = true)]
    pub file: Option<PathBuf>,
    /// Run only shard I of N (1-based): a deterministic 1/N of the runs, balanced by
    /// expected duration, the same split on every machine.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// The campaign's seed: repetition i of a file without `seeds` uses SEED+i. Needed
    /// with --shard for such a file, so that every shard plans the same runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run folders and the campaign summary go.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results_dir: PathBuf,
    /// Also write the JUnit report here (it is always written into the summary folder).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// What fails the campaign: `invalid` (unknown verdicts pass), `unknown` (they fail
    /// too), and optionally `detect>=X`: a planted-bug row fails only when caught in less
    /// than that fraction of its runs (e.g. `unknown,detect>=0.9`).
    #[arg(long, default_value = "unknown")]
    pub fail_on: FailOn,
    /// Print the planned runs and exit.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub local: crate::run::LocalClusterArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

#[derive(Args)]
pub struct PlanArgs {
    /// The campaign file.
    pub file: PathBuf,
    /// How many shards.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=shard::SHARDS_MAX as i64))]
    pub shards: u32,
    /// The campaign's seed (as for a run); needed when the file names no seeds.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print JSON: every shard's runs, and `matrix` for a GitHub Actions job matrix.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: CampaignCmd) -> anyhow::Result<u8> {
    match cmd.command {
        Some(CampaignSub::Plan(args)) => plan_cmd(args),
        Some(CampaignSub::Merge(args)) => merge::run(args),
        Some(CampaignSub::History(args)) => trends::run(args),
        None => run_campaign(cmd.run),
    }
}

/// The campaign's seed: the one given, none when the file has its own seeds (which then
/// decide), else random, except for a shard, whose siblings must draw the same.
fn campaign_seed(
    file: &file::CampaignFile,
    given: Option<u64>,
    sharded: bool,
) -> anyhow::Result<Option<u64>> {
    if !file.seeds.is_empty() {
        return Ok(given);
    }
    match given {
        Some(seed) => Ok(Some(seed)),
        None if sharded => bail!(
            "campaign {:?} names no seeds, so its shards would draw different ones: give \
             every shard the same --seed N (e.g. the CI pipeline's id)",
            file.name
        ),
        None => Ok(Some(rand::random::<u32>() as u64)),
    }
}

fn plan_cmd(args: PlanArgs) -> anyhow::Result<u8> {
    let loaded = file::load(&args.file)?;
    let seed = campaign_seed(&loaded.campaign, args.seed, args.shards > 1)?;
    let runs = file::plan(&loaded.campaign, seed.unwrap_or(0))?;
    let shard_of = shard::assign(&runs, args.shards);
    let shards: Vec<serde_json::Value> = (0..args.shards)
        .map(|i| {
            let mine: Vec<&file::PlannedRun> = runs
                .iter()
                .zip(&shard_of)
                .filter(|(_, s)| **s == i)
                .map(|(r, _)| r)
                .collect();
            serde_json::json!({
                "shard": Shard { index: i + 1, count: args.shards }.to_string(),
                "index": i + 1,
                "count": args.shards,
                "expected_s": mine.iter().map(|r| r.expected_s).sum::<f64>(),
                "runs": mine.iter().map(|r| serde_json::json!({
                    "id": r.id(), "name": r.name, "seed": r.seed, "expected_s": r.expected_s,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if args.json {
        let include: Vec<serde_json::Value> = shards
            .iter()
            .map(|s| serde_json::json!({"shard": s["shard"], "index": s["index"]}))
            .collect();
        let doc = serde_json::json!({
            "campaign": loaded.campaign.name,
            "file_sha256": loaded.sha256,
            "faultline_version": env!("CARGO_PKG_VERSION"),
            "seed": seed,
            "runs": runs.len(),
            "shards": shards,
            "matrix": {"include": include},
        });
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        println!(
            "campaign {}: {} runs in {} shard(s){}",
            loaded.campaign.name,
            runs.len(),
            args.shards,
            seed.map_or(String::new(), |s| format!(", seed {s}"))
        );
        for s in &shards {
            println!(
                "shard {}: {} runs, about {:.0} s",
                s["shard"].as_str().unwrap_or(""),
                s["runs"].as_array().map_or(0, Vec::len),
                s["expected_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(0)
}

fn run_campaign(args: CampaignArgs) -> anyhow::Result<u8> {
    let path = args.file.clone().context("a campaign file is required")?;
    let loaded = file::load(&path)?;
    let campaign = &loaded.campaign;
    let seed = campaign_seed(campaign, args.seed, args.shard.is_some())?;
    let mut runs = file::plan(campaign, seed.unwrap_or(0))?;
    if let Some(shard) = args.shard {
        runs = shard::select(&runs, shard);
    }
    if args.dry_run {
        for r in &runs {
            println!("faultline run {}", r.args.join(" "));
        }
        return Ok(0);
    }
    let exe = std::env::current_exe().context("cannot find the faultline executable")?;

    // One cluster for the whole campaign: each run finds it up and leaves it up; it goes
    // down at the end only if the campaign brought it up.
    let local = args.ssh.hosts()?.is_none();
    let brought_up = if local && !runs.is_empty() {
        let was_up = local_cluster::status(args.local.local_cluster_id)?.is_some();
        local_cluster::up(&ClusterConfig {
            id: args.local.local_cluster_id,
            nodes: args.local.local_nodes as usize,
        })?;
        !was_up
    } else {
        false
    };

    let stamp = faultline_report::run_dir_name(SystemTime::now());
    let folder = match args.shard {
        Some(s) => format!("{stamp}-shard-{}-of-{}", s.index, s.count),
        None => stamp.clone(),
    };
    let campaign_dir = args
        .results_dir
        .join(CAMPAIGNS_DIR)
        .join(file::slug(&campaign.name));
    let summary_dir = campaign_dir.join(&folder);
    std::fs::create_dir_all(&summary_dir)
        .with_context(|| format!("cannot create {}", summary_dir.display()))?;
    let mut summary = CampaignSummary {
        campaign: campaign.name.clone(),
        file: path.display().to_string(),
        file_sha256: loaded.sha256.clone(),
        faultline_version: env!("CARGO_PKG_VERSION").to_string(),
        seed,
        shard: args.shard,
        merged_shards: None,
        missing_shards: Vec::new(),
        fail_on: args.fail_on.to_string(),
        started: stamp,
        wall_s: 0.0,
        planned: runs.iter().map(file::PlannedRun::id).collect(),
        runs: Vec::new(),
        rows: Vec::new(),
        passed: 0,
        total: 0,
        exit_code: 0,
    };
    let started = Instant::now();
    for (i, planned) in runs.iter().enumerate() {
        eprintln!(
            "faultline campaign: run {}/{}: {} (seed {})",
            i + 1,
            runs.len(),
            planned.name,
            planned.seed
        );
        let ctx = execute::Context {
            results_dir: &args.results_dir,
            local_nodes: args.local.local_nodes,
            local_cluster_id: args.local.local_cluster_id,
            ssh: &args.ssh,
            exe: &exe,
            fail_on_unknown: args.fail_on.unknown,
        };
        summary.runs.push(execute::execute(planned, &ctx));
        summary.wall_s = started.elapsed().as_secs_f64();
        summary.tally(args.fail_on);
        // Written after every run, so an interrupted campaign still says what it did.
        summary.write(&summary_dir, args.junit.as_deref(), args.fail_on)?;
    }
    if runs.is_empty() {
        summary.tally(args.fail_on);
        summary.write(&summary_dir, args.junit.as_deref(), args.fail_on)?;
    }
    if brought_up {
        if let Err(err) = local_cluster::down(args.local.local_cluster_id) {
            eprintln!("faultline campaign: local cluster down failed: {err:#}");
        }
    }
    finish(&summary, &summary_dir, &args.results_dir, &campaign_dir);
    Ok(summary.exit_code)
}

/// Prints the tables and where the summary is, and refreshes the history page and the
/// results index (a failure there does not change the campaign's verdict).
fn finish(summary: &CampaignSummary, summary_dir: &Path, results_dir: &Path, campaign_dir: &Path) {
    println!("{}", summary::tables(summary));
    println!(
        "campaign {}: {} of {} runs as expected; exit code {}; summary {}",
        summary.title(),
        summary.passed,
        summary.total,
        summary.exit_code,
        summary_dir.join(summary::SUMMARY_HTML).display()
    );
    if let Err(err) = trends::write_history_page(campaign_dir, &summary.campaign) {
        eprintln!("faultline campaign: cannot write the history page: {err:#}");
    }
    let _ = faultline_report::update_index(results_dir);
}
