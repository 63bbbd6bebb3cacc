//! `results/index.html` (every run newest first, coloured by verdict, and links to each
//! campaign), and the one page shell every verdict table of faultline is drawn in.

use crate::escape::{html, url_path};
use crate::model::Verdict;
use crate::run::{RunSummary, HISTORY_JSONL, RESULTS_JSON, TEST_JSON};
use anyhow::Context;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The content security policy of every page faultline writes: nothing may be fetched.
pub const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// Characters of the explanation shown in a row; the whole text is in its tooltip.
const WHY_CHARS_MAX: usize = 160;

/// One row of the index: a run folder, or why it could not be read.
#[derive(Debug)]
pub struct IndexEntry {
    pub test_dir: String,
    pub run_id: String,
    pub summary: Result<RunSummary, String>,
}

fn is_run_dir(p: &Path) -> bool {
    [TEST_JSON, HISTORY_JSONL, RESULTS_JSON]
        .iter()
        .any(|f| p.join(f).exists())
}

fn visible_dirs(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // `latest` is a symlink to a run already listed.
        if name.starts_with('.') || entry.file_type()?.is_symlink() || !entry.path().is_dir() {
            continue;
        }
        out.push((name, entry.path()));
    }
    Ok(out)
}

/// Every run folder under a results root, newest first.
pub fn scan_runs(results_root: &Path) -> anyhow::Result<Vec<IndexEntry>> {
    let mut runs = Vec::new();
    for (test_dir, path) in visible_dirs(results_root)? {
        for (run_id, run_path) in visible_dirs(&path)? {
            if !is_run_dir(&run_path) {
                continue;
            }
            runs.push(IndexEntry {
                test_dir: test_dir.clone(),
                run_id,
                summary: RunSummary::load(&run_path).map_err(|e| format!("{e:#}")),
            });
        }
    }
    runs.sort_by(|a, b| (&b.run_id, &b.test_dir).cmp(&(&a.run_id, &a.test_dir)));
    Ok(runs)
}

fn duration_text(s: f64) -> String {
    if s >= 60.0 {
        format!("{}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.1}s")
    }
}

/// The index page for a set of runs.
pub fn render_index(runs: &[IndexEntry], campaigns: &[CampaignLink]) -> String {
    let mut rows = String::new();
    let mut counts = [0usize; 4];
    for r in runs {
        let link = url_path(&[&r.test_dir, &r.run_id, "report.html"]);
        let folder = url_path(&[&r.test_dir, &r.run_id]) + "/";
        match &r.summary {
            Ok(s) => {
                counts[s.verdict as usize] += 1;
                let target = if s.report.is_some() { &link } else { &folder };
                let why = crate::faults::short_value(
                    &serde_json::Value::String(s.explanation.lines().next().unwrap_or("").into()),
                    WHY_CHARS_MAX,
                );
                let _ = writeln!(
                    rows,
                    "<tr class=\"{v}\"><td><a href=\"{target}\">{run}</a></td><td><span class=\"badge {v}\">{v}</span></td><td>{name}</td><td>{db}</td>\
                     <td>{wl}</td><td>{faults}</td><td class=\"num\">{dur}</td><td class=\"num\">{ops}</td>\
                     <td class=\"num\">{ok}</td><td class=\"num\">{fail}</td><td class=\"num\">{info}</td>\
                     <td class=\"why\" title=\"{whyfull}\">{why}</td></tr>",
                    v = s.verdict.as_str(),
                    target = html(target),
                    run = html(&r.run_id),
                    name = html(&s.test_name),
                    db = html(&s.db),
                    wl = html(&s.workload),
                    faults = html(&s.nemesis.join(", ")),
                    dur = duration_text(s.duration_s),
                    ops = s.ops,
                    ok = s.ok,
                    fail = s.fail,
                    info = s.info,
                    whyfull = html(&s.explanation),
                    why = html(&why),
                );
            }
            Err(e) => {
                counts[Verdict::Crashed as usize] += 1;
                let _ = writeln!(
                    rows,
                    "<tr class=\"crashed\"><td><a href=\"{folder}\">{run}</a></td><td><span class=\"badge crashed\">unreadable</span></td>\
                     <td>{name}</td><td colspan=\"8\"></td>\
                     <td class=\"why\">{e}</td></tr>",
                    folder = html(&folder),
                    run = html(&r.run_id),
                    name = html(&r.test_dir),
                    e = html(e),
                );
            }
        }
    }
    if runs.is_empty() {
        rows.push_str("<tr><td colspan=\"12\">No runs yet.</td></tr>\n");
    }
    let mut intro = format!(
        "<div class=\"tally\"><span>{total} runs</span><span class=\"badge valid\">{valid} valid</span> <span class=\"badge invalid\">{invalid} invalid</span> <span class=\"badge unknown\">{unknown} unknown</span> <span class=\"badge crashed\">{crashed} crashed</span></div>\n",
        total = runs.len(),
        valid = counts[Verdict::Valid as usize],
        invalid = counts[Verdict::Invalid as usize],
        unknown = counts[Verdict::Unknown as usize],
        crashed = counts[Verdict::Crashed as usize],
    );
    if !campaigns.is_empty() {
        intro.push_str("<h2>Campaigns</h2>\n<ul class=\"campaigns\">\n");
        for c in campaigns {
            let _ = write!(intro, "<li><b>{}</b>", html(&c.name));
            if c.has_history {
                let href = url_path(&[CAMPAIGNS_DIR, &c.dir, HISTORY_HTML]);
                let _ = write!(
                    intro,
                    " — <a href=\"{}\">night after night</a>",
                    html(&href)
                );
            }
            if let Some(latest) = &c.latest_summary {
                let href = url_path(&[CAMPAIGNS_DIR, &c.dir, latest, "summary.html"]);
                let _ = write!(
                    intro,
                    " — <a href=\"{}\">latest summary ({})</a>",
                    html(&href),
                    html(latest)
                );
            }
            intro.push_str("</li>\n");
        }
        intro.push_str("</ul>\n<h2>Runs</h2>\n");
    }
    verdict_page(
        "faultline results",
        &intro,
        &[
            "run", "verdict", "test", "db", "workload", "faults", "duration", "ops", "ok", "fail",
            "info", "why",
        ],
        &rows,
        "",
    )
}

