//! `xjp-gateway plugin check --plugin F.wasm --cases DIR`: the conformance suite.
//!
//! Runs the built component the way the gateway does (one engine, the default limits) over
//! every recorded case in DIR (`<case>.case.json`, the golden-case format of
//! `xjp_plugin_sdk::testing`): whole, and for streams split at random byte boundaries. Then
//! the checks every plugin must pass whatever its provider:
//!
//! - **error bodies**: a provider error (400, 401, 429, 500, 503 in each format the plugin
//!   reads, and an HTML 502) gives no usage, never zeros;
//! - **estimate**: the estimate of the case's request (or, when it has none, of a generic
//!   request as long as its prompt with its output as the maximum) bounds the case's usage:
//!   prompt-side tokens, output tokens and, for a case with a request, every fee;
//! - **pricing**: each case's usage is priced (`price-response` agrees with `price`), and
//!   adding tokens to any bucket, or a unit to any fee, never lowers its cost or the total;
//! - **large body**: an 8 MB response and an 8 MB stream in each format are read within the
//!   call deadline and the memory cap.
//!
//! It prints a table (or JSON) and the exit code is 1 when any check failed.

use crate::plugins::bindings::{ApiFormat, Fee, FeeRate, LongContextTier, PriceEntry, TokenRates, Usage};
use crate::plugins::cache::ComponentCache;
use crate::plugins::convert::{plugin_error_json, usage_json, zero_usage};
use crate::plugins::{Plugin, PluginCallError, PluginEngine, PluginStream, RuntimeLimits};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What was checked (`case`, `split`, `estimate`, `error-body`, `pricing`, `large-body`).
    pub check: &'static str,
    /// The case or input it was checked on.
    pub subject: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

impl Row {
    fn new(check: &'static str, subject: impl Into<String>, result: Result<String, String>) -> Row {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        Row { check, subject: subject.into(), ok, detail }
    }
}

/// Knobs of a run.
#[derive(Debug, Clone, Copy)]
pub struct SuiteOptions {
    /// Seed of the random split points (printed, so a failure can be replayed).
    pub seed: u64,
    /// Random splittings per stream case.
    pub splits: usize,
    /// Size of the large bodies, in bytes.
    pub large_body_bytes: usize,
    /// The call deadline and memory cap the plugin runs under (the gateway's `[plugins]`).
    pub limits: RuntimeLimits,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions { seed: 0, splits: 16, large_body_bytes: 8 << 20, limits: RuntimeLimits::default() }
    }
}

/// A case read from disk.
#[derive(Debug)]
struct Case {
    name: String,
    format: ApiFormat,
    stream: bool,
    status: u16,
    body: Vec<u8>,
    request: Option<Vec<u8>>,
    limits: crate::plugins::bindings::ModelLimits,
    expect: Value,
}

fn read_cases(dir: &Path) -> Result<Vec<Case>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".case.json")))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("no *.case.json in {}", dir.display()));
    }
    paths.iter().map(|p| read_case(dir, p)).collect()
}

fn read_case(dir: &Path, path: &Path) -> Result<Case, String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").trim_end_matches(".case.json").to_string();
    let fail = |what: String| format!("{}: {what}", path.display());
    let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| fail(e.to_string()))?;
    let format: ApiFormat = v["api"].as_str().unwrap_or("").parse().map_err(fail)?;
    let file = |key: &str| -> Result<Option<Vec<u8>>, String> {
        match v[key].as_str() {
            None => Ok(None),
            Some(f) => std::fs::read(dir.join(f)).map(Some).map_err(|e| fail(format!("{key} {f}: {e}"))),
        }
    };
    let body = file("body")?.ok_or_else(|| fail("no `body`".into()))?;
    let limit = |key: &str, default: u64| v["limits"][key].as_u64().unwrap_or(default);
    Ok(Case {
        name,
        format,
        stream: v["stream"].as_bool().unwrap_or(false),
        status: v["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
        body,
        request: file("request")?,
        // The SDK harness's `DEFAULT_LIMITS`.
        limits: crate::plugins::bindings::ModelLimits {
            default_max_output_tokens: limit("default_max_output_tokens", 32_768),
            max_output_tokens: limit("max_output_tokens", 131_072),
        },
        expect: v.get("expect").cloned().unwrap_or(Value::Null),
    })
}

