//! The hold is a hard cap. Requests with no output limit, or with limits of odd types, from
//! two gateway processes against a small balance: every request the provider gets carries an
//! output limit no larger than what was reserved, odd types are refused with a 400 before any
//! money moves, and the tenant never goes below zero (Redis equals Postgres to the nano-USD).

use crate::common;

use common::harness::{Options, TestDb, TestGateway};
use common::money::{assert_books_balance, books, wait_rows};
use common::process::GatewayProcess;
use common::scenarios::mock;
use std::time::Duration;
use xjp_mock_upstream::Scenario;

const MODEL: &str = "gemini-2.5-flash";
/// The test route's default output limit (config default).
const DEFAULT_MAX_OUTPUT: u64 = 4_096;
const REQUESTS: usize = 60;

/// A provider that writes as long an answer as it is allowed: exactly the output limit.
fn long_answer() -> String {
    format!(
        r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"text":"..."}}]}},"finishReason":"MAX_TOKENS","index":0}}],
"usageMetadata":{{"promptTokenCount":9,"candidatesTokenCount":{DEFAULT_MAX_OUTPUT},"totalTokenCount":{}}},"modelVersion":"{MODEL}"}}"#,
        DEFAULT_MAX_OUTPUT + 9
    )
}

const UNCAPPED: &str = r#"{"contents":[{"role":"user","parts":[{"text":"Write as much as you can."}]}]}"#;

async fn generate(url: &str, key: &str, body: &str) -> u16 {
    let h = [("x-goog-api-key", key), ("content-type", "application/json")];
    common::http::send("POST", &format!("{url}/v1beta/models/{MODEL}:generateContent"), &h, body.to_string())
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uncapped_and_odd_requests_never_overdraw() {
    let mock = mock().await;
    mock.set_scenario(MODEL, Scenario::json(200, long_answer()).with_first_byte_delay(Duration::from_millis(800)));
    let db = TestDb::create().await;
    let options = Options { database_url: Some(db.url.clone()), initial_balance_nano: 0, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;

    // Odd limits are refused before any money moves or any upstream call.
    for odd in [
        r#"{"contents":[],"generationConfig":{"maxOutputTokens":"60000"}}"#,
        r#"{"contents":[],"generationConfig":{"maxOutputTokens":1.5}}"#,
        r#"{"contents":[],"generationConfig":{"maxOutputTokens":-1}}"#,
        r#"{"contents":[],"generationConfig":{"maxOutputTokens":5},"generation_config":{"max_output_tokens":99999}}"#,
        r#"{"contents":[],"generationConfig":{"maxOutputTokens":5,"max_output_tokens":99999}}"#,
    ] {
        assert_eq!(generate(&gw.url, &gw.key, odd).await, 400, "{odd}");
    }
    assert!(mock.take_requests().is_empty(), "nothing odd reached the provider");

    // A balance of about five and a half uncapped requests at the model's default limit.
    let one = {
        let kind = xjp_gateway::db::credits::CreditKind::TopUp;
        xjp_gateway::db::credits::insert(&gw.gw.db, gw.tenant, "probe", kind, 1_000_000_000, None).await.unwrap();
        assert_eq!(generate(&gw.url, &gw.key, UNCAPPED).await, 200);
        wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(15)).await.cost_nano
    };
    assert!(one > 0);
    let kind = xjp_gateway::db::credits::CreditKind::Adjustment;
    let topped = books(&gw.gw.db, gw.tenant).await;
    let target = one * 11 / 2;
    let adjust = target - (topped.credits_nano - topped.cost_nano);
    xjp_gateway::db::credits::insert(&gw.gw.db, gw.tenant, "to-5.5", kind, adjust, None).await.unwrap();
    gw.gw.billing.balances.credit(gw.tenant, "to-5.5", adjust).await.unwrap();
    mock.take_requests();

    let mut procs = Vec::new();
    for _ in 0..2 {
        procs.push(GatewayProcess::start(&mock.base_url(), &db.url, &Options::default()).await);
    }
    let calls: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (url, key) = (procs[i % 2].url.clone(), gw.key.clone());
            tokio::spawn(async move { generate(&url, &key, UNCAPPED).await })
        })
        .collect();
    let mut admitted = 0;
    for c in calls {
        match c.await.unwrap() {
            200 => admitted += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!((1..=5).contains(&admitted), "about five fit, {admitted} admitted");
    for r in mock.take_requests() {
        let body = r.body_json().unwrap();
        assert_eq!(
            body["generationConfig"]["maxOutputTokens"],
            serde_json::json!(DEFAULT_MAX_OUTPUT),
            "every forwarded request carries the reserved output limit"
        );
    }
    let b = wait_rows(&gw.gw.db, gw.tenant, 1 + REQUESTS as i64, Duration::from_secs(30)).await;
    assert!(b.cost_nano <= b.credits_nano, "spent more than credited: {b:?}");
    let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
    assert!(live.available_nano >= 0, "below zero: {live:?}");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    for p in procs {
        p.stop().await;
    }
}

/// Request headers.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn model_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).unwrap()["model"].as_str().unwrap().to_string()
}

