//! The command line: `xjp-gateway plugin check ...` (and, with the proxy, `serve`).

pub mod plugin_check;

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
    /// Work with billing plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// `xjp-gateway plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a plugin and show the usage it extracts from a recorded response.
    Check(plugin_check::CheckArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Plugin(PluginCommand::Check(args)) => plugin_check::run(&args),
    }
}
