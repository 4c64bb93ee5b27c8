//! Billing endpoints: quote, transactions (filters, keyset pages while rows arrive, tenant
//! isolation), summary (exact over rollups + tail), reconciliation, self-service, bad input.

use crate::common;

use common::harness::{ADMIN_TOKEN, TestGateway};
use common::http::{Reply, send};
use common::scenarios::{fixture, mock};
use serde_json::{Value, json};
use uuid::Uuid;
use xjp_gateway::ledger::TransactionRow;
use xjp_gateway::ledger::insert::insert_batch;

async fn admin(method: &str, url: &str, body: &str) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    send(method, url, &[("authorization", auth.as_str()), ("content-type", "application/json")], body.to_string()).await
}

fn row(tenant: Uuid, key: Uuid, n: i64, created_us: i64, model: &str, status: &str) -> TransactionRow {
    TransactionRow {
        request_id: format!("r-{n}-{}", Uuid::now_v7()),
        client_request_id: None,
        tenant_id: tenant,
        api_key_id: key,
        provider: Some("openai".into()),
        model_requested: model.into(),
        model_served: None,
        upstream_model: None,
        api_format: "openai-chat".into(),
        stream: false,
        status: status.into(),
        error_class: None,
        error_message: None,
        http_status: Some(200),
        input_uncached_tokens: 10 * n,
        cache_read_tokens: n,
        cache_write_5m_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 2 * n,
        reasoning_tokens: 0,
        fees: json!({}),
        cost_nano: 1000 + n,
        provider_cost_nano: (n % 5 == 0).then_some(1000 + n + if n % 10 == 0 { 50_000 } else { 0 }),
        price_version: Some("p_test".into()),
        price_snapshot: None,
        estimated: false,
        needs_review: false,
        latency_ms: Some(5),
        created_at_us: created_us,
    }
}

/// 2026-11-03T12:00:00Z in microseconds, plus `hours`.
fn at(hours: i64) -> i64 {
    1_793_707_200_000_000 + hours * 3_600_000_000
}

