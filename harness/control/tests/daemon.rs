//! The daemon helpers over real SSH on a local cluster (id 100; needs root): start detached
//! with env, working dir and log; PID files written by the launcher or the program; signals;
//! stop with TERM then KILL; foreign PIDs left alone; hostile arguments arrive as words.

mod common;

use common::ClusterGuard;
use faultline_control::daemon::{Daemon, DaemonError, PidFileBy, Signal, Start};
use faultline_control::Remote;
use std::time::{Duration, Instant};

const CLUSTER_ID: u8 = 100;

#[tokio::test(flavor = "multi_thread")]
async fn daemons_by_pid_file_over_ssh() {
    let guard = ClusterGuard::up(CLUSTER_ID, 2);
    let control = guard.connect().await;
    let n1 = control.remote("n1").unwrap().clone();
    let n2 = control.remote("n2").unwrap().clone();
    n1.exec(&["mkdir", "-p", "/opt/faultline/run", "/opt/faultline/log"])
        .await
        .unwrap();

    launcher_pid_file_signals_and_stop(&n1).await;
    hostile_words_env_and_working_dir(&n1).await;
    program_pid_file_and_early_exit(&n1).await;
    term_ignored_escalates_to_kill(&n1).await;
    foreign_pid_is_never_touched(&n1).await;
    per_host_pid_files(&n1, &n2).await;

    control.close().await;
}

fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(") ")
        .next()
        .and_then(|s| s.chars().next())
        .unwrap_or('-')
}

async fn launcher_pid_file_signals_and_stop(n1: &Remote) {
    let d = Daemon::new(
        "sleep",
        "/opt/faultline/run/t-sleep.pid",
        "/opt/faultline/log/t-sleep.log",
    );
    d.stop(n1).await.unwrap();
    assert!(!d.is_running(n1).await.unwrap());
    d.start(n1, &Start::new(["sleep", "300"])).await.unwrap();
    let pid = d.pid(n1).await.unwrap().expect("running after start");
    d.signal(n1, Signal::Stop).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(state(pid), 'T', "SIGSTOP freezes it");
    d.signal(n1, Signal::Cont).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(state(pid), 'S', "SIGCONT thaws it");
    // A paused daemon still stops: it gets CONT before TERM.
    d.signal(n1, Signal::Stop).await.unwrap();
    let started = Instant::now();
    d.stop(n1).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "TERM reached the paused process"
    );
    assert!(!d.is_running(n1).await.unwrap());
    assert!(matches!(
        d.signal(n1, Signal::Kill).await,
        Err(DaemonError::NotRunning { .. })
    ));
    let gone = n1.exec_status(&["test", "-e", &d.pid_file]).await.unwrap();
    assert_ne!(gone.status, 0, "stop removes the PID file");
    // Stopping again is fine.
    d.stop(n1).await.unwrap();
}

