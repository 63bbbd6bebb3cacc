//! Night after night: a campaign's whole (unsharded or merged) summaries side by side per
//! row — rate, interval, median time to the first violation, duration — with a small plot
//! per row, on the terminal and as `campaigns/<name>/history.html`, which `faultline serve`
//! links from the results index.

use super::file::{slug, Expect};
use super::merge::find_summaries;
use super::rates::RowStats;
use super::summary::{CampaignSummary, SUMMARY_HTML};
use anyhow::{bail, Context};
use clap::Args;
use faultline_report::escape::{html, url_path};
use faultline_report::index::{verdict_page, CAMPAIGNS_DIR, HISTORY_HTML};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct HistoryArgs {
    /// Results folders (or campaign folders below them) holding campaign summaries.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Only this campaign (default: every campaign found).
    #[arg(long)]
    pub campaign: Option<String>,
    /// How many of the newest nights to show.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub nights: u32,
    /// Write the page here too (it is always written as campaigns/<name>/history.html
    /// into the first results folder that holds the campaign).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// One night: a whole campaign's summary and the folder it is in.
pub struct Night {
    pub dir: PathBuf,
    pub summary: CampaignSummary,
}

/// The whole-campaign summaries below some folders, by campaign, oldest first. Shard
/// summaries are left out: a night is its merge.
pub fn nights(dirs: &[PathBuf]) -> anyhow::Result<BTreeMap<String, Vec<Night>>> {
    let mut paths = Vec::new();
    for dir in dirs {
        find_summaries(dir, 0, &mut paths)?;
    }
    let mut out: BTreeMap<String, Vec<Night>> = BTreeMap::new();
    for path in paths {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // A summary from before rates were recorded, or not a campaign's: skipped, so one
        // odd folder does not hide every night.
        let Ok(mut summary) = CampaignSummary::load(&dir) else {
            eprintln!(
                "faultline campaign history: skipping {} (not readable as a campaign summary)",
                dir.display()
            );
            continue;
        };
        if summary.shard.is_some() {
            continue;
        }
        if summary.rows.is_empty() {
            let fail_on = summary.fail_on.parse().unwrap_or_default();
            summary.tally(fail_on);
        }
        out.entry(summary.campaign.clone())
            .or_default()
            .push(Night { dir, summary });
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| a.summary.started.cmp(&b.summary.started));
        list.dedup_by(|a, b| a.dir == b.dir);
    }
    Ok(out)
}

/// Every row name over the nights, in the newest night's order, then older rows.
fn row_names(nights: &[Night]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in nights.iter().rev() {
        for r in &n.summary.rows {
            if !names.contains(&r.row) {
                names.push(r.row.clone());
            }
        }
    }
    names
}

fn row<'a>(night: &'a Night, name: &str) -> Option<&'a RowStats> {
    night.summary.rows.iter().find(|r| r.row == name)
}

/// `20261201T234012Z` as `12-01 23:40`.
fn night_label(started: &str) -> String {
    let b = started.as_bytes();
    if b.len() >= 13 && b[8] == b'T' {
        format!(
            "{}-{} {}:{}",
            &started[4..6],
            &started[6..8],
            &started[9..11],
            &started[11..13]
        )
    } else {
        started.to_string()
    }
}

/// A row is as expected on a night when every run that finished got what it expects and
/// none crashed.
fn clean(r: &RowStats) -> bool {
    r.decided > 0 && r.hits == r.decided && r.crashed == 0
}

/// The terminal view: one table per campaign, a column per night, and a bar per row.
fn text(name: &str, nights: &[Night]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let mut builder = tabled::builder::Builder::default();
    let mut header = vec!["row".to_string(), "trend".to_string()];
    header.extend(nights.iter().map(|n| night_label(&n.summary.started)));
    builder.push_record(header);
    for name in row_names(nights) {
        let mut trend = String::new();
        let mut cells = Vec::new();
        for n in nights {
            match row(n, &name) {
                Some(r) => {
                    let rate = r.rate.unwrap_or(0.0);
                    trend.push(BARS[((rate * 7.0).round() as usize).min(7)]);
                    let mut cell = r.rate_text().replace(" = ", " ").replace(" [", "\n[");
                    if !clean(r) {
                        cell.push_str(" ✗");
                    }
                    if r.expect == Expect::Invalid {
                        if let Some(t) = r.median_first_violation_s {
                            let _ = write!(cell, "\n1st violation {t:.1} s");
                        }
                    }
                    if let Some(d) = r.median_duration_s {
                        let _ = write!(cell, "\n{d:.0} s/run");
                    }
                    cells.push(cell);
                }
                None => {
                    trend.push(' ');
                    cells.push("—".into());
                }
            }
        }
        let mut record = vec![name, trend];
        record.extend(cells);
        builder.push_record(record);
    }
    format!(
        "campaign {name}: {} night(s)\n{}",
        nights.len(),
        builder.build().with(tabled::settings::Style::sharp())
    )
}

