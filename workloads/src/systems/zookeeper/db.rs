//! Debian's ZooKeeper on the hosts: installed with apt where missing (never through its
//! service), configured by faultline (`zoo.cfg`, `myid`, log4j), started detached as one
//! JVM per host with a PID file and stopped by it; the leader from the `srvr` word.

use anyhow::Context;
use async_trait::async_trait;
use faultline_control::daemon::{Daemon, PidFileBy, Signal, Start};
use faultline_control::Remote;
use faultline_core::db::{Db, DbContext, Kill, LogFiles, Pause, Primaries};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CLIENT_PORT: u16 = 2181;
const PEER_PORT: u16 = 2888;
const ELECTION_PORT: u16 = 3888;

/// Debian's packages: the server (with its jars under /usr/share/java) and a Java runtime.
pub const DEBIAN_PACKAGES: [&str; 2] = ["zookeeper", "default-jre-headless"];
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const JAVA: &str = "/usr/bin/java";
/// The jar's manifest names its dependencies but no slf4j binding: without these two the
/// server logs nothing.
const LOG_JARS: [&str; 2] = [
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
/// What the server's PID runs.
const EXECUTABLE: &str = "java";

const CONF_DIR: &str = "/opt/faultline/zookeeper/conf";
const ZOO_CFG: &str = "/opt/faultline/zookeeper/conf/zoo.cfg";
const LOG4J: &str = "/opt/faultline/zookeeper/conf/log4j.properties";
const DATA_DIR: &str = "/opt/faultline/data/zookeeper";
const LOG_DIR: &str = "/opt/faultline/log";
const LOG_FILE: &str = "/opt/faultline/log/zookeeper.log";
const STDOUT_FILE: &str = "/opt/faultline/log/zookeeper.stdout";
const PID_FILE: &str = "/opt/faultline/run/zookeeper.pid";

/// One tick of ZooKeeper's clock. Short, so that a cut-off follower notices within
/// `SYNC_LIMIT_TICKS` ticks and elections end in seconds, as Jepsen's tests also shorten it.
pub const TICK_MS: u64 = 250;
/// Ticks a follower may take to connect and sync to a leader.
const INIT_LIMIT_TICKS: u64 = 20;
/// Ticks a follower may go without hearing from the leader before it drops out: the window
/// in which a cut-off follower still serves reads from what it has.
pub const SYNC_LIMIT_TICKS: u64 = 12;
/// The JVM's heap: three servers must fit in 1.5 GB together (each measures ~75 MB RSS).
const HEAP_MB: u64 = 128;

/// How long the apt install of a missing server may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
/// The JVM starts slowly, more so on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Installs Debian's ZooKeeper and a Java runtime when missing, with Debian's services kept
/// from starting (a policy-rc.d of our own, removed again): faultline starts the server.
const INSTALL_SCRIPT: &str = r#"[ -f "$1" ] && [ -x "$2" ] && exit 0
shift 2
made=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made=1
fi
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null; }
apt_install "$@" || { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt_install "$@"; }
rc=$?
[ -n "$made" ] && rm -f /usr/sbin/policy-rc.d
exit $rc"#;

/// ZooKeeper on every host of a run.
pub struct ZooKeeperDb;

/// The JVM writes no PID file of its own: the launcher records it.
fn daemon() -> Daemon {
    Daemon::new(EXECUTABLE, PID_FILE, STDOUT_FILE)
}

/// `zoo.cfg` for host `me` (1-based `myid`) of `remotes`.
pub fn zoo_cfg(remotes: &[(String, String)], me: &str) -> String {
    let mut cfg = format!(
        "# Written by faultline for {me}.\n\
         tickTime={TICK_MS}\n\
         initLimit={INIT_LIMIT_TICKS}\n\
         syncLimit={SYNC_LIMIT_TICKS}\n\
         dataDir={DATA_DIR}\n\
         clientPort={CLIENT_PORT}\n\
         clientPortAddress={}\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist=srvr,mntr,ruok,stat,conf\n\
         autopurge.purgeInterval=0\n",
        remotes
            .iter()
            .find(|(name, _)| name == me)
            .map_or("0.0.0.0", |(_, address)| address.as_str()),
    );
    for (i, (_, address)) in remotes.iter().enumerate() {
        cfg.push_str(&format!(
            "server.{}={address}:{PEER_PORT}:{ELECTION_PORT}\n",
            i + 1
        ));
    }
    cfg
}

const LOG4J_PROPERTIES: &str = "log4j.rootLogger=INFO, FILE\n\
log4j.appender.FILE=org.apache.log4j.FileAppender\n\
log4j.appender.FILE.File=/opt/faultline/log/zookeeper.log\n\
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n\
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n\n";