#[tokio::test]
async fn quote_prices_usage_and_raw_responses() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let url = format!("{}/internal/billing/quote", gw.url);
    // Claude: $3 / $15, cache read $0.30, 5m write $3.75, 1h write $6, web search $0.01.
    let r = admin("POST", &url, r#"{"model":"claude-sonnet-4-5","usage":{"input_uncached_tokens":1000,"cache_read_tokens":2000,"cache_write_5m_tokens":100,"cache_write_1h_tokens":10,"output_tokens":500,"fees":{"web_search":2}}}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["cost"]["input_uncached"]["nano"], 3_000_000);
    assert_eq!(v["cost"]["cache_read"]["nano"], 600_000);
    assert_eq!(v["cost"]["cache_write_5m"]["nano"], 375_000);
    assert_eq!(v["cost"]["cache_write_1h"]["nano"], 60_000);
    assert_eq!(v["cost"]["output"]["nano"], 7_500_000);
    assert_eq!(v["cost"]["fees"]["nano"], 20_000_000);
    assert_eq!(v["cost"]["total"]["nano"], 31_535_000);
    assert_eq!(v["cost"]["total"]["usd"], "0.031535");
    assert!(v["price_version"].as_str().unwrap().starts_with("p_"));

    // A raw OpenRouter stream: the computed cost equals the provider's `usage.cost`.
    let stream = std::fs::read_to_string(fixture("openrouter/stream_cost.sse")).unwrap();
    let body = json!({ "model": "or-haiku", "response": stream, "stream": true }).to_string();
    let v = admin("POST", &url, &body).await.json();
    assert_eq!(v["usage"]["provider_cost_usd"], "0.000924");
    assert_eq!(v["reconciliation"]["computed"]["usd"], "0.000924");
    assert_eq!(v["reconciliation"]["difference"]["nano"], 0);
    // The same response priced by another route shows the difference.
    let body = json!({ "model": "or-sonnet", "response": stream, "stream": true }).to_string();
    let v = admin("POST", &url, &body).await.json();
    assert_eq!(v["reconciliation"]["difference"]["nano"], v["cost"]["total"]["nano"].as_i64().unwrap() - 924_000);

    // A raw non-stream body through the plugin.
    let raw = std::fs::read_to_string(fixture("anthropic/messages_basic.json")).unwrap();
    let v = admin("POST", &url, &json!({ "model": "claude-sonnet-4-5", "response": raw }).to_string()).await.json();
    assert_eq!(v["usage"]["output_tokens"], 103);

    for (bad, status) in [
        (r#"{"model":"nope","usage":{}}"#, 404),
        (r#"{"model":"claude-sonnet-4-5"}"#, 400),
        (r#"{"model":"claude-sonnet-4-5","usage":{"bogus":1}}"#, 400),
        (r#"{"model":"claude-sonnet-4-5","usage":{"fees":{"image":1}}}"#, 422),
        (r#"{"model":"claude-sonnet-4-5","response":"{\"type\":\"error\",\"error\":{}}"}"#, 400),
    ] {
        assert_eq!(admin("POST", &url, bad).await.status, status, "{bad}");
    }
}

#[tokio::test]
async fn transactions_filter_page_and_isolate() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let db = &gw.gw.db;
    let other = xjp_gateway::db::tenants::create(db, "other").await.unwrap().id;
    let key = Uuid::now_v7();
    let rows: Vec<_> =
        (0..45).map(|n| row(gw.tenant, key, n, at(n % 30), if n % 3 == 0 { "m-a" } else { "m-b" }, "ok")).collect();
    insert_batch(db, &rows).await.unwrap();
    insert_batch(db, &[row(other, Uuid::now_v7(), 99, at(1), "m-a", "ok")]).await.unwrap();
    let base = format!("{}/internal/billing/transactions", gw.url);

    // Page through 7 at a time while new rows keep arriving: every original row exactly once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    let mut extra = 1000;
    loop {
        let mut url = format!("{base}?tenant_id={}&limit=7", gw.tenant);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v = admin("GET", &url, "").await.json();
        for r in v["data"].as_array().unwrap() {
            assert_eq!(r["tenant_id"], gw.tenant.to_string());
            assert!(seen.insert(r["request_id"].as_str().unwrap().to_string()), "row repeated");
            assert_eq!(r["cost"]["nano"], r["cost_nano"]);
        }
        insert_batch(
            db,
            &[
                row(gw.tenant, key, extra, at(40 + extra - 1000), "m-a", "ok"),
                row(gw.tenant, key, extra + 1, at(-5), "m-a", "ok"),
            ],
        )
        .await
        .unwrap();
        extra += 2;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    for r in &rows {
        assert!(seen.contains(&r.request_id), "row skipped: {}", r.request_id);
    }

    let count = |v: Value| v["data"].as_array().unwrap().len();
    let q = |extra: &str| format!("{base}?tenant_id={}&limit=1000{extra}", gw.tenant);
    let only_a = admin("GET", &q("&model=m-a"), "").await.json();
    assert!(only_a["data"].as_array().unwrap().iter().all(|r| r["model_requested"] == "m-a"));
    let ranged = admin("GET", &q("&start=2026-11-03T12:00:00Z&end=2026-11-03T22:00:00Z"), "").await.json();
    assert_eq!(count(ranged), rows.iter().filter(|r| r.created_at_us >= at(0) && r.created_at_us < at(10)).count());
    assert_eq!(count(admin("GET", &q("&status=upstream_error"), "").await.json()), 0);
    let by_key = admin("GET", &format!("{base}?api_key_id={key}&limit=1000"), "").await.json();
    assert!(count(by_key) >= 45);

    // Bad input: 400 with a message naming the problem.
    for (query, needle) in [
        (String::new(), "tenant_id"),
        ("?tenant_id=not-a-uuid".into(), "UUID"),
        (format!("?tenant_id={}&start=2026-11-02T00:00:00Z&end=2026-11-01T00:00:00Z", gw.tenant), "after"),
        (format!("?tenant_id={}&start=yesterday", gw.tenant), "RFC 3339"),
        (format!("?tenant_id={}&cursor=bogus", gw.tenant), "cursor"),
        (format!("?tenant_id={}&limit=1001", gw.tenant), "limit"),
        (format!("?tenant_id={}", Uuid::now_v7()), "unknown tenant"),
    ] {
        let r = admin("GET", &format!("{base}{query}"), "").await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert!(r.json()["error"]["message"].as_str().unwrap().contains(needle), "{query}: {}", r.text());
    }

    // Self-service: a key sees its own tenant only.
    let auth = format!("Bearer {}", gw.key);
    let own =
        send("GET", &format!("{}/v1/billing/transactions?limit=1000", gw.url), &[("authorization", auth.as_str())], "")
            .await;
    assert_eq!(own.status, 200);
    assert!(own.json()["data"].as_array().unwrap().iter().all(|r| r["tenant_id"] == gw.tenant.to_string()));
    let theirs = send(
        "GET",
        &format!("{}/v1/billing/transactions?tenant_id={other}", gw.url),
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(theirs.status, 400);
    let theirs =
        send("GET", &format!("{}/v1/billing/usage?tenant_id={other}", gw.url), &[("authorization", auth.as_str())], "")
            .await;
    assert_eq!(theirs.status, 400);
}

#[tokio::test]
async fn summary_is_exact_over_rollups_and_tail() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let db = &gw.gw.db;
    let (k1, k2) = (Uuid::now_v7(), Uuid::now_v7());
    // Three days of rows: 2026-11-03 12:00 .. 2026-11-05 ~22:00.
    let rows: Vec<_> = (0..60)
        .map(|n| {
            row(
                gw.tenant,
                if n % 2 == 0 { k1 } else { k2 },
                n,
                at(n),
                if n % 4 == 0 { "m-a" } else { "m-b" },
                if n % 7 == 0 { "upstream_error" } else { "ok" },
            )
        })
        .collect();
    insert_batch(db, &rows[..40]).await.unwrap();
    xjp_gateway::ledger::rollup::rollup_all(db).await.unwrap();
    insert_batch(db, &rows[40..]).await.unwrap(); // the not-yet-rolled tail

    let expect = |from: i64, to: i64| {
        let picked: Vec<_> = rows.iter().filter(|r| r.created_at_us >= from && r.created_at_us < to).collect();
        (
            picked.len() as i64,
            picked.iter().map(|r| r.cost_nano).sum::<i64>(),
            picked.iter().map(|r| r.output_tokens).sum::<i64>(),
        )
    };
    let ranges = [
        ("2026-11-03T00:00:00Z", "2026-11-06T00:00:00Z", at(-12), at(60)),
        ("2026-11-03T15:30:00Z", "2026-11-05T07:00:00Z", at(3) + 1_800_000_000, at(43)),
        ("2026-11-04T01:00:00Z", "2026-11-04T02:00:00Z", at(13), at(14)),
    ];
    for (start, end, from, to) in ranges {
        let url = format!("{}/internal/billing/summary?tenant_id={}&start={start}&end={end}", gw.url, gw.tenant);
        let r = admin("GET", &url, "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let (n, cost, output) = expect(from, to);
        assert_eq!(v["totals"]["requests"], n, "{start}..{end}");
        assert_eq!(v["totals"]["cost"]["nano"], cost, "{start}..{end}");
        assert_eq!(v["totals"]["tokens"]["output"], output);
        let by_model: i64 =
            v["by_model"].as_array().unwrap().iter().map(|m| m["totals"]["cost"]["nano"].as_i64().unwrap()).sum();
        let by_key: i64 =
            v["by_api_key"].as_array().unwrap().iter().map(|m| m["totals"]["cost"]["nano"].as_i64().unwrap()).sum();
        let by_day: i64 =
            v["by_day"].as_array().unwrap().iter().map(|m| m["totals"]["cost"]["nano"].as_i64().unwrap()).sum();
        assert_eq!((by_model, by_key, by_day), (cost, cost, cost));
    }
    // Rolling everything up changes nothing.
    let url = format!(
        "{}/internal/billing/summary?tenant_id={}&start=2026-11-03T00:00:00Z&end=2026-11-06T00:00:00Z",
        gw.url, gw.tenant
    );
    let before = admin("GET", &url, "").await.json();
    xjp_gateway::ledger::rollup::rollup_all(db).await.unwrap();
    assert_eq!(admin("GET", &url, "").await.json()["totals"], before["totals"]);
    assert_eq!(before["by_day"].as_array().unwrap().len(), 3);

    let r = admin("GET", &format!("{}/internal/billing/summary?tenant_id={}", gw.url, Uuid::now_v7()), "").await;
    assert_eq!(r.status, 404);
    // A range with no rows is a zero summary, not an error.
    let empty = format!(
        "{}/internal/billing/summary?tenant_id={}&start=2020-01-01T00:00:00Z&end=2020-01-05T00:00:00Z",
        gw.url, gw.tenant
    );
    let r = admin("GET", &empty, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["totals"]["cost"]["nano"], 0);
    let r = admin("GET", &format!("{}/internal/billing/summary", gw.url), "").await;
    assert_eq!(r.status, 400);

    // Reconciliation: rows whose provider cost differs by more than the threshold.
    let v =
        admin("GET", &format!("{}/internal/billing/reconciliation?tenant_id={}", gw.url, gw.tenant), "").await.json();
    let flagged = rows.iter().filter(|r| r.provider_cost_nano.is_some_and(|p| (p - r.cost_nano).abs() > 1000)).count();
    assert_eq!(v["data"].as_array().unwrap().len(), flagged);
    assert!(flagged > 0);
}

#[tokio::test]
async fn self_service_balance_matches_the_books() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let chat = common::http::post(&format!("{}/v1/chat/completions", gw.url), &gw.key, &common::money::CHAT).await;
    assert_eq!(chat.status, 200);
    common::money::wait_rows(&gw.gw.db, gw.tenant, 1, std::time::Duration::from_secs(10)).await;
    common::money::assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    let auth = format!("Bearer {}", gw.key);
    let v =
        send("GET", &format!("{}/v1/billing/balance", gw.url), &[("authorization", auth.as_str())], "").await.json();
    let debits = v["debits"]["nano"].as_i64().unwrap();
    assert!(debits > 0);
    assert_eq!(v["balance"]["nano"].as_i64().unwrap(), common::harness::TEST_BALANCE_NANO - debits);
    assert_eq!(v["available"]["nano"], v["balance"]["nano"]);
    let usage =
        send("GET", &format!("{}/v1/billing/usage", gw.url), &[("authorization", auth.as_str())], "").await.json();
    assert_eq!(usage["totals"]["requests"], 1);
    assert_eq!(usage["totals"]["cost"]["nano"].as_i64().unwrap(), debits);
    assert_eq!(send("GET", &format!("{}/v1/billing/balance", gw.url), &[], "").await.status, 401);
}