/// A row's rates over the nights as a small SVG: a dot per night, its 95% interval as a
/// whisker, red when the night was not clean.
fn plot(nights: &[Night], name: &str) -> String {
    const W: f64 = 180.0;
    const H: f64 = 44.0;
    const PAD: f64 = 5.0;
    let n = nights.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            W / 2.0
        } else {
            PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64
        }
    };
    let y = |rate: f64| PAD + (H - 2.0 * PAD) * (1.0 - rate.clamp(0.0, 1.0));
    let mut svg = format!(
        "<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{} over {} night(s)</title>\
         <line x1=\"0\" y1=\"{top}\" x2=\"{W}\" y2=\"{top}\" stroke=\"#ddd\"/><line x1=\"0\" y1=\"{bottom}\" x2=\"{W}\" y2=\"{bottom}\" stroke=\"#ddd\"/>",
        html(name),
        nights.len(),
        top = y(1.0),
        bottom = y(0.0),
    );
    let mut line = String::new();
    for (i, night) in nights.iter().enumerate() {
        let Some(r) = row(night, name) else { continue };
        let Some(rate) = r.rate else { continue };
        let colour = if clean(r) { "#2e8b57" } else { "#c62828" };
        if let (Some(lo), Some(hi)) = (r.rate_low, r.rate_high) {
            let _ = write!(
                svg,
                "<line x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-opacity=\"0.45\" stroke-width=\"3\"/>",
                y(hi),
                y(lo),
                cx = x(i)
            );
        }
        let _ = write!(line, "{:.1},{:.1} ", x(i), y(rate));
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}: {}</title></circle>",
            x(i),
            y(rate),
            html(&night_label(&night.summary.started)),
            html(&r.rate_text())
        );
    }
    if !line.is_empty() {
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#888\" stroke-width=\"1\"/>",
            line.trim_end()
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The history page of one campaign; links are relative to `page_dir`.
fn page(name: &str, nights: &[Night], page_dir: &Path) -> String {
    let mut rows = String::new();
    for row_name in row_names(nights) {
        let newest = nights.iter().rev().find_map(|n| row(n, &row_name));
        let cls = match newest {
            Some(r) if clean(r) => "valid",
            Some(_) => "invalid",
            None => "unknown",
        };
        let expect = newest.map_or("", |r| r.expect.as_str());
        let _ = write!(
            rows,
            "<tr class=\"{cls}\"><td>{}</td><td>{expect}</td><td>{}</td>",
            html(&row_name),
            plot(nights, &row_name)
        );
        for n in nights {
            match row(n, &row_name) {
                Some(r) => {
                    let mut cell = html(&r.rate_text());
                    if r.expect == Expect::Invalid {
                        if let Some(t) = r.median_first_violation_s {
                            let _ = write!(cell, "<br>1st violation {t:.1} s");
                        }
                    }
                    if let Some(d) = r.median_duration_s {
                        let _ = write!(cell, "<br>{d:.0} s/run");
                    }
                    let mark = if clean(r) { "ok" } else { "bad" };
                    let _ = write!(rows, "<td class=\"night {mark}\">{cell}</td>");
                }
                None => rows.push_str("<td class=\"night\">—</td>"),
            }
        }
        rows.push_str("</tr>\n");
    }
    let mut columns = vec!["row".to_string(), "expected".into(), "rate by night".into()];
    columns.extend(nights.iter().map(|n| night_label(&n.summary.started)));
    let mut links = String::new();
    for n in nights {
        let href = super::summary::relative_link(page_dir, &n.dir.join(SUMMARY_HTML));
        let what = match n.summary.merged_shards {
            Some(k) => format!("{k} shards merged"),
            None => "one machine".into(),
        };
        let _ = write!(
            links,
            "<li><a href=\"{}\">{}</a> — {what}, {} runs, exit code {}, {:.0} min</li>",
            html(&href),
            html(&n.summary.started),
            n.summary.total,
            n.summary.exit_code,
            n.summary.wall_s / 60.0
        );
    }
    let intro = format!(
        "<p>Each night's rate is runs that got what the row expects (a planted bug caught, a \
         control valid) over the runs that finished, with its 95% Wilson interval; red: not \
         every run as expected.</p>\n<ul>{links}</ul>\n"
    );
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    verdict_page(
        &format!("Campaign {name}, night after night"),
        &intro,
        &columns,
        &rows,
        "td.night { font-size: 12px; } td.night.ok { color: #1b5e20; } td.night.bad { color: #b71c1c; font-weight: 600; }",
    )
}

/// Rewrites `<campaign_dir>/history.html` from the summaries in it.
pub fn write_history_page(campaign_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let all = nights(&[campaign_dir.to_path_buf()])?;
    let list = all.get(name).map(Vec::as_slice).unwrap_or(&[]);
    let path = campaign_dir.join(HISTORY_HTML);
    std::fs::write(&path, page(name, list, campaign_dir))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub fn run(args: HistoryArgs) -> anyhow::Result<u8> {
    let all = nights(&args.dirs)?;
    let mut shown = 0;
    for (name, list) in &all {
        if args.campaign.as_ref().is_some_and(|c| c != name) {
            continue;
        }
        shown += 1;
        let skip = list.len().saturating_sub(args.nights as usize);
        let recent = &list[skip..];
        println!("{}", text(name, recent));
        if let Some(out) = &args.html {
            let dir = out.parent().unwrap_or(Path::new("."));
            std::fs::write(out, page(name, recent, dir))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("history page: {}", out.display());
        }
        // The page `serve` links, in the first results folder that holds the campaign.
        let home = args
            .dirs
            .iter()
            .map(|d| d.join(CAMPAIGNS_DIR).join(slug(name)))
            .find(|d| d.is_dir());
        if let Some(home) = home {
            let path = home.join(HISTORY_HTML);
            std::fs::write(&path, page(name, recent, &home))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "history page: {} (served at /{})",
                path.display(),
                url_path(&[CAMPAIGNS_DIR, &slug(name), HISTORY_HTML])
            );
        }
    }
    if shown == 0 {
        bail!(
            "no campaign summaries{} under {}",
            args.campaign
                .as_ref()
                .map_or(String::new(), |c| format!(" of {c:?}")),
            args.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(row: &str, expect: Expect, hits: u64, n: u64) -> RowStats {
        let (lo, hi) = super::super::rates::wilson_95(hits, n).unwrap();
        RowStats {
            row: row.into(),
            expect,
            detect_at_least: None,
            runs: n,
            valid: if expect == Expect::Valid {
                hits
            } else {
                n - hits
            },
            invalid: if expect == Expect::Invalid {
                hits
            } else {
                n - hits
            },
            unknown: 0,
            crashed: 0,
            hits,
            decided: n,
            rate: Some(hits as f64 / n as f64),
            rate_low: Some(lo),
            rate_high: Some(hi),
            median_first_violation_s: (expect == Expect::Invalid).then_some(4.5),
            median_duration_s: Some(44.0),
        }
    }

    fn night(started: &str, rows: Vec<RowStats>) -> Night {
        Night {
            dir: PathBuf::from(format!("/nonexistent/{started}")),
            summary: CampaignSummary {
                campaign: "bugs".into(),
                file: "bugs.toml".into(),
                file_sha256: String::new(),
                faultline_version: "0.1.0".into(),
                seed: None,
                shard: None,
                merged_shards: Some(3),
                missing_shards: vec![],
                fail_on: "unknown".into(),
                started: started.into(),
                wall_s: 600.0,
                planned: vec![],
                runs: vec![],
                rows,
                passed: 0,
                total: 20,
                exit_code: 0,
            },
        }
    }

    #[test]
    fn a_regression_and_a_new_flake_show_night_by_night() {
        let nights = vec![
            night(
                "20261130T020000Z",
                vec![
                    stats("bugs-stale-read", Expect::Invalid, 10, 10),
                    stats("bugs-control", Expect::Valid, 10, 10),
                ],
            ),
            night(
                "20261201T020000Z",
                vec![
                    stats("bugs-stale-read", Expect::Invalid, 6, 10),
                    stats("bugs-control", Expect::Valid, 9, 10),
                    stats("bugs-new-row", Expect::Valid, 10, 10),
                ],
            ),
        ];
        let t = text("bugs", &nights);
        assert!(
            t.contains("11-30 02:00") && t.contains("12-01 02:00"),
            "{t}"
        );
        assert!(t.contains("6/10 0.60\n") || t.contains("6/10 0.60"), "{t}");
        assert!(t.contains("█▅"), "stale-read drops from 1.0 to 0.6: {t}");
        assert!(t.contains("✗"), "the flake is marked: {t}");
        let p = page("bugs", &nights, Path::new("/nonexistent"));
        assert_eq!(p.matches("<svg").count(), 3, "a plot per row");
        assert!(p.contains("6/10 = 0.60 [0.31, 0.83]"), "{p}");
        assert!(p.contains("td class=\"night bad\""));
        // The newest night's order; the new row has only one night.
        let first = p.find("bugs-stale-read").unwrap();
        let new = p.find("bugs-new-row").unwrap();
        assert!(first < new);
        assert!(p.contains("<td class=\"night\">—</td>"));
    }
}
