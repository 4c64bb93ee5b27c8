//! Focused tests of the chat stream state machine: text bytes, errors, edge framing.

use xjp_plugin_openai::OpenAi;
use xjp_plugin_openai::chat::ChatStream;
use xjp_plugin_sdk::{ApiFormat, PluginError, PluginResult, Provider, StreamOutcome, StreamParse};

fn run(input: &[u8]) -> PluginResult<StreamOutcome> {
    let mut s = OpenAi::new_stream(ApiFormat::OpenaiChat);
    s.push(input)?;
    s.finish()
}

fn run_bytewise(input: &[u8]) -> PluginResult<StreamOutcome> {
    let mut s: ChatStream = ChatStream::new(ApiFormat::OpenaiChat);
    for b in input {
        s.push(std::slice::from_ref(b))?;
    }
    s.finish()
}

#[test]
fn counts_content_reasoning_refusal_and_tool_arguments() {
    let input = concat!(
        "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"h\u{e9}llo\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"abc\",\"reasoning\":\"abc\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"1234\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"no\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"ci\"}},{\"index\":1,\"function\":{\"arguments\":\"ty\\\"}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"xy\"}]}},{\"index\":1,\"delta\":{\"content\":\"z\"}}]}\n\n",
        "data: [DONE]\n\n",
    );
    // 6 (héllo) + 3 (reasoning_content, not doubled) + 4 + 2 + 4 + 4 + 2 + 1 = 26
    let whole = run(input.as_bytes()).unwrap();
    assert_eq!(whole.output_text_bytes, 26);
    assert!(whole.complete);
    assert_eq!(whole.usage, None);
    assert_eq!(run_bytewise(input.as_bytes()).unwrap(), whole);
}

#[test]
fn last_cumulative_usage_wins_and_names_the_model() {
    let input = concat!(
        "data: {\"model\":\"llama-3.1-8b\",\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1}}\n\n",
        "data: {\"model\":\"llama-3.1-8b\",\"choices\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}\n\n",
    );
    let out = run(input.as_bytes()).unwrap();
    let usage = out.usage.unwrap();
    assert_eq!((usage.input_uncached_tokens, usage.output_tokens), (10, 2));
    assert_eq!(usage.served_model.as_deref(), Some("llama-3.1-8b"));
    // Usage came with the finish_reason: complete without [DONE].
    assert!(out.complete);
}

#[test]
fn usage_before_any_finish_reason_is_not_completion() {
    let input = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n";
    let out = run(input.as_bytes()).unwrap();
    assert!(out.usage.is_some());
    assert!(!out.complete);
}

#[test]
fn non_json_payload_is_malformed_and_stays_failed() {
    let mut s: ChatStream = ChatStream::new(ApiFormat::OpenaiChat);
    let err = s.push(b"data: {\"choices\":[]}\n\ndata: not json\n\n").unwrap_err();
    assert!(matches!(err, PluginError::Malformed(_)), "{err:?}");
    assert_eq!(s.push(b"data: [DONE]\n\n"), Err(err.clone()));
    assert_eq!(s.finish(), Err(err));
    assert!(matches!(run(b"data: [1,2]\n\n"), Err(PluginError::Malformed(_))));
}

#[test]
fn a_chunk_cut_by_the_end_of_input_is_not_malformed() {
    let out = run(b"data: {\"choices\":[{\"delta\":{\"content\":\"ab\"}}]}\n\ndata: {\"choices\":[{\"del").unwrap();
    assert_eq!((out.complete, out.output_text_bytes), (false, 2));
    let out = run(b"data: [DON").unwrap();
    assert!(!out.complete);
    // An unterminated but whole last chunk is still read.
    let out = run(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}").unwrap();
    assert_eq!(out.usage.map(|u| u.output_tokens), Some(2));
}

#[test]
fn unsupported_format_fails_on_push_and_finish() {
    let mut s = OpenAi::new_stream(ApiFormat::AnthropicMessages);
    let want = Err(PluginError::UnsupportedFormat(ApiFormat::AnthropicMessages));
    assert_eq!(s.push(b"data: [DONE]\n\n"), want.clone().map(|_: StreamOutcome| ()));
    assert_eq!(s.finish(), want);
    let mut s = OpenAi::new_stream(ApiFormat::GeminiGenerate);
    assert!(matches!(s.finish(), Err(PluginError::UnsupportedFormat(ApiFormat::GeminiGenerate))));
}

#[test]
fn in_band_errors_make_the_stream_incomplete() {
    let input = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":null}}\n\ndata: [DONE]\n\n";
    let out = run(input).unwrap();
    let err = out.error.unwrap();
    assert_eq!((err.message.as_str(), err.code.as_deref()), ("overloaded", Some("server_error")));
    assert!(!out.complete);
    // `event: error` with plain text or a bare error object.
    let out = run(b"event: error\ndata: upstream went away\n\n").unwrap();
    assert_eq!(out.error.unwrap().message, "upstream went away");
    let out = run(b"event: error\ndata: {\"message\":\"quota\",\"code\":429}\n\n").unwrap();
    let err = out.error.unwrap();
    assert_eq!((err.message.as_str(), err.code.as_deref()), ("quota", Some("429")));
}

#[test]
fn keepalives_and_empty_payloads_are_ignored() {
    let out = run(b": ping\n\ndata:\n\ndata:   \n\nretry: 1000\n\ndata: [DONE]\r\n\r\n").unwrap();
    assert!(out.complete);
    assert_eq!((out.usage, out.error, out.output_text_bytes), (None, None, 0));
}

#[test]
fn arbitrary_bytes_never_panic() {
    const ALPHABET: &[u8] = b"data: {}[]\"\\,:0123456789\n\r\n\rerror[DONE]usage choices delta content\xff\xc3";
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2_000 {
        let mut s: ChatStream = ChatStream::new(ApiFormat::OpenaiChat);
        let len = (seed >> 58) as usize + 1;
        let mut input = Vec::with_capacity(len * 4);
        for _ in 0..len * 4 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            input.push(ALPHABET[(seed >> 33) as usize % ALPHABET.len()]);
        }
        for piece in input.chunks(((seed >> 40) as usize % 7) + 1) {
            let _ = s.push(piece);
        }
        let _ = s.finish();
    }
}
