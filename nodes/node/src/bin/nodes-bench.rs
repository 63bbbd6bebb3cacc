//! `nodes-bench`: throughput and latency of faultline's Raft (ReadIndex and lease reads)
//! and Paxos nodes against etcd, each as 3 members on 127.0.0.1, measured by the same
//! HTTP client: writes/s and reads/s with 1, 16 and 64 concurrent clients, p50/p99.
//! Every child process is started here and killed by PID at the end (also on error).
//!
//! Run: `cargo run --release -p faultline-node --bin nodes-bench -- [--seconds 3]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Benchmark faultline's raft and paxos nodes against etcd on loopback")]
struct Args {
    /// Seconds measured per cell.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Concurrent clients per cell (comma-separated).
    #[arg(long, default_value = "1,16,64")]
    clients: String,
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd: PathBuf,
    /// Systems to measure (comma-separated): raft-readindex, raft-lease, paxos, etcd.
    #[arg(long, default_value = "raft-readindex,raft-lease,paxos,etcd")]
    systems: String,
}

/// A child process killed (by its PID) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Faultline,
    Etcd,
}

struct Cluster {
    _procs: Vec<Proc>,
    api: Api,
    /// Client addresses (`host:port`) that clients spread over.
    targets: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Write,
    Read,
}

struct Cell {
    ops: usize,
    errors: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(5))
        .build()?)
}

