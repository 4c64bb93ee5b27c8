//! The OpenRouter provider end to end: info, formats, estimates, malformed input, streams.

use xjp_plugin_openrouter::OpenRouter;
use xjp_plugin_sdk::{ApiFormat, ModelLimits, PluginError, Provider, StreamParse};

const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 32000 };

#[test]
fn describes_itself() {
    let info = OpenRouter::info();
    assert_eq!(info.name, "openrouter");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.formats, vec![ApiFormat::OpenaiChat]);
}

#[test]
fn estimate_reads_openai_caps() {
    let body = br#"{"model":"anthropic/claude-sonnet-4","messages":[{"role":"user","content":"hello there"}],"max_tokens":2000,"usage":{"include":true}}"#;
    let u = OpenRouter::estimate(ApiFormat::OpenaiChat, body, LIMITS).unwrap();
    assert_eq!(u.output_tokens, 2000);
    assert!(u.input_uncached_tokens >= 11);
    assert_eq!(u.provider_cost_nano_usd, None);
    let r = OpenRouter::estimate(ApiFormat::AnthropicMessages, body, LIMITS);
    assert_eq!(r, Err(PluginError::UnsupportedFormat(ApiFormat::AnthropicMessages)));
    assert!(matches!(
        OpenRouter::estimate(ApiFormat::OpenaiChat, b"{\"messages\":", LIMITS),
        Err(PluginError::InvalidRequest(_))
    ));
}

#[test]
fn malformed_and_unsupported_responses() {
    let r = OpenRouter::extract_response(ApiFormat::OpenaiChat, 200, b"\n\n{\"id\":\"gen-1\",");
    assert!(matches!(r, Err(PluginError::Malformed(_))), "{r:?}");
    let r = OpenRouter::extract_response(ApiFormat::GeminiGenerate, 200, b"{}");
    assert_eq!(r, Err(PluginError::UnsupportedFormat(ApiFormat::GeminiGenerate)));
}

#[test]
fn leading_whitespace_before_a_body_is_fine() {
    let body = b"\n\n\n{\"model\":\"openai/gpt-4o\",\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,\"cost\":0.000045}}";
    let u = OpenRouter::extract_response(ApiFormat::OpenaiChat, 200, body).unwrap().unwrap();
    assert_eq!(u.provider_cost_nano_usd, Some(45_000));
    assert_eq!(u.served_model.as_deref(), Some("openai/gpt-4o"));
}

#[test]
fn stream_error_after_done_still_incomplete_and_keeps_usage() {
    // Usage reported before the error chunk is kept: the provider may have billed it.
    let input = concat!(
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"model\":\"x/y\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abc\"},\"finish_reason\":null}],",
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1,\"cost\":0.00001}}\n\n",
        "data: {\"error\":{\"code\":502,\"message\":\"Provider returned error\"},",
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let mut s = OpenRouter::new_stream(ApiFormat::OpenaiChat);
    s.push(input.as_bytes()).unwrap();
    let out = s.finish().unwrap();
    assert!(!out.complete);
    let err = out.error.unwrap();
    assert_eq!((err.code.as_deref(), err.message.as_str()), (Some("502"), "Provider returned error"));
    let usage = out.usage.unwrap();
    assert_eq!((usage.input_uncached_tokens, usage.provider_cost_nano_usd), (12, Some(10_000)));
    assert_eq!(out.output_text_bytes, 3);
}

#[test]
fn stream_malformed_and_unsupported() {
    let mut s = OpenRouter::new_stream(ApiFormat::OpenaiChat);
    assert!(matches!(
        s.push(b": OPENROUTER PROCESSING\n\ndata: OPENROUTER PROCESSING\n\n"),
        Err(PluginError::Malformed(_))
    ));
    let mut s = OpenRouter::new_stream(ApiFormat::AnthropicMessages);
    assert_eq!(s.push(b"data: [DONE]\n\n"), Err(PluginError::UnsupportedFormat(ApiFormat::AnthropicMessages)));
}
