//! The controller's log of one run: `faultline.log` in the run folder, plus stderr.
//!
//! Each run gets its own tracing dispatcher, attached to the run's futures (and the tasks
//! they spawn through `spawn`), so runs in one process (tests, `--test-count`) never write
//! into each other's logs and no global subscriber is needed.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use tracing::instrument::WithSubscriber;
use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;

/// A dispatcher writing INFO and above to `path`, and `stderr_level` and above to stderr.
pub fn dispatch(path: &Path, stderr_level: Option<tracing::Level>) -> std::io::Result<Dispatch> {
    let file = Arc::new(File::create(path)?);
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(file.with_max_level(tracing::Level::INFO));
    let stderr_layer = stderr_level.map(|level| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr.with_max_level(level))
    });
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(file_layer)
        .with(stderr_layer);
    Ok(Dispatch::new(subscriber))
}

/// `tokio::spawn` that keeps the caller's dispatcher, so the task logs into the run's log.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.with_current_subscriber())
}