impl ZooKeeperDb {
    fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = Vec::new();
        let classpath = [CONF_DIR, ZOOKEEPER_JAR]
            .into_iter()
            .chain(LOG_JARS)
            .collect::<Vec<_>>()
            .join(":");
        argv.extend(
            [
                JAVA,
                &format!("-Xmx{HEAP_MB}m"),
                "-Xms32m",
                // One GC thread and no JIT compiler threads beyond the client compiler keep
                // three JVMs small on a 2-core machine.
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                &classpath,
                &format!("-Dzookeeper.log.dir={LOG_DIR}"),
                "-Dzookeeper.admin.enableServer=false",
                MAIN_CLASS,
                ZOO_CFG,
            ]
            .map(str::to_owned),
        );
        argv
    }

    /// Starts the JVM with the run's environment (libfaketime's, for clock faults).
    async fn start_server(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        let start = Start::new(self.argv())
            .envs(cx.env.iter().cloned())
            .pid_file_by(PidFileBy::Launcher);
        daemon()
            .start(node, &start)
            .await
            .with_context(|| format!("starting ZooKeeper on {}", node.name()))
    }

    async fn stop_server(&self, node: &Remote) -> anyhow::Result<()> {
        daemon()
            .stop(node)
            .await
            .with_context(|| format!("stopping ZooKeeper on {}", node.name()))
    }

    async fn signal(&self, node: &Remote, signal: Signal) -> anyhow::Result<()> {
        daemon()
            .signal(node, signal)
            .await
            .with_context(|| format!("sending {signal} to ZooKeeper on {}", node.name()))
    }

    async fn install(&self, node: &Remote) -> anyhow::Result<()> {
        let mut argv = vec!["sh", "-c", INSTALL_SCRIPT, "sh", ZOOKEEPER_JAR, JAVA];
        argv.extend(DEBIAN_PACKAGES);
        node.exec_timeout(&argv, INSTALL_TIMEOUT)
            .await
            .with_context(|| {
                format!(
                    "installing {} on {} with apt",
                    DEBIAN_PACKAGES.join(" "),
                    node.name()
                )
            })?;
        Ok(())
    }

    /// Whether each host serves, and as what, by `srvr`.
    async fn modes(cx: &DbContext) -> Vec<(String, Result<ServerStatus, String>)> {
        let mut out = Vec::new();
        for remote in &cx.remotes {
            let status = srvr(remote.address()).await;
            out.push((remote.name().to_owned(), status));
        }
        out
    }
}

/// What `srvr` says about one server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStatus {
    /// `leader`, `follower`, `standalone`, …
    pub mode: String,
    pub version: String,
}

/// Parses a `srvr` answer ("Zookeeper version: …", "Mode: follower", …).
pub fn parse_srvr(text: &str) -> Option<ServerStatus> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    Some(ServerStatus {
        mode: field("Mode:")?,
        version: field("Zookeeper version:").unwrap_or_default(),
    })
}

/// Sends a four-letter word to a server's client port and returns its answer.
pub async fn four_letter_word(address: &str, word: &str) -> Result<String, String> {
    let addr = format!("{address}:{CLIENT_PORT}");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        stream
            .write_all(word.as_bytes())
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let mut answer = Vec::new();
        // A server answers and closes; a bounded read keeps a confused peer from filling
        // memory.
        (&mut stream)
            .take(64 * 1024)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{addr} did not answer {word}"))?
}

async fn srvr(address: &str) -> Result<ServerStatus, String> {
    let text = four_letter_word(address, "srvr").await?;
    parse_srvr(&text).ok_or_else(|| format!("{address}: srvr answered {:?}", text.trim()))
}