fn call_error(e: &PluginCallError) -> String {
    match e {
        PluginCallError::Plugin(p) => {
            let j = plugin_error_json(p);
            format!("{}: {}", j["kind"].as_str().unwrap_or("?"), j["message"].as_str().unwrap_or(""))
        }
        other => other.to_string(),
    }
}

fn usage_text(u: Option<&Usage>) -> String {
    match u {
        None => "no usage".into(),
        Some(u) => {
            let fees: Vec<String> = u.fees.iter().map(|f| format!("{} {}", f.name, f.count)).collect();
            let mut s = format!(
                "in {} (read {}, write {}/{}) out {} (reasoning {})",
                crate::plugins::convert::prompt_tokens(u),
                u.cache_read_tokens,
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens,
                u.output_tokens,
                u.reasoning_tokens
            );
            if !fees.is_empty() {
                s.push_str(&format!(", fees {}", fees.join(", ")));
            }
            if let Some(c) = u.provider_cost_nano_usd {
                s.push_str(&format!(", provider ${}", xjp_money::nano_to_usd(c)));
            }
            s
        }
    }
}

/// What a stream run gave.
struct StreamRun {
    usage: Option<Usage>,
    complete: bool,
    error: Option<String>,
}

fn run_stream(plugin: &Arc<Plugin>, format: ApiFormat, body: &[u8], splits: &[usize]) -> Result<StreamRun, String> {
    let mut stream = PluginStream::open(plugin.clone(), format).map_err(|e| call_error(&e))?;
    let mut start = 0;
    for &end in splits.iter().chain(std::iter::once(&body.len())) {
        stream.push(&body[start..end]).map_err(|e| format!("push: {}", call_error(&e)))?;
        start = end;
    }
    let o = stream.finish().map_err(|e| format!("finish: {}", call_error(&e)))?;
    Ok(StreamRun { usage: o.usage, complete: o.complete, error: o.error.map(|e| e.message) })
}

/// Compares what a case gave with its `expect`.
fn compare(case: &Case, usage: Option<&Usage>, stream: Option<(bool, Option<&str>)>) -> Result<String, String> {
    let got = usage.map(usage_json).unwrap_or(Value::Null);
    let want = &case.expect["usage"];
    if &got != want {
        return Err(format!("usage {got} != expected {want}"));
    }
    if let Some((complete, error)) = stream {
        if let Some(want) = case.expect.get("complete").and_then(Value::as_bool)
            && want != complete
        {
            return Err(format!("complete {complete} != expected {want}"));
        }
        match (case.expect.get("stream_error").and_then(Value::as_str), error) {
            (Some(needle), Some(msg)) if !msg.contains(needle) => {
                return Err(format!("stream error {msg:?} lacks {needle:?}"));
            }
            (Some(needle), None) => return Err(format!("expected a stream error with {needle:?}, got none")),
            (None, Some(msg)) => return Err(format!("unexpected stream error {msg:?}")),
            _ => {}
        }
    }
    Ok(usage_text(usage))
}

