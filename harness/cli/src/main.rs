//! The stock `faultline` binary: the command line with the stock systems and workloads.

fn main() -> std::process::ExitCode {
    faultline::cli::main_with(faultline::Registry::stock())
}
