//! report.html: one self-contained page (inline CSS, JS and SVG, no fetches) showing the
//! verdict and why, every op on a zoomable timeline, latency and throughput with fault
//! periods, lock holders, the nemesis schedule, the configuration and the node logs.
//!
//! Everything from a history, a node or a config is escaped here; the history itself is
//! embedded as JSON in a `<script type="application/json">` element (with `<`, `>`, `&`
//! escaped) and the page's script renders it with `textContent` and canvas only.

use crate::escape::{html, json_for_script, url_path};
use crate::faults::{fault_periods, short_value, FaultPeriod};
use crate::index::CSP;
use crate::model::{key_text, Verdict};
use crate::run::{RunData, HISTORY_JSONL, LOG_FILE, NODES_DIR, RESULTS_JSON, TEST_JSON};
use crate::violations;
use faultline_checker::history::{
    pair_ops, Key, Op, OpType, Operation as Pair, Outcome, Paired, Process,
};
use faultline_checker::results::{
    CheckerResult, Counterexample, Hold, OpRef, RunResults, Violation, ViolationKind,
};
use faultline_checker::stats::{self, Stats};
use faultline_checker::verdict::Validity;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::path::Path;

const CSS: &str = include_str!("../assets/report.css");
const JS: &str = include_str!("../assets/report.js");

/// Ops of the same key drawn around a counterexample, for context.
const CONTEXT_OPS_MAX: usize = 24;
/// Entries of a partial linearization listed (its end is where the search got stuck).
const PARTIAL_SHOWN_MAX: usize = 12;
/// Files listed per node folder.
const NODE_FILES_MAX: usize = 200;

/// Milliseconds, for people.
pub fn fmt_ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn verdict_of(v: Validity) -> Verdict {
    Verdict::from(v)
}

fn badge(v: Verdict) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", v.as_str())
}

/// Renders the report of a loaded run.
pub fn render_report(run: &RunData) -> String {
    let ops = &run.history;
    let Paired {
        clients: pairs,
        nemesis,
        ..
    } = pair_ops(ops);
    let periods = fault_periods(ops, &nemesis, &run.test.nemesis_perf);
    let verdict = run.verdict();
    let end_ns = ops.last().map(|o| o.time).unwrap_or(0);
    let stats = stats::of(ops, &pairs);
    let highlights: HashSet<u64> = run
        .results
        .iter()
        .flat_map(|r| &r.checkers)
        .flat_map(|c| c.keys())
        .filter_map(|k| k.counterexample.as_ref())
        .flat_map(|cx| &cx.ops)
        .map(|o| o.invoke_index)
        .chain(
            run.results
                .iter()
                .flat_map(|r| &r.checkers)
                .flat_map(|c| c.locks())
                .flat_map(|l| &l.violations)
                .flat_map(|v| &v.holds)
                .map(|h| h.acquire_index),
        )
        .chain(crate::txn::highlights(run.results.as_ref()))
        .collect();
    let locks = lock_lanes(ops, &pairs, run.results.as_ref());

    let mut body = String::new();
    header(&mut body, run, verdict, end_ns, &stats);
    nav(&mut body, verdict, !locks.is_empty());
    // The violations come first, before any table: they are what the reader came for.
    let faults = violations::Faults::new(ops, &nemesis, &periods);
    violations::section(
        &mut body,
        run.results.as_ref(),
        ops,
        &faults,
        &|out, key, cx, bands| counterexample(out, run, &pairs, key, cx, bands),
        &|out, checker, key, holds, v| violation(out, checker, key, holds, v),
    );
    checkers_section(&mut body, run.results.as_ref());
    if verdict != Verdict::Valid {
        why_section(&mut body, run);
    }
    crate::txn::section(&mut body, run.results.as_ref());
    let _ = write!(
        body,
        "<section id=\"timeline\"><h2>Timeline</h2>\
         <div class=\"controls\"><label>key <select id=\"keysel\"><option value=\"-1\">all keys</option></select></label>\
         <button id=\"reset\" type=\"button\">reset zoom</button>\
         <span class=\"hint\">one lane per process · wheel: zoom · drag: pan · double-click: reset · hover an op for details</span></div>\
         <div class=\"legend\"><span class=\"sw ok\"></span>ok <span class=\"sw fail\"></span>fail <span class=\"sw info\"></span>info (unknown) <span class=\"sw pending\"></span>never completed <span class=\"sw hl\"></span>in a counterexample</div>\
         <div class=\"chart\"><canvas id=\"tl\"></canvas></div></section>\n\
         <section id=\"perf\"><h2>Latency</h2><div class=\"legend\" id=\"latlegend\"></div>\
         <div class=\"chart\"><canvas id=\"lat\"></canvas></div>\
         <h2>Throughput</h2><div class=\"legend\"><span class=\"ln ok\"></span>ok <span class=\"ln fail\"></span>fail <span class=\"ln info\"></span>info — completions per second</div>\
         <div class=\"chart\"><canvas id=\"thr\"></canvas></div>\
         <div class=\"legend\" id=\"faultlegend\"></div></section>\n"
    );
    if !locks.is_empty() {
        body.push_str(
            "<section id=\"locks\"><h2>Lock holders</h2>\
             <div class=\"legend\"><span class=\"sw ok\"></span>held (label: process and fencing token) \
             <span class=\"sw uncertain\"></span>maybe held (acquire unknown) \
             <span class=\"sw bad\"></span>in a violation</div>\
             <div class=\"chart\"><canvas id=\"lk\"></canvas></div></section>\n",
        );
    }
    stats_section(&mut body, &stats);
    nemesis_section(&mut body, ops, &nemesis, &periods);
    config_section(&mut body, &run.test_raw);
    files_section(&mut body, &run.dir);

    let data = embed_data(run, &pairs, &periods, &highlights, &locks, end_ns);
    let title = format!("{} — {}", run.test.name, verdict.as_str());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <script>window.__faultline={{violations:[],errors:[]}};\
         document.addEventListener('securitypolicyviolation',function(e){{window.__faultline.violations.push(String(e.blockedURI||e.violatedDirective));}});\
         window.addEventListener('error',function(e){{window.__faultline.errors.push(String(e.message));}});</script>\n\
         <style>{CSS}</style></head>\n<body>\n{body}\
         <div id=\"tip\" hidden></div>\n<pre id=\"selfcheck\" hidden></pre>\n\
         <script type=\"application/json\" id=\"data\">{data}</script>\n\
         <script>{JS}</script>\n</body></html>\n",
        title = html(&title),
    )
}

