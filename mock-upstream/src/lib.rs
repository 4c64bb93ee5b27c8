//! A mock LLM provider that replays recorded responses byte for byte, for the gateway's tests,
//! benchmarks and demo.
//!
//! It answers the OpenAI, Anthropic, Gemini (AI Studio and Vertex) and OpenRouter paths, picks
//! a [`Scenario`] per request by model id (falling back to [`WILDCARD_MODEL`]), replays
//! recorded streams chunk by chunk at event boundaries (with intervals, mid-stream cuts and
//! stalls), and records every request it receives so tests can check which credentials
//! reached the provider.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use xjp_mock_upstream::{MockConfig, MockUpstream, Scenario};
//! let mock = MockUpstream::start(MockConfig::default()).await?;
//! mock.set_scenario("gpt-4o-mini", Scenario::from_fixture("fixtures/openai/chat_basic.case.json")?);
//! println!("{}/v1/chat/completions", mock.base_url());
//! let seen = mock.take_requests();
//! # drop(seen); Ok(()) }
//! ```

mod cut;
mod error;
mod error_body;
mod handle;
mod record;
mod replay;
mod routes;
mod scenario;
mod scenario_file;
mod server;
mod shutdown;
mod stream;

pub use error::{MockError, ScenarioError};
pub use record::RecordedRequest;
pub use scenario::{OPENAI_MODELS_KEY, OPENROUTER_MODELS_KEY, Scenario, WILDCARD_MODEL};
pub use scenario_file::load_scenario_file;
pub use server::{MockConfig, MockUpstream};
pub use stream::{RecordedStream, StreamFormat};
