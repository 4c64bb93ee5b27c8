//! `xjp-gateway config check FILE`: everything `serve` checks in a config before it
//! connects to anything — syntax, every key, the price files, TLS files — without starting.
//! Exit code 0 when the gateway would start with it, 1 otherwise. What depends on the
//! machine it runs on (plugin files, environment variables) is a warning, an error with
//! `--strict`.

use crate::catalog::Catalog;
use crate::config::Config;
use std::path::{Path, PathBuf};

/// Arguments of `config check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The config file to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Treat warnings (missing plugin files, unset environment variables) as errors.
    #[arg(long)]
    pub strict: bool,
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// A one-line description of a config that loaded.
    pub summary: Option<String>,
}

fn readable(path: &Path) -> bool {
    std::fs::File::open(path).is_ok()
}

fn machine_checks(config: &Config, f: &mut Findings) {
    for var in [&config.database.url_env, &config.redis.url_env] {
        if std::env::var_os(var).is_none() {
            f.warnings.push(format!("environment variable {var} is not set"));
        }
    }
    for (name, p) in &config.providers {
        let file = config.plugins.dir.join(format!("{}.wasm", p.plugin));
        if !file.is_file() {
            f.warnings.push(format!("providers.{name}.plugin: {} does not exist", file.display()));
        }
        if let Some(var) = p.credential_env.as_ref().filter(|v| std::env::var_os(v).is_none()) {
            f.warnings.push(format!("providers.{name}.credential_env: {var} is not set"));
        }
    }
}

/// Checks `args.file`.
pub fn check(args: &CheckArgs) -> Findings {
    let mut f = Findings::default();
    let config = match crate::config::load_file(&args.file) {
        Ok(c) => c,
        Err(e) => {
            f.errors.push(e.to_string());
            return f;
        }
    };
    if let Err(e) = crate::catalog::prices::load_files(&config, &Catalog::default()) {
        f.errors.push(format!("catalog: {e}"));
    }
    let r = &config.redis;
    for (key, file) in
        [("ca_file", &r.ca_file), ("client_cert_file", &r.client_cert_file), ("client_key_file", &r.client_key_file)]
    {
        if let Some(path) = file.as_ref().filter(|p| !readable(p)) {
            f.errors.push(format!("redis.{key}: cannot read {}", path.display()));
        }
    }
    machine_checks(&config, &mut f);
    if args.strict {
        f.errors.append(&mut f.warnings);
    }
    f.summary = Some(format!(
        "{} providers, {} models, listen {}, state in {}",
        config.providers.len(),
        config.models.len(),
        config.server.listen,
        config.server.state_dir.as_deref().unwrap_or(Path::new(".")).display()
    ));
    f
}

/// Runs the check and prints it; exit code 0 when usable, 1 otherwise.
pub fn run(args: &CheckArgs) -> i32 {
    let f = check(args);
    for w in &f.warnings {
        eprintln!("warning: {w}");
    }
    for e in &f.errors {
        eprintln!("error: {e}");
    }
    if f.errors.is_empty() {
        println!("{}: ok ({})", args.file.display(), f.summary.as_deref().unwrap_or(""));
        0
    } else {
        println!("{}: invalid", args.file.display());
        1
    }
}
