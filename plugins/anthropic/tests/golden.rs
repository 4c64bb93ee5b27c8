//! Golden cases: every recorded response and stream in `fixtures/anthropic`.

use xjp_plugin_anthropic::Anthropic;
use xjp_plugin_sdk::{ApiFormat, Provider, StreamOutcome, StreamParse};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/anthropic");

fn stream_fixture(name: &str) -> StreamOutcome {
    let body = std::fs::read(format!("{FIXTURES}/{name}")).unwrap();
    let mut stream = Anthropic::new_stream(ApiFormat::AnthropicMessages);
    for piece in body.chunks(7) {
        stream.push(piece).unwrap();
    }
    stream.finish().unwrap()
}

#[test]
fn golden_cases() {
    let cases = xjp_plugin_sdk::testing::run_golden::<Anthropic>(FIXTURES);
    assert_eq!(cases, 15, "every case file in {FIXTURES} runs");
}

#[test]
fn output_text_bytes_count_thinking_text_and_tool_input() {
    // Thinking deltas (219 bytes) and text deltas (108 bytes, `×` is two bytes);
    // the signature delta is not text.
    assert_eq!(stream_fixture("messages_thinking_stream.sse").output_text_bytes, 327);
    // Server tool input JSON (102 bytes) and text (74 bytes).
    assert_eq!(stream_fixture("messages_web_tools_stream.sse").output_text_bytes, 176);
}

#[test]
fn a_cut_stream_still_reports_the_text_seen() {
    let out = stream_fixture("messages_stream_cut.sse");
    assert!(!out.complete);
    // Ten whole text deltas; the one cut short is not counted.
    assert_eq!(out.output_text_bytes, 142);
}
