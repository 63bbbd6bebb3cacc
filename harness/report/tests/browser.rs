//! Opens reports from disk in headless Chromium (Debian's `chromium`) and checks what a
//! person would see: the verdict, the explanation, drawn charts, no network request, and no
//! history payload run as code. Screenshots are saved as test artifacts.

use faultline_report::synth::{self, LockSpec, RegisterSpec, SynthRun};
use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PAYLOAD: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";
const CHROMIUM_TIMEOUT_S: u64 = 90;

fn chromium() -> PathBuf {
    std::env::var_os("FAULTLINE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("FAULTLINE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("../report-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Domains of the services Chromium itself calls in the background (component updates,
/// sign-in, network time, optimisation hints) whatever the flags; requests to them are not
/// the page's. The page cannot fetch anything anyway: its CSP forbids it, and a blocked
/// attempt shows in its self-check (`violations`), which the tests require to be empty.
const CHROMIUM_OWN_DOMAINS: [&str; 4] = ["google.com", "googleapis.com", "gvt1.com", "gstatic.com"];

fn is_chromium_own(host: &str) -> bool {
    CHROMIUM_OWN_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// The host a proxy request names: `CONNECT host:port …` or `GET http://host/… …`.
fn request_host(request_line: &str) -> String {
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let target = target
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(target);
    let authority = target.split('/').next().unwrap_or("");
    authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority)
        .to_string()
}

/// A listener that Chromium uses as its HTTP proxy: any network request the page makes
/// arrives here and is counted.
struct NetworkTrap {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl NetworkTrap {
    fn start() -> NetworkTrap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let n = s.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]);
                let line = text.lines().next().unwrap_or("");
                if !is_chromium_own(&request_host(line)) {
                    eprintln!("network request from a page: {line}");
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        NetworkTrap { port, hits }
    }
}

struct Page {
    dom: String,
    check: Value,
}

/// Loads a file in headless Chromium; returns its DOM after scripts ran and saves a
/// screenshot.
fn open(report: &Path, screenshot: &Path, trap: &NetworkTrap) -> Page {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--hide-scrollbars",
            "--no-pings",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-default-apps",
            "--disable-extensions",
            "--metrics-recording-only",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
            "--window-size=1400,2400",
        ])
        .arg(format!("--proxy-server=http://127.0.0.1:{}", trap.port))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", report.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium().display()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(CHROMIUM_TIMEOUT_S);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT_S} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().unwrap().unwrap();
    let start = dom
        .find("<pre id=\"selfcheck\" hidden=\"\">")
        .unwrap_or_else(|| panic!("no self-check in the DOM of {}", report.display()));
    let rest = &dom[start..];
    let text = &rest[rest.find('>').unwrap() + 1..rest.find("</pre>").unwrap()];
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let check: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "self-check of {} is not JSON ({e}): {text}",
            report.display()
        )
    });
    Page { dom, check }
}

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
