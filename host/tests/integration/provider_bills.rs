//! The two providers written from the template and the guide, through the real gateway to the
//! mock upstream replaying their fixtures, priced from the example price file
//! (config/prices.toml): every quantity each provider charges for is billed, and the total is
//! the provider's own (where it reports one).

use crate::common;

use common::harness::{Options, TestGateway};
use common::http::send;
use common::scenarios::{fixture, pair};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use xjp_mock_upstream::{MockConfig, MockUpstream};

/// Routes to perplexity and xai on the mock, priced by the example price file only.
fn routes(mock_base: &str) -> String {
    let prices = common::root().join("config/prices.toml");
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

[providers.xai]
base_url = "{mock_base}"
api = "openai-chat"
credential_env = "MOCK_PROVIDER_KEY"
auth = "bearer"
plugin = "xai"

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
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_scenario("sonar", pair("perplexity/sonar_basic.json", "perplexity/sonar_stream.sse"));
    mock.set_scenario("sonar-pro", pair("perplexity/sonar_pro_high.json", "perplexity/sonar_stream.sse"));
    mock.set_scenario("sonar-deep-research", pair("perplexity/deep_research.json", "perplexity/sonar_stream.sse"));
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

#[test]
fn the_example_config_routes_and_prices_both_providers() {
    let config = xjp_gateway::config::load_file(&common::root().join("config/gateway.toml")).unwrap();
    for (provider, plugin) in [("perplexity", "perplexity"), ("xai", "xai")] {
        assert_eq!(config.providers[provider].plugin, plugin);
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
