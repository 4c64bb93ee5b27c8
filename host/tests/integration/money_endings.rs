//! Every way a request can end leaves exactly one ledger row and (when money was held)
//! exactly one Redis settlement: an answer, a stream, a refusal (routing, balance), an
//! upstream error (a status, no connection, no first byte), an unreadable answer, a client
//! that left mid-call (waited for, or abandoned at the drain limit or the drain timeout), and
//! a request task that panicked.

use crate::common;

use common::harness::{Options, TestGateway};
use common::money::{CHAT, assert_books_balance, rows_for, settlement, wait_rows};
use common::scenarios::{mock, pair_for};
use http_body_util::Full;
use std::time::Duration;
use xjp_gateway::billing::{Bill, Caller, Ending};
use xjp_gateway::plugins::ApiFormat;
use xjp_gateway::proxy::context::RequestCtx;

const MODEL: &str = "gpt-4o-mini-2024-07-18";

/// Sends `body` as request `id` and returns the status.
async fn send(gw: &TestGateway, id: &str, body: &str) -> u16 {
    let auth = format!("Bearer {}", gw.key);
    let h = [("authorization", auth.as_str()), ("x-request-id", id), ("content-type", "application/json")];
    common::http::send("POST", &format!("{}/v1/chat/completions", gw.url), &h, body.to_string()).await.status
}