/// Random split points of `len` bytes: 1 to 8 cuts, or (every fourth run) many small pieces.
fn random_splits(rng: &mut impl Rng, len: usize, run: usize) -> Vec<usize> {
    if len < 2 {
        return Vec::new();
    }
    let mut cuts: Vec<usize> = if run % 4 == 3 {
        let mut at = 0;
        let mut v = Vec::new();
        while at < len {
            at += rng.random_range(1..=64);
            if at < len {
                v.push(at);
            }
        }
        v
    } else {
        (0..rng.random_range(1..=8)).map(|_| rng.random_range(1..len)).collect()
    };
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// The rates every pricing check uses: distinct and non-zero for every bucket, a
/// reasoning rate of its own, a long-context tier at twice the rates above 100k prompt
/// tokens, and a rate for every fee name in `fees` plus `request`.
pub fn test_price(fees: &[String]) -> PriceEntry {
    const PER_M: u64 = 1_000_000_000_000; // atto-USD per token for $1 per million
    let rates = |k: u64| TokenRates {
        input: 3 * PER_M * k,
        output: 15 * PER_M * k,
        cache_read: PER_M * k / 10 * 3,
        cache_write_5m: PER_M * k / 4 * 15,
        cache_write_1h: 6 * PER_M * k,
        reasoning: Some(20 * PER_M * k),
    };
    let mut names: Vec<String> = fees.to_vec();
    names.push("request".into());
    names.sort();
    names.dedup();
    PriceEntry {
        rates: rates(1),
        long_context: Some(LongContextTier { threshold_tokens: 100_000, rates: rates(2) }),
        fees: names.into_iter().map(|name| FeeRate { name, atto_usd_per_unit: 10_000 * PER_M }).collect(),
    }
}

/// A request of `format` whose prompt is `prompt` bytes of text and whose output maximum is
/// `output`, for cases that name no request.
pub fn generic_request(format: ApiFormat, prompt: usize, output: u64) -> Vec<u8> {
    let text = "x".repeat(prompt);
    let body = match format {
        ApiFormat::OpenaiChat => json!({"model": "conformance", "max_tokens": output,
            "messages": [{"role": "user", "content": text}]}),
        ApiFormat::AnthropicMessages => json!({"model": "conformance", "max_tokens": output,
            "messages": [{"role": "user", "content": text}]}),
        ApiFormat::GeminiGenerate => json!({"contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"maxOutputTokens": output}}),
    };
    body.to_string().into_bytes()
}

/// The estimate check of one case.
fn check_estimate(plugin: &Plugin, case: &Case, usage: &Usage) -> Result<String, String> {
    let (request, limits, fees) = match &case.request {
        Some(r) => (r.clone(), case.limits, true),
        None => {
            let prompt = crate::plugins::convert::prompt_tokens(usage);
            let output = usage.output_tokens.max(1);
            if prompt > 16 << 20 || output > i32::MAX as u64 {
                return Ok("skipped: the usage is too large for a generic request".into());
            }
            let limits =
                crate::plugins::bindings::ModelLimits { default_max_output_tokens: output, max_output_tokens: output };
            (generic_request(case.format, prompt as usize, output), limits, false)
        }
    };
    let estimate =
        plugin.estimate(case.format, &request, limits).map_err(|e| format!("estimate: {}", call_error(&e)))?;
    let short = xjp_usage_shape::usage_view!(&estimate).shortfalls(&xjp_usage_shape::usage_view!(usage), fees);
    if !short.is_empty() {
        return Err(format!("estimate does not bound the usage: {}", short.join("; ")));
    }
    let mut detail = format!("estimate {}", usage_text(Some(&estimate)));
    if !fees && !usage.fees.is_empty() {
        detail.push_str(" (generic request: fees not checked; add a `request` to the case)");
    }
    Ok(detail)
}

fn bucket_costs(c: &crate::plugins::bindings::Cost) -> [(&'static str, i64); 6] {
    [
        ("input", c.input_uncached),
        ("cache read", c.cache_read),
        ("cache write 5m", c.cache_write_5m),
        ("cache write 1h", c.cache_write_1h),
        ("output", c.output),
        ("fees", c.fees),
    ]
}

/// Pricing of `usage` is monotonic: one more token (and a million more) in each bucket,
/// one more unit of each fee, never costs less, in the total or in any bucket.
fn check_monotonic(plugin: &Plugin, usage: &Usage, price: &PriceEntry) -> Result<String, String> {
    let base = plugin.price(usage, price).map_err(|e| format!("price: {}", call_error(&e)))?;
    let mut steps: Vec<(String, Usage)> = Vec::new();
    for delta in [1u64, 1_000_000] {
        let mut add = |what: &str, f: &dyn Fn(&mut Usage)| {
            let mut u = usage.clone();
            f(&mut u);
            steps.push((format!("{what} +{delta}"), u));
        };
        add("input", &|u| u.input_uncached_tokens = u.input_uncached_tokens.saturating_add(delta));
        add("cache read", &|u| u.cache_read_tokens = u.cache_read_tokens.saturating_add(delta));
        add("cache write 5m", &|u| u.cache_write_5m_tokens = u.cache_write_5m_tokens.saturating_add(delta));
        add("cache write 1h", &|u| u.cache_write_1h_tokens = u.cache_write_1h_tokens.saturating_add(delta));
        add("output", &|u| u.output_tokens = u.output_tokens.saturating_add(delta));
        add("reasoning", &|u| {
            u.output_tokens = u.output_tokens.saturating_add(delta);
            u.reasoning_tokens = u.reasoning_tokens.saturating_add(delta);
        });
        for fee in price.fees.iter().map(|f| f.name.clone()) {
            add(&format!("fee {fee}"), &|u| match u.fees.iter_mut().find(|f| f.name == fee) {
                Some(f) => f.count = f.count.saturating_add(delta),
                None => u.fees.push(Fee { name: fee.clone(), count: delta }),
            });
        }
    }
    for (what, u) in &steps {
        let cost = plugin.price(u, price).map_err(|e| format!("price with {what}: {}", call_error(&e)))?;
        if cost.total < base.total {
            return Err(format!("{what}: total {} < {}", cost.total, base.total));
        }
        // Within one tier every bucket may only grow (crossing into the long-context
        // tier reprices all of them upwards).
        if cost.long_context_applied == base.long_context_applied {
            for ((name, after), (_, before)) in bucket_costs(&cost).into_iter().zip(bucket_costs(&base)) {
                if after < before {
                    return Err(format!("{what}: {name} cost {after} < {before}"));
                }
            }
        }
    }
    Ok(format!("total {} nano-USD; {} steps monotonic", base.total, steps.len()))
}

/// Error bodies in each format's shape, with the statuses they come with.
fn error_bodies(format: ApiFormat) -> Vec<(u16, &'static str)> {
    let mut v = match format {
        ApiFormat::OpenaiChat => vec![
            (400, r#"{"error":{"message":"bad request","type":"invalid_request_error","param":null,"code":null}}"#),
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            ),
            (429, r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#),
            (500, r#"{"error":{"message":"The server had an error","type":"server_error"}}"#),
            (
                200,
                r#"{"error":{"message":"upstream failed","code":502},"usage":{"prompt_tokens":10,"completion_tokens":0}}"#,
            ),
        ],
        ApiFormat::AnthropicMessages => vec![
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}"#,
            ),
            (401, r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#),
            (429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"rate limited"}}"#),
            (529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
        ],
        ApiFormat::GeminiGenerate => vec![
            (400, r#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#),
            (429, r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#),
            (503, r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#),
            (
                400,
                r#"[{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}]"#,
            ),
        ],
    };
    v.push((502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"));
    v.push((503, ""));
    v
}

fn check_error_body(plugin: &Plugin, format: ApiFormat, status: u16, body: &str) -> Result<String, String> {
    match plugin.extract_response(format, status, body.as_bytes()) {
        Ok(None) => Ok("no usage".into()),
        Ok(Some(u)) => Err(format!("an error body gave usage: {}", usage_text(Some(&u)))),
        Err(e) => Err(format!("an error body must give no usage, not an error: {}", call_error(&e))),
    }
}

/// A whole response and a stream of about `size` bytes in `format`, with a known usage
/// (10 prompt tokens, 1,000 output tokens).
pub fn large_bodies(format: ApiFormat, size: usize) -> (Vec<u8>, Vec<u8>) {
    let text = "lorem ipsum dolor sit amet ".repeat(size / 27 + 1);
    let piece = "lorem ipsum dolor sit amet, consectetur adipiscing elit ".repeat(16);
    let pieces = size / (piece.len() + 100) + 1;
    let mut stream = String::with_capacity(size + 4096);
    match format {
        ApiFormat::OpenaiChat => {
            let whole = json!({"id": "chatcmpl-large", "object": "chat.completion", "model": "large",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010}});
            for _ in 0..pieces {
                let chunk = json!({"id": "c", "object": "chat.completion.chunk", "model": "large",
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
                stream.push_str(&format!("data: {chunk}\n\n"));
            }
            let last = json!({"id": "c", "object": "chat.completion.chunk", "model": "large", "choices": [],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010}});
            stream.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
            (whole.to_string().into_bytes(), stream.into_bytes())
        }
        ApiFormat::AnthropicMessages => {
            let whole = json!({"id": "msg_large", "type": "message", "role": "assistant", "model": "large",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 10, "output_tokens": 1000}});
            let start = json!({"type": "message_start", "message": {"id": "msg_large", "type": "message",
                "role": "assistant", "model": "large", "content": [], "usage": {"input_tokens": 10, "output_tokens": 1}}});
            stream.push_str(&format!("event: message_start\ndata: {start}\n\n"));
            stream.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
            for _ in 0..pieces {
                let delta =
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}});
                stream.push_str(&format!("event: content_block_delta\ndata: {delta}\n\n"));
            }
            stream.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
            stream.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1000}}\n\n");
            stream.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
            (whole.to_string().into_bytes(), stream.into_bytes())
        }
        ApiFormat::GeminiGenerate => {
            let usage = json!({"promptTokenCount": 10, "candidatesTokenCount": 1000, "totalTokenCount": 1010});
            let whole = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP"}], "usageMetadata": usage, "modelVersion": "large"});
            for i in 0..pieces {
                let mut chunk = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}}],
                    "modelVersion": "large"});
                if i + 1 == pieces {
                    chunk["candidates"][0]["finishReason"] = json!("STOP");
                    chunk["usageMetadata"] = usage.clone();
                }
                stream.push_str(&format!("data: {chunk}\r\n\r\n"));
            }
            (whole.to_string().into_bytes(), stream.into_bytes())
        }
    }
}

