//! Remote control over real SSH against a local cluster (needs root): commands, escaping,
//! timeouts, errors, file transfer, per-host isolation, stale master clean-up.
//! One cluster (id 1) serves every check; they run in sequence inside one test so that the
//! cluster is brought up once and always torn down (the guard's drop).

mod common;

use common::ClusterGuard;
use faultline_control::{ctldir, heal, Control, ControlError, HostSpec, Remote, SshConfig};
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn remote_control_over_ssh() {
    let guard = ClusterGuard::up(1, 3);
    let control = guard.connect().await;
    assert_eq!(control.remotes().len(), 3);
    let n1 = control.remote("n1").unwrap().clone();
    let n2 = control.remote("n2").unwrap().clone();

    hostname_and_address_per_host(&control).await;
    hostile_argument_arrives_as_one_literal_word(&n1).await;
    files_are_per_host(&guard, &n1, &n2).await;
    upload_and_download_file_and_folder(&n1).await;
    timeout_kills_the_remote_command(&n1).await;
    errors_name_host_command_status_and_stderr(&n1).await;
    parallel_commands_share_one_master(&n2).await;
    connect_failure_names_the_host(&guard).await;
    host_keys_are_recorded_or_required(&guard, &control).await;
    stale_masters_of_a_dead_controller_are_cleaned(&guard).await;
    heal_undoes_every_fault(&control).await;

    control.close().await;
}

async fn hostname_and_address_per_host(control: &Control) {
    for (i, remote) in control.remotes().iter().enumerate() {
        let out = remote.exec(&["hostname"]).await.unwrap();
        assert_eq!(out.stdout.trim(), format!("n{}", i + 1));
        let addrs = remote
            .exec(&["ip", "-4", "-o", "addr", "show", "eth0"])
            .await
            .unwrap();
        let want = format!("10.77.1.{}/24", 11 + i);
        assert!(addrs.stdout.contains(&want), "{}", addrs.stdout);
        // Hosts reach each other by name through their own /etc/hosts.
        let hosts = remote.exec(&["getent", "hosts", "n3"]).await.unwrap();
        assert!(hosts.stdout.starts_with("10.77.1.13"), "{}", hosts.stdout);
    }
}

async fn hostile_argument_arrives_as_one_literal_word(n1: &Remote) {
    let arg = "it's \"quoted\"; $(touch /tmp/pwned) `touch /tmp/pwned2` $HOME \\ * ~\nline two\n";
    let out = n1.exec(&["printf", "%s", arg]).await.unwrap();
    assert_eq!(out.stdout, arg);
    // Same through an explicit `sh -c` line built with shell_escape, as other crates build them.
    let line = format!("printf %s {}", faultline_control::shell_escape(arg));
    let out = n1.exec(&["sh", "-c", &line]).await.unwrap();
    assert_eq!(out.stdout, arg);
    let pwned = n1
        .exec_status(&["ls", "/tmp/pwned", "/tmp/pwned2"])
        .await
        .unwrap();
    assert_ne!(pwned.status, 0, "a substitution ran on the host");
    // An argument vector arrives as separate words, with empty ones kept.
    let out = n1
        .exec(&["sh", "-c", "printf '[%s]' \"$@\"", "sh", "a b", "", "c"])
        .await
        .unwrap();
    assert_eq!(out.stdout, "[a b][][c]");
}

async fn files_are_per_host(guard: &ClusterGuard, n1: &Remote, n2: &Remote) {
    let write = "echo n1-data > /opt/faultline/iso.txt && echo n1-tmp > /tmp/iso.txt";
    n1.exec(&["sh", "-c", write]).await.unwrap();
    let read = n1
        .exec(&["cat", "/opt/faultline/iso.txt", "/tmp/iso.txt"])
        .await
        .unwrap();
    assert_eq!(read.stdout, "n1-data\nn1-tmp\n");
    for path in ["/opt/faultline/iso.txt", "/tmp/iso.txt"] {
        let seen = n2.exec_status(&["test", "-e", path]).await.unwrap();
        assert_eq!(seen.status, 1, "n2 sees n1's {path}");
    }
    // The files live in n1's directory on the controller, not in the shared root.
    let host_dir = guard.cluster.host_dir("n1");
    let on_disk = std::fs::read_to_string(host_dir.join("opt/iso.txt")).unwrap();
    assert_eq!(on_disk, "n1-data\n");
    assert!(!Path::new("/opt/faultline/iso.txt").exists());
    assert!(
        !Path::new("/tmp/iso.txt").exists()
            || std::fs::read_to_string("/tmp/iso.txt").unwrap() != "n1-tmp\n"
    );
}

