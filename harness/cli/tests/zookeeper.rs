//! Debian's ZooKeeper through `faultline run` on the local cluster (needs root; installs
//! `zookeeper` and `default-jre-headless` with apt when missing): a row that must be valid
//! (sync reads while a follower is cut off), the stale-follower-read row that must be
//! invalid while its writes and cas alone stay linearizable, the three servers' memory, and
//! no JVM left after a run, a failed run or Ctrl-C. The rows are those of
//! `workloads/campaigns/zookeeper.toml`; seeds are ones the campaign caught
//! (docs/zookeeper.md). Cluster ids 182–184, one per test.

mod common;

use common::{faultline, json_file, run_dir, text};
use faultline_control::local_cluster;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The word of a ZooKeeper server's command line.
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
/// The bound on three servers' resident memory together.
const RSS_MAX_BYTES: u64 = 1536 * 1024 * 1024;
/// How long a test waits for the servers to start or a run to exit after SIGINT.
const WAIT_MAX: Duration = Duration::from_secs(90);

/// Brings the test's cluster up (so the run leaves it up and its namespaces can be looked
/// into afterwards), and down when the test ends, however it ends.
struct Cluster(u8);

impl Cluster {
    fn up(id: u8) -> Cluster {
        let _ = local_cluster::down(id);
        let out = faultline(&["cluster", "up", "--id", &id.to_string(), "--nodes", "3"]);
        assert!(out.status.success(), "{}", text(&out));
        Cluster(id)
    }

    fn jvms(&self) -> Vec<i32> {
        jvms(self.0)
    }

    /// The file a host sees at `/opt/faultline/<rel>` (its per-host folder).
    fn host_file(&self, host: &str, rel: &str) -> std::path::PathBuf {
        Path::new(&format!(
            "/var/lib/faultline/cluster-{}/hosts/{host}/opt",
            self.0
        ))
        .join(rel)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(err) = local_cluster::down(self.0) {
            eprintln!("local cluster {} down failed: {err:#}", self.0);
        }
    }
}