async fn start_faultline(
    kind: &str,
    read_mode: &str,
    dir: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<Cluster> {
    let exe = std::env::current_exe()?.with_file_name("faultline-node");
    anyhow::ensure!(
        exe.exists(),
        "{} not found: build it with cargo build --release -p faultline-node",
        exe.display()
    );
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{}=127.0.0.1:{}", i + 1, p.0))
        .collect::<Vec<_>>();
    let clients = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{}=127.0.0.1:{}", i + 1, p.1))
        .collect::<Vec<_>>();
    let mut procs = Vec::new();
    for (i, (pp, cp)) in ports.iter().enumerate() {
        let d = dir.join(format!("{kind}-{read_mode}-n{}", i + 1));
        let child = Command::new(&exe)
            .arg(kind)
            .args([
                "--id",
                &format!("n{}", i + 1),
                "--peers",
                &peers.join(","),
                "--client-peers",
                &clients.join(","),
            ])
            .args([
                "--listen-peer",
                &format!("127.0.0.1:{pp}"),
                "--listen-client",
                &format!("127.0.0.1:{cp}"),
            ])
            .arg("--data-dir")
            .arg(d.join("data"))
            .arg("--pid-file")
            .arg(d.join("pid"))
            .arg("--log-file")
            .arg(d.join("node.log"))
            .args(["--read-mode", read_mode, "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        procs.push(Proc(child));
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{}", p.1)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if Instant::now() > deadline {
            bail!("{kind} cluster did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if kind == "paxos" {
            let ok = http
                .post(format!("http://{}/write", addrs[0]))
                .json(&json!({"key": "warm", "value": 1}))
                .send()
                .await;
            if ok.is_ok_and(|r| r.status().is_success()) {
                return Ok(Cluster {
                    _procs: procs,
                    api: Api::Faultline,
                    targets: addrs,
                });
            }
            continue;
        }
        let Ok(r) = http.get(format!("http://{}/status", addrs[0])).send().await else {
            continue;
        };
        let Ok(s) = r.json::<Value>().await else {
            continue;
        };
        if let Some(leader) = s["leader"].as_str() {
            let i: usize = leader.trim_start_matches('n').parse::<usize>()? - 1;
            return Ok(Cluster {
                _procs: procs,
                api: Api::Faultline,
                targets: vec![addrs[i].clone()],
            });
        }
    }
}

async fn start_etcd(etcd: &Path, dir: &Path, http: &reqwest::Client) -> anyhow::Result<Cluster> {
    anyhow::ensure!(
        etcd.exists(),
        "{} not found (apt-get install etcd-server)",
        etcd.display()
    );
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("m{}=http://127.0.0.1:{}", i + 1, p.0))
        .collect::<Vec<_>>();
    let mut procs = Vec::new();
    for (i, (pp, cp)) in ports.iter().enumerate() {
        let d = dir.join(format!("etcd-m{}", i + 1));
        std::fs::create_dir_all(&d)?;
        let log = std::fs::File::create(d.join("etcd.log"))?;
        let child = Command::new(etcd)
            .args(["--name", &format!("m{}", i + 1)])
            .arg("--data-dir")
            .arg(d.join("data"))
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{cp}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{cp}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{pp}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{pp}"),
            ])
            .args([
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-state",
                "new",
            ])
            .args(["--initial-cluster-token", "faultline-bench"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", etcd.display()))?;
        procs.push(Proc(child));
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{}", p.1)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if Instant::now() > deadline {
            bail!("etcd cluster did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Send every client to the leader, as for raft.
        let mut leader = None;
        let mut ids = Vec::new();
        for a in &addrs {
            let Ok(r) = http
                .post(format!("http://{a}/v3/maintenance/status"))
                .json(&json!({}))
                .send()
                .await
            else {
                break;
            };
            let Ok(s) = r.json::<Value>().await else {
                break;
            };
            ids.push(s["header"]["member_id"].as_str().unwrap_or("").to_string());
            leader = s["leader"].as_str().map(str::to_string).or(leader);
        }
        let Some(leader) = leader else { continue };
        if let Some(i) = ids.iter().position(|id| *id == leader) {
            return Ok(Cluster {
                _procs: procs,
                api: Api::Etcd,
                targets: vec![addrs[i].clone()],
            });
        }
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn request(http: &reqwest::Client, api: Api, addr: &str, op: Op, key: &str, n: u64) -> bool {
    let value = format!("value-{n:08}-{}", "x".repeat(80));
    let (path, body) = match (api, op) {
        (Api::Faultline, Op::Write) => (
            "/write",
            json!({"key": key, "value": value, "request_id": format!("{key}-{n}")}),
        ),
        (Api::Faultline, Op::Read) => ("/read", json!({"key": key})),
        (Api::Etcd, Op::Write) => ("/v3/kv/put", json!({"key": b64(key), "value": b64(&value)})),
        (Api::Etcd, Op::Read) => ("/v3/kv/range", json!({"key": b64(key)})),
    };
    match http
        .post(format!("http://{addr}{path}"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn run_cell(http: &reqwest::Client, c: &Cluster, op: Op, clients: usize, secs: f64) -> Cell {
    let targets = Arc::new(c.targets.clone());
    let api = c.api;
    if op == Op::Read {
        for i in 0..clients {
            let t = &targets[i % targets.len()];
            request(http, api, t, Op::Write, &format!("key-{i}"), 0).await;
        }
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let http = http.clone();
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("key-{i}");
            let addr = &targets[i % targets.len()];
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut n = 1u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                if request(&http, api, addr, op, &key, n).await {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            all[((all.len() - 1) as f64 * p) as usize]
        }
    };
    Cell {
        ops: all.len(),
        errors,
        secs: elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clients: Vec<usize> = args
        .clients
        .split(',')
        .map(|c| c.trim().parse())
        .collect::<Result<_, _>>()?;
    let http = http_client()?;
    let dir = tempfile::Builder::new()
        .prefix("nodes-bench-")
        .tempdir_in("/var/tmp")?;
    let mut rows = Vec::new();
    for system in args.systems.split(',').map(str::trim) {
        let cluster = match system {
            "raft-readindex" => start_faultline("raft", "readindex", dir.path(), &http).await?,
            "raft-lease" => start_faultline("raft", "lease", dir.path(), &http).await?,
            "paxos" => start_faultline("paxos", "readindex", dir.path(), &http).await?,
            "etcd" => start_etcd(&args.etcd, dir.path(), &http).await?,
            other => bail!("unknown system {other:?}"),
        };
        for op in [Op::Write, Op::Read] {
            for &n in &clients {
                let cell = run_cell(&http, &cluster, op, n, args.seconds).await;
                let name = if op == Op::Write { "write" } else { "read" };
                let row = format!(
                    "| {system} | {name} | {n} | {:.0} | {:.2} | {:.2} | {} |",
                    cell.ops as f64 / cell.secs,
                    cell.p50_ms,
                    cell.p99_ms,
                    cell.errors
                );
                eprintln!("{row}");
                rows.push(row);
            }
        }
        drop(cluster);
    }
    println!("| system | op | clients | ops/s | p50 ms | p99 ms | errors |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
