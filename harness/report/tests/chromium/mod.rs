//! Headless Chromium for the browser tests of report.html: load a page with every network
//! request trapped, take its screenshot and read back its DOM and self-check. Shared by
//! faultline-report's browser tests and the quick start's test (`#[path]`-included there).
#![allow(dead_code)]

use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHROMIUM_TIMEOUT_S: u64 = 90;

pub fn chromium() -> PathBuf {
    std::env::var_os("FAULTLINE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

pub fn artifacts_dir() -> PathBuf {
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

pub fn is_chromium_own(host: &str) -> bool {
    CHROMIUM_OWN_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// The host a proxy request names: `CONNECT host:port …` or `GET http://host/… …`.
pub fn request_host(request_line: &str) -> String {
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
pub struct NetworkTrap {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
}

impl NetworkTrap {
    pub fn start() -> NetworkTrap {
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

pub struct Page {
    pub dom: String,
    pub check: Value,
}

/// Loads a file in headless Chromium; returns its DOM after scripts ran and saves a
/// screenshot.
pub fn open(report: &Path, screenshot: &Path, trap: &NetworkTrap) -> Page {
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
