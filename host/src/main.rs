//! The `xjp-gateway` binary: a thin shell over the library.

use clap::Parser;

/// mimalloc: the proxy allocates and frees many small buffers per request across threads, where
/// glibc's malloc spent a fifth of the gateway's CPU at c=64 (`cargo xtask bench e2e` profile).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for the whole process (`prctl(PR_SET_THP_DISABLE)`) unless
/// `MIMALLOC_ALLOW_THP=1`: on a host whose THP setting is `always`, the allocator's arenas and
/// the plugins' memories would grow RSS in 2 MiB pages (README, "Benchmarks"). The `no_thp`
/// build of mimalloc covers hosts in `madvise` mode only.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none_or(|v| v != "1") {
        // SAFETY: integer arguments only; it sets a flag of this process.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Logging is set up by the command (`serve` from its config's `[log]`, `ops::telemetry`).
fn main() {
    without_huge_pages();
    let cli = xjp_gateway::cli::Cli::parse();
    std::process::exit(xjp_gateway::cli::run(cli));
}
