//! Opens reports from disk in headless Chromium (Debian's `chromium`) and checks what a
//! person would see: the verdict, the explanation, drawn charts, no network request, and no
//! history payload run as code. Screenshots are saved as test artifacts.

mod chromium;

use chromium::{artifacts_dir, open, request_host, NetworkTrap, Page};
use faultline_report::synth::{self, LockSpec, RegisterSpec, SynthRun};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

const PAYLOAD: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";

fn write(root: &Path, test: &str, run: &SynthRun) -> PathBuf {
    let dir = root.join(test).join("20261126T070000Z");
    synth::write_run(&dir, run).unwrap();
    faultline_report::finish_run(&dir).unwrap()
}

fn assert_drawn(name: &str, check: &Value, canvases: &[&str]) {
    for c in canvases {
        let ink = check[c].as_u64().unwrap_or(0);
        assert!(
            ink > 200,
            "{name}: canvas {c} is blank ({ink} inked samples): {check}"
        );
    }
    assert_eq!(
        check["xss"], "undefined",
        "{name}: a history value ran as code"
    );
    assert_eq!(
        check["violations"],
        Value::Array(vec![]),
        "{name}: blocked fetches"
    );
    assert_eq!(
        check["errors"],
        Value::Array(vec![]),
        "{name}: script errors"
    );
    assert_eq!(check["hover"], true, "{name}: hover found no op: {check}");
    assert!(
        check["zoom"].as_f64().unwrap_or(0.0) > 2.0,
        "{name}: wheel did not zoom: {check}"
    );
    assert!(
        check["zoomedInk"].as_u64().unwrap_or(0) > 200,
        "{name}: zoomed timeline blank"
    );
}

/// Text as the DOM serialises it.
fn dom_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn reports_render_in_chromium_without_network_or_script_injection() {
    let root = tempfile::tempdir().unwrap();
    let valid = synth::register_run(&RegisterSpec {
        seed: 1,
        ops: 3000,
        ..Default::default()
    });
    let invalid = synth::register_run(&RegisterSpec {
        seed: 2,
        ops: 3000,
        bug: true,
        ..Default::default()
    });
    let lock = synth::lock_run(&LockSpec {
        seed: 3,
        acquisitions: 600,
        bug: true,
        ..Default::default()
    });
    let xss = synth::register_run(&RegisterSpec {
        seed: 4,
        ops: 500,
        bug: true,
        payload: Some(PAYLOAD.into()),
        ..Default::default()
    });
    let reports = [
        ("valid", write(root.path(), "valid", &valid)),
        ("invalid", write(root.path(), "invalid", &invalid)),
        ("lock", write(root.path(), "lock", &lock)),
        ("xss", write(root.path(), "xss", &xss)),
    ];
    let trap = NetworkTrap::start();
    let artifacts = artifacts_dir();
    let pages: Vec<(&str, Page)> = std::thread::scope(|s| {
        let handles: Vec<_> = reports
            .iter()
            .map(|(name, path)| {
                let shot = artifacts.join(format!("report-{name}.png"));
                let trap = &trap;
                (*name, s.spawn(move || open(path, &shot, trap)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(n, h)| (n, h.join().unwrap()))
            .collect()
    });
    let page = |n: &str| &pages.iter().find(|(name, _)| *name == n).unwrap().1;

    let v = page("valid");
    assert!(
        v.check["verdict"].as_str().unwrap().starts_with("VALID"),
        "{}",
        v.check
    );
    assert!(v.dom.contains("<header class=\"verdict valid\">"));
    assert_drawn("valid", &v.check, &["timeline", "latency", "throughput"]);
    assert_eq!(v.check["ops"], 3000);

    let i = page("invalid");
    assert!(
        i.check["verdict"].as_str().unwrap().starts_with("INVALID"),
        "{}",
        i.check
    );
    assert_drawn("invalid", &i.check, &["timeline", "latency", "throughput"]);
    let explanation = invalid.results["checkers"][0]["keys"][0]["counterexample"]["explanation"]
        .as_str()
        .unwrap();
    assert!(i.dom.contains(&format!(
        "<p class=\"explanation\">{}</p>",
        dom_text(explanation)
    )));
    assert!(
        i.check["svg"].as_u64().unwrap() >= 3,
        "counterexample not drawn: {}",
        i.check
    );
    // The violation leads the page: right under the verdict, before every table and chart,
    // naming the node that served each op and the faults in effect.
    let at = |s: &str| i.dom.find(s).unwrap_or_else(|| panic!("{s} missing"));
    assert!(at("<section id=\"violations\">") < at("<section id=\"timeline\">"));
    assert!(at("<section id=\"violations\">") < at("<table"));
    assert!(at("<header class=\"verdict invalid\">") < at("<section id=\"violations\">"));
    assert!(i.dom.contains("served by n"), "the node is named");
    assert!(i.dom.contains("<th>faults in effect</th>"));

    let l = page("lock");
    assert!(l.check["verdict"].as_str().unwrap().starts_with("INVALID"));
    assert_drawn(
        "lock",
        &l.check,
        &["timeline", "latency", "throughput", "locks"],
    );
    assert!(
        l.dom.contains("both hold lock-"),
        "the overlap band is labelled"
    );
    assert!(l.dom.contains("two holders at once"));
    let at = |s: &str| l.dom.find(s).unwrap_or_else(|| panic!("{s} missing"));
    assert!(at("<section id=\"violations\">") < at("<section id=\"locks\">"));
    assert!(
        l.dom.contains("granted the lock") && l.dom.contains(" by n"),
        "the granting node is named"
    );

    let x = page("xss");
    assert_drawn("xss", &x.check, &["timeline", "latency", "throughput"]);
    assert!(
        x.dom.contains(&dom_text(PAYLOAD)),
        "the payload shows as text"
    );
    assert!(
        !x.dom.contains("<img src=\"x\""),
        "the payload became an element"
    );
    assert!(
        !x.dom.contains("<script>window.__xss"),
        "the payload became a script"
    );

    assert_eq!(
        trap.hits.load(Ordering::SeqCst),
        0,
        "a page made a network request"
    );
    for (name, _) in &reports {
        let shot = artifacts.join(format!("report-{name}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 10_000,
            "screenshot {} missing or empty",
            shot.display()
        );
    }
}

#[test]
fn request_hosts_are_parsed() {
    assert_eq!(
        request_host("CONNECT accounts.google.com:443 HTTP/1.1"),
        "accounts.google.com"
    );
    assert_eq!(
        request_host("GET http://example.invalid/x.png HTTP/1.1"),
        "example.invalid"
    );
    assert_eq!(
        request_host("GET http://evil.test:8080/ HTTP/1.1"),
        "evil.test"
    );
}

#[test]
fn the_network_trap_sees_a_page_that_fetches() {
    // The check above is only worth something if a fetching page would be caught.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("fetch.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><img src=\"http://example.invalid/x.png\">\
         <pre id=\"selfcheck\" hidden>{}</pre></body></html>",
    )
    .unwrap();
    let trap = NetworkTrap::start();
    open(&page, &dir.path().join("fetch.png"), &trap);
    assert!(trap.hits.load(Ordering::SeqCst) > 0);
}
