//! `faultline serve [--bind ADDR] [RESULTS_DIR]`: serves the results index and run folders
//! over HTTP, on loopback unless told otherwise.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// The results folder to serve.
    #[arg(default_value = "results")]
    pub results_dir: PathBuf,
    /// Address to listen on. Binding beyond loopback shows every run to the network.
    #[arg(long, default_value = faultline_report::serve::DEFAULT_BIND)]
    pub bind: String,
}

/// Serves until Ctrl-C; returns the process exit code.
pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let addr = listener.local_addr()?;
        faultline_report::update_index(&args.results_dir)?;
        eprintln!(
            "faultline: serving {} at http://{addr}/ (Ctrl-C to stop)",
            args.results_dir.display()
        );
        tokio::select! {
            served = faultline_report::serve::serve(listener, &args.results_dir) => served?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(0)
    })
}
