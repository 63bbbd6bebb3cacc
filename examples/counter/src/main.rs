//! `faultline-counter`: faultline with one more system, as a user would write it.
//!
//! `faultline-counter run --db counter --workload counter --nemesis kill,pause` tests the
//! counter service with every verb of `faultline` (`run`, `campaign`, `report`, `check`,
//! `serve`, `cluster`, `systems`). The same binary, uploaded to the hosts, is the counter
//! server: `faultline-counter serve …` (what the db starts).

mod server;
mod system;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return match server::ServeArgs::parse(&args[2..]).and_then(server::serve) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("faultline-counter serve: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    faultline::cli::main_with(
        faultline::Registry::stock()
            .with(system::CounterSystem)
            .with_workload(system::CounterWorkload),
    )
}
