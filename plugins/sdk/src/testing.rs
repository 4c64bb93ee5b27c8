//! Golden-case harness: runs every `*.case.json` of a fixture directory through a
//! [`Provider`] natively, whole and split at every byte boundary.
//!
//! Case file: `{"api": "openai-chat", "stream": bool, "status": 200, "body": "file",
//! "request": "file" (optional), "limits": {"default_max_output_tokens": n, "max_output_tokens": n} (optional),
//! "expect": {"usage": null | {...usage_json...}, "complete": bool, "stream_error": null | "substring"}}`.
//! `complete` and `stream_error` are checked for streams only. `request` is the request body
//! the response answered: its estimate (under `limits`, default [`DEFAULT_LIMITS`]) must
//! bound the usage, fees included. `xjp-gateway plugin check --cases DIR` reads the same
//! files and runs them against the built component.

use crate::json::Value;
use crate::usage_json::usage_to_json;
use crate::{ApiFormat, ModelLimits, Provider, StreamOutcome, StreamParse, Usage};
use std::path::{Path, PathBuf};

/// One golden case read from disk.
#[derive(Debug)]
pub struct Case {
    /// The case file.
    pub path: PathBuf,
    /// Wire format.
    pub api: ApiFormat,
    /// Wire format name as written in the case (`openai-chat`, ...).
    pub api_name: String,
    /// Whether `body` is raw stream bytes.
    pub stream: bool,
    /// HTTP status of the recorded response.
    pub status: u16,
    /// The recorded response bytes.
    pub body: Vec<u8>,
    /// The request the response answered, when the case names one.
    pub request: Option<Vec<u8>>,
    /// The model limits its estimate runs with.
    pub limits: ModelLimits,
    /// The `expect` object.
    pub expect: Value,
}

/// Model limits of a case that sets none.
pub const DEFAULT_LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 32_768, max_output_tokens: 131_072 };

/// A case's `limits` object, or [`DEFAULT_LIMITS`].
pub fn case_limits(v: &Value) -> ModelLimits {
    let limit = |key: &str, default: u64| v["limits"][key].as_u64().unwrap_or(default);
    ModelLimits {
        default_max_output_tokens: limit("default_max_output_tokens", DEFAULT_LIMITS.default_max_output_tokens),
        max_output_tokens: limit("max_output_tokens", DEFAULT_LIMITS.max_output_tokens),
    }
}

/// Parses an API format name (`openai-chat`, `anthropic-messages`, `gemini-generate`).
pub fn parse_api(name: &str) -> Option<ApiFormat> {
    match name {
        "openai-chat" => Some(ApiFormat::OpenaiChat),
        "anthropic-messages" => Some(ApiFormat::AnthropicMessages),
        "gemini-generate" => Some(ApiFormat::GeminiGenerate),
        _ => None,
    }
}

/// Loads every `*.case.json` under `dir`, sorted by name.
pub fn load_cases(dir: &Path) -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".case.json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let api_name = v["api"].as_str().unwrap_or_default().to_string();
            let api = parse_api(&api_name).unwrap_or_else(|| panic!("{}: bad api", path.display()));
            let body_path = dir.join(v["body"].as_str().unwrap_or_else(|| panic!("{}: no body", path.display())));
            let request = v["request"].as_str().map(|name| {
                let file = dir.join(name);
                std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            });
            Case {
                request,
                limits: case_limits(&v),
                api,
                api_name,
                stream: v["stream"].as_bool().unwrap_or(false),
                status: v["status"].as_u64().unwrap_or(200) as u16,
                body: std::fs::read(&body_path).unwrap_or_else(|e| panic!("{}: {e}", body_path.display())),
                expect: v["expect"].clone(),
                path,
            }
        })
        .collect()
}

