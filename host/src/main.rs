//! The `xjp-gateway` binary: a thin shell over the library.

use clap::Parser;

/// Logging is set up by the command (`serve` from its config's `[log]`, `ops::telemetry`).
fn main() {
    let cli = xjp_gateway::cli::Cli::parse();
    std::process::exit(xjp_gateway::cli::run(cli));
}
