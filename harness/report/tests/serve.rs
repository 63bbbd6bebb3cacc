//! `faultline serve` over real HTTP on 127.0.0.1: the index and reports are served, paths
//! outside the results folder are refused, and the default address is loopback.

use faultline_report::serve::{serve, DEFAULT_BIND};
use faultline_report::synth::{self, RegisterSpec};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// A raw HTTP/1.1 request, so paths reach the server exactly as written (no client-side
/// normalisation of `..`).
async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

#[test]
fn the_default_address_is_loopback() {
    let addr: SocketAddr = DEFAULT_BIND.parse().unwrap();
    assert!(addr.ip().is_loopback());
}

#[tokio::test]
async fn serves_index_and_reports_and_refuses_paths_outside() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret.txt"), "TOP SECRET").unwrap();
    let root = outer.path().join("results");
    let run_dir = root.join("raft-register").join("20261126T070000Z");
    let run = synth::register_run(&RegisterSpec {
        seed: 1,
        ops: 200,
        bug: true,
        ..Default::default()
    });
    synth::write_run(&run_dir, &run).unwrap();
    faultline_report::finish_run(&run_dir).unwrap();
    std::os::unix::fs::symlink(outer.path(), root.join("escape")).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_root = root.clone();
    let server = tokio::spawn(async move { serve(listener, &server_root).await });

    let index = request(addr, "GET", "/").await;
    assert_eq!(index.status, 200);
    assert!(index.head.contains("content-type: text/html"));
    assert!(index.body.contains("faultline results"));
    assert!(index
        .body
        .contains("href=\"raft-register/20261126T070000Z/report.html\""));

    for path in [
        "/raft-register/20261126T070000Z/report.html",
        "/raft-register/latest/report.html",
    ] {
        let report = request(addr, "GET", path).await;
        assert_eq!(report.status, 200, "{path}");
        assert!(
            report.body.contains("<header class=\"verdict invalid\">"),
            "{path}"
        );
        assert!(report
            .head
            .contains("content-security-policy: default-src 'none'"));
    }
    let log = request(
        addr,
        "GET",
        "/raft-register/20261126T070000Z/nodes/n1/node.log",
    )
    .await;
    assert_eq!(log.status, 200);
    assert!(log.head.contains("content-type: text/plain"));
    assert!(log.body.contains("n1: started"));

    let folder = request(addr, "GET", "/raft-register/20261126T070000Z").await;
    assert_eq!(folder.status, 301);
    assert!(folder
        .head
        .contains(&"location: /raft-register/20261126T070000Z/".to_ascii_lowercase()));
    let listing = request(addr, "GET", "/raft-register/20261126T070000Z/").await;
    assert_eq!(listing.status, 200);
    assert!(listing.body.contains("href=\"history.jsonl\""));

    for path in [
        "/../secret.txt",
        "/raft-register/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/raft-register/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/..%5csecret.txt",
        "/escape/secret.txt",
    ] {
        let r = request(addr, "GET", path).await;
        assert!(
            r.status == 403 || r.status == 400,
            "{path} answered {} instead of being refused",
            r.status
        );
        assert!(!r.body.contains("TOP SECRET"), "{path} leaked a file");
    }
    assert_eq!(request(addr, "GET", "/no/such/file").await.status, 404);
    assert_eq!(request(addr, "POST", "/").await.status, 405);
    server.abort();
}

#[tokio::test]
async fn redirects_stay_on_this_host_and_dot_files_are_not_served() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("name/sub")).unwrap();
    std::fs::write(root.path().join(".secret"), "hidden").unwrap();
    std::fs::create_dir_all(root.path().join("name/.git")).unwrap();
    std::fs::write(root.path().join("name/.git/config"), "hidden").unwrap();
    std::fs::write(root.path().join("name/visible.txt"), "shown").unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_root = root.path().to_path_buf();
    let server = tokio::spawn(async move { serve(listener, &server_root).await });

    // `//name/` in a Location header is a network-path reference: another host.
    for (path, to) in [
        ("//name", "/name/"),
        ("///name//sub", "/name/sub/"),
        ("/name", "/name/"),
        ("/%2Fevil.example", ""),
    ] {
        let r = request(addr, "GET", path).await;
        if to.is_empty() {
            assert_ne!(r.status, 301, "{path}: {}", r.head);
            continue;
        }
        assert_eq!(r.status, 301, "{path}: {}", r.head);
        assert!(
            r.head.contains(&format!("location: {to}\r\n")),
            "{path}: {}",
            r.head
        );
    }
    // What a listing hides is not served either.
    for path in ["/.secret", "/name/.git/config", "/name/.git/", "/%2esecret"] {
        let r = request(addr, "GET", path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(!r.body.contains("hidden"), "{path}");
    }
    assert_eq!(
        request(addr, "GET", "/name/visible.txt").await.body,
        "shown"
    );
    server.abort();
}