fn header(out: &mut String, run: &RunData, verdict: Verdict, end_ns: u64, stats: &Stats) {
    let t = &run.test;
    let headline = match verdict {
        Verdict::Valid => "VALID — no anomaly found",
        Verdict::Invalid => "INVALID — the checker found a violation",
        Verdict::Unknown => "UNKNOWN — the checker could not decide",
        Verdict::Crashed => "CRASHED — the run failed before a verdict",
    };
    let mut facts: Vec<(&str, String)> = vec![
        (
            "db",
            match run.test_raw.get("db_version").and_then(|v| v.as_str()) {
                Some(version) => format!("{} ({version})", t.db.clone().unwrap_or_default()),
                None => t.db.clone().unwrap_or_default(),
            },
        ),
        ("workload", t.workload.clone().unwrap_or_default()),
        ("faults", t.nemesis.join(", ")),
        ("seed", t.seed.map(|s| s.to_string()).unwrap_or_default()),
        ("started", t.start_time.clone().unwrap_or_default()),
        ("duration", format!("{:.1} s", end_ns as f64 / 1e9)),
        (
            "ops",
            format!(
                "{} (ok {}, fail {}, info {}, pending {})",
                stats.ops, stats.ok, stats.fail, stats.info, stats.pending
            ),
        ),
        ("faultline", t.faultline_version.clone().unwrap_or_default()),
    ];
    if let Some(bug) = t.bug.as_ref().filter(|b| !b.is_null()) {
        facts.insert(2, ("planted bug", short_value(bug, 80)));
    }
    if let Some(deployment) = deployment_fact(run) {
        facts.insert(1, ("deployment", deployment));
    }
    let _ = write!(
        out,
        "<header class=\"verdict {v}\"><div class=\"test\">{name}</div><div class=\"big\" id=\"verdict\">{headline}</div><dl>",
        v = verdict.as_str(),
        name = html(&t.name),
    );
    for (k, v) in facts.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(out, "<div><dt>{k}</dt><dd>{}</dd></div>", html(v));
    }
    out.push_str("</dl>");
    if let Some(err) = run.results.as_ref().and_then(|r| r.error.as_ref()) {
        let _ = write!(out, "<pre class=\"error\">{}</pre>", html(err));
    } else if run.results.is_none() {
        out.push_str("<p class=\"error\">No results.json: the run stopped before its history was checked.</p>");
    }
    if let Some(cmd) = &t.command {
        let _ = write!(
            out,
            "<div class=\"cmd\">reproduce: <code>{}</code></div>",
            html(cmd)
        );
    }
    out.push_str("</header>\n");
}

/// What ran, for a third-party system: test.json's `deployment` line, with the version the
/// server itself reported in the history's `deployment` op (docs/contracts.md).
fn deployment_fact(run: &RunData) -> Option<String> {
    let line = run.test_raw.get("deployment")?.as_str()?;
    let version = run
        .history
        .iter()
        .filter(|op| op.process == Process::Nemesis && op.f == "deployment")
        .find_map(|op| op.value.get("version")?.as_str());
    Some(match version {
        Some(v) => format!("{line} (version {v})"),
        None => line.to_owned(),
    })
}

fn nav(out: &mut String, verdict: Verdict, locks: bool) {
    out.push_str("<nav><a href=\"#checkers\">verdicts</a>");
    if verdict != Verdict::Valid {
        out.push_str("<a href=\"#why\">why</a>");
    }
    out.push_str(
        "<a href=\"#timeline\">timeline</a><a href=\"#perf\">latency &amp; throughput</a>",
    );
    if locks {
        out.push_str("<a href=\"#locks\">lock holders</a>");
    }
    out.push_str(
        "<a href=\"#ops\">operations</a><a href=\"#nemesis\">nemesis</a><a href=\"#config\">configuration</a><a href=\"#files\">files &amp; logs</a></nav>\n",
    );
}

fn checkers_section(out: &mut String, results: Option<&RunResults>) {
    out.push_str("<section id=\"checkers\"><h2>Verdict per checker</h2>");
    let Some(r) = results else {
        out.push_str("<p>Not checked.</p></section>\n");
        return;
    };
    out.push_str("<table class=\"grid\"><thead><tr><th>checker</th><th>model</th><th>key / lock</th><th>verdict</th><th>ops</th><th>time</th><th>note</th></tr></thead><tbody>");
    for c in &r.checkers {
        let (model, dur) = match c {
            CheckerResult::Linearizable(l) => (l.model.as_str(), Some(l.duration_ms)),
            CheckerResult::Mutex(m) => ("", Some(m.duration_ms)),
            CheckerResult::Set(s) => ("", Some(s.duration_ms)),
            CheckerResult::Txn(t) => (t.consistency_model.as_str(), Some(t.duration_ms)),
            CheckerResult::Other => ("", None),
        };
        let dur = dur.map(|d| format!("{d:.1} ms")).unwrap_or_default();
        let _ = write!(
            out,
            "<tr class=\"{v}\"><td><b>{name}</b></td><td>{model}</td><td>(all)</td><td>{badge}</td><td></td><td>{dur}</td><td>{note}</td></tr>",
            v = verdict_of(c.valid()).as_str(),
            name = html(c.name()),
            model = html(model),
            badge = badge(verdict_of(c.valid())),
            note = html(c.error().unwrap_or("")),
        );
        for k in c.keys() {
            let _ = write!(
                out,
                "<tr class=\"{v}\"><td></td><td></td><td>{key}</td><td>{badge}</td><td>{ops}</td><td>{dur:.1} ms</td><td>{note}</td></tr>",
                v = verdict_of(k.valid).as_str(),
                key = html(&key_text(&k.key)),
                badge = badge(verdict_of(k.valid)),
                ops = k.ops,
                dur = k.duration_ms,
                note = html(k.reason.as_deref().unwrap_or(if k.counterexample.is_some() {
                    "counterexample below"
                } else {
                    ""
                })),
            );
        }
        for l in c.locks() {
            let note = match l.violations.len() {
                0 => format!("{} holds", l.holds.len()),
                n => format!("{} holds, {n} violation(s) below", l.holds.len()),
            };
            let _ = write!(
                out,
                "<tr class=\"{v}\"><td></td><td></td><td>{key}</td><td>{badge}</td><td></td><td></td><td>{note}</td></tr>",
                v = verdict_of(l.valid).as_str(),
                key = html(&key_text(&l.key)),
                badge = badge(verdict_of(l.valid)),
                note = html(&note),
            );
        }
    }
    out.push_str("</tbody></table></section>\n");
}

