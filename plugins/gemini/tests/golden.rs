//! Golden cases: every recorded response and stream in `fixtures/gemini`.

use xjp_plugin_gemini::Gemini;
use xjp_plugin_sdk::{ApiFormat, Provider, StreamOutcome, StreamParse};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/gemini");

fn stream_fixture(name: &str) -> StreamOutcome {
    let body = std::fs::read(format!("{FIXTURES}/{name}")).unwrap();
    let mut stream = Gemini::new_stream(ApiFormat::GeminiGenerate);
    for piece in body.chunks(5) {
        stream.push(piece).unwrap();
    }
    stream.finish().unwrap()
}

#[test]
fn golden_cases() {
    let cases = xjp_plugin_sdk::testing::run_golden::<Gemini>(FIXTURES);
    assert_eq!(cases, 17, "every case file in {FIXTURES} runs");
}

#[test]
fn both_framings_of_one_stream_agree() {
    let sse = stream_fixture("stream_thinking.sse");
    let array = stream_fixture("stream_thinking.json");
    assert_eq!(sse, array);
    // The four text parts: 7 + 82 (`—` is three bytes) + 88 + 55 bytes.
    assert_eq!(sse.output_text_bytes, 232);
}

#[test]
fn a_cut_stream_still_reports_the_text_seen() {
    let out = stream_fixture("vertex_stream_cut.json");
    assert_eq!((out.usage, out.complete), (None, false));
    // Two whole chunks of text; the third element never closed.
    assert_eq!(out.output_text_bytes, 48 + 64);
}