/// [`read_large`], tried up to three times while it times out: on a loaded machine one call
/// can miss the deadline for want of a core, while a plugin too slow for the body misses it
/// every time.
fn check_large(plugin: &Arc<Plugin>, format: ApiFormat, body: &[u8], stream: bool) -> Result<String, String> {
    let mut timeouts = 0;
    loop {
        match read_large(plugin, format, body, stream) {
            Err(e) if e.contains("time budget") && timeouts < 2 => timeouts += 1,
            Ok(detail) if timeouts > 0 => return Ok(format!("{detail} (after {timeouts} timeout(s))")),
            other => return other,
        }
    }
}

fn read_large(plugin: &Arc<Plugin>, format: ApiFormat, body: &[u8], stream: bool) -> Result<String, String> {
    let started = Instant::now();
    let usage = if stream {
        // The proxy pushes what each upstream read returns, 16 KiB at most in practice.
        let splits: Vec<usize> = (1..body.len().div_ceil(16 << 10)).map(|i| i * (16 << 10)).collect();
        let run = run_stream(plugin, format, body, &splits)?;
        if !run.complete {
            return Err(format!("stream not complete ({})", run.error.unwrap_or_default()));
        }
        run.usage
    } else {
        plugin.extract_response(format, 200, body).map_err(|e| call_error(&e))?
    };
    let elapsed = started.elapsed();
    match usage {
        Some(u) if u.output_tokens == 1000 => {
            Ok(format!("{:.1} MB in {} ms", body.len() as f64 / 1e6, elapsed.as_millis()))
        }
        other => Err(format!("expected 10 in / 1000 out, got {}", usage_text(other.as_ref()))),
    }
}

