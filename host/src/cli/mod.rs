//! The command line: `serve`, `seed-demo`, `migrate`, `config check`, `plugin check`,
//! `plugin new`, `prices import`.

pub mod config_check;
pub mod migrate;
pub mod plugin_check;
pub mod plugin_conformance;
pub mod plugin_new;
pub mod prices;
pub mod seed;
pub mod serve;

use clap::{Parser, Subcommand};

/// xjp-gateway: an LLM billing gateway with WebAssembly billing plugins.
#[derive(Debug, Parser)]
#[command(name = "xjp-gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Create the demo tenant and API key (idempotent).
    SeedDemo(seed::SeedArgs),
    /// Apply the database migrations (`--dry-run`: show the pending ones).
    Migrate(migrate::MigrateArgs),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with billing plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Import price tables (LiteLLM) into price files.
    #[command(subcommand)]
    Prices(prices::PricesCommand),
}

/// `xjp-gateway plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a plugin and show the usage it extracts from a recorded response, or run the
    /// conformance suite over a directory of cases (`--cases DIR`).
    Check(plugin_check::CheckArgs),
    /// Write a ready plugin crate for an OpenAI-format provider.
    New(plugin_new::NewArgs),
}

/// `xjp-gateway config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file without starting (exit code 0 when the gateway would start).
    Check(config_check::CheckArgs),
}

/// Runs a parsed command line; returns the process exit code. `serve` sets up logging from
/// its config; the other commands log warnings as text to stderr (`RUST_LOG` overrides).
pub fn run(cli: Cli) -> i32 {
    let async_result = |f: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
        match runtime.map_err(|e| e.to_string()).and_then(|rt| rt.block_on(f)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("xjp-gateway: {e}");
                1
            }
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        crate::ops::telemetry::init_plain();
    }
    match cli.command {
        Command::Serve(args) => async_result(Box::pin(async move { serve::run(&args).await })),
        Command::SeedDemo(args) => async_result(Box::pin(async move { seed::run(&args).await })),
        Command::Migrate(args) => async_result(Box::pin(async move { migrate::run(&args).await })),
        Command::Config(ConfigCommand::Check(args)) => config_check::run(&args),
        Command::Plugin(PluginCommand::Check(args)) => plugin_check::run(&args),
        Command::Plugin(PluginCommand::New(args)) => plugin_new::run(&args),
        Command::Prices(prices::PricesCommand::Import(args)) => prices::run(&args),
    }
}
