//! Golden tests through the real wasm components: every recorded fixture of every
//! provider plugin (openai, openrouter, anthropic, gemini, perplexity, xai), responses
//! whole and priced, streams whole / split at every byte / in 7-byte chunks.

use crate::common;

use serde_json::Value;
use xjp_gateway::plugins::bindings::{ApiFormat, FeeRate, LongContextTier, PriceEntry, TokenRates};
use xjp_gateway::plugins::convert::usage_json;
use xjp_gateway::plugins::{Plugin, PluginCallError, PluginStream};
use xjp_plugin_sdk::testing::{Case, load_cases};

fn stream_usage(
    plugin: &std::sync::Arc<Plugin>,
    case: &Case,
    format: ApiFormat,
    chunks: &[&[u8]],
) -> (Value, bool, Option<String>) {
    let mut s = PluginStream::open(plugin.clone(), format).unwrap();
    for c in chunks {
        s.push(c).unwrap_or_else(|e| panic!("{}: push: {e}", case.path.display()));
    }
    let o = s.finish().unwrap_or_else(|e| panic!("{}: finish: {e}", case.path.display()));
    (o.usage.as_ref().map(usage_json).unwrap_or(Value::Null), o.complete, o.error.map(|e| e.message))
}

/// A price with every part set, so that every bucket of a case shows in its cost, and a
/// rate for every fee the case expects (each its own): the two pricing paths compared with
/// it must then agree on every bucket and fee.
fn probe_price(case: &Case) -> PriceEntry {
    let rates = |base: u64| TokenRates {
        input: base * 3,
        output: base * 11,
        cache_read: base,
        cache_write_5m: base * 5,
        cache_write_1h: base * 7,
        reasoning: Some(base * 13),
    };
    let mut fees = vec![
        FeeRate { name: "web_search".into(), atto_usd_per_unit: 10_000_000_000_000_000 },
        FeeRate { name: "request".into(), atto_usd_per_unit: 1_000_000_000 },
    ];
    let expected = case.expect["usage"]["fees"].as_object().into_iter().flat_map(|f| f.keys());
    for (i, name) in (2u64..).zip(expected) {
        if !fees.iter().any(|f| &f.name == name) {
            fees.push(FeeRate { name: name.clone(), atto_usd_per_unit: i * 1_000_000_000_000_000 });
        }
    }
    PriceEntry {
        rates: rates(1_000_000_000),
        long_context: Some(LongContextTier { threshold_tokens: 1_000, rates: rates(2_000_000_000) }),
        fees,
    }
}

fn check_case(plugin: &std::sync::Arc<Plugin>, case: &Case) {
    let format: ApiFormat = case.api_name.parse().unwrap();
    let name = case.path.display().to_string();
    if !case.stream {
        let got = plugin.extract_response(format, case.status, &case.body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.as_ref().map(usage_json).unwrap_or(Value::Null), case.expect["usage"], "{name}");
        // The one-call export answers what the two calls do.
        let price = probe_price(case);
        let priced = plugin.price_response(format, case.status, &case.body, &price).unwrap();
        let two_calls = got.map(|u| match plugin.price(&u, &price) {
            Ok(cost) => (u, Ok(cost)),
            Err(PluginCallError::Plugin(e)) => (u, Err(e)),
            Err(e) => panic!("{name}: price: {e}"),
        });
        let one_call = priced.map(|p| (p.usage, p.cost));
        assert_eq!(one_call, two_calls, "{name}: price-response");
        return;
    }
    let body = &case.body[..];
    let whole = stream_usage(plugin, case, format, &[body]);
    assert_eq!(whole.0, case.expect["usage"], "{name}: usage (whole)");
    if let Some(c) = case.expect.get("complete").and_then(Value::as_bool) {
        assert_eq!(whole.1, c, "{name}: complete");
    }
    match case.expect.get("stream_error").and_then(Value::as_str) {
        Some(needle) => {
            assert!(whole.2.as_deref().is_some_and(|m| m.contains(needle)), "{name}: stream error {:?}", whole.2)
        }
        None => assert_eq!(whole.2, None, "{name}: unexpected stream error"),
    }
    for split in 0..=body.len() {
        let got = stream_usage(plugin, case, format, &[&body[..split], &body[split..]]);
        assert_eq!(got, whole, "{name}: split at {split}");
    }
    let sevens: Vec<&[u8]> = body.chunks(7).collect();
    assert_eq!(stream_usage(plugin, case, format, &sevens), whole, "{name}: 7-byte chunks");
}