async fn hostile_words_env_and_working_dir(n1: &Remote) {
    let hostile = "it's \"q\"; $(touch /tmp/pwned) `id` $HOME *";
    let d = Daemon::new(
        "sh",
        "/opt/faultline/run/t-sh.pid",
        "/opt/faultline/log/t-sh.log",
    );
    n1.exec(&["rm", "-f", &d.log_file, "/tmp/pwned"])
        .await
        .unwrap();
    let script = r#"printf '%s|%s|%s\n' "$1" "$FL_TEST" "$(pwd)"; exec sleep 300"#;
    d.start(
        n1,
        &Start::new(["sh", "-c", script, "sh", hostile])
            .env("FL_TEST", hostile)
            .chdir("/opt/faultline/run"),
    )
    .await
    .unwrap();
    // `sh` execs `sleep`: the PID is no longer an `sh`, so it counts as not ours.
    let sleep = Daemon {
        executable: "sleep".into(),
        ..d.clone()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sleep.is_running(n1).await.unwrap() {
        if Instant::now() > deadline {
            let log = n1.exec_status(&["cat", &d.log_file]).await.unwrap();
            let pid = n1.exec_status(&["cat", &d.pid_file]).await.unwrap();
            panic!("sleep never ran: log {log:?} pid {pid:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!d.is_running(n1).await.unwrap());
    let log = n1.exec(&["cat", &d.log_file]).await.unwrap().stdout;
    assert_eq!(log, format!("{hostile}|{hostile}|/opt/faultline/run\n"));
    let pwned = n1.exec_status(&["test", "-e", "/tmp/pwned"]).await.unwrap();
    assert_ne!(pwned.status, 0, "nothing was interpreted by a shell");
    sleep.stop(n1).await.unwrap();
    assert!(!sleep.is_running(n1).await.unwrap());
    let bad = d.start(n1, &Start::new(["true"]).env("A=B", "x")).await;
    assert!(matches!(bad, Err(DaemonError::Invalid(..))), "{bad:?}");
}

async fn program_pid_file_and_early_exit(n1: &Remote) {
    let d = Daemon::new(
        "sh",
        "/opt/faultline/run/t-own.pid",
        "/opt/faultline/log/t-own.log",
    );
    d.stop(n1).await.unwrap();
    // Writes its own PID file after a while, as a server does once it serves.
    let script = r#"sleep 0.5; echo $$ > "$1"; while :; do sleep 1; done"#;
    let started = Instant::now();
    d.start(
        n1,
        &Start::new(["sh", "-c", script, "sh", &d.pid_file]).pid_file_by(PidFileBy::Program),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited for the file"
    );
    assert!(d.is_running(n1).await.unwrap());
    d.stop(n1).await.unwrap();
    assert!(!d.is_running(n1).await.unwrap());

    // A program that exits before writing its file fails at once, quoting its output.
    let started = Instant::now();
    let err = d
        .start(
            n1,
            &Start::new(["sh", "-c", "echo bad flag >&2; exit 2"]).pid_file_by(PidFileBy::Program),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("exited before writing its PID file"),
        "{text}"
    );
    assert!(text.contains("bad flag"), "{text}");
    d.stop(n1).await.unwrap();
}

async fn term_ignored_escalates_to_kill(n1: &Remote) {
    let d = Daemon::new(
        "sh",
        "/opt/faultline/run/t-stubborn.pid",
        "/opt/faultline/log/t-stubborn.log",
    )
    .with_stop_grace(Duration::from_millis(500));
    d.start(
        n1,
        &Start::new(["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]),
    )
    .await
    .unwrap();
    let pid = d.pid(n1).await.unwrap().unwrap();
    let started = Instant::now();
    d.stop(n1).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(matches!(state(pid), '-' | 'Z'), "killed");
}

async fn foreign_pid_is_never_touched(n1: &Remote) {
    // A stale PID file naming a live process that is not ours (this test process).
    let me = std::process::id().to_string();
    let d = Daemon::new(
        "faultline-node",
        "/opt/faultline/run/t-foreign.pid",
        "/opt/faultline/log/t-foreign.log",
    );
    n1.exec(&["sh", "-c", "echo \"$1\" > \"$2\"", "sh", &me, &d.pid_file])
        .await
        .unwrap();
    assert!(!d.is_running(n1).await.unwrap());
    assert!(matches!(
        d.signal(n1, Signal::Stop).await,
        Err(DaemonError::NotRunning { .. })
    ));
    d.stop(n1).await.unwrap();
    assert!(
        matches!(state(std::process::id()), 'S' | 'R'),
        "still running, not stopped"
    );
    for junk in ["", "abc", "12 13"] {
        n1.exec(&[
            "sh",
            "-c",
            "printf %s \"$1\" > \"$2\"",
            "sh",
            junk,
            &d.pid_file,
        ])
        .await
        .unwrap();
        assert!(!d.is_running(n1).await.unwrap(), "{junk:?}");
        d.stop(n1).await.unwrap();
    }
}

async fn per_host_pid_files(n1: &Remote, n2: &Remote) {
    n2.exec(&["mkdir", "-p", "/opt/faultline/run", "/opt/faultline/log"])
        .await
        .unwrap();
    let d = Daemon::new(
        "sleep",
        "/opt/faultline/run/t-host.pid",
        "/opt/faultline/log/t-host.log",
    );
    d.start(n1, &Start::new(["sleep", "300"])).await.unwrap();
    assert!(d.is_running(n1).await.unwrap());
    assert!(
        !d.is_running(n2).await.unwrap(),
        "n2 has its own /opt/faultline"
    );
    d.stop(n2).await.unwrap();
    assert!(
        d.is_running(n1).await.unwrap(),
        "stopping on n2 leaves n1's alone"
    );
    d.stop(n1).await.unwrap();
}