/// Asserts a stream outcome against a case's expectations.
pub fn check_stream_outcome(case: &Case, got: &StreamOutcome, how: &str) {
    let usage = got.usage.as_ref().map(usage_to_json).unwrap_or(Value::Null);
    assert_eq!(usage, case.expect["usage"], "{} ({how}): usage", case.path.display());
    if let Some(complete) = case.expect.get("complete").and_then(Value::as_bool) {
        assert_eq!(got.complete, complete, "{} ({how}): complete", case.path.display());
    }
    match case.expect.get("stream_error").and_then(Value::as_str) {
        Some(needle) => {
            let err = got
                .error
                .as_ref()
                .unwrap_or_else(|| panic!("{} ({how}): expected a stream error", case.path.display()));
            assert!(
                err.message.contains(needle),
                "{} ({how}): error {:?} lacks {needle:?}",
                case.path.display(),
                err.message
            );
        }
        None => {
            assert!(got.error.is_none(), "{} ({how}): unexpected stream error {:?}", case.path.display(), got.error)
        }
    }
}

fn run_stream<P: Provider>(case: &Case, splits: &[usize]) -> StreamOutcome {
    let mut s = P::new_stream(case.api);
    let mut start = 0;
    for &end in splits.iter().chain(std::iter::once(&case.body.len())) {
        s.push(&case.body[start..end]).unwrap_or_else(|e| panic!("{}: push: {e:?}", case.path.display()));
        start = end;
    }
    s.finish().unwrap_or_else(|e| panic!("{}: finish: {e:?}", case.path.display()))
}

/// Asserts that the estimate of the case's request (when it has one) bounds `usage`.
pub fn check_estimate<P: Provider>(case: &Case, usage: Option<&Usage>) {
    let (Some(request), Some(usage)) = (&case.request, usage) else { return };
    let estimate = P::estimate(case.api, request, case.limits)
        .unwrap_or_else(|e| panic!("{}: estimate of the request: {e:?}", case.path.display()));
    let short = xjp_usage_shape::usage_view!(&estimate).shortfalls(&xjp_usage_shape::usage_view!(usage), true);
    assert!(short.is_empty(), "{}: the estimate does not bound the usage: {}", case.path.display(), short.join("; "));
}

/// Runs every case in `dir` against `P`: responses whole; streams whole, split at every
/// byte boundary, and fed one byte at a time; and the estimate of a case's request must
/// bound its usage. Panics with the case name on a mismatch. Returns the number of cases run.
pub fn run_golden<P: Provider>(dir: impl AsRef<Path>) -> usize {
    let cases = load_cases(dir.as_ref());
    assert!(!cases.is_empty(), "no cases in {}", dir.as_ref().display());
    for case in &cases {
        if case.stream {
            let whole = run_stream::<P>(case, &[]);
            check_stream_outcome(case, &whole, "whole");
            check_estimate::<P>(case, whole.usage.as_ref());
            for split in 0..=case.body.len() {
                check_stream_outcome(case, &run_stream::<P>(case, &[split]), &format!("split at {split}"));
            }
            let bytes: Vec<usize> = (1..case.body.len()).collect();
            check_stream_outcome(case, &run_stream::<P>(case, &bytes), "byte by byte");
        } else {
            let got = P::extract_response(case.api, case.status, &case.body)
                .unwrap_or_else(|e| panic!("{}: extract: {e:?}", case.path.display()));
            let usage = got.as_ref().map(usage_to_json).unwrap_or(Value::Null);
            assert_eq!(usage, case.expect["usage"], "{}: usage", case.path.display());
            check_estimate::<P>(case, got.as_ref());
        }
    }
    cases.len()
}

/// Asserts that an estimate refused its request with [`crate::PluginError::InvalidRequest`]
/// whose message holds `needle` and is short (a client's long string is never repeated
/// whole). `what` names the request in the panic message.
pub fn assert_refused<T: std::fmt::Debug>(result: crate::PluginResult<T>, needle: &str, what: &str) {
    match result {
        Err(crate::PluginError::InvalidRequest(m)) => {
            assert!(m.contains(needle), "{what:.200}: {m:?} lacks {needle:?}");
            assert!(m.len() < 300, "{what:.200}: message too long: {m}");
        }
        other => panic!("{what:.200}: expected a refusal, got {other:?}"),
    }
}