/// One leader, and every other host a follower.
fn ready(modes: &[(String, Result<ServerStatus, String>)]) -> Result<(), String> {
    let mut leaders = 0;
    for (name, status) in modes {
        match status {
            Ok(s) if s.mode == "leader" => leaders += 1,
            Ok(s) if s.mode == "follower" => {}
            Ok(s) => return Err(format!("{name} is {}", s.mode)),
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    match leaders {
        1 => Ok(()),
        n => Err(format!("{n} servers say they lead")),
    }
}

#[async_trait]
impl Db for ZooKeeperDb {
    fn name(&self) -> &str {
        "zookeeper"
    }

    async fn setup(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        // A crashed earlier run may have left its server running.
        self.stop_server(node).await?;
        self.install(node).await?;
        node.exec(&["rm", "-rf", DATA_DIR, LOG_FILE, STDOUT_FILE, CONF_DIR])
            .await?;
        node.exec(&[
            "mkdir",
            "-p",
            DATA_DIR,
            CONF_DIR,
            LOG_DIR,
            "/opt/faultline/run",
        ])
        .await?;
        let hosts: Vec<(String, String)> = cx
            .remotes
            .iter()
            .map(|r| (r.name().to_owned(), r.address().to_owned()))
            .collect();
        let myid = cx
            .remotes
            .iter()
            .position(|r| r.name() == node.name())
            .context("this host is not one of the run's hosts")?
            + 1;
        node.upload_bytes(zoo_cfg(&hosts, node.name()).as_bytes(), ZOO_CFG, 0o644)
            .await?;
        node.upload_bytes(LOG4J_PROPERTIES.as_bytes(), LOG4J, 0o644)
            .await?;
        node.upload_bytes(
            format!("{myid}\n").as_bytes(),
            &format!("{DATA_DIR}/myid"),
            0o644,
        )
        .await?;
        self.start_server(cx, node).await
    }

    async fn await_ready(&self, cx: &DbContext) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let modes = Self::modes(cx).await;
            let why = match ready(&modes) {
                Ok(()) => {
                    let version = modes
                        .iter()
                        .find_map(|(_, s)| s.as_ref().ok().map(|s| s.version.clone()))
                        .unwrap_or_default();
                    tracing::info!("ZooKeeper {version} serves on every host");
                    // The report names the version the servers themselves report.
                    faultline_core::store::add_test_field(
                        &cx.run_dir,
                        "db_version",
                        serde_json::json!(format!("ZooKeeper {version}")),
                    )?;
                    return Ok(());
                }
                Err(why) => why,
            };
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "ZooKeeper was not ready within {} s: {why}",
                    READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn teardown(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.stop_server(node).await?;
        node.exec(&["rm", "-rf", DATA_DIR]).await?;
        Ok(())
    }

    fn kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }
    fn pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }
    fn primaries(&self) -> Option<&dyn Primaries> {
        Some(self)
    }
    fn log_files(&self) -> Option<&dyn LogFiles> {
        Some(self)
    }
}

#[async_trait]
impl Kill for ZooKeeperDb {
    async fn kill(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Kill).await
    }
    async fn start(&self, cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        // Whatever is left of the old JVM goes first: two servers never share a data dir.
        self.stop_server(node).await?;
        self.start_server(cx, node).await
    }
}

#[async_trait]
impl Pause for ZooKeeperDb {
    async fn pause(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Stop).await
    }
    async fn resume(&self, _cx: &DbContext, node: &Remote) -> anyhow::Result<()> {
        self.signal(node, Signal::Cont).await
    }
}

#[async_trait]
impl Primaries for ZooKeeperDb {
    async fn primaries(&self, cx: &DbContext) -> anyhow::Result<Vec<String>> {
        Ok(Self::modes(cx)
            .await
            .into_iter()
            .filter(|(_, s)| s.as_ref().is_ok_and(|s| s.mode == "leader"))
            .map(|(name, _)| name)
            .collect())
    }
}

impl LogFiles for ZooKeeperDb {
    fn log_files(&self, _node: &Remote) -> Vec<String> {
        vec![LOG_FILE.into(), STDOUT_FILE.into(), ZOO_CFG.into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoo_cfg_lists_every_server_and_binds_the_clients_port_to_its_host() {
        let hosts = [
            ("n1".to_owned(), "10.0.0.11".to_owned()),
            ("n2".to_owned(), "10.0.0.12".to_owned()),
            ("n3".to_owned(), "10.0.0.13".to_owned()),
        ];
        let cfg = zoo_cfg(&hosts, "n2");
        assert!(cfg.contains("clientPortAddress=10.0.0.12\n"), "{cfg}");
        assert!(cfg.contains("server.1=10.0.0.11:2888:3888\n"), "{cfg}");
        assert!(cfg.contains("server.3=10.0.0.13:2888:3888\n"), "{cfg}");
        assert!(cfg.contains("admin.enableServer=false\n"), "{cfg}");
        assert!(cfg.contains("dataDir=/opt/faultline/data/zookeeper\n"));
        assert!(cfg.contains("4lw.commands.whitelist=srvr"));
    }

    #[test]
    fn srvr_answers_give_mode_and_version_and_readiness_needs_one_leader() {
        let text = "Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC\n\
                    Latency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        let status = parse_srvr(text).unwrap();
        assert_eq!(status.mode, "follower");
        assert!(status.version.starts_with("3.8.0"));
        assert_eq!(
            parse_srvr("This ZooKeeper instance is not currently serving"),
            None
        );
        let s = |mode: &str| {
            Ok(ServerStatus {
                mode: mode.into(),
                version: String::new(),
            })
        };
        let ok = [("n1".into(), s("follower")), ("n2".into(), s("leader"))];
        assert!(ready(&ok).is_ok());
        let two = [("n1".into(), s("leader")), ("n2".into(), s("leader"))];
        assert!(ready(&two).unwrap_err().contains("2 servers"));
        let down = [
            ("n1".into(), s("leader")),
            ("n2".into(), Err("refused".into())),
        ];
        assert!(ready(&down).unwrap_err().contains("n2"));
    }
}