/// The folder under a results root where campaign summaries go.
pub const CAMPAIGNS_DIR: &str = "campaigns";
/// A campaign's night-after-night page, in its folder under [`CAMPAIGNS_DIR`].
pub const HISTORY_HTML: &str = "history.html";

/// A campaign found under `results/campaigns/`, for the index's links.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignLink {
    pub name: String,
    /// Its folder name under `campaigns/`.
    pub dir: String,
    pub has_history: bool,
    /// The newest summary folder's name.
    pub latest_summary: Option<String>,
}

/// The campaigns under a results root, by name.
pub fn scan_campaigns(results_root: &Path) -> anyhow::Result<Vec<CampaignLink>> {
    let mut out = Vec::new();
    for (dir, path) in visible_dirs(&results_root.join(CAMPAIGNS_DIR))? {
        let latest_summary = visible_dirs(&path)?
            .into_iter()
            .filter(|(_, p)| p.join("summary.html").is_file())
            .map(|(name, _)| name)
            .max();
        out.push(CampaignLink {
            name: dir.clone(),
            has_history: path.join(HISTORY_HTML).is_file(),
            dir,
            latest_summary,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The one page shell for verdict tables (the results index, a campaign's summary and its
/// night-after-night page): the content security policy, the styles of verdict rows and
/// badges, a title, an introduction and one table. `intro` and `rows` are HTML the caller
/// escaped; `extra_css` is the caller's own.
pub fn verdict_page(
    title: &str,
    intro: &str,
    columns: &[&str],
    rows: &str,
    extra_css: &str,
) -> String {
    let head: String = columns
        .iter()
        .map(|c| format!("<th>{}</th>", html(c)))
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 17px; margin: 18px 0 4px; }}
.tally span {{ margin-right: 14px; }}
table {{ border-collapse: collapse; width: 100%; margin-top: 14px; }}
th, td {{ padding: 4px 8px; border-bottom: 1px solid #e4e4e4; text-align: left; white-space: nowrap; vertical-align: top; }}
th {{ background: #f4f4f4; position: sticky; top: 0; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.why {{ white-space: normal; min-width: 24em; color: #444; font-size: 12px; }}
tr.valid {{ background: #eef9ef; }} tr.invalid {{ background: #fdecea; }}
tr.unknown {{ background: #fff6e0; }} tr.crashed {{ background: #eeeeee; }}
.badge {{ padding: 1px 8px; border-radius: 9px; color: #fff; font-weight: 600; }}
.badge.valid {{ background: #2e8b57; }} .badge.invalid {{ background: #c62828; }}
.badge.unknown {{ background: #d08a00; }} .badge.crashed {{ background: #666; }}
{extra_css}
</style></head><body>
<h1>{title}</h1>
{intro}<table>
<thead><tr>{head}</tr></thead>
<tbody>
{rows}</tbody></table>
</body></html>
"#,
        title = html(title),
    )
}

/// Rewrites `results_root/index.html` from every run folder beneath it; returns its path.
pub fn update_index(results_root: &Path) -> anyhow::Result<PathBuf> {
    let runs = scan_runs(results_root)?;
    let campaigns = scan_campaigns(results_root)?;
    let path = results_root.join("index.html");
    let tmp = results_root.join(".index.html.tmp");
    std::fs::write(&tmp, render_index(&runs, &campaigns))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    #[test]
    fn lists_every_run_newest_first_with_its_verdict() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let valid = synth::register_run(&synth::RegisterSpec {
            seed: 1,
            ops: 100,
            ..Default::default()
        });
        let invalid = synth::register_run(&synth::RegisterSpec {
            seed: 2,
            ops: 200,
            bug: true,
            ..Default::default()
        });
        let xss = synth::register_run(&synth::RegisterSpec {
            seed: 3,
            ops: 50,
            payload: Some("<script>window.__xss=1</script>".into()),
            ..Default::default()
        });
        synth::write_run(&r.join("a/20261126T070000Z"), &valid).unwrap();
        synth::write_run(&r.join("a/20261126T080000Z"), &invalid).unwrap();
        synth::write_run(&r.join("b/20261126T073000Z"), &xss).unwrap();
        // A run that crashed before checking: test.json only.
        std::fs::create_dir_all(r.join("c/20261126T090000Z")).unwrap();
        std::fs::write(r.join("c/20261126T090000Z/test.json"), r#"{"name":"c"}"#).unwrap();
        // A corrupt one is listed, not fatal.
        std::fs::create_dir_all(r.join("d/20261126T060000Z")).unwrap();
        std::fs::write(r.join("d/20261126T060000Z/results.json"), "{").unwrap();
        crate::run::link_latest(&r.join("a/20261126T080000Z")).unwrap();
        let path = update_index(r).unwrap();
        let page = std::fs::read_to_string(path).unwrap();
        let order: Vec<usize> = [
            "20261126T090000Z",
            "20261126T080000Z",
            "20261126T073000Z",
            "20261126T070000Z",
            "20261126T060000Z",
        ]
        .iter()
        .map(|id| {
            page.find(&format!(">{id}<"))
                .unwrap_or_else(|| panic!("{id} missing"))
        })
        .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "not newest first: {order:?}"
        );
        assert_eq!(
            page.matches("<tr class=").count(),
            5,
            "latest must not be listed twice"
        );
        assert!(page.contains(
            "<tr class=\"invalid\"><td><a href=\"a/20261126T080000Z/\">20261126T080000Z</a></td><td><span class=\"badge invalid\">"
        ));
        assert!(page.contains(
            "<tr class=\"crashed\"><td><a href=\"c/20261126T090000Z/\">20261126T090000Z</a></td><td><span class=\"badge crashed\">"
        ));
        assert!(page.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("cannot be linearized"));
        assert!(page.contains(">partition, kill, clock, pause<"));
    }

    #[test]
    fn campaigns_are_linked_with_their_history_and_latest_summary() {
        let root = tempfile::tempdir().unwrap();
        let c = root.path().join("campaigns/bugs");
        for night in ["20261201T020000Z-merged", "20261202T020000Z-merged"] {
            std::fs::create_dir_all(c.join(night)).unwrap();
            std::fs::write(c.join(night).join("summary.html"), "x").unwrap();
        }
        // A shard still running has no summary page yet: not the latest.
        std::fs::create_dir_all(c.join("20261203T020000Z-shard-1-of-3")).unwrap();
        std::fs::write(c.join(HISTORY_HTML), "x").unwrap();
        std::fs::create_dir_all(root.path().join("campaigns/<odd>")).unwrap();
        let page = std::fs::read_to_string(update_index(root.path()).unwrap()).unwrap();
        assert!(page.contains("<a href=\"campaigns/bugs/history.html\">night after night</a>"));
        assert!(page.contains("campaigns/bugs/20261202T020000Z-merged/summary.html"));
        assert!(!page.contains("20261203T020000Z-shard"));
        assert!(page.contains("<b>&lt;odd&gt;</b>"), "names are escaped");
        assert!(page.contains("No runs yet."));
    }
}
