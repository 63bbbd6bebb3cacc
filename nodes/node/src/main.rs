//! `faultline-node`: the systems under test that faultline uploads to each host, one
//! subcommand per system (`raft`, `paxos`). See `nodes/API.md` for the command line and the
//! client API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod common;
mod paxos;
mod raft;

#[derive(Parser)]
#[command(
    name = "faultline-node",
    version,
    about = "faultline's systems under test"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Raft replicated key-value store (linearizable read, write, cas).
    Raft(common::NodeArgs),
    /// CASPaxos register store, one Paxos instance per key (same client API as raft).
    Paxos(common::NodeArgs),
    /// Redis-style lock server speaking RESP (see nodes/LOCKS.md).
    RedisLock(faultline_redis_lock::node::Args),
    /// ZooKeeper-style lock service on Raft: sessions, fencing tokens (see nodes/LOCKS.md).
    ZkLock(faultline_zk_lock::node::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Raft(args) => raft::run(args),
        Command::Paxos(args) => paxos::run(args),
        Command::RedisLock(args) => faultline_redis_lock::node::run(args),
        Command::ZkLock(args) => faultline_zk_lock::node::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("faultline-node: error: {err:#}");
            tracing::error!("exiting: {err:#}");
            ExitCode::from(2)
        }
    }
}
