//! `xjp-gateway plugin check`: what an operator runs before dropping a plugin in. With a
//! response file, the usage the plugin reads from it; with `--cases DIR`, the conformance
//! suite ([`super::plugin_conformance`]).

use crate::plugins::bindings::ApiFormat;
use crate::plugins::cache::ComponentCache;
use crate::plugins::convert::{info_json, plugin_error_json, usage_json};
use crate::plugins::{Plugin, PluginCallError, PluginEngine, PluginStream, RuntimeLimits};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Arguments of `plugin check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The plugin component (`.wasm`).
    #[arg(long, value_name = "FILE.wasm")]
    pub plugin: PathBuf,
    /// The API format of the recorded response.
    #[arg(long, required_unless_present = "cases", value_parser = clap::builder::PossibleValuesParser::new(["openai-chat", "anthropic-messages", "gemini-generate"]))]
    pub api: Option<String>,
    /// Treat the file as raw stream bytes (SSE or a JSON-array stream).
    #[arg(long)]
    pub stream: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// HTTP status the response came with.
    #[arg(long, default_value_t = 200)]
    pub status: u16,
    /// Bytes per `push` when replaying a stream.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_size: u64,
    /// The recorded response body.
    #[arg(value_name = "RESPONSE_FILE", required_unless_present = "cases", conflicts_with = "cases")]
    pub response: Option<PathBuf>,
    /// Run the conformance suite over every `<case>.case.json` in DIR instead.
    #[arg(long, value_name = "DIR")]
    pub cases: Option<PathBuf>,
    /// Seed of the suite's random stream splits (default: random, printed).
    #[arg(long, requires = "cases")]
    pub seed: Option<u64>,
    /// Random splittings per stream case.
    #[arg(long, default_value_t = 16, requires = "cases")]
    pub splits: usize,
    /// The suite's call deadline, as `[plugins] call_timeout_ms` of the gateway it is for.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..), requires = "cases")]
    pub call_timeout_ms: u64,
    /// The suite's memory cap per instance, as `[plugins] memory_mb`.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..4096), requires = "cases")]
    pub memory_mb: u64,
}

/// The result of a check, before printing.
#[derive(Debug)]
pub struct CheckReport {
    pub plugin: Option<Value>,
    pub usage: Option<Value>,
    pub stream: Option<Value>,
    pub error: Option<Value>,
}

impl CheckReport {
    /// The `--json` object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "plugin": self.plugin, "usage": self.usage, "error": self.error });
        if let Some(s) = &self.stream {
            v["stream"] = s.clone();
        }
        v
    }
}

fn error(kind: &str, message: impl std::fmt::Display) -> Value {
    json!({ "kind": kind, "message": message.to_string() })
}

fn call_error(e: &PluginCallError) -> Value {
    match e {
        PluginCallError::Plugin(p) => plugin_error_json(p),
        other => error(other.class(), other),
    }
}

/// Loads the plugin and extracts usage from the response file.
pub fn check(args: &CheckArgs) -> CheckReport {
    let mut report = CheckReport { plugin: None, usage: None, stream: None, error: None };
    let format: ApiFormat = match args.api.as_deref().unwrap_or_default().parse() {
        Ok(f) => f,
        Err(e) => {
            report.error = Some(error("usage", e));
            return report;
        }
    };
    let response = args.response.clone().unwrap_or_default();
    let body = match std::fs::read(&response) {
        Ok(b) => b,
        Err(e) => {
            report.error = Some(error("io", format!("cannot read {}: {e}", response.display())));
            return report;
        }
    };
    let bytes = match std::fs::read(&args.plugin) {
        Ok(b) => b,
        Err(e) => {
            report.error = Some(error("io", format!("cannot read {}: {e}", args.plugin.display())));
            return report;
        }
    };
    let plugin = match PluginEngine::new(RuntimeLimits::default())
        .map_err(|e| error("engine", format!("{e:#}")))
        .and_then(|engine| Plugin::load(&engine, &ComponentCache::new(None), &bytes).map_err(|e| error("load", e)))
    {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    report.plugin = Some(info_json(plugin.info()));
    if !plugin.supports(format) {
        report.error = Some(error("unsupported_format", format!("plugin does not list {format} among its formats")));
        return report;
    }
    if args.stream {
        let chunk = usize::try_from(args.chunk_size).unwrap_or(usize::MAX);
        let outcome = PluginStream::open(plugin, format).and_then(|mut s| {
            body.chunks(chunk).try_for_each(|c| s.push(c))?;
            s.finish()
        });
        match outcome {
            Ok(o) => {
                report.usage = o.usage.as_ref().map(usage_json);
                report.stream = Some(json!({
                    "complete": o.complete,
                    "error": o.error.map(|e| json!({ "code": e.code, "message": e.message })),
                    "output_text_bytes": o.output_text_bytes,
                }));
            }
            Err(e) => report.error = Some(call_error(&e)),
        }
    } else {
        match plugin.extract_response(format, args.status, &body) {
            Ok(u) => report.usage = u.as_ref().map(usage_json),
            Err(e) => report.error = Some(call_error(&e)),
        }
    }
    report
}

/// Runs the check and prints it; exit code 0 when the plugin answered (with `--cases`:
/// when every check passed), 1 otherwise.
pub fn run(args: &CheckArgs) -> i32 {
    if let Some(dir) = &args.cases {
        let seed = args.seed.unwrap_or_else(rand::random);
        let limits = RuntimeLimits {
            call_timeout_ms: args.call_timeout_ms,
            memory_bytes: usize::try_from(args.memory_mb << 20).unwrap_or(usize::MAX),
            ..RuntimeLimits::default()
        };
        let options =
            super::plugin_conformance::SuiteOptions { seed, splits: args.splits, limits, ..Default::default() };
        return match super::plugin_conformance::run_suite(&args.plugin, dir, options) {
            Ok((info, rows)) => super::plugin_conformance::print(&info, &rows, seed, args.json),
            Err(e) => {
                eprintln!("xjp-gateway: {e}");
                1
            }
        };
    }
    let report = check(args);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print_text(&report);
    }
    i32::from(report.error.is_some())
}

fn print_text(r: &CheckReport) {
    if let Some(p) = &r.plugin {
        println!(
            "plugin   {} {} ({})",
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("?"),
            p["formats"]
        );
    }
    match &r.usage {
        Some(u) => {
            println!(
                "input    {} tokens: uncached {}, cache read {}, cache write 5m {}, cache write 1h {}",
                u["input_tokens"],
                u["input_uncached_tokens"],
                u["cache_read_tokens"],
                u["cache_write_tokens"],
                u["cache_write_1h_tokens"]
            );
            println!("output   {} tokens (reasoning {})", u["output_tokens"], u["reasoning_tokens"]);
            println!("fees     {}", u["fees"]);
            if let Some(c) = u["provider_cost_usd"].as_str() {
                println!("provider cost  ${c}");
            }
            if let Some(m) = u["served_model"].as_str() {
                println!("served model   {m}");
            }
        }
        None if r.error.is_none() => println!("usage    none reported"),
        None => {}
    }
    if let Some(s) = &r.stream {
        println!(
            "stream   complete: {}, output text bytes: {}, error: {}",
            s["complete"], s["output_text_bytes"], s["error"]
        );
    }
    if let Some(e) = &r.error {
        eprintln!("error    {}: {}", e["kind"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("?"));
    }
}