/// Without a client limit, each API format's upstream body carries the limit the hold was
/// priced with (OpenAI `max_completion_tokens` by default, Anthropic `max_tokens`, Gemini
/// `generationConfig.maxOutputTokens` above); a client limit above the route's is lowered.
#[tokio::test]
async fn every_api_format_forwards_the_reserved_output_limit() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let auth = format!("Bearer {}", gw.key);
    let openai = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let anthropic =
        [("x-api-key", gw.key.as_str()), ("anthropic-version", "2023-06-01"), ("content-type", "application/json")];
    let cases: [(&str, Headers, &str, &str); 4] = [
        (
            "/v1/chat/completions",
            &openai,
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
            "max_completion_tokens",
        ),
        (
            "/v1/chat/completions",
            &openai,
            r#"{"model":"or-sonnet","messages":[{"role":"user","content":"hi"}]}"#,
            "max_completion_tokens",
        ),
        (
            "/v1/messages",
            &anthropic,
            r#"{"model":"claude-sonnet-4-5","max_tokens":100000000,"messages":[{"role":"user","content":"hi"}]}"#,
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            &openai,
            r#"{"model":"gpt-4o-mini","max_completion_tokens":100000000,"messages":[{"role":"user","content":"hi"}]}"#,
            "max_completion_tokens",
        ),
    ];
    for (path, headers, body, field) in cases {
        mock.take_requests();
        let r = common::http::send("POST", &format!("{}{path}", gw.url), headers, body.to_string()).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        let sent = mock.take_requests();
        assert_eq!(sent.len(), 1, "{body}");
        let limit = sent[0].body_json().unwrap()[field].as_u64();
        let limit = limit.unwrap_or_else(|| panic!("{body}: no `{field}` upstream: {:?}", sent[0].body_json()));
        let route = gw.gw.settings.load().routes.route(&model_of(body)).unwrap().limits;
        assert!(limit <= route.max_output_tokens, "{body}: upstream `{field}` = {limit}, above the model's ceiling");
    }
}

/// A gateway whose provider reports `completion_tokens` for one request `id`; its row's cost,
/// output tokens and review flag once recorded, and the request's hold.
async fn answered_with_output(completion_tokens: u64, id: &str) -> (TestGateway, (i64, i64, bool), i64) {
    let mock = mock().await;
    let answer = format!(
        r#"{{"id":"chatcmpl-{id}","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
"choices":[{{"index":0,"message":{{"role":"assistant","content":"hi"}},"finish_reason":"stop"}}],
"usage":{{"prompt_tokens":400,"completion_tokens":{completion_tokens},"total_tokens":{}}}}}"#,
        completion_tokens + 400
    );
    mock.set_scenario("gpt-4o-mini-2024-07-18", Scenario::json(200, answer));
    let gw = TestGateway::start(&mock.base_url()).await;
    let chat = &*common::money::CHAT;
    let hold = common::money::hold_for(&gw.gw, "gpt-4o-mini", chat);
    let auth = format!("Bearer {}", gw.key);
    let h = [("authorization", auth.as_str()), ("x-request-id", id), ("content-type", "application/json")];
    let r = common::http::send("POST", &format!("{}/v1/chat/completions", gw.url), &h, chat.clone()).await;
    assert_eq!(r.status, 200);
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(15)).await;
    let row =
        sqlx::query_as("SELECT cost_nano, output_tokens, needs_review FROM billing_transactions WHERE request_id = $1")
            .bind(id)
            .fetch_one(&gw.gw.db)
            .await
            .unwrap();
    (gw, row, hold)
}

/// A provider that bills more than the hold (here: far more output than the limit it was
/// sent) is debited what it billed; the row is flagged for review and the excess counted.
#[tokio::test]
async fn billing_beyond_the_hold_is_debited_flagged_and_counted() {
    let (gw, (cost, output, review), hold) = answered_with_output(50_000, "over-the-hold").await;
    assert_eq!(output, 50_000, "billed what the provider reported");
    assert!(cost > hold, "the excess is debited: cost {cost}, hold {hold}");
    assert!(review, "a row beyond its hold is flagged");
    assert_eq!(common::money::settlement(gw.tenant, "over-the-hold").await, (Some(format!("settled:{cost}")), false));
    assert_eq!(common::http::metric(&gw.url, "xjp_billed_over_hold_total").await, 1.0);
    let excess = common::http::metric(&gw.url, "xjp_billed_over_hold_nano_usd_total").await;
    assert_eq!(excess, (cost - hold) as f64);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// A provider reporting absurd usage (10^15 output tokens, $600 million here) is debited at
/// most [`xjp_money::MAX_EXACT_NANO`], flagged: more would pass what the balance scripts hold
/// exactly, and Redis refuses the exponent form a Lua number takes from 1e17 on (the settle
/// then stopped partway, and every later load of the account wrote a balance Redis could not
/// add to).
#[tokio::test]
async fn absurd_reported_usage_is_debited_at_most_what_the_balance_holds_exactly() {
    let (gw, (cost, _, review), _) = answered_with_output(1_000_000_000_000_000, "absurd").await;
    assert_eq!(cost, xjp_money::MAX_EXACT_NANO);
    assert!(review, "flagged for review");
    assert_eq!(common::money::settlement(gw.tenant, "absurd").await, (Some(format!("settled:{cost}")), false));
    // Redis agrees with Postgres, to the nano (below zero: billing beyond the hold may).
    let books = common::money::books(&gw.gw.db, gw.tenant).await;
    let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
    assert_eq!((live.available_nano, live.held_nano), (books.credits_nano - cost, 0));
}
