//! `xjp-mock-upstream`: serves the scenarios of a file until interrupted.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use xjp_mock_upstream::{MockConfig, MockUpstream, load_scenario_file};

/// A mock LLM provider replaying recorded responses.
#[derive(Debug, Parser)]
#[command(name = "xjp-mock-upstream", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Scenario file (JSON) mapping models to recorded responses; without it every model is 404.
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Ignore every first-byte delay and chunk interval.
    #[arg(long)]
    zero_delay: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xjp-mock-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the scenarios, serves them, and shuts down on a signal.
async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let scenarios = match &args.scenarios {
        Some(path) => load_scenario_file(path)?,
        None => Vec::new(),
    };
    let count = scenarios.len();
    let mock =
        MockUpstream::start(MockConfig { addr: Some(args.listen), zero_delay: args.zero_delay, scenarios }).await?;
    tracing::info!(scenarios = count, zero_delay = args.zero_delay, "mock upstream ready");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", mock.base_url())?;
    stdout.flush()?;
    wait_for_signal().await?;
    mock.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