/// One bar of a server-drawn SVG time chart.
struct Bar {
    row: String,
    start: u64,
    end: Option<u64>,
    label: String,
    class: &'static str,
    highlight: bool,
    title: String,
}

/// Rounds a span to a 1/2/5 step giving at most ~8 ticks.
fn tick_step(span: f64) -> f64 {
    let raw = span / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Bars on a time axis, one row per distinct `row`, with `bands` shaded (start, end, label).
fn svg_bars(bars: &[Bar], bands: &[(u64, u64, String)]) -> String {
    const W: f64 = 960.0;
    const LEFT: f64 = 90.0;
    const RIGHT: f64 = 20.0;
    const ROW_H: f64 = 38.0;
    const TOP: f64 = 22.0;
    let mut rows: Vec<&str> = Vec::new();
    for b in bars {
        if !rows.contains(&b.row.as_str()) {
            rows.push(&b.row);
        }
    }
    let t0 = bars.iter().map(|b| b.start).min().unwrap_or(0);
    let t1 = bars
        .iter()
        .map(|b| b.end.unwrap_or(b.start))
        .chain(bands.iter().map(|b| b.1))
        .max()
        .unwrap_or(t0);
    let pad = ((t1 - t0) as f64 * 0.06).max(1e5);
    let (lo, hi) = (t0 as f64 - pad, t1 as f64 + pad * 2.0);
    let x = |t: f64| LEFT + (t - lo) / (hi - lo) * (W - LEFT - RIGHT);
    let h = TOP + rows.len() as f64 * ROW_H + 30.0;
    let mut s = format!(
        "<svg class=\"cx\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {h}\" width=\"{W}\" height=\"{h}\" role=\"img\">"
    );
    for (a, b, label) in bands {
        let _ = write!(
            s,
            "<rect class=\"band\" x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\"/><text class=\"bandlabel\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x(*a as f64),
            (x(*b as f64) - x(*a as f64)).max(1.0),
            rows.len() as f64 * ROW_H,
            x(*a as f64) + 2.0,
            TOP - 6.0,
            html(label)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW_H;
        let _ = write!(
            s,
            "<line class=\"row\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"rowlabel\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            W - RIGHT,
            y + ROW_H - 4.0,
            y + ROW_H - 4.0,
            LEFT - 8.0,
            y + ROW_H - 12.0,
            html(r)
        );
    }
    for b in bars {
        let row = rows.iter().position(|r| *r == b.row).unwrap_or(0);
        let y = TOP + row as f64 * ROW_H;
        let (xa, xb) = (x(b.start as f64), x(b.end.map(|e| e as f64).unwrap_or(hi)));
        let open = if b.end.is_none() { " open" } else { "" };
        let hl = if b.highlight { " hl" } else { " ctx" };
        let _ = write!(
            s,
            "<g class=\"op {class}{hl}{open}\"><title>{title}</title><rect x=\"{xa:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" rx=\"2\"/><text x=\"{xa:.1}\" y=\"{:.1}\">{label}</text></g>",
            y + ROW_H - 18.0,
            (xb - xa).max(2.0),
            y + ROW_H - 22.0,
            class = b.class,
            title = html(&b.title),
            label = html(&b.label),
        );
    }
    // Time axis.
    let axis_y = TOP + rows.len() as f64 * ROW_H + 4.0;
    let step = tick_step(hi - lo);
    let mut t = (lo / step).ceil() * step;
    let _ = write!(
        s,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{axis_y:.1}\" y2=\"{axis_y:.1}\"/>",
        W - RIGHT
    );
    while t <= hi {
        let _ = write!(
            s,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\">{:.1} ms</text>",
            x(t),
            axis_y + 16.0,
            t / 1e6
        );
        t += step;
    }
    s.push_str("</svg>");
    s
}

fn op_label(f: &str, value: &Value, kind: &str) -> String {
    let v = short_value(value, 40);
    let mut label = if v.is_empty() {
        f.to_string()
    } else {
        format!("{f} {v}")
    };
    if kind != "ok" {
        label.push_str(&format!(" ({kind})"));
    }
    label
}

fn opref_text(o: &OpRef) -> String {
    let p = o.process;
    let when = match o.complete_time {
        Some(b) => format!("from {} to {}", fmt_ms(o.invoke_time), fmt_ms(b)),
        None => format!("from {}, never completed", fmt_ms(o.invoke_time)),
    };
    let a = o.invoke_index;
    let lines = match o.complete_index {
        Some(b) => format!(" — history events {a} and {b}"),
        None => format!(" — history event {a}"),
    };
    format!(
        "process {p}: {} {} → {} {when}{lines}",
        o.f,
        value_text(&o.value),
        o.outcome.as_str()
    )
}

fn why_section(out: &mut String, run: &RunData) {
    out.push_str("<section id=\"why\"><h2>Why</h2>");
    let Some(results) = &run.results else {
        out.push_str("<p>The run left no results.json.</p></section>\n");
        return;
    };
    if let Some(e) = &results.error {
        let _ = write!(
            out,
            "<p>The run failed:</p><pre class=\"error\">{}</pre>",
            html(e)
        );
    }
    let mut any = false;
    for c in &results.checkers {
        let model = match c {
            CheckerResult::Linearizable(l) => Some(l.model.as_str()),
            _ => None,
        };
        // Undecided keys in one line: their reasons, each with how many keys gave it.
        let mut undecided: BTreeMap<&str, usize> = BTreeMap::new();
        for k in c.keys().iter().filter(|k| k.valid == Validity::Unknown) {
            *undecided
                .entry(k.reason.as_deref().unwrap_or("no reason given"))
                .or_default() += 1;
        }
        if !undecided.is_empty() {
            any = true;
            let n: usize = undecided.values().sum();
            let reasons: Vec<String> = undecided
                .iter()
                .map(|(r, k)| format!("{k} × {r}"))
                .collect();
            let _ = write!(
                out,
                "<p class=\"undecided\">{name}: {n} key{s} undecided — {why}</p>",
                name = html(c.name()),
                s = if n == 1 { "" } else { "s" },
                why = html(&reasons.join("; ")),
            );
        }
        for k in c.keys() {
            // Unknown keys are the line above; invalid ones with a counterexample lead the
            // page (the violations section).
            if k.valid != Validity::Invalid || k.counterexample.is_some() {
                continue;
            }
            any = true;
            let _ = write!(
                out,
                "<div class=\"explain {v}\"><h3>{name}{model}: key {key} is {v}</h3>",
                v = verdict_of(k.valid).as_str(),
                name = html(c.name()),
                model = model.map(|m| format!(" ({})", html(m))).unwrap_or_default(),
                key = html(&key_text(&k.key)),
            );
            if let Some(reason) = &k.reason {
                let _ = write!(out, "<p class=\"explanation\">{}</p>", html(reason));
            }
            out.push_str("</div>");
        }
        any |= c.locks().iter().any(|l| !l.violations.is_empty())
            || c.keys().iter().any(|k| k.counterexample.is_some());
        if c.valid() != Validity::Valid
            && c.keys().is_empty()
            && c.locks().is_empty()
            && !matches!(c, CheckerResult::Txn(t) if !t.anomalies.is_empty())
        {
            any = true;
            let _ = write!(
                out,
                "<div class=\"explain {v}\"><h3>{name} is {v}</h3><p class=\"explanation\">{why}</p></div>",
                v = verdict_of(c.valid()).as_str(),
                name = html(c.name()),
                why = html(c.error().unwrap_or("no explanation given")),
            );
        }
    }
    if !any && results.error.is_none() {
        out.push_str("<p>No checker gave details.</p>");
    }
    out.push_str("</section>\n");
}

/// Which node served each op of the counterexample, and what the faults did to it then.
fn served_by_section(out: &mut String, run: &RunData, cx: &Counterexample) {
    let text = |k: &str| run.test_raw.get(k).and_then(|v| v.as_str());
    let db = text("db_version")
        .or(run.test.db.as_deref())
        .unwrap_or("the system");
    let invokes: Vec<u64> = cx.ops.iter().map(|o| o.invoke_index).collect();
    let lines = crate::served::served_by(&run.history, &invokes, db, text("stale_read_note"));
    if !lines.is_empty() {
        out.push_str("<h4>Where they ran</h4><ul class=\"ops\">");
        for line in lines {
            let _ = write!(out, "<li>{}</li>", html(&line));
        }
        out.push_str("</ul>");
    }
}

/// One key's counterexample: the checker's words, its ops on their time axis with the
/// other ops of the key around them and `bands` (the faults) shaded, the longest order.
fn counterexample(
    out: &mut String,
    run: &RunData,
    pairs: &[Pair],
    key: &Option<Key>,
    cx: &Counterexample,
    bands: &[(u64, u64, String)],
) {
    let ops = &run.history;
    let _ = write!(
        out,
        "<p class=\"explanation\">{}</p>",
        html(&cx.explanation)
    );
    let involved: HashSet<u64> = cx.ops.iter().map(|o| o.invoke_index).collect();
    let mut bars: Vec<Bar> = cx
        .ops
        .iter()
        .map(|o| Bar {
            row: format!("process {}", o.process),
            start: o.invoke_time,
            end: o.complete_time,
            label: op_label(&o.f, &o.value, o.outcome.as_str()),
            class: kind_class(o.outcome.as_str()),
            highlight: true,
            title: opref_text(o),
        })
        .collect();
    if let (Some(lo), Some(hi)) = (
        bars.iter().map(|b| b.start).min(),
        bars.iter().map(|b| b.end.unwrap_or(b.start)).max(),
    ) {
        // Other ops on the key in the same window, faded, so the reader sees the context.
        let mut context = 0;
        for p in pairs {
            let inv = &ops[p.invoke];
            if context >= CONTEXT_OPS_MAX || inv.key != *key || involved.contains(&inv.index) {
                continue;
            }
            let end = p.complete.map(|c| ops[c].time);
            if inv.time > hi || end.is_some_and(|e| e < lo) {
                continue;
            }
            context += 1;
            bars.push(Bar {
                row: format!("process {}", inv.process),
                start: inv.time,
                end,
                label: op_label(&inv.f, p.value(ops), p.outcome.as_str()),
                class: kind_class(p.outcome.as_str()),
                highlight: false,
                title: format!(
                    "process {}: {} {} → {} (event {})",
                    inv.process,
                    inv.f,
                    value_text(p.value(ops)),
                    p.outcome.as_str(),
                    inv.index
                ),
            });
        }
    }
    if !bars.is_empty() {
        out.push_str("<div class=\"figure\">");
        out.push_str(&svg_bars(&bars, bands));
        out.push_str("<div class=\"caption\">Bold: the ops that cannot be linearized together, with their values. Faded: other ops on this key at the same time. Bars run from invoke to completion; shaded: the faults in effect.</div></div>");
    }
    out.push_str("<h4>The ops that cannot be linearized</h4><ol class=\"ops\">");
    for o in &cx.ops {
        let _ = write!(out, "<li>{}</li>", html(&opref_text(o)));
    }
    out.push_str("</ol>");
    served_by_section(out, run, cx);
    if !cx.partial_linearization.is_empty() {
        let n = cx.partial_linearization.len();
        let skipped = n.saturating_sub(PARTIAL_SHOWN_MAX);
        out.push_str("<h4>Longest order found before getting stuck</h4>");
        if skipped > 0 {
            let _ = write!(out, "<p class=\"caption\">… {skipped} earlier ops, then the last {PARTIAL_SHOWN_MAX}:</p>");
        }
        let _ = write!(out, "<ol class=\"ops\" start=\"{}\">", skipped + 1);
        for o in &cx.partial_linearization[skipped..] {
            let _ = write!(out, "<li>{}</li>", html(&opref_text(o)));
        }
        let _ = write!(
            out,
            "</ol><p>Model state there: <code>{}</code></p>",
            html(&value_text(&cx.state))
        );
    }
}

fn kind_class(kind: &str) -> &'static str {
    match kind {
        "ok" => "ok",
        "fail" => "fail",
        "info" => "info",
        _ => "pending",
    }
}

fn hold_text(h: &Hold) -> String {
    let p = h.process;
    let token = h
        .token
        .as_ref()
        .map(|t| format!(", token {t}"))
        .unwrap_or_default();
    let span = match h.end {
        Some(b) => format!("from {} to {}", fmt_ms(h.start), fmt_ms(b)),
        None => format!("from {}, never released", fmt_ms(h.start)),
    };
    let certain = if h.certain {
        ""
    } else {
        " (acquire unknown: maybe held)"
    };
    format!("process {p} held it {span}{token}{certain}")
}

fn violation(out: &mut String, checker: &str, key: &Option<Key>, holds: &[Hold], v: &Violation) {
    let _ = write!(
        out,
        "<div class=\"explain invalid\"><h3>{checker}: lock {key} — {kind}</h3><p class=\"explanation\">{text}</p>",
        checker = html(checker),
        key = html(&key_text(key)),
        kind = html(v.kind.as_str()),
        text = html(&v.explanation),
    );
    let bar = |h: &Hold, highlight: bool| {
        let p = h.process;
        let token = h
            .token
            .as_ref()
            .map(|t| format!(" token {t}"))
            .unwrap_or_default();
        Bar {
            row: format!("process {p}"),
            start: h.start,
            end: h.end,
            label: format!("holds{token}"),
            class: if h.certain { "ok" } else { "info" },
            highlight,
            title: hold_text(h),
        }
    };
    let mut bars: Vec<Bar> = v.holds.iter().map(|h| bar(h, true)).collect();
    let lo = v.holds.iter().map(|h| h.start).min().unwrap_or(0);
    let hi = v
        .holds
        .iter()
        .map(|h| h.end.unwrap_or(h.start))
        .max()
        .unwrap_or(0);
    for h in holds
        .iter()
        .filter(|h| !v.holds.contains(h))
        .take(CONTEXT_OPS_MAX)
    {
        let (s, e) = (h.start, h.end.unwrap_or(u64::MAX));
        if s <= hi && e >= lo {
            bars.push(bar(h, false));
        }
    }
    let overlap_start = v.holds.iter().map(|h| h.start).max();
    let overlap_end = v.holds.iter().map(|h| h.end.unwrap_or(u64::MAX)).min();
    let bands: Vec<(u64, u64, String)> = match (overlap_start, overlap_end) {
        (Some(a), Some(b)) if a < b && v.kind == ViolationKind::Overlap => {
            let b = if b == u64::MAX { hi } else { b };
            vec![(a, b, format!("both hold {}", key_text(key)))]
        }
        _ => vec![],
    };
    out.push_str("<div class=\"figure\">");
    out.push_str(&svg_bars(&bars, &bands));
    out.push_str("<div class=\"caption\">Bold: the holds in violation (red band: the time both held the lock). Faded: other holds of this lock nearby.</div></div><ol class=\"ops\">");
    for h in &v.holds {
        let _ = write!(out, "<li>{}</li>", html(&hold_text(h)));
    }
    out.push_str("</ol></div>");
}

fn stats_section(out: &mut String, stats: &Stats) {
    out.push_str("<section id=\"ops\"><h2>Operations</h2><table class=\"grid\"><thead><tr><th>f</th><th>ok</th><th>fail</th><th>info</th><th>pending</th><th>p50 ms</th><th>p99 ms</th></tr></thead><tbody>");
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    for (f, s) in &stats.by_f {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            html(f),
            s.ok,
            s.fail,
            s.info,
            s.pending,
            ms(s.p50_ms),
            ms(s.p99_ms)
        );
    }
    let _ = writeln!(
        out,
        "<tr class=\"total\"><td>all</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td></td><td></td></tr></tbody></table></section>",
        stats.ok, stats.fail, stats.info, stats.pending
    );
}

