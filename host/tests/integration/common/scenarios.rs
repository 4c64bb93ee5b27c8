//! Mock upstream scenarios built from the recorded fixtures.

use std::time::Duration;
use xjp_mock_upstream::{MockConfig, MockUpstream, Scenario};

/// A fixture file path.
pub fn fixture(rel: &str) -> std::path::PathBuf {
    super::root().join("fixtures").join(rel)
}

/// A scenario answering with `body` (non-stream) and `stream` (stream) fixtures.
pub fn pair(body: &str, stream: &str) -> Scenario {
    Scenario::from_fixture(fixture(body)).unwrap().with_stream_file(fixture(stream)).unwrap()
}

/// A mock with a working scenario for every test model's upstream id.
pub async fn mock() -> MockUpstream {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair("openai/chat_basic.json", "openai/stream_usage.sse").with_chunk_interval(Duration::from_millis(5)),
    );
    mock.set_scenario(
        "claude-sonnet-4-5-20250929",
        pair("anthropic/messages_basic.json", "anthropic/messages_stream.sse")
            .with_chunk_interval(Duration::from_millis(5)),
    );
    mock.set_scenario(
        "gemini-2.5-flash",
        pair("gemini/generate_basic.json", "gemini/stream_thinking.sse")
            .with_stream_file(fixture("gemini/stream_thinking.json"))
            .unwrap()
            .with_chunk_interval(Duration::from_millis(5)),
    );
    mock.set_scenario("anthropic/claude-sonnet-4.5", pair("openrouter/chat_basic.json", "openrouter/stream_cost.sse"));
    mock
}

/// The default scenario of a test model's upstream id (see [`mock`]).
pub fn pair_for(upstream_model: &str) -> Scenario {
    match upstream_model {
        "gpt-4o-mini-2024-07-18" => pair("openai/chat_basic.json", "openai/stream_usage.sse"),
        "claude-sonnet-4-5-20250929" => pair("anthropic/messages_basic.json", "anthropic/messages_stream.sse"),
        "gemini-2.5-flash" => pair("gemini/generate_basic.json", "gemini/stream_thinking.sse"),
        "anthropic/claude-sonnet-4.5" => pair("openrouter/chat_basic.json", "openrouter/stream_cost.sse"),
        other => panic!("no default scenario for {other}"),
    }
}
