//! `xjp-gateway prices import`: LiteLLM's price table -> a TOML price file.

use crate::prices::litellm::{self, Import, ImportError, ProviderMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `xjp-gateway prices ...`
#[derive(Debug, clap::Subcommand)]
pub enum PricesCommand {
    /// Convert LiteLLM's model_prices_and_context_window.json to a price file
    /// (`[prices."provider"."model"]`, USD per million tokens as exact decimals).
    Import(ImportArgs),
}

/// Arguments of `prices import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// LiteLLM's `model_prices_and_context_window.json`.
    #[arg(long, value_name = "FILE")]
    pub litellm: PathBuf,
    /// Write the price file here, atomically, instead of to stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Map a LiteLLM provider to ours (repeatable or comma-separated; overrides the defaults
    /// anthropic, openai, gemini, vertex_ai-language-models=gemini, openrouter).
    #[arg(long = "provider-map", value_name = "LITELLM=OURS", value_delimiter = ',')]
    pub provider_map: Vec<String>,
}

/// Reads, converts and writes; returns what was imported.
pub fn import(args: &ImportArgs) -> Result<Import, ImportError> {
    let providers = ProviderMap::with_overrides(&args.provider_map)?;
    let path = args.litellm.display().to_string();
    let json =
        std::fs::read_to_string(&args.litellm).map_err(|source| ImportError::Read { path: path.clone(), source })?;
    let import = litellm::import(&json, &providers, &path)?;
    let toml = import.to_toml();
    match &args.out {
        Some(out) => write_atomically(out, toml.as_bytes())
            .map_err(|source| ImportError::Write { path: out.display().to_string(), source })?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(toml.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|source| ImportError::Write { path: "stdout".into(), source })?;
        }
    }
    Ok(import)
}

/// Runs `prices import`; prints a one-line summary to stderr. Exit code 0 or 1.
pub fn run(args: &ImportArgs) -> i32 {
    match import(args) {
        Ok(import) => {
            eprintln!("prices import: {}", import.summary());
            0
        }
        Err(e) => {
            eprintln!("xjp-gateway: prices import: {e}");
            1
        }
    }
}

/// Writes a sibling temporary file, syncs it, then renames it over `path`: readers see the
/// old file or the new one, never a partial one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| std::io::Error::other("not a file path"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Make the rename durable; not every platform can open a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
