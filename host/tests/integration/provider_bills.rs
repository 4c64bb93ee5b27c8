//! The two providers written from the template and the guide, through the real gateway to the
//! mock upstream replaying their fixtures, priced from the example price file
//! (config/prices.toml): every quantity each provider charges for is billed, and the total is
//! the provider's own (where it reports one). The routes carry the example config's
//! `output_limit_field`, and the output cap reaches each provider under the name it documents.

use crate::common;

use common::harness::{Options, TestGateway};
use common::http::send;
use common::scenarios::{fixture, pair};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use xjp_mock_upstream::{MockConfig, MockUpstream};

/// The example config (config/gateway.toml).
fn example_config() -> xjp_gateway::config::Config {
    xjp_gateway::config::load_file(&common::root().join("config/gateway.toml")).unwrap()
}

/// Routes to perplexity and xai on the mock, priced by the example price file only, with the
/// example config's output limit field of each.
fn routes(mock_base: &str) -> String {
    let prices = common::root().join("config/prices.toml");
    let example = example_config();
    let field = |provider: &str| {
        example.providers[provider].output_limit_field.clone().unwrap_or_else(|| "max_completion_tokens".into())
    };
    let (pplx_field, xai_field) = (field("perplexity"), field("xai"));
    format!(
        r#"
[catalog]
files = ["{prices}"]

[providers.perplexity]
base_url = "{mock_base}"
api = "openai-chat"
credential_env = "MOCK_PROVIDER_KEY"
auth = "bearer"
plugin = "perplexity"
output_limit_field = "{pplx_field}"

[providers.xai]
base_url = "{mock_base}"
api = "openai-chat"
credential_env = "MOCK_PROVIDER_KEY"
auth = "bearer"
plugin = "xai"
output_limit_field = "{xai_field}"

[[models]]
name = "sonar"
provider = "perplexity"
upstream_model = "sonar"

[[models]]
name = "sonar-pro"
provider = "perplexity"
upstream_model = "sonar-pro"

[[models]]
name = "sonar-deep-research"
provider = "perplexity"
upstream_model = "sonar-deep-research"
max_output_tokens = 32768

[[models]]
name = "grok-4"
provider = "xai"
upstream_model = "grok-4-0709"
"#,
        prices = prices.display()
    )
}

async fn start() -> (MockUpstream, TestGateway) {
    start_deep_research("perplexity/deep_research.json").await
}

/// [`start`], Deep Research answering with `deep_research`.
async fn start_deep_research(deep_research: &str) -> (MockUpstream, TestGateway) {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_scenario("sonar", pair("perplexity/sonar_basic.json", "perplexity/sonar_stream.sse"));
    mock.set_scenario("sonar-pro", pair("perplexity/sonar_pro_high.json", "perplexity/sonar_stream.sse"));
    mock.set_scenario("sonar-deep-research", pair(deep_research, "perplexity/sonar_stream.sse"));
    mock.set_scenario("grok-4-0709", pair("xai/chat_live_search.json", "xai/stream_live_search.sse"));
    let options = Options { extra_toml: routes(&mock.base_url()), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    (mock, gw)
}

/// What the ledger recorded for one request.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Billed {
    status: String,
    input_uncached: i64,
    cache_read: i64,
    output: i64,
    reasoning: i64,
    fees: Value,
    cost_nano: i64,
    provider_cost_nano: Option<i64>,
}