/// Runs every case of `provider` (at least `min_cases` of them: a fixture directory that
/// lost its files fails rather than passing on nothing).
fn run_provider(provider: &str, min_cases: usize) {
    let engine = common::engine();
    let plugin = common::load(&engine, &common::plugin_file(provider));
    assert_eq!(plugin.info().name, provider);
    let cases = load_cases(&common::fixtures(provider));
    assert!(cases.len() >= min_cases, "{provider}: expected the full set of golden cases, found {}", cases.len());
    for case in &cases {
        check_case(&plugin, case);
    }
}

#[test]
fn openai_golden() {
    run_provider("openai", 6);
}

#[test]
fn openrouter_golden() {
    run_provider("openrouter", 6);
}

#[test]
fn anthropic_golden() {
    run_provider("anthropic", 6);
}

#[test]
fn gemini_golden() {
    run_provider("gemini", 6);
}

#[test]
fn perplexity_golden() {
    run_provider("perplexity", 6);
}

#[test]
fn xai_golden() {
    run_provider("xai", 5);
}

/// The wasm build of the SDK's JSON scanner (sixteen bytes per step, wasm SIMD) reads
/// what the native build (eight bytes per step) reads, whose agreement with serde_json
/// the SDK's own tests check: a special byte at every offset of a read string (`model`)
/// and of a skipped one (`content`), and whitespace runs of every length.
#[test]
fn wasm_scanner_reads_what_the_native_build_reads() {
    use xjp_gateway::plugins::bindings::PluginError as HostError;
    use xjp_plugin_sdk::{PluginError as SdkError, Provider};

    let engine = common::engine();
    let plugin = common::load(&engine, &common::plugin_file("openai"));
    let wasm = |body: &[u8]| -> Result<Value, String> {
        match plugin.extract_response(ApiFormat::OpenaiChat, 200, body) {
            Ok(usage) => Ok(usage.as_ref().map(usage_json).unwrap_or(Value::Null)),
            Err(PluginCallError::Plugin(HostError::Malformed(m))) => Err(m),
            Err(e) => panic!("wasm: {e}"),
        }
    };
    let native = |body: &[u8]| -> Result<Value, String> {
        match xjp_plugin_openai::OpenAi::extract_response(xjp_plugin_sdk::ApiFormat::OpenaiChat, 200, body) {
            Ok(usage) => Ok(usage.as_ref().map(xjp_plugin_sdk::usage_json::usage_to_json).unwrap_or(Value::Null)),
            Err(SdkError::Malformed(m)) => Err(m),
            Err(e) => panic!("native: {e:?}"),
        }
    };
    let body = |model: &[u8], content: &[u8], ws: usize| -> Vec<u8> {
        let pad = " ".repeat(ws);
        let mut b = br#"{"id":"x","model":""#.to_vec();
        b.extend_from_slice(model);
        b.extend_from_slice(br#"","choices":[{"message":{"content":""#);
        b.extend_from_slice(content);
        b.extend_from_slice(
            format!("\"}}}}],{pad}\"usage\":{pad}{{\"prompt_tokens\":12,{pad}\"completion_tokens\":5}}}}").as_bytes(),
        );
        b
    };
    let specials: [&[u8]; 7] = [b"\\\"", b"\\\\", b"\\n", b"\\u00e9", "é".as_bytes(), b"\x01", b"\xff"];
    let (mut fast, mut malformed) = (0, 0);
    for len in 0..40 {
        for at in 0..=len {
            for special in specials {
                let mut text = vec![b'a'; at];
                text.extend_from_slice(special);
                text.extend(std::iter::repeat_n(b'b', len - at));
                for b in [body(&text, b"plain", len), body(b"gpt-4o", &text, len)] {
                    let got = wasm(&b);
                    assert_eq!(got, native(&b), "{}", String::from_utf8_lossy(&b));
                    match got {
                        Ok(_) => fast += 1,
                        Err(_) => malformed += 1,
                    }
                }
            }
        }
    }
    // Both outcomes are exercised (a raw control byte is malformed anywhere, a raw 0xff
    // only where the string is read).
    assert!(fast > 5_000 && malformed > 1_000, "read {fast}, malformed {malformed}");
}