/// Loads the plugin and runs the whole suite.
pub fn run_suite(plugin_path: &Path, dir: &Path, options: SuiteOptions) -> Result<(Value, Vec<Row>), String> {
    let bytes = std::fs::read(plugin_path).map_err(|e| format!("cannot read {}: {e}", plugin_path.display()))?;
    let cases = read_cases(dir)?;
    let engine = PluginEngine::new(options.limits).map_err(|e| format!("engine: {e:#}"))?;
    let plugin = Plugin::load(&engine, &ComponentCache::new(None), &bytes).map_err(|e| format!("load: {e}"))?;
    let info = crate::plugins::convert::info_json(plugin.info());
    let mut rows = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let mut usages: Vec<(String, Usage)> = vec![("zero usage".into(), zero_usage())];

    for case in &cases {
        if !plugin.supports(case.format) {
            rows.push(Row::new("case", &case.name, Err(format!("plugin does not read {}", case.format))));
            continue;
        }
        let usage = if case.stream {
            let whole = run_stream(&plugin, case.format, &case.body, &[]);
            let usage = whole.as_ref().ok().and_then(|r| r.usage.clone());
            rows.push(Row::new(
                "case",
                &case.name,
                whole.and_then(|r| compare(case, r.usage.as_ref(), Some((r.complete, r.error.as_deref())))),
            ));
            let mut failed = None;
            for run in 0..options.splits {
                let splits = random_splits(&mut rng, case.body.len(), run);
                let result = run_stream(&plugin, case.format, &case.body, &splits)
                    .and_then(|r| compare(case, r.usage.as_ref(), Some((r.complete, r.error.as_deref()))));
                if let Err(e) = result {
                    failed = Some(format!("split at {splits:?}: {e}"));
                    break;
                }
            }
            let result = failed.map_or_else(|| Ok(format!("{} random splittings agree", options.splits)), Err);
            rows.push(Row::new("split", &case.name, result));
            usage
        } else {
            let got = plugin.extract_response(case.format, case.status, &case.body).map_err(|e| call_error(&e));
            let usage = got.as_ref().ok().cloned().flatten();
            rows.push(Row::new("case", &case.name, got.and_then(|u| compare(case, u.as_ref(), None))));
            usage
        };
        if let Some(u) = usage {
            rows.push(Row::new("estimate", &case.name, check_estimate(&plugin, case, &u)));
            usages.push((case.name.clone(), u));
        }
    }

    for format in plugin.info().formats.clone() {
        for (status, body) in error_bodies(format) {
            let subject =
                format!("{format} {status} {}", if body.is_empty() { "(empty)" } else { &body[..body.len().min(40)] });
            rows.push(Row::new("error-body", subject, check_error_body(&plugin, format, status, body)));
        }
    }

    let fee_names: Vec<String> = usages.iter().flat_map(|(_, u)| u.fees.iter().map(|f| f.name.clone())).collect();
    let price = test_price(&fee_names);
    for (name, usage) in &usages {
        rows.push(Row::new("pricing", name, check_monotonic(&plugin, usage, &price)));
    }
    for case in cases.iter().filter(|c| !c.stream && plugin.supports(c.format)) {
        let agreed = plugin.price_response(case.format, case.status, &case.body, &price).map_err(|e| call_error(&e));
        let result = agreed.and_then(|priced| match priced {
            None => Ok("no usage, no cost".into()),
            Some(p) => {
                let direct = plugin.price(&p.usage, &price).map_err(|e| call_error(&e))?;
                match p.cost {
                    Ok(c) if c == direct => Ok(format!("price-response = price: {} nano-USD", c.total)),
                    Ok(c) => Err(format!("price-response {c:?} != price {direct:?}")),
                    Err(e) => {
                        Err(format!("price-response could not price: {}", call_error(&PluginCallError::Plugin(e))))
                    }
                }
            }
        });
        rows.push(Row::new("price-response", &case.name, result));
    }

    for format in plugin.info().formats.clone() {
        let (whole, stream) = large_bodies(format, options.large_body_bytes);
        rows.push(Row::new("large-body", format!("{format} whole"), check_large(&plugin, format, &whole, false)));
        rows.push(Row::new("large-body", format!("{format} stream"), check_large(&plugin, format, &stream, true)));
    }
    Ok((info, rows))
}

/// Prints the report as a table; returns the exit code.
pub fn print(info: &Value, rows: &[Row], seed: u64, as_json: bool) -> i32 {
    let failed = rows.iter().filter(|r| !r.ok).count();
    if as_json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| json!({"check": r.check, "subject": r.subject, "ok": r.ok, "detail": r.detail}))
            .collect();
        println!(
            "{}",
            json!({"plugin": info, "seed": seed, "passed": rows.len() - failed, "failed": failed, "checks": rows})
        );
    } else {
        println!(
            "plugin {} {} ({}), seed {seed}",
            info["name"].as_str().unwrap_or("?"),
            info["version"].as_str().unwrap_or("?"),
            info["formats"]
        );
        let subject_width = rows.iter().map(|r| r.subject.chars().count()).max().unwrap_or(0).min(48);
        println!("{:<14} {:<subject_width$} {:<4} detail", "check", "case", "ok");
        for r in rows {
            let subject: String = r.subject.chars().take(48).collect();
            println!("{:<14} {subject:<subject_width$} {:<4} {}", r.check, if r.ok { "ok" } else { "FAIL" }, r.detail);
        }
        println!("{} passed, {failed} failed", rows.len() - failed);
    }
    i32::from(failed > 0)
}