async fn upload_and_download_file_and_folder(n1: &Remote) {
    let local = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();

    n1.upload_bytes(&data, "/opt/faultline/up/deep/blob.bin", 0o755)
        .await
        .unwrap();
    let mode = n1
        .exec(&["stat", "-c", "%a %s", "/opt/faultline/up/deep/blob.bin"])
        .await
        .unwrap();
    assert_eq!(mode.stdout.trim(), "755 300000");

    let src = local.path().join("config.toml");
    std::fs::write(&src, "answer = 42\n").unwrap();
    n1.upload(&src, "/opt/faultline/up/config.toml", 0o600)
        .await
        .unwrap();
    let mode = n1
        .exec(&["stat", "-c", "%a", "/opt/faultline/up/config.toml"])
        .await
        .unwrap();
    assert_eq!(mode.stdout.trim(), "600");
    assert!(n1
        .upload(&local.path().join("missing"), "/opt/faultline/x", 0o644)
        .await
        .is_err());

    // A file comes back byte for byte.
    let back = local.path().join("back/blob.bin");
    n1.download("/opt/faultline/up/deep/blob.bin", &back)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // A folder comes back with its tree.
    n1.exec(&["sh", "-c", "mkdir -p /opt/faultline/logs/sub && echo a > /opt/faultline/logs/a.log && echo b > /opt/faultline/logs/sub/b.log"])
        .await
        .unwrap();
    let dest = local.path().join("nodes/n1");
    n1.download("/opt/faultline/logs", &dest).await.unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("a.log")).unwrap(), "a\n");
    assert_eq!(
        std::fs::read_to_string(dest.join("sub/b.log")).unwrap(),
        "b\n"
    );

    let err = n1
        .download("/opt/faultline/nothing-here", &local.path().join("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no such file or folder"), "{err}");
}

async fn timeout_kills_the_remote_command(n1: &Remote) {
    let started = Instant::now();
    let err = n1
        .exec_timeout(&["sleep", "31.4159"], Duration::from_millis(500))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, ControlError::Timeout { host, .. } if host == "n1"),
        "{err}"
    );
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(err.to_string().contains("sleep 31.4159"), "{err}");
    // The host killed it: nothing runs that sleep any more.
    let ps = n1.exec(&["ps", "-eo", "args"]).await.unwrap();
    assert!(
        !ps.stdout.lines().any(|l| l == "sleep 31.4159"),
        "{}",
        ps.stdout
    );
}

async fn errors_name_host_command_status_and_stderr(n1: &Remote) {
    let err = n1.exec(&["ls", "/nonexistent dir"]).await.unwrap_err();
    let msg = err.to_string();
    for part in ["n1", "ls '/nonexistent dir'", "status 2", "No such file"] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    match err {
        ControlError::Failed { status, stderr, .. } => {
            assert_eq!(status, 2);
            assert!(stderr.contains("/nonexistent dir"));
        }
        other => panic!("expected Failed, got {other}"),
    }
    // Statuses SSH itself uses (255) and that the openssh crate rewrites (127) come through.
    for code in [1, 127, 255] {
        let out = n1
            .exec_status(&["sh", "-c", &format!("echo out; echo err >&2; exit {code}")])
            .await
            .unwrap();
        assert_eq!(
            (out.status, out.stdout.as_str(), out.stderr.as_str()),
            (code, "out\n", "err\n")
        );
    }
    let missing = n1.exec_status(&["no-such-program-fl"]).await.unwrap();
    assert_eq!(missing.status, 127);
    assert!(
        missing.stderr.contains("no-such-program-fl"),
        "{}",
        missing.stderr
    );
}

async fn parallel_commands_share_one_master(n2: &Remote) {
    let jobs: Vec<_> = (0..20)
        .map(|i| {
            let r = n2.clone();
            tokio::spawn(async move { r.exec(&["echo", &i.to_string()]).await })
        })
        .collect();
    for (i, job) in jobs.into_iter().enumerate() {
        assert_eq!(job.await.unwrap().unwrap().stdout, format!("{i}\n"));
    }
}

