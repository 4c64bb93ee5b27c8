//! The `xjp-gateway` binary: a thin shell over the library.

use clap::Parser;

/// mimalloc: the proxy allocates and frees many small buffers per request across threads, where
/// glibc's malloc spent a fifth of the gateway's CPU at c=64 (`cargo xtask bench e2e` profile).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logging is set up by the command (`serve` from its config's `[log]`, `ops::telemetry`).
fn main() {
    let cli = xjp_gateway::cli::Cli::parse();
    std::process::exit(xjp_gateway::cli::run(cli));
}
