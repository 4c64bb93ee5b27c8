//! `cargo xtask`: the project's commands (build-plugins, test, run, bench, dist,
//! check-dockerfile, check-openapi, check-sdk-package).

mod bench_e2e;
mod bench_load;
mod bench_many;
mod bench_report;
mod bench_setup;
mod compose;
mod containers;
mod demo;
mod dist;
mod dockerfile;
mod plugins;
mod python;
mod sdk_package;
mod services;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build every plugin crate to a wasm32-wasip2 component in target/plugins (and the
    /// deliberately broken test plugins in target/test-plugins).
    BuildPlugins,
    /// Build plugins, start Postgres/Redis, seed a demo tenant and key, and run the gateway
    /// on 127.0.0.1:8080 in front of the mock upstream.
    Run,
    /// Set everything up from a fresh clone and run every test.
    Test {
        /// Extra arguments for `cargo nextest run` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build everything the container image holds (binaries, plugins, configs, fixtures) into
    /// one directory laid out as in the image; the Dockerfile's build stage runs this.
    Dist {
        /// Cargo profile of the binaries.
        #[arg(long, default_value = "release")]
        profile: String,
        /// Output directory (relative to the workspace).
        #[arg(long, default_value = "target/dist")]
        out: PathBuf,
    },
    /// Parse the Dockerfile and compose.yaml, run the Dockerfile's build steps on the host
    /// with the same commands, and check that what the image copies was built (no container
    /// engine needed).
    CheckDockerfile {
        /// `NAME=VALUE`, as `docker build --build-arg` (CI: `PROFILE=dev`).
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        /// Check the files without running the build steps.
        #[arg(long)]
        no_run: bool,
    },
    /// Validate the served OpenAPI document (host/src/reports/openapi.json) with
    /// openapi-spec-validator (PyPI, in target/pyenv).
    CheckOpenapi,
    /// Check, offline, that the plugin SDK and the crates it depends on can be published to
    /// crates.io as they are (metadata, versioned path dependencies, the WIT in the SDK's
    /// package), and write their `.crate` files to target/package.
    CheckSdkPackage,
    /// Build the plugins and run the benchmarks: plugins (criterion), then money (ledger
    /// throughput, reserve + settle latency; starts Postgres/Redis if absent), ledger (rows/s
    /// sustained by the two-stage writer), redis_cluster
    /// (reserve + settle on a 3-master cluster vs one server), then billing_queries
    /// (transactions pages and summaries over 1M seeded rows).
    /// `bench e2e [--help]`: the end-to-end comparison (direct, billing off, full billing).
    Bench {
        /// Extra arguments for the criterion `plugins` bench (e.g. `--warm-up-time 1 --measurement-time 3`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent").to_path_buf()
}

/// Runs a command in the workspace root, failing with its command line on error.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.current_dir(root()).status().map_err(|e| anyhow::anyhow!("{cmd:?}: {e}"))?;
    anyhow::ensure!(status.success(), "{cmd:?} failed with {status}");
    Ok(())
}

/// A started process, killed when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn main() -> anyhow::Result<()> {
    match Xtask::parse().command {
        Task::BuildPlugins => plugins::build_all(),
        Task::Run => demo::run_demo(),
        Task::Test { args } => {
            services::ensure_running()?;
            plugins::build_all()?;
            python::ensure_sdks()?;
            python::check_openapi()?;
            let nextest = cargo().args(["nextest", "--version"]).output().is_ok_and(|o| o.status.success());
            if nextest {
                run(cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]).args(&args))?;
                run(cargo().args(["test", "--workspace", "--doc"]))
            } else {
                run(cargo().args(["test", "--workspace"]).args(&args))
            }
        }
        Task::Dist { profile, out } => dist::dist(&profile, &out),
        Task::CheckDockerfile { build_args, no_run } => {
            containers::check(&dockerfile::CheckOptions { build_args, no_run })
        }
        Task::CheckOpenapi => python::check_openapi(),
        Task::CheckSdkPackage => sdk_package::check(),
        Task::Bench { args } if args.first().is_some_and(|a| a == "e2e") => bench_e2e::main(&args[1..]),
        Task::Bench { args } => {
            plugins::build_all()?;
            run(cargo().args(["bench", "-p", "xjp-gateway", "--bench", "plugins", "--"]).args(&args))?;
            if Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success()) {
                run(cargo().args(["bench", "-p", "xjp-gateway", "--bench", "plugin_instructions"]))?;
            } else {
                eprintln!("valgrind not found: skipping the instruction counts (apt-get install valgrind)");
            }
            services::ensure_running()?;
            run(cargo().args(["bench", "-p", "xjp-gateway", "--bench", "money"]))?;
            run(cargo().args(["bench", "-p", "xjp-gateway", "--bench", "ledger"]))?;
            run(cargo().args(["bench", "-p", "xjp-gateway", "--bench", "redis_cluster"]))?;
            run(cargo().args(["bench", "-p", "xjp-gateway", "--bench", "billing_queries"]))
        }
    }
}