/// The PIDs of ZooKeeper servers running in cluster `id`'s namespaces.
fn jvms(id: u8) -> Vec<i32> {
    let mut pids = Vec::new();
    for i in 1..=3 {
        let ns = local_cluster::netns_name(id, i);
        let out = Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .expect("ip netns pids");
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let Ok(pid) = pid.parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            // A JVM, not a shell (the stop script) that names the class in its arguments.
            let java = cmdline
                .split('\0')
                .next()
                .is_some_and(|a| a.ends_with("/java"));
            if java && cmdline.contains(MAIN_CLASS) && alive(pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Not a zombie (a killed JVM may linger as one until its parent reaps it).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn run_args<'a>(cluster: &Cluster, results: &'a Path, seed: &'a str) -> Vec<String> {
    [
        "run",
        "--db",
        "zookeeper",
        "--workload",
        "register",
        "--local-nodes",
        "3",
        "--local-cluster-id",
        &cluster.0.to_string(),
        "--seed",
        seed,
        "--results-dir",
        &results.display().to_string(),
        "--name",
        "zk",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The campaign's partition rows: one follower cut off at a time, 30 clients, 5 s client
/// timeout, 20 values (see workloads/campaigns/zookeeper.toml for why).
const FOLLOWER_PARTITIONS: [&str; 14] = [
    "--nemesis",
    "partition",
    "--partition",
    "follower",
    "--nemesis-interval",
    "4",
    "--register-values",
    "20",
    "--client-timeout-ms",
    "5000",
    "--concurrency",
    "30",
    "--rate",
    "300",
];

fn spawn(args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start faultline run")
}

fn wait(child: &mut Child) -> i32 {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("faultline run still running after {} s", WAIT_MAX.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sync_reads_stay_linearizable_while_a_follower_is_cut_off_in_under_1_5_gb() {
    let cluster = Cluster::up(182);
    let results = tempfile::tempdir().unwrap();
    let mut args = run_args(&cluster, results.path(), "1");
    args.extend(["--read-mode", "sync", "--time-limit", "20"].map(str::to_owned));
    args.extend(FOLLOWER_PARTITIONS.map(str::to_owned));
    let log = results.path().join("controller.log");
    let mut child = spawn(&args, &log);
    // Sample the servers' memory while the run goes on.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let id = cluster.0;
        std::thread::spawn(move || {
            let (mut most_servers, mut most_rss) = (0, 0);
            while !done.load(Ordering::SeqCst) {
                let pids = jvms(id);
                most_servers = most_servers.max(pids.len());
                most_rss = most_rss.max(pids.iter().map(|&p| rss_bytes(p)).sum::<u64>());
                std::thread::sleep(Duration::from_millis(500));
            }
            (most_servers, most_rss)
        })
    };
    let code = wait(&mut child);
    done.store(true, Ordering::SeqCst);
    let (servers, rss) = sampler.join().unwrap();
    let output = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, 0, "sync reads must stay valid: {output}");
    assert_eq!(servers, 3, "three servers ran: {output}");
    eprintln!(
        "three ZooKeeper servers: at most {} MB RSS together",
        rss >> 20
    );
    assert!(
        rss < RSS_MAX_BYTES,
        "three servers used {} MB, more than 1.5 GB",
        rss >> 20
    );
    let dir = run_dir(results.path(), "zk");
    let test = json_file(&dir.join("test.json"));
    assert_eq!(test["read_mode"], "sync");
    let version = test["db_version"].as_str().unwrap_or_default();
    assert!(version.starts_with("ZooKeeper 3.8"), "{test}");
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.contains(version), "the report names {version}");
    assert!(
        dir.join("nodes/n1/zoo.cfg").is_file(),
        "zoo.cfg is downloaded"
    );
    assert_eq!(
        cluster.jvms(),
        Vec::<i32>::new(),
        "no JVM is left: {output}"
    );
}

#[test]
fn a_follower_cut_off_serves_stale_reads_while_writes_and_cas_stay_linearizable() {
    let cluster = Cluster::up(183);
    let results = tempfile::tempdir().unwrap();
    let mut args = run_args(&cluster, results.path(), "2");
    args.extend(["--read-mode", "plain", "--time-limit", "25"].map(str::to_owned));
    args.extend(FOLLOWER_PARTITIONS.map(str::to_owned));
    let log = results.path().join("controller.log");
    let code = wait(&mut spawn(&args, &log));
    let output = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        code, 1,
        "plain reads from a cut-off follower are stale: {output}"
    );
    assert_eq!(
        cluster.jvms(),
        Vec::<i32>::new(),
        "no JVM is left: {output}"
    );

    let dir = run_dir(results.path(), "zk");
    let results_json = json_file(&dir.join("results.json"));
    let invalid: Vec<_> = results_json["checkers"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["valid"] == false)
        .collect();
    assert!(!invalid.is_empty(), "{results_json}");
    // The op the search could not place is a read, and it names the server it came from.
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let reads_with_node = history
        .lines()
        .filter(|l| l.contains("\"f\":\"read\"") && l.contains("\"node\":\"n"))
        .count();
    assert!(reads_with_node > 0, "every read records its server");

    let history = dir.join("history.jsonl");
    let all = faultline(&["check", history.to_str().unwrap(), "--exhaustive"]);
    assert_eq!(all.status.code(), Some(1), "{}", text(&all));
    let writes = faultline(&[
        "check",
        history.to_str().unwrap(),
        "--exhaustive",
        "--only-f",
        "write,cas",
    ]);
    assert_eq!(
        writes.status.code(),
        Some(0),
        "without the reads every key is linearizable: {}",
        text(&writes)
    );
}

#[test]
fn no_jvm_is_left_after_ctrl_c_or_a_failed_run() {
    let cluster = Cluster::up(184);
    let results = tempfile::tempdir().unwrap();

    // Ctrl-C once the servers run and clients work.
    let mut args = run_args(&cluster, results.path(), "3");
    args.extend(["--time-limit", "60"].map(str::to_owned));
    let log = results.path().join("interrupted.log");
    let mut child = spawn(&args, &log);
    let deadline = Instant::now() + WAIT_MAX;
    while cluster.jvms().len() < 3
        || !std::fs::read_to_string(&log)
            .unwrap()
            .contains("workload: ")
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(Instant::now() < deadline, "the servers never all started");
        std::thread::sleep(Duration::from_millis(200));
    }
    let sigint = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .output()
        .unwrap();
    assert!(sigint.status.success(), "{}", text(&sigint));
    let code = wait(&mut child);
    let output = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, 3, "an interrupted run exits 3: {output}");
    assert_eq!(
        cluster.jvms(),
        Vec::<i32>::new(),
        "no JVM after Ctrl-C: {output}"
    );

    // A run whose setup fails on n3 after n1 and n2 started their servers: n3's
    // /opt/faultline/data is a file, so its data folder cannot be made.
    let blocker = cluster.host_file("n3", "data");
    let _ = std::fs::remove_dir_all(&blocker);
    std::fs::write(&blocker, "not a folder").unwrap();
    let mut args = run_args(&cluster, results.path(), "4");
    args.extend(["--time-limit", "10"].map(str::to_owned));
    let log = results.path().join("failed.log");
    let code = wait(&mut spawn(&args, &log));
    std::fs::remove_file(&blocker).unwrap();
    let output = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, 3, "a run whose setup failed exits 3: {output}");
    assert_eq!(
        cluster.jvms(),
        Vec::<i32>::new(),
        "no JVM after a failed run: {output}"
    );
}