/// One row for `id` with `status`, and Redis settled it once with the row's cost.
async fn one_row_one_settlement(gw: &TestGateway, id: &str, status: &str) -> i64 {
    let db = &gw.gw.db;
    let start = std::time::Instant::now();
    let rows = loop {
        let rows = rows_for(db, id).await;
        if !rows.is_empty() || start.elapsed() > Duration::from_secs(15) {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 1, "{id}: exactly one row, got {rows:?}");
    let (request_id, got, cost) = rows[0].clone();
    assert_eq!(got, status, "{id}");
    assert_eq!(request_id, id, "{id}: the row carries the request id");
    let (state, held) = settlement(gw.tenant, id).await;
    let label = if cost > 0 { "settled" } else { "released" };
    assert_eq!(state, Some(format!("{label}:{cost}")), "{id}: one settlement with the row's cost");
    assert!(!held, "{id}: no hold left open");
    cost
}

/// The row's `(estimated, needs_review)` flags.
async fn flags(gw: &TestGateway, id: &str) -> (bool, bool) {
    sqlx::query_as("SELECT estimated, needs_review FROM billing_transactions WHERE client_request_id = $1")
        .bind(id)
        .fetch_one(&gw.gw.db)
        .await
        .unwrap()
}

/// After the books balanced (every row in): still exactly one row per id, none came late.
async fn still_one_row_each(gw: &TestGateway, ids: &[&str]) {
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in ids {
        assert_eq!(rows_for(&gw.gw.db, id).await.len(), 1, "{id}: a late second row");
    }
}

/// Sends `body` as request `id` and hangs up after `after`, before any answer.
async fn leave_after(gw: &TestGateway, id: &str, body: &str, after: Duration) {
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = hyper::Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {}", gw.key))
        .header("x-request-id", id)
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let pending = tokio::spawn(async move { client.request(req).await });
    tokio::time::sleep(after).await;
    pending.abort(); // the client hangs up while the provider is still working
    assert!(pending.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn each_ending_is_one_row_and_one_settlement() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;

    assert_eq!(send(&gw, "end-ok", &CHAT).await, 200);
    assert!(one_row_one_settlement(&gw, "end-ok", "ok").await > 0);
    // The settled request's access line feeds the per-provider, per-model spend counters.
    let metrics = common::http::send("GET", &format!("{}/metrics", gw.url), &[], "").await.text();
    assert!(
        metrics.lines().any(|l| l.starts_with("xjp_spend_nano_usd_total{") && l.contains("model=\"gpt-4o-mini\"")),
        "no spend counter for the model:\n{metrics}"
    );

    let stream = CHAT.replacen("\"max_tokens\"", "\"stream\":true,\"max_tokens\"", 1);
    assert_eq!(send(&gw, "end-stream", &stream).await, 200);
    assert!(one_row_one_settlement(&gw, "end-stream", "ok").await > 0);

    mock.set_scenario(MODEL, xjp_mock_upstream::Scenario::json(500, r#"{"error":{"message":"boom"}}"#));
    assert_eq!(send(&gw, "end-upstream", &CHAT).await, 500);
    assert_eq!(one_row_one_settlement(&gw, "end-upstream", "upstream_error").await, 0);

    // An answer the plugin cannot read, or one without usage, reached the client: billed the
    // hold (the default policy), flagged for review, never free.
    let hold = common::money::hold_for(&gw.gw, "gpt-4o-mini", &CHAT);
    mock.set_scenario(MODEL, xjp_mock_upstream::Scenario::json(200, "this is not JSON"));
    assert_eq!(send(&gw, "end-plugin", &CHAT).await, 200, "the answer still reaches the client");
    assert_eq!(one_row_one_settlement(&gw, "end-plugin", "plugin_error").await, hold);
    assert_eq!(flags(&gw, "end-plugin").await, (true, true));

    mock.set_scenario(MODEL, xjp_mock_upstream::Scenario::json(200, r#"{"choices":[]}"#));
    assert_eq!(send(&gw, "end-no-usage", &CHAT).await, 200);
    let no_usage = one_row_one_settlement(&gw, "end-no-usage", "no_usage").await;
    assert_eq!(no_usage, hold, "an answer that reached the client is billed the hold, never free");
    assert_eq!(flags(&gw, "end-no-usage").await, (true, true));

    // A refusal holds nothing: one row under its own id, nothing settled in Redis.
    let unknown = CHAT.replacen("gpt-4o-mini", "no-such-model", 1);
    assert_eq!(send(&gw, "end-refused", &unknown).await, 404);
    let rows = wait_rows(&gw.gw.db, gw.tenant, 6, Duration::from_secs(15)).await;
    assert_eq!(rows.rows, 6);
    let refused = rows_for(&gw.gw.db, "end-refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!((refused[0].1.as_str(), refused[0].2), ("routing_error", 0));
    assert_ne!(refused[0].0, "end-refused", "a refusal keeps the client's id free");
    assert_eq!(settlement(gw.tenant, "end-refused").await, (None, false));
    let ids = ["end-ok", "end-stream", "end-upstream", "end-plugin", "end-no-usage", "end-refused"];
    still_one_row_each(&gw, &ids).await;
}

/// The endings where no answer came: no connection, no first byte (both `UpstreamFailed`
/// with no status), and a refusal for want of balance. The hold goes back; one row each.
#[tokio::test]
async fn failures_before_an_answer_are_one_row_and_one_release() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let unreachable = CHAT.replacen("gpt-4o-mini", "unreachable", 1);
    assert_eq!(send(&gw, "end-no-connection", &unreachable).await, 502);
    assert_eq!(one_row_one_settlement(&gw, "end-no-connection", "upstream_error").await, 0);

    // The mock answers after 5 s; the provider's first-byte limit is 3 s.
    mock.set_scenario(MODEL, pair_for(MODEL).with_first_byte_delay(Duration::from_secs(5)));
    assert_eq!(send(&gw, "end-no-first-byte", &CHAT).await, 504);
    assert_eq!(one_row_one_settlement(&gw, "end-no-first-byte", "upstream_error").await, 0);
    still_one_row_each(&gw, &["end-no-connection", "end-no-first-byte"]).await;

    let poor =
        TestGateway::start_with(&mock.base_url(), Options { initial_balance_nano: 1_000, ..Default::default() }).await;
    mock.set_scenario(MODEL, pair_for(MODEL));
    assert_eq!(send(&poor, "end-no-balance", &CHAT).await, 402);
    let rows = wait_rows(&poor.gw.db, poor.tenant, 1, Duration::from_secs(15)).await;
    assert_eq!(rows.rows, 1);
    let refused = rows_for(&poor.gw.db, "end-no-balance").await;
    assert_eq!((refused.len(), refused[0].1.as_str(), refused[0].2), (1, "insufficient_balance", 0));
    assert_eq!(settlement(poor.tenant, "end-no-balance").await, (None, false), "nothing was held");
    still_one_row_each(&poor, &["end-no-balance"]).await;
}

/// A client that leaves a non-streaming request when the gateway cannot keep waiting for the
/// provider (no drain slot free, or the drain time limit passes): the provider may still bill
/// the call, so the row is the hold (the default `interrupted_usage`), and it settles once.
#[tokio::test]
async fn a_call_abandoned_after_the_client_left_is_billed_its_hold_once() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_first_byte_delay(Duration::from_millis(2500)));
    let no_slots = Options { max_drains: 0, ..Default::default() };
    let short = Options { drain_timeout_secs: 1, ..Default::default() };
    for (options, id) in [(no_slots, "abandoned-no-slot"), (short, "abandoned-timeout")] {
        let gw = TestGateway::start_with(&mock.base_url(), options).await;
        let hold = common::money::hold_for(&gw.gw, "gpt-4o-mini", &CHAT);
        leave_after(&gw, id, &CHAT, Duration::from_millis(300)).await;
        assert_eq!(one_row_one_settlement(&gw, id, "interrupted").await, hold, "{id}");
        let (estimated, _) = flags(&gw, id).await;
        assert!(estimated, "{id}");
        let error: Option<String> =
            sqlx::query_scalar("SELECT error_message FROM billing_transactions WHERE client_request_id = $1")
                .bind(id)
                .fetch_one(&gw.gw.db)
                .await
                .unwrap();
        assert!(error.is_some_and(|e| e.contains("drain")), "{id}: the row says why it was not waited for");
        still_one_row_each(&gw, &[id]).await;
    }
}

/// The issue's case: the client disconnects while a non-streaming request waits on a slow
/// upstream. The provider's real usage is billed and debited, exactly once.
#[tokio::test]
async fn a_client_that_leaves_during_a_slow_call_is_billed_the_real_usage() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_first_byte_delay(Duration::from_millis(1500)));
    let gw = TestGateway::start(&mock.base_url()).await;
    leave_after(&gw, "leaves-while-waiting", &CHAT, Duration::from_millis(300)).await;

    let cost = one_row_one_settlement(&gw, "leaves-while-waiting", "client_disconnected").await;
    let (input, output, estimated): (i64, i64, bool) = sqlx::query_as(
        "SELECT input_uncached_tokens, output_tokens, estimated FROM billing_transactions WHERE request_id = 'leaves-while-waiting'",
    )
    .fetch_one(&gw.gw.db)
    .await
    .unwrap();
    assert_eq!((input, output, estimated), (412, 187, false), "the provider's own usage, not an estimate");
    assert!(cost > 0);
    assert_eq!(mock.requests().len(), 1, "one upstream call");
    // The same id again is a duplicate, not a second charge.
    assert_eq!(send(&gw, "leaves-while-waiting", &CHAT).await, 409);
    assert_eq!(rows_for(&gw.gw.db, "leaves-while-waiting").await.len(), 1);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// A request task that panics (or is dropped) after its hold still ends in one row and one
/// settlement: the context's drop bills the hold's estimate, flagged for review.
#[tokio::test]
async fn a_request_task_that_panics_is_settled_by_its_context() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let settings = gw.gw.settings.load_full();
    let format = ApiFormat::OpenaiChat;
    let routed = xjp_gateway::proxy::route::resolve(
        &settings.routes,
        &gw.gw.catalog.load(),
        &gw.gw.plugins.current(),
        format,
        "gpt-4o-mini",
    )
    .unwrap();
    let key_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE tenant_id = $1")
        .bind(gw.tenant)
        .fetch_one(&gw.gw.db)
        .await
        .unwrap();
    let bill = Bill {
        request_id: "task-panicked".into(),
        client_request_id: Some("task-panicked".into()),
        caller: Caller { key_id, tenant_id: gw.tenant },
        format,
        model_requested: "gpt-4o-mini".into(),
        stream: false,
        started_at: std::time::SystemTime::now(),
        routed: Some(routed),
        reserved: None,
    };
    let mut ctx = RequestCtx::new(gw.gw.billing.clone(), bill, std::time::Instant::now());
    gw.gw.billing.reserve(ctx.bill_mut(), CHAT.as_bytes()).await.unwrap();
    let hold = ctx.bill().hold().unwrap().amount_nano;
    let task = tokio::spawn(async move {
        let _ctx = ctx;
        panic!("a bug in a phase");
    });
    assert!(task.await.unwrap_err().is_panic());
    let cost = one_row_one_settlement(&gw, "task-panicked", "interrupted").await;
    assert!(cost > 0 && cost <= hold, "billed within the hold: {cost} of {hold}");
    let (estimated, review): (bool, bool) =
        sqlx::query_as("SELECT estimated, needs_review FROM billing_transactions WHERE request_id = 'task-panicked'")
            .fetch_one(&gw.gw.db)
            .await
            .unwrap();
    assert!(estimated && review);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    // An explicit ending is final: finishing consumes the context, so nothing settles twice.
    let _: fn(RequestCtx, Ending) = RequestCtx::finish;
}

/// With `unreadable_usage = "estimate"` an answer without readable usage is billed what was
/// seen (the prompt bound from the request), not the hold: less than the hold, never zero,
/// still flagged for review.
#[tokio::test]
async fn the_estimate_policy_bills_what_was_seen() {
    let mock = mock().await;
    mock.set_scenario(MODEL, xjp_mock_upstream::Scenario::json(200, r#"{"choices":[]}"#));
    let billing_toml = "unreadable_usage = \"estimate\"\ninterrupted_usage = \"estimate\"".to_string();
    let gw = TestGateway::start_with(&mock.base_url(), Options { billing_toml, ..Default::default() }).await;
    let hold = common::money::hold_for(&gw.gw, "gpt-4o-mini", &CHAT);
    assert_eq!(send(&gw, "estimated-no-usage", &CHAT).await, 200);
    let cost = one_row_one_settlement(&gw, "estimated-no-usage", "no_usage").await;
    assert!(cost > 0 && cost < hold, "the estimate ({cost}) is below the hold ({hold}) and never zero");
    assert_eq!(flags(&gw, "estimated-no-usage").await, (true, true));
    still_one_row_each(&gw, &["estimated-no-usage"]).await;
}