async fn connect_failure_names_the_host(guard: &ClusterGuard) {
    let mut hosts = guard.cluster.hosts.clone();
    // n2's address on a port where nothing listens: refused at once.
    hosts[1].name = "broken".into();
    hosts[1].port = 2;
    let ssh = SshConfig {
        connect_timeout: Duration::from_secs(3),
        ..guard.cluster.ssh.clone()
    };
    let err = match Control::connect(&hosts, &ssh).await {
        Ok(_) => panic!("connect to a closed port succeeded"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, ControlError::Connect { host, .. } if host == "broken"),
        "{err}"
    );
    assert!(err.to_string().contains("10.77.1.12:2"), "{err}");
}

async fn stale_masters_of_a_dead_controller_are_cleaned(guard: &ClusterGuard) {
    // A "controller" that has exited: its PID is dead, its master lives on.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let dead_dir = ctldir::control_root().join(dead_pid.to_string());
    std::fs::create_dir_all(&dead_dir).unwrap();
    std::fs::write(dead_dir.join("owner"), format!("{dead_pid} 1\n")).unwrap();

    let host: &HostSpec = &guard.cluster.hosts[0];
    let mut builder = openssh::SessionBuilder::default();
    builder
        .user("root".into())
        .keyfile(guard.cluster.ssh.private_key.as_ref().unwrap())
        .known_hosts_check(openssh::KnownHosts::Accept)
        .user_known_hosts_file("/dev/null")
        .control_directory(&dead_dir);
    let master_dir = builder.launch_master(&host.address).await.unwrap().keep();
    let socket = master_dir.join("master");
    let master_pid = master_pid(&socket).expect("master answers before clean-up");

    let removed = ctldir::cleanup_stale_masters();
    assert!(removed.contains(&dead_dir), "{removed:?}");
    assert!(!dead_dir.exists());
    let deadline = Instant::now() + Duration::from_secs(3);
    while Path::new(&format!("/proc/{master_pid}")).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !Path::new(&format!("/proc/{master_pid}")).exists(),
        "master {master_pid} still runs"
    );
    // The live controller's own directory (this test process) is left alone.
    assert!(ctldir::process_dir().unwrap().exists());
}

/// The master's PID, from `ssh -O check` ("Master running (pid=N)").
fn master_pid(socket: &Path) -> Option<u32> {
    let out = std::process::Command::new("ssh")
        .args(["-O", "check", "-S"])
        .arg(socket)
        .arg("x")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let start = text.find("pid=")? + 4;
    text[start..].split(')').next()?.parse().ok()
}

/// Can `from` open a TCP connection to `to`'s sshd within a second?
async fn reaches(from: &Remote, to: &str) -> bool {
    let probe = format!("exec 3<>/dev/tcp/{to}/22");
    let out = from
        .exec_status(&["timeout", "1", "bash", "-c", &probe])
        .await
        .unwrap();
    out.status == 0
}

