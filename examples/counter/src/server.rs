//! The system under test: a counter service, one counter per key, on one host.
//!
//! Protocol, one line each way over TCP: `add KEY` answers `ok N` (the new count), `read
//! KEY` answers `ok N`; anything else answers `err WHY`. An add is acknowledged only after
//! the counts are on disk (written to a temporary file, synced, renamed), so a killed
//! server restarts with every acknowledged add.
//!
//! The planted bug `lost-update` makes an add read the count, let other requests run, then
//! write what it read plus one: two adds at once count as one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// Longest request line the server reads; a longer one is refused, not buffered.
const MAX_LINE: usize = 256;

pub struct ServeArgs {
    pub listen: String,
    pub data_dir: PathBuf,
    pub pid_file: PathBuf,
    pub lost_update: bool,
}

impl ServeArgs {
    /// `--listen ADDR --data-dir DIR --pid-file FILE [--bug lost-update]`.
    pub fn parse(args: &[String]) -> anyhow::Result<ServeArgs> {
        let mut listen = None;
        let mut data_dir = None;
        let mut pid_file = None;
        let mut lost_update = false;
        let mut words = args.iter();
        while let Some(flag) = words.next() {
            let mut value = || {
                words
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--listen" => listen = Some(value()?),
                "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
                "--pid-file" => pid_file = Some(PathBuf::from(value()?)),
                "--bug" => match value()?.as_str() {
                    "lost-update" => lost_update = true,
                    other => anyhow::bail!("unknown --bug {other:?}; the counter has lost-update"),
                },
                other => anyhow::bail!("unknown argument {other:?}"),
            }
        }
        Ok(ServeArgs {
            listen: listen.ok_or_else(|| anyhow::anyhow!("--listen is required"))?,
            data_dir: data_dir.ok_or_else(|| anyhow::anyhow!("--data-dir is required"))?,
            pid_file: pid_file.ok_or_else(|| anyhow::anyhow!("--pid-file is required"))?,
            lost_update,
        })
    }
}

struct Store {
    counts: Mutex<BTreeMap<String, u64>>,
    file: PathBuf,
    lost_update: bool,
}

impl Store {
    fn open(data_dir: &Path, lost_update: bool) -> anyhow::Result<Store> {
        std::fs::create_dir_all(data_dir)?;
        let file = data_dir.join("counts.json");
        let counts = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => anyhow::bail!("{}: {e}", file.display()),
        };
        Ok(Store {
            counts: Mutex::new(counts),
            file,
            lost_update,
        })
    }

    /// Writes the counts durably: a crash leaves the old file or the new one, never half.
    fn persist(&self, counts: &BTreeMap<String, u64>) -> std::io::Result<()> {
        let tmp = self.file.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(counts).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file)?;
        if let Some(dir) = self.file.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    async fn add(&self, key: &str) -> std::io::Result<u64> {
        let seen = if self.lost_update {
            let seen = self.counts.lock().await.get(key).copied().unwrap_or(0);
            // The bug: the count is read, other adds run, and this one writes over them.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            seen
        } else {
            0
        };
        let mut counts = self.counts.lock().await;
        let now = if self.lost_update {
            seen + 1
        } else {
            counts.get(key).copied().unwrap_or(0) + 1
        };
        counts.insert(key.to_owned(), now);
        self.persist(&counts)?;
        Ok(now)
    }

    async fn read(&self, key: &str) -> u64 {
        self.counts.lock().await.get(key).copied().unwrap_or(0)
    }
}

/// Runs the server until it is killed; writes the PID file once it listens.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let store = Arc::new(Store::open(&args.data_dir, args.lost_update)?);
        let listener = TcpListener::bind(&args.listen).await?;
        std::fs::write(&args.pid_file, format!("{}\n", std::process::id()))?;
        loop {
            let (stream, _) = listener.accept().await?;
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut line = Vec::new();
                    let mut limited = (&mut reader).take(MAX_LINE as u64);
                    match limited.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let answer = match std::str::from_utf8(&line) {
                        Ok(text) if text.ends_with('\n') => answer(&store, text).await,
                        // Too long, or the connection closed mid-line: refuse and hang up.
                        _ => "err a request is one line of at most 256 bytes\n".to_owned(),
                    };
                    let done = !answer.starts_with("ok") && !line.ends_with(b"\n");
                    if write.write_all(answer.as_bytes()).await.is_err() || done {
                        break;
                    }
                }
            });
        }
    })
}

async fn answer(store: &Store, line: &str) -> String {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("add"), Some(key), None) => match store.add(key).await {
            Ok(n) => format!("ok {n}\n"),
            Err(e) => format!("err {}\n", e.to_string().replace('\n', " ")),
        },
        (Some("read"), Some(key), None) => format!("ok {}\n", store.read(key).await),
        _ => "err expected `add KEY` or `read KEY`\n".to_owned(),
    }
}