fn nemesis_section(out: &mut String, ops: &[Op], nemesis: &[Pair], periods: &[FaultPeriod]) {
    out.push_str("<section id=\"nemesis\"><h2>Nemesis schedule, as it happened</h2>");
    if nemesis.is_empty() {
        out.push_str("<p>No faults were injected.</p></section>\n");
        return;
    }
    out.push_str("<table class=\"grid\"><thead><tr><th>started</th><th>applied</th><th>fault</th><th>outcome</th><th>what was done</th></tr></thead><tbody>");
    for p in nemesis {
        let inv = &ops[p.invoke];
        let done = p.complete.map(|c| &ops[c]);
        let value = done
            .filter(|d| !d.value.is_null())
            .map(|d| &d.value)
            .unwrap_or(&inv.value);
        let mut what = value_text(value);
        if let Some(e) = done.and_then(|d| d.error.as_ref()) {
            what = format!("{what} error: {e}");
        }
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            fmt_ms(inv.time),
            done.map(|d| fmt_ms(d.time)).unwrap_or_else(|| "-".into()),
            html(&inv.f),
            p.outcome.as_str(),
            html(&what)
        );
    }
    out.push_str("</tbody></table><h3>Fault periods</h3><table class=\"grid\"><thead><tr><th>kind</th><th>from</th><th>to</th><th>fault</th></tr></thead><tbody>");
    for f in periods {
        let _ = write!(
            out,
            "<tr><td><span class=\"swatch\" style=\"background:{color}\"></span>{kind}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><code>{}</code></td></tr>",
            fmt_ms(f.start_ns),
            if f.open { "end of test".to_string() } else { fmt_ms(f.end_ns) },
            html(&f.label),
            color = html(&safe_color(&f.color)),
            kind = html(&f.kind),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// A colour from test.json is used in a style attribute only when it is a plain `#hex`.
fn safe_color(c: &str) -> String {
    let hex = c.strip_prefix('#').unwrap_or("");
    if (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
        c.to_string()
    } else {
        "#d0d0d0".to_string()
    }
}

fn config_section(out: &mut String, test: &Value) {
    out.push_str("<section id=\"config\"><h2>Configuration</h2>");
    match test.as_object() {
        Some(map) => {
            out.push_str("<table class=\"grid kv\"><tbody>");
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let _ = write!(
                    out,
                    "<tr><th>{}</th><td><code>{}</code></td></tr>",
                    html(k),
                    html(&text)
                );
            }
            out.push_str("</tbody></table>");
        }
        None => out.push_str("<p>No test.json.</p>"),
    }
    out.push_str("</section>\n");
}

fn files_section(out: &mut String, dir: &Path) {
    out.push_str("<section id=\"files\"><h2>Files &amp; logs</h2><ul class=\"files\">");
    for name in [TEST_JSON, HISTORY_JSONL, RESULTS_JSON, LOG_FILE] {
        if dir.join(name).exists() {
            let _ = write!(
                out,
                "<li><a href=\"{0}\">{0}</a></li>",
                html(&url_path(&[name]))
            );
        }
    }
    out.push_str("</ul>");
    let nodes = dir.join(NODES_DIR);
    let mut hosts: Vec<_> = std::fs::read_dir(&nodes)
        .map(|e| {
            e.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .collect()
        })
        .unwrap_or_default();
    hosts.sort_by_key(|e| e.file_name());
    if hosts.is_empty() {
        out.push_str("<p>No node logs were downloaded.</p>");
    }
    for host in hosts {
        let host_name = host.file_name().to_string_lossy().into_owned();
        let _ = write!(out, "<h3>{}</h3><ul class=\"files\">", html(&host_name));
        let mut files = Vec::new();
        collect_files(&host.path(), &mut Vec::new(), &mut files, 0);
        files.sort();
        for (rel, size) in files.iter().take(NODE_FILES_MAX) {
            let mut segs: Vec<&str> = vec![NODES_DIR, &host_name];
            segs.extend(rel.iter().map(String::as_str));
            let _ = write!(
                out,
                "<li><a href=\"{}\">{}</a> <span class=\"size\">{}</span></li>",
                html(&url_path(&segs)),
                html(&rel.join("/")),
                human_size(*size)
            );
        }
        if files.len() > NODE_FILES_MAX {
            let _ = write!(out, "<li>… and {} more</li>", files.len() - NODE_FILES_MAX);
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>\n");
}

fn collect_files(
    dir: &Path,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, u64)>,
    depth: usize,
) {
    if depth > 3 || out.len() > NODE_FILES_MAX * 2 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(ft) = e.file_type() else { continue };
        prefix.push(name);
        if ft.is_dir() {
            collect_files(&e.path(), prefix, out, depth + 1);
        } else if ft.is_file() {
            out.push((prefix.clone(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
        prefix.pop();
    }
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// A lane of lock holds: (lock name, holds, holds in violations).
type LockLane = (String, Vec<Hold>, Vec<Hold>);

/// Lock holders per lock: from the mutex checker's results when present, else derived from
/// the history (an ok acquire holds until its process's release completes).
fn lock_lanes(ops: &[Op], pairs: &[Pair], results: Option<&RunResults>) -> Vec<LockLane> {
    let from_results: Vec<LockLane> = results
        .iter()
        .flat_map(|r| &r.checkers)
        .flat_map(|c| c.locks())
        .map(|l| {
            let bad = l
                .violations
                .iter()
                .flat_map(|v| v.holds.iter().cloned())
                .collect();
            (key_text(&l.key), l.holds.clone(), bad)
        })
        .collect();
    if !from_results.is_empty() {
        return from_results;
    }
    let mut lanes: BTreeMap<String, Vec<Hold>> = BTreeMap::new();
    let mut open: HashMap<(Process, Option<Key>), usize> = HashMap::new();
    for p in pairs {
        let inv = &ops[p.invoke];
        let key = key_text(&inv.key);
        match (inv.f.as_str(), p.outcome) {
            ("acquire", Outcome::Ok | Outcome::Info | Outcome::Pending) => {
                let done = p.complete.map(|c| &ops[c]);
                let certain = p.outcome == Outcome::Ok;
                let holds = lanes.entry(key).or_default();
                holds.push(Hold {
                    process: inv.process,
                    acquire_index: inv.index,
                    grant_index: done.filter(|_| certain).map(|d| d.index),
                    release_index: None,
                    start: if certain {
                        done.map(|d| d.time).unwrap_or(inv.time)
                    } else {
                        inv.time
                    },
                    end: None,
                    token: done.and_then(|d| d.value.get("token")?.as_i64()),
                    lease_ms: None,
                    certain,
                });
                open.insert((inv.process, inv.key.clone()), holds.len() - 1);
            }
            ("release", _) => {
                if let Some(i) = open.remove(&(inv.process, inv.key.clone())) {
                    let hold = &mut lanes.get_mut(&key).expect("opened above")[i];
                    hold.release_index = Some(inv.index);
                    hold.end = Some(p.complete.map(|c| ops[c].time).unwrap_or(inv.time));
                }
            }
            _ => {}
        }
    }
    lanes.into_iter().map(|(k, h)| (k, h, Vec::new())).collect()
}

/// Greedy lane assignment: a process takes the lowest lane free before its first op, so
/// the fresh processes that replace crashed ones reuse lanes instead of adding hundreds.
fn assign_lanes(ops: &[Op], pairs: &[Pair]) -> (HashMap<Process, usize>, Vec<String>) {
    let mut span: BTreeMap<Process, (u64, u64)> = BTreeMap::new();
    for p in pairs {
        let inv = &ops[p.invoke];
        let end = p.complete.map(|c| ops[c].time).unwrap_or(u64::MAX);
        let e = span.entry(inv.process).or_insert((inv.time, end));
        e.0 = e.0.min(inv.time);
        e.1 = e.1.max(end);
    }
    let mut order: Vec<(Process, (u64, u64))> = span.into_iter().collect();
    order.sort_by_key(|(p, (s, _))| (*s, *p));
    let mut lane_end: Vec<u64> = Vec::new();
    let mut lane_procs: Vec<Vec<Process>> = Vec::new();
    let mut lanes = HashMap::new();
    for (p, (s, e)) in order {
        let lane = match lane_end.iter().position(|&end| end < s) {
            Some(l) => l,
            None => {
                lane_end.push(0);
                lane_procs.push(Vec::new());
                lane_end.len() - 1
            }
        };
        lane_end[lane] = e;
        lane_procs[lane].push(p);
        lanes.insert(p, lane);
    }
    // Lanes read top to bottom in process order.
    let mut by_first: Vec<usize> = (0..lane_procs.len()).collect();
    by_first.sort_by_key(|&l| lane_procs[l].iter().min().copied());
    let mut rank = vec![0; by_first.len()];
    for (new, &old) in by_first.iter().enumerate() {
        rank[old] = new;
    }
    for lane in lanes.values_mut() {
        *lane = rank[*lane];
    }
    let lane_procs: Vec<Vec<Process>> = by_first.iter().map(|&l| lane_procs[l].clone()).collect();
    let labels = lane_procs
        .iter()
        .map(|ps| {
            let first = ps.first().map(|p| p.to_string()).unwrap_or_default();
            if ps.len() > 1 {
                format!("p{first}+{}", ps.len() - 1)
            } else {
                format!("p{first}")
            }
        })
        .collect();
    (lanes, labels)
}

fn intern<'a>(table: &mut Vec<&'a str>, index: &mut HashMap<&'a str, usize>, s: &'a str) -> usize {
    *index.entry(s).or_insert_with(|| {
        table.push(s);
        table.len() - 1
    })
}

/// The data the page's script draws: ops as compact arrays
/// `[lane, invoke µs, complete µs or -1, f, outcome, key, node, error, event index, process,
/// value, (invoke value if different)]`, with strings interned in tables.
fn embed_data(
    run: &RunData,
    pairs: &[Pair],
    periods: &[FaultPeriod],
    highlights: &HashSet<u64>,
    locks: &[LockLane],
    end_ns: u64,
) -> String {
    let ops = &run.history;
    let (lanes, lane_labels) = assign_lanes(ops, pairs);
    let mut fs: Vec<&str> = Vec::new();
    let mut strings: Vec<&str> = vec![""];
    let mut f_index = HashMap::new();
    let mut s_index: HashMap<&str, usize> = HashMap::from([("", 0)]);
    let key_strings: Vec<String> = pairs.iter().map(|p| key_text(&ops[p.invoke].key)).collect();
    let mut keys: Vec<&str> = Vec::new();
    let mut k_index = HashMap::new();
    let mut text = String::with_capacity(pairs.len() * 48);
    text.push('[');
    for (i, p) in pairs.iter().enumerate() {
        let inv = &ops[p.invoke];
        let done = p.complete.map(|c| &ops[c]);
        let f = intern(&mut fs, &mut f_index, &inv.f);
        let k = intern(&mut keys, &mut k_index, &key_strings[i]);
        let node = done
            .and_then(|d| d.node.as_deref())
            .or(inv.node.as_deref())
            .unwrap_or("");
        let n = intern(&mut strings, &mut s_index, node);
        let err = done.and_then(|d| d.error.as_deref()).unwrap_or("");
        let e = intern(&mut strings, &mut s_index, err);
        let outcome = match p.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
            Outcome::Pending => 3,
        };
        let t1 = done.map(|d| (d.time / 1000) as i64).unwrap_or(-1);
        if i > 0 {
            text.push(',');
        }
        let _ = write!(
            text,
            "[{},{},{},{f},{outcome},{k},{n},{e},{},{},",
            lanes.get(&inv.process).copied().unwrap_or(0),
            inv.time / 1000,
            t1,
            inv.index,
            inv.process
        );
        let value = p.value(ops);
        text.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "null".into()));
        if inv.value != *value {
            text.push(',');
            text.push_str(&serde_json::to_string(&inv.value).unwrap_or_else(|_| "null".into()));
        }
        text.push(']');
    }
    text.push(']');
    let faults: Vec<Value> = periods
        .iter()
        .map(|f| {
            json!([
                f.kind,
                f.label,
                f.start_ns / 1000,
                f.end_ns / 1000,
                safe_color(&f.color),
                f.open
            ])
        })
        .collect();
    let lock_data: Vec<Value> = locks
        .iter()
        .map(|(name, holds, bad)| {
            let rows: Vec<Value> = holds
                .iter()
                .map(|h| {
                    json!([
                        h.process.to_string(),
                        h.start / 1000,
                        h.end.map(|e| (e / 1000) as i64).unwrap_or(-1),
                        h.token,
                        h.certain,
                        bad.contains(h),
                    ])
                })
                .collect();
            json!({"name": name, "holds": rows})
        })
        .collect();
    let mut hl: Vec<u64> = highlights.iter().copied().collect();
    hl.sort_unstable();
    let rest = json!({
        "end": end_ns / 1000,
        "lanes": lane_labels,
        "fs": fs,
        "keys": keys,
        "strings": strings,
        "faults": faults,
        "locks": lock_data,
        "hl": hl,
        "nemesis": ops.iter().filter(|o| o.process == Process::Nemesis && o.kind == OpType::Invoke).count(),
    });
    let rest_text = json_for_script(&rest);
    // `text` holds raw JSON; it gets the same escaping as `rest`.
    let ops_text = crate::escape::escape_script_json(&text);
    format!("{{\"ops\":{ops_text},\"meta\":{rest_text}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn load(run: &synth::SynthRun) -> (tempfile::TempDir, RunData) {
        let dir = tempfile::tempdir().unwrap();
        synth::write_run(dir.path(), run).unwrap();
        let data = RunData::load(dir.path()).unwrap();
        (dir, data)
    }

    #[test]
    fn payloads_render_as_text_and_the_embedded_json_parses_back() {
        let payload = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";
        let run = synth::register_run(&synth::RegisterSpec {
            seed: 11,
            ops: 200,
            bug: true,
            payload: Some(payload.into()),
            ..Default::default()
        });
        let (dir, _) = load(&run);
        // A node's log file named by the payload, too.
        let host = dir.path().join(NODES_DIR).join("<b>n9&amp;");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("<script>x.log"), "log").unwrap();
        let data = RunData::load(dir.path()).unwrap();
        let page = render_report(&data);
        assert!(page.contains("<h3>&lt;b&gt;n9&amp;amp;</h3>"));
        assert!(page.contains("href=\"nodes/%3Cb%3En9&amp;amp;/%3Cscript%3Ex.log\""));
        assert!(!page.contains(payload));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"));
        let start = page
            .find("<script type=\"application/json\" id=\"data\">")
            .unwrap();
        let body = &page[start..];
        let json_text = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
        assert!(!json_text.contains('<'));
        let parsed: Value = serde_json::from_str(json_text).unwrap();
        let ops = parsed["ops"].as_array().unwrap();
        assert_eq!(ops.len(), 201);
        // The payload survives, as data, in the value of the last write.
        assert!(ops.iter().any(|o| o[10] == json!(payload)));
        assert!(parsed["meta"]["strings"]
            .as_array()
            .unwrap()
            .contains(&json!(payload)));
    }

    #[test]
    fn the_page_fetches_nothing() {
        let run = synth::lock_run(&synth::LockSpec {
            seed: 2,
            acquisitions: 100,
            bug: true,
            ..Default::default()
        });
        let (_dir, data) = load(&run);
        let page = render_report(&data);
        assert!(page.contains(&format!("content=\"{CSP}\"")));
        // The only absolute URL is the SVG namespace, which is a name, not a fetch.
        let without_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for needle in [
            "http://",
            "https://",
            "src=",
            "url(",
            "@import",
            "//cdn",
            "fetch(",
            "XMLHttpRequest",
        ] {
            assert!(!without_ns.contains(needle), "report contains {needle}");
        }
        for href in without_ns.split("href=\"").skip(1) {
            let target = &href[..href.find('"').unwrap()];
            assert!(
                target.starts_with('#') || !target.contains(':'),
                "link to another origin: {target}"
            );
        }
    }

    #[test]
    fn an_invalid_register_run_draws_its_counterexample() {
        let run = synth::register_run(&synth::RegisterSpec {
            seed: 5,
            ops: 500,
            bug: true,
            ..Default::default()
        });
        let (_dir, data) = load(&run);
        let page = render_report(&data);
        assert!(page.contains("<header class=\"verdict invalid\">"));
        // The counterexample leads the page, in the violations section.
        let why = &page[page.find("<section id=\"violations\">").unwrap()..];
        let why = &why[..why.find("</section>").unwrap()];
        assert!(why.matches("<g class=\"op ").count() >= 3);
        assert_eq!(why.matches(" hl").count(), 3, "three highlighted ops");
        let cx = &run.results["checkers"][0]["keys"][0]["counterexample"]["ops"];
        let read_value = cx[2]["value"].to_string();
        assert!(
            why.contains(&format!("read {read_value}")),
            "the read's value is shown"
        );
        assert!(why.contains("cannot be linearized"));
    }

    #[test]
    fn lock_lanes_come_from_results_or_the_history() {
        let run = synth::lock_run(&synth::LockSpec {
            seed: 4,
            acquisitions: 60,
            ..Default::default()
        });
        let (_dir, data) = load(&run);
        let pairs = pair_ops(&data.history).clients;
        let from_results = lock_lanes(&data.history, &pairs, data.results.as_ref());
        let from_history = lock_lanes(&data.history, &pairs, None);
        assert_eq!(from_results.len(), 2);
        for ((n1, h1, _), (n2, h2, _)) in from_results.iter().zip(&from_history) {
            assert_eq!(n1, n2);
            assert_eq!(h1.len(), h2.len());
            let by_start = |h: &Vec<Hold>| {
                let mut h = h.clone();
                h.sort_by_key(|h| h.start);
                h
            };
            let (h1, h2) = (&by_start(h1), &by_start(h2));
            for (a, b) in h1.iter().zip(h2) {
                assert_eq!(
                    (a.process, a.start, a.end, &a.token),
                    (b.process, b.start, b.end, &b.token)
                );
            }
        }
    }

    #[test]
    fn unknown_and_crashed_runs_say_why() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TEST_JSON), r#"{"name": "setup-failed"}"#).unwrap();
        let crashed = render_report(&RunData::load(dir.path()).unwrap());
        assert!(crashed.contains("<header class=\"verdict crashed\">"));
        assert!(crashed.contains("No results.json"));
        std::fs::write(
            dir.path().join(RESULTS_JSON),
            r#"{"valid": "unknown", "checkers": [{"name": "linearizable", "valid": "unknown",
               "keys": [{"key": "k9", "valid": "unknown", "reason": "time limit <60 s> reached"}]}]}"#,
        )
        .unwrap();
        let unknown = render_report(&RunData::load(dir.path()).unwrap());
        assert!(unknown.contains("<header class=\"verdict unknown\">"));
        // Undecided keys are one line, not a box each.
        assert!(
            unknown.contains("linearizable: 1 key undecided"),
            "{unknown}"
        );
        assert!(unknown.contains("time limit &lt;60 s&gt; reached"));
    }

    #[test]
    fn lanes_are_reused_by_fresh_processes() {
        let run = synth::register_run(&synth::RegisterSpec {
            seed: 8,
            ops: 3000,
            concurrency: 4,
            ..Default::default()
        });
        let pairs = pair_ops(&run.history).clients;
        let (lanes, labels) = assign_lanes(&run.history, &pairs);
        assert!(
            lanes.len() > 4,
            "some ops timed out, so new processes appeared"
        );
        assert!(labels.len() <= 5, "{labels:?}");
        let firsts: Vec<&str> = labels
            .iter()
            .map(|l| l.split('+').next().unwrap())
            .collect();
        assert_eq!(firsts, ["p0", "p1", "p2", "p3"], "lanes in process order");
        // Ops of one lane never overlap in time.
        let mut last_end: HashMap<usize, u64> = HashMap::new();
        for p in &pairs {
            let inv = &run.history[p.invoke];
            let lane = lanes[&inv.process];
            if let Some(end) = last_end.get(&lane) {
                assert!(
                    inv.time > *end,
                    "lane {lane} overlaps at event {}",
                    inv.index
                );
            }
            last_end.insert(
                lane,
                p.complete.map(|c| run.history[c].time).unwrap_or(u64::MAX),
            );
        }
    }
}
