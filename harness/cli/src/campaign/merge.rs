//! `faultline campaign merge DIR...`: the shards' summaries (CI artifacts, wherever they were
//! unpacked) combined into the one summary the campaign would have written on one machine,
//! refusing shards of another campaign file, seed or faultline version.

use super::file::slug;
use super::rates::FailOn;
use super::summary::{CampaignSummary, SUMMARY_JSON};
use anyhow::{bail, Context};
use clap::Args;
use faultline_report::index::CAMPAIGNS_DIR;
use faultline_report::run::REPORT_HTML;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct MergeArgs {
    /// Folders holding shard summaries (searched below for summary.json: a results folder,
    /// a summary folder, or a folder of unpacked CI artifacts).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged summary goes (`<DIR>/campaigns/<name>/<start>-merged/`).
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results_dir: PathBuf,
    /// Also write the merged JUnit report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// What fails the campaign (as for a run); default: what the shards were run with.
    #[arg(long)]
    pub fail_on: Option<FailOn>,
}

/// Folders below a shard search root are at most this deep (artifact/results/campaigns/
/// name/stamp is 5): a deeper tree is not a set of artifacts.
const SEARCH_DEPTH_MAX: usize = 8;

/// Every summary.json below `dir`, not following symlinks (run folders' `latest`).
pub(super) fn find_summaries(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let direct = dir.join(SUMMARY_JSON);
    if direct.is_file() {
        out.push(direct);
        return Ok(());
    }
    if depth >= SEARCH_DEPTH_MAX {
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        find_summaries(&entry.path(), depth + 1, out)?;
    }
    Ok(())
}

/// A shard's summary and where it was found.
struct Found {
    dir: PathBuf,
    summary: CampaignSummary,
}

impl Found {
    fn label(&self) -> String {
        match self.summary.shard {
            Some(s) => format!("shard {s} ({})", self.dir.display()),
            None => self.dir.display().to_string(),
        }
    }
}

/// The shards, checked to be of one campaign run: the same file (by content), seed,
/// faultline version and shard count, each shard once.
fn check_shards(found: &[Found]) -> anyhow::Result<()> {
    let first = &found[0];
    let a = &first.summary;
    for f in &found[1..] {
        let b = &f.summary;
        let differ = |what: &str, x: &str, y: &str| {
            anyhow::anyhow!(
                "refusing to merge: {} and {} are of different {what}: {x} and {y}",
                first.label(),
                f.label()
            )
        };
        if a.campaign != b.campaign {
            return Err(differ("campaigns", &a.campaign, &b.campaign));
        }
        if a.file_sha256 != b.file_sha256 {
            return Err(differ(
                "campaign files (their contents differ)",
                &format!("{} (sha256 {})", a.file, short(&a.file_sha256)),
                &format!("{} (sha256 {})", b.file, short(&b.file_sha256)),
            ));
        }
        if a.faultline_version != b.faultline_version {
            return Err(differ(
                "faultline versions",
                &a.faultline_version,
                &b.faultline_version,
            ));
        }
        if a.seed != b.seed {
            let text = |s: Option<u64>| s.map_or("none".into(), |s| s.to_string());
            return Err(differ("seeds", &text(a.seed), &text(b.seed)));
        }
        let count = |s: &CampaignSummary| s.shard.map_or(0, |s| s.count);
        if count(a) != count(b) {
            return Err(differ(
                "splits (shard counts)",
                &count(a).to_string(),
                &count(b).to_string(),
            ));
        }
    }
    let mut seen: BTreeMap<u32, &Found> = BTreeMap::new();
    for f in found {
        let index = f.summary.shard.map_or(0, |s| s.index);
        if let Some(other) = seen.insert(index, f) {
            bail!(
                "refusing to merge: shard {index} was given twice: {} and {}",
                other.dir.display(),
                f.dir.display()
            );
        }
    }
    Ok(())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Points each run's report at where its shard's results folder now is (an unpacked
/// artifact), when the run folder came along.
fn relocate(found: &mut Found) {
    // <results>/campaigns/<name>/<folder>/summary.json
    let Some(root) = found.dir.ancestors().nth(3).map(Path::to_path_buf) else {
        return;
    };
    for run in &mut found.summary.runs {
        let Some(rel) = &run.run_path else {
            continue;
        };
        let dir = root.join(rel);
        if dir.is_dir() {
            let report = dir.join(REPORT_HTML);
            if report.is_file() {
                run.report = Some(report);
            }
            run.run_dir = Some(dir);
        }
    }
}

pub fn run(args: MergeArgs) -> anyhow::Result<u8> {
    let mut paths = Vec::new();
    for dir in &args.dirs {
        find_summaries(dir, 0, &mut paths)?;
    }
    let mut found = Vec::new();
    for path in paths {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let summary = CampaignSummary::load(&dir)?;
        if summary.shard.is_none() {
            eprintln!(
                "faultline campaign merge: skipping {} (not a shard: a whole or merged campaign)",
                dir.display()
            );
            continue;
        }
        found.push(Found { dir, summary });
    }
    if found.is_empty() {
        bail!(
            "no shard summaries (summary.json of `faultline campaign --shard I/N`) under {}",
            args.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    found.sort_by_key(|f| f.summary.shard.map_or(0, |s| s.index));
    check_shards(&found)?;
    for f in &mut found {
        relocate(f);
    }
    let first = &found[0].summary;
    let count = first.shard.map_or(1, |s| s.count);
    let fail_on = match args.fail_on {
        Some(f) => f,
        None => first.fail_on.parse().unwrap_or_default(),
    };
    let present: Vec<u32> = found
        .iter()
        .filter_map(|f| f.summary.shard.map(|s| s.index))
        .collect();
    let started = found
        .iter()
        .map(|f| f.summary.started.clone())
        .min()
        .unwrap_or_default();
    let mut merged = CampaignSummary {
        campaign: first.campaign.clone(),
        file: first.file.clone(),
        file_sha256: first.file_sha256.clone(),
        faultline_version: first.faultline_version.clone(),
        seed: first.seed,
        shard: None,
        merged_shards: Some(count),
        missing_shards: (1..=count).filter(|i| !present.contains(i)).collect(),
        fail_on: String::new(),
        started: started.clone(),
        wall_s: found.iter().map(|f| f.summary.wall_s).fold(0.0, f64::max),
        planned: found
            .iter()
            .flat_map(|f| f.summary.planned.iter().cloned())
            .collect(),
        runs: found
            .iter()
            .flat_map(|f| f.summary.runs.iter().cloned())
            .collect(),
        rows: Vec::new(),
        passed: 0,
        total: 0,
        exit_code: 0,
    };
    merged.tally(fail_on);
    let campaign_dir = args
        .results_dir
        .join(CAMPAIGNS_DIR)
        .join(slug(&merged.campaign));
    let summary_dir = campaign_dir.join(format!("{started}-merged"));
    std::fs::create_dir_all(&summary_dir)
        .with_context(|| format!("cannot create {}", summary_dir.display()))?;
    merged.write(&summary_dir, args.junit.as_deref(), fail_on)?;
    if !merged.missing_shards.is_empty() {
        eprintln!(
            "faultline campaign merge: shards {:?} of {count} were not found; the campaign is incomplete (exit 3)",
            merged.missing_shards
        );
    }
    super::finish(&merged, &summary_dir, &args.results_dir, &campaign_dir);
    Ok(merged.exit_code)
}