async fn heal_undoes_every_fault(control: &Control) {
    let n1 = control.remote("n1").unwrap();
    let n3 = control.remote("n3").unwrap();
    assert!(reaches(n3, "10.77.1.11").await);

    // Faults as the nemesis adds them: a rule in faultline's chain, a qdisc with its
    // handle, a paused daemon with a PID file, a skewed clock file.
    heal::ensure_chains(n1).await.unwrap();
    heal::ensure_chains(n1).await.unwrap();
    n1.exec(&[
        "iptables",
        "-w",
        "-A",
        heal::CHAIN_INPUT,
        "-s",
        "10.77.1.13",
        "-j",
        "DROP",
    ])
    .await
    .unwrap();
    let jumps = n1.exec(&["iptables", "-w", "-S", "INPUT"]).await.unwrap();
    assert_eq!(
        jumps.stdout.matches(heal::CHAIN_INPUT).count(),
        1,
        "{}",
        jumps.stdout
    );
    assert!(
        !reaches(n3, "10.77.1.11").await,
        "partition did not cut n3 from n1"
    );
    let tbf = [
        "tc",
        "qdisc",
        "add",
        "dev",
        "eth0",
        "root",
        "handle",
        heal::TC_HANDLE,
        "tbf",
        "rate",
        "100mbit",
        "burst",
        "32kbit",
        "latency",
        "400ms",
    ];
    n1.exec(&tbf).await.unwrap();
    let daemon = "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > /opt/faultline/paused.pid";
    n1.exec(&["sh", "-c", daemon]).await.unwrap();
    let pid = n1
        .exec(&["cat", "/opt/faultline/paused.pid"])
        .await
        .unwrap()
        .stdout
        .trim()
        .to_string();
    n1.exec(&["kill", "-STOP", &pid]).await.unwrap();
    let state = n1.exec(&["ps", "-o", "stat=", "-p", &pid]).await.unwrap();
    assert!(state.stdout.starts_with('T'), "{}", state.stdout);
    n1.upload_bytes(b"-1h\n", heal::FAKETIME_FILE, 0o644)
        .await
        .unwrap();

    let reports = heal::heal_all(control).await.unwrap();
    assert_eq!(reports.len(), 3);
    let r1 = &reports[0];
    assert_eq!(r1.host, "n1");
    assert!(
        r1.chains.contains(&(heal::CHAIN_INPUT.to_string(), 1)),
        "{r1:?}"
    );
    assert_eq!(r1.qdiscs, vec!["eth0".to_string()]);
    assert_eq!(r1.resumed, vec![pid.parse::<i32>().unwrap()]);
    assert_eq!(r1.clocks, vec![heal::FAKETIME_FILE.to_string()]);
    assert_eq!(reports[1].summary(), "n2: nothing to heal");

    let rules = n1.exec(&["iptables", "-w", "-S"]).await.unwrap();
    assert!(!rules.stdout.contains("FAULTLINE"), "{}", rules.stdout);
    assert!(
        reaches(n3, "10.77.1.11").await,
        "heal did not end the partition"
    );
    let qdisc = n1
        .exec(&["tc", "qdisc", "show", "dev", "eth0"])
        .await
        .unwrap();
    assert!(!qdisc.stdout.contains(heal::TC_HANDLE), "{}", qdisc.stdout);
    let state = n1.exec(&["ps", "-o", "stat=", "-p", &pid]).await.unwrap();
    assert!(
        !state.stdout.starts_with('T'),
        "still stopped: {}",
        state.stdout
    );
    let clock = n1.exec(&["cat", heal::FAKETIME_FILE]).await.unwrap();
    assert_eq!(clock.stdout, "+0\n");
    n1.exec(&["kill", &pid]).await.unwrap();

    // Healing a healed host is a no-op.
    let again = heal::heal_host(n1).await.unwrap();
    assert_eq!(again.summary(), "n1: nothing to heal");
}

async fn host_keys_are_recorded_or_required(guard: &ClusterGuard, control: &Control) {
    // Default policy: every host's key was accepted and recorded in the control dir.
    // (Debian hashes known_hosts entries, so look them up with ssh-keygen.)
    for host in &guard.cluster.hosts {
        let found = std::process::Command::new("ssh-keygen")
            .args(["-F", &host.address, "-f"])
            .arg(control.known_hosts())
            .output()
            .unwrap();
        let pubkey = guard
            .cluster
            .state_dir()
            .join(format!("host-keys/{}.pub", host.name));
        let pubkey = std::fs::read_to_string(pubkey).unwrap();
        let key_b64 = pubkey.split_whitespace().nth(1).unwrap();
        let entry = String::from_utf8_lossy(&found.stdout);
        assert!(
            entry.contains(key_b64),
            "{}'s key not recorded: {entry}",
            host.name
        );
    }
    // Strict: only hosts already in ~/.ssh/known_hosts are accepted.
    let host = &guard.cluster.hosts[0];
    let known = std::process::Command::new("ssh-keygen")
        .args(["-F", &host.address])
        .output()
        .unwrap()
        .status
        .success();
    let strict = SshConfig {
        strict_host_key_checking: true,
        ..guard.cluster.ssh.clone()
    };
    match Control::connect(std::slice::from_ref(host), &strict).await {
        Ok(c) => {
            assert!(known, "strict mode accepted an unknown host key");
            c.close().await;
        }
        Err(err) => {
            assert!(!known, "strict mode refused a known host: {err}");
            assert!(err.to_string().contains("n1"), "{err}");
        }
    }
}