/// Sends the request recorded beside `case` (in fixtures/) as `model`, then waits for its row.
async fn bill(gw: &TestGateway, model: &str, request_fixture: &str, id: &str) -> Billed {
    let mut body: Value = serde_json::from_slice(&std::fs::read(fixture(request_fixture)).unwrap()).unwrap();
    body["model"] = model.into();
    let auth = format!("Bearer {}", gw.key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("x-request-id", id)];
    let r = send("POST", &format!("{}/v1/chat/completions", gw.url), &headers, body.to_string()).await;
    assert_eq!(r.status, 200, "{model}: {}", r.text());
    let started = Instant::now();
    loop {
        let row: Option<Billed> = sqlx::query_as(
            "SELECT status, input_uncached_tokens AS input_uncached, cache_read_tokens AS cache_read, \
                    output_tokens AS output, reasoning_tokens AS reasoning, fees, cost_nano, provider_cost_nano \
             FROM billing_transactions WHERE client_request_id = $1",
        )
        .bind(id)
        .fetch_optional(&gw.gw.db)
        .await
        .unwrap();
        if let Some(billed) = row {
            return billed;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{model}: no row for {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn perplexity_bills_tokens_request_fees_citations_searches_and_reasoning() {
    let (_mock, gw) = start().await;

    // Sonar, low search context: $1/M in and out, $5 per thousand requests = Perplexity's $0.005084.
    let b = bill(&gw, "sonar", "perplexity/sonar_basic.request.json", "pplx-sonar").await;
    assert_eq!(
        b,
        Billed {
            status: "ok".into(),
            input_uncached: 14,
            cache_read: 0,
            output: 70,
            reasoning: 0,
            fees: json!({"search_context_low": 1}),
            cost_nano: 5_084_000,
            provider_cost_nano: Some(5_084_000),
        }
    );

    // Sonar Pro, high search context: $3/M in, $15/M out, $14 per thousand requests.
    let b = bill(&gw, "sonar-pro", "perplexity/sonar_pro_high.request.json", "pplx-pro").await;
    assert_eq!(
        (b.fees, b.cost_nano, b.provider_cost_nano),
        (json!({"search_context_high": 1}), 23_918_000, Some(23_918_000))
    );

    // Deep Research: input $2/M, output $8/M, citation tokens $2/M, reasoning $3/M, searches
    // $5 per thousand: 0.000038 + 0.075264 + 0.048658 + 0.994608 + 0.11 = $1.228568.
    let b = bill(&gw, "sonar-deep-research", "perplexity/deep_research.request.json", "pplx-deep").await;
    assert_eq!(
        b,
        Billed {
            status: "ok".into(),
            input_uncached: 19,
            cache_read: 0,
            output: 9_408 + 331_536,
            reasoning: 331_536,
            fees: json!({"citation_tokens": 24_329, "search_queries": 22}),
            cost_nano: 1_228_568_000,
            provider_cost_nano: Some(1_228_568_000),
        }
    );

    // A stream, medium search context ($8 per thousand requests).
    let b = bill(&gw, "sonar", "perplexity/sonar_stream.request.json", "pplx-stream").await;
    assert_eq!((b.status.as_str(), b.output), ("ok", 31));
    assert_eq!(
        (b.fees, b.cost_nano, b.provider_cost_nano),
        (json!({"search_context_medium": 1}), 8_041_000, Some(8_041_000))
    );
}

#[tokio::test]
async fn xai_bills_cached_input_reasoning_and_live_search_sources() {
    let (_mock, gw) = start().await;

    // grok-4: 7,712 uncached x $3/M + 1,024 cached x $0.75/M + (312 + 721 reasoning) x $15/M
    // + 7 sources x $0.025 = $0.214399.
    let b = bill(&gw, "grok-4", "xai/chat_live_search.request.json", "xai-search").await;
    assert_eq!(
        b,
        Billed {
            status: "ok".into(),
            input_uncached: 7_712,
            cache_read: 1_024,
            output: 1_033,
            reasoning: 721,
            fees: json!({"live_search_source": 7}),
            cost_nano: 214_399_000,
            provider_cost_nano: None,
        }
    );

    // A stream: 5,210 x $3/M + 306 x $15/M + 4 sources x $0.025 = $0.12022.
    let b = bill(&gw, "grok-4", "xai/stream_live_search.request.json", "xai-stream").await;
    assert_eq!((b.status.as_str(), b.output, b.reasoning), ("ok", 306, 297));
    assert_eq!((b.fees, b.cost_nano), (json!({"live_search_source": 4}), 120_220_000));
}

#[tokio::test]
async fn deep_research_reporting_a_search_context_size_pays_no_request_fee() {
    // Perplexity charges the request fee to the Sonar models only; a Deep Research answer
    // whose usage says `search_context_size` is billed exactly, not flagged for a fee its
    // price does not list. 12 x $2/M + 6,120 x $8/M + 18,450 x $2/M + 204,810 x $3/M
    // + 17 x $0.005 = $0.785314, Perplexity's total.
    let (_mock, gw) = start_deep_research("perplexity/deep_research_context_size.json").await;
    let b = bill(&gw, "sonar-deep-research", "perplexity/deep_research_context_size.request.json", "pplx-ctx").await;
    assert_eq!(
        b,
        Billed {
            status: "ok".into(),
            input_uncached: 12,
            cache_read: 0,
            output: 6_120 + 204_810,
            reasoning: 204_810,
            fees: json!({"citation_tokens": 18_450, "search_queries": 17}),
            cost_nano: 785_314_000,
            provider_cost_nano: Some(785_314_000),
        }
    );
}

#[tokio::test]
async fn the_output_cap_reaches_perplexity_and_xai_as_max_tokens() {
    let (mock, gw) = start().await;
    // Neither request sets a limit: the gateway adds the model's default under the field
    // the provider documents, and no other.
    bill(&gw, "sonar", "perplexity/sonar_basic.request.json", "cap-pplx").await;
    bill(&gw, "grok-4", "xai/chat_live_search.request.json", "cap-xai").await;
    let bodies: Vec<Value> = mock.requests().iter().filter_map(|r| r.body_json()).collect();
    for model in ["sonar", "grok-4-0709"] {
        let body = bodies.iter().find(|b| b["model"] == model).unwrap_or_else(|| panic!("no {model} request"));
        assert!(body["max_tokens"].as_u64().is_some_and(|n| n > 0), "{model}: {body}");
        assert_eq!(body.get("max_completion_tokens"), None, "{model}: {body}");
    }
}

#[test]
fn the_example_config_routes_and_prices_both_providers() {
    let config = example_config();
    for (provider, plugin) in [("perplexity", "perplexity"), ("xai", "xai")] {
        assert_eq!(config.providers[provider].plugin, plugin);
        assert_eq!(config.providers[provider].output_limit_field.as_deref(), Some("max_tokens"), "{provider}");
    }
    let catalog = xjp_gateway::catalog::prices::load_files(&config, &xjp_gateway::catalog::Catalog::default()).unwrap();
    for model in ["sonar", "sonar-pro", "sonar-deep-research", "grok-4", "grok-3-mini"] {
        let m = config.models.iter().find(|m| m.name == model).unwrap_or_else(|| panic!("{model} not routed"));
        let price = catalog
            .config
            .get(&(m.provider.clone(), m.upstream_model.clone()))
            .unwrap_or_else(|| panic!("{model} not priced"));
        assert!(!price.fees.is_empty(), "{model}: its per-request or per-unit fees are priced");
    }
}
