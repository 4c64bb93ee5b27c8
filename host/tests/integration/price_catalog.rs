//! The price catalog: precedence (route > price files > OpenRouter sync > imported >
//! fallback), a failed sync keeping the last good prices, price versions in Postgres on
//! every change, versions on transactions, a served model different from the requested one.

use crate::common;

use common::harness::{ADMIN_TOKEN, Options, TestGateway};
use common::http::{post, send};
use common::money::wait_rows;
use common::scenarios::{fixture, mock};
use std::time::Duration;
use xjp_mock_upstream::{OPENROUTER_MODELS_KEY, Scenario};

async fn quote(gw: &TestGateway, model: &str) -> serde_json::Value {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let body = format!(r#"{{"model":"{model}","usage":{{"input_uncached_tokens":1000000,"output_tokens":1000000}}}}"#);
    let r =
        send("POST", &format!("{}/internal/billing/quote", gw.url), &[("authorization", auth.as_str())], body).await;
    assert_eq!(r.status, 200, "{model}: {}", r.text());
    r.json()
}

#[tokio::test]
async fn precedence_sync_and_versions() {
    let mock = mock().await;
    mock.set_scenario(OPENROUTER_MODELS_KEY, Scenario::from_fixture(fixture("openrouter/models.json")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let static_file = dir.path().join("prices.toml");
    let imported_file = dir.path().join("imported.toml");
    std::fs::write(
        &static_file,
        "[prices.\"openrouter\".\"deepseek/deepseek-r1\"]\ninput = \"0.5\"\noutput = \"2.5\"\n",
    )
    .unwrap();
    std::fs::write(
        &imported_file,
        "[prices.\"openrouter\".\"deepseek/deepseek-r1\"]\ninput = \"9\"\noutput = \"9\"\nsource = \"litellm\"\n\
         [prices.\"openrouter\".\"mistral/only-imported\"]\ninput = \"1\"\noutput = \"2\"\nsource = \"litellm\"\n",
    )
    .unwrap();
    let extra = format!(
        r#"
[[models]]
name = "or-synced"
provider = "openrouter"
upstream_model = "anthropic/claude-3.5-haiku"

[[models]]
name = "or-r1"
provider = "openrouter"
upstream_model = "deepseek/deepseek-r1"

[[models]]
name = "or-imported"
provider = "openrouter"
upstream_model = "mistral/only-imported"

[[models]]
name = "or-fallback"
provider = "openrouter"
upstream_model = "nobody/prices-this"
fallback_price = {{ input = "4", output = "4" }}

[catalog]
files = ["{}"]
imported = ["{}"]
openrouter_sync = {{ provider = "openrouter", url = "{}/api/v1/models", interval_secs = 1 }}
"#,
        static_file.display(),
        imported_file.display(),
        mock.base_url()
    );
    let gw = TestGateway::start_with(&mock.base_url(), Options { extra_toml: extra, ..Options::default() }).await;
    if let Err(e) = gw.gw.catalog.sync_prices().await {
        panic!("sync: {e}");
    }
    let mut synced = false;
    for _ in 0..50 {
        if !gw.gw.catalog.load().synced.is_empty() {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(synced, "OpenRouter prices synced from the mock");

    // Synced: $0.80 + $4 per million.
    let v = quote(&gw, "or-synced").await;
    assert_eq!((v["price_source"].as_str(), v["cost"]["total"]["usd"].as_str()), (Some("synced"), Some("4.8")));
    // The static file beats the synced and the imported price of the same model.
    let v = quote(&gw, "or-r1").await;
    assert_eq!((v["price_source"].as_str(), v["cost"]["total"]["usd"].as_str()), (Some("config"), Some("3")));
    let v = quote(&gw, "or-imported").await;
    assert_eq!((v["price_source"].as_str(), v["cost"]["total"]["usd"].as_str()), (Some("imported"), Some("3")));
    let v = quote(&gw, "or-fallback").await;
    assert_eq!((v["price_source"].as_str(), v["cost"]["total"]["usd"].as_str()), (Some("fallback"), Some("8")));
    // The route's own price beats everything.
    let v = quote(&gw, "or-haiku").await;
    assert_eq!(v["price_source"], "config");

    // A failed sync keeps the last good prices.
    mock.set_scenario(OPENROUTER_MODELS_KEY, Scenario::json(500, "{}"));
    assert!(gw.gw.catalog.sync_prices().await.is_err());
    assert_eq!(quote(&gw, "or-synced").await["price_source"], "synced");

    // Versions: recorded per model, a new one on a price change.
    gw.gw.catalog.record_price_versions().await;
    let history = |model: &'static str| {
        let db = gw.gw.db.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT version FROM model_price_history WHERE model = $1 ORDER BY effective_from",
            )
            .bind(model)
            .fetch_all(&db)
            .await
            .unwrap()
        }
    };
    let before = history("deepseek/deepseek-r1").await;
    assert_eq!(before.len(), 1);
    std::fs::write(
        &static_file,
        "[prices.\"openrouter\".\"deepseek/deepseek-r1\"]\ninput = \"0.55\"\noutput = \"2.5\"\n",
    )
    .unwrap();
    gw.gw.reload_config().unwrap();
    gw.gw.catalog.record_price_versions().await;
    gw.gw.catalog.record_price_versions().await;
    let after = history("deepseek/deepseek-r1").await;
    assert_eq!(after.len(), 2, "one new version for one change");
    assert_ne!(after[0], after[1]);
    let v = quote(&gw, "or-r1").await;
    assert_eq!(v["price_version"].as_str(), Some(after[1].as_str()));
}

#[tokio::test]
async fn transactions_carry_the_version_and_the_served_model() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    // The mock answers "gpt-4o-mini" with a response naming "gpt-4o-2024-08-06".
    let r = post(
        &format!("{}/v1/chat/completions", gw.url),
        &gw.key,
        r#"{"model":"gpt-4o-mini","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(10)).await;
    gw.gw.catalog.record_price_versions().await;
    let (requested, served, version, cost, input, output): (String, Option<String>, String, i64, i64, i64) = sqlx::query_as(
        "SELECT model_requested, model_served, price_version, cost_nano, input_uncached_tokens, output_tokens FROM billing_transactions",
    )
    .fetch_one(&gw.gw.db)
    .await
    .unwrap();
    assert_eq!(requested, "gpt-4o-mini");
    assert_eq!(served.as_deref(), Some("gpt-4o-2024-08-06"));
    // Priced by the route's price ($0.15 / $0.60 per million), not by any other model's.
    assert_eq!(cost, input * 150 + output * 600);
    let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM price_versions WHERE version = $1)")
        .bind(&version)
        .fetch_one(&gw.gw.db)
        .await
        .unwrap();
    assert!(known, "the transaction's price version is in price_versions");
}

/// A row names its price by version and carries the snapshot itself only while
/// `price_versions` was not known to hold it: every row's price can be re-derived, and a
/// recorded price is not copied into every row (a third of Postgres's CPU per row).
#[tokio::test]
async fn every_row_s_price_is_in_the_row_or_in_price_versions() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    gw.gw.catalog.record_price_versions().await;
    let body = r#"{"model":"gpt-4o-mini","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}"#;
    for _ in 0..3 {
        assert_eq!(post(&format!("{}/v1/chat/completions", gw.url), &gw.key, body).await.status, 200);
    }
    wait_rows(&gw.gw.db, gw.tenant, 3, Duration::from_secs(10)).await;
    let (rows, carried, underivable): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(b.price_snapshot), \
                count(*) FILTER (WHERE b.price_snapshot IS NULL AND v.version IS NULL) \
         FROM billing_transactions b LEFT JOIN price_versions v ON v.version = b.price_version \
         WHERE b.tenant_id = $1",
    )
    .bind(gw.tenant)
    .fetch_one(&gw.gw.db)
    .await
    .unwrap();
    assert_eq!((rows, underivable), (3, 0), "every row's price is in the row or in price_versions");
    assert_eq!(carried, 0, "a recorded price is not copied into the rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_of_one_change_write_one_history_row() {
    use xjp_gateway::catalog::{PriceSource, ResolvedPrice, versions};
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let entry = xjp_gateway::plugins::convert::zero_price();
    let version = xjp_gateway::catalog::snapshot::price_version(&entry);
    let price = ResolvedPrice { entry, source: PriceSource::Config, version };
    for round in 0..10 {
        let model = format!("concurrent/model-{round}");
        let calls = (0..32).map(|_| {
            let (db, price, model) = (gw.gw.db.clone(), price.clone(), model.clone());
            tokio::spawn(async move { versions::record(&db, "test", &model, &price).await.unwrap() })
        });
        let recorded = futures_util::future::join_all(calls).await;
        assert_eq!(recorded.iter().filter(|r| matches!(r, Ok(true))).count(), 1, "{model}: {recorded:?}");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM model_price_history WHERE model = $1")
            .bind(&model)
            .fetch_one(&gw.gw.db)
            .await
            .unwrap();
        assert_eq!(rows, 1, "{model}");
    }
}
