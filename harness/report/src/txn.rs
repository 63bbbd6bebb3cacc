//! The transactional checker's part of report.html: for each anomaly its witness cycle
//! drawn inline (SVG, nothing external), the transactions as a table, and each edge with
//! the sentence that proves it; the txns are highlighted on the timeline.

use crate::escape::html;
use faultline_checker::results::CheckerResult;
use faultline_checker::txn::TxnAnomaly;
use faultline_checker::RunResults;
use std::fmt::Write;

/// Anomalies drawn; beyond this they are only counted (the checker explains up to eight
/// of each class).
const DRAWN_MAX: usize = 24;

fn anomalies(results: Option<&RunResults>) -> impl Iterator<Item = &TxnAnomaly> {
    results
        .into_iter()
        .flat_map(|r| &r.checkers)
        .filter_map(|c| match c {
            CheckerResult::Txn(t) => Some(&t.anomalies),
            _ => None,
        })
        .flatten()
}

/// Invoke indexes of the txns in anomalies (to highlight them on the timeline).
pub fn highlights(results: Option<&RunResults>) -> Vec<u64> {
    anomalies(results)
        .flat_map(|a| &a.txns)
        .map(|t| t.invoke_index)
        .collect()
}

/// The witness cycle as an SVG: txns on a circle, one labelled arrow per edge.
fn cycle_svg(a: &TxnAnomaly) -> String {
    let n = a.txns.len().max(1);
    let (w, h, r) = (360.0f64, 260.0f64, 90.0f64);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let at = |i: usize| {
        let t = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        (cx + r * t.cos(), cy + r * t.sin())
    };
    let mut s = format!(
        "<svg class=\"cycle\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{} cycle\">\
         <defs><marker id=\"arr\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>",
        html(&a.kind)
    );
    for (i, step) in a.steps.iter().enumerate() {
        let (x1, y1) = at(i);
        let (x2, y2) = at((i + 1) % n);
        // Bend each arrow outward so that two-txn cycles show both directions.
        let (mx, my) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        let (dx, dy) = (mx - cx, my - cy);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let bend = if n == 2 { 60.0 } else { 28.0 };
        let (qx, qy) = if n == 2 {
            let sign = if i == 0 { 1.0 } else { -1.0 };
            (mx + sign * bend, my)
        } else {
            (mx + dx / len * bend, my + dy / len * bend)
        };
        // Stop short of the target node's circle.
        let (ex, ey) = (x2 - qx, y2 - qy);
        let el = (ex * ex + ey * ey).sqrt().max(1.0);
        let (tx, ty) = (x2 - ex / el * 22.0, y2 - ey / el * 22.0);
        let class = match step.rel.as_str() {
            "rw" => "rw",
            "wr" => "wr",
            "ww" => "ww",
            _ => "order",
        };
        let _ = write!(
            s,
            "<path class=\"edge {class}\" d=\"M{x1:.1},{y1:.1} Q{qx:.1},{qy:.1} {tx:.1},{ty:.1}\" fill=\"none\" stroke-width=\"2\" marker-end=\"url(#arr)\"><title>{}</title></path>\
             <text x=\"{qx:.1}\" y=\"{qy:.1}\" text-anchor=\"middle\" class=\"rel\">{}{}</text>",
            html(&step.explanation),
            html(&step.rel),
            step.key
                .as_ref()
                .map(|k| format!(" {}", html(&k.to_string())))
                .unwrap_or_default()
        );
    }
    for (i, t) in a.txns.iter().enumerate() {
        let (x, y) = at(i);
        let _ = write!(
            s,
            "<g class=\"txn\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"20\" fill=\"#fff\" stroke=\"#333\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">T{}</text></g>",
            y + 4.0,
            t.id
        );
    }
    s.push_str("</svg>");
    s
}

/// The section; nothing when no txn checker found anything.
pub fn section(out: &mut String, results: Option<&RunResults>) {
    let all: Vec<&TxnAnomaly> = anomalies(results).collect();
    if all.is_empty() {
        return;
    }
    out.push_str("<section id=\"txn\"><h2>Transactional anomalies</h2>\
        <style>svg.cycle .edge{stroke:#555}svg.cycle .edge.rw{stroke:#b3261e}svg.cycle .edge.wr{stroke:#1f6feb}svg.cycle .edge.order{stroke:#888;stroke-dasharray:4 3}svg.cycle text.rel{font-size:11px;fill:#333}</style>\
        <p class=\"hint\">Arrows: ww (a later append or write), wr (read what the other wrote), rw (read a version the other overwrote), process / real-time order (dashed). Hover an arrow for its sentence; the transactions are highlighted on the <a href=\"#timeline\">timeline</a>.</p>");
    for a in all.iter().take(DRAWN_MAX) {
        let _ = write!(
            out,
            "<div class=\"explain{}\"><h3>{}</h3>",
            if a.forbidden { "" } else { " unknown" },
            html(&a.heading())
        );
        if !a.steps.is_empty() {
            out.push_str(&cycle_svg(a));
        }
        out.push_str("<table class=\"grid\"><thead><tr><th>txn</th><th>process</th><th>outcome</th><th>micro-ops</th><th>events</th></tr></thead><tbody>");
        for t in &a.txns {
            let _ = write!(
                out,
                "<tr><td>T{}</td><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td><td><a href=\"#timeline\" title=\"highlighted on the timeline\">{}</a></td></tr>",
                t.id,
                t.process,
                t.outcome_name(),
                html(&t.value.to_string()),
                html(&t.events())
            );
        }
        out.push_str("</tbody></table>");
        if a.steps.is_empty() {
            let _ = write!(out, "<p class=\"explanation\">{}</p>", html(&a.explanation));
        } else {
            out.push_str("<ol class=\"steps\">");
            for s in &a.steps {
                let _ = write!(out, "<li>{}</li>", html(&s.sentence()));
            }
            out.push_str("</ol>");
        }
        out.push_str("</div>");
    }
    if all.len() > DRAWN_MAX {
        let _ = write!(
            out,
            "<p>… and {} more anomalies in results.json.</p>",
            all.len() - DRAWN_MAX
        );
    }
    out.push_str("</section>\n");
}
