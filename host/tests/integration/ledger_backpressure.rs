//! Load shedding before losing a row: while the ledger's backlog (rows durable in the spool
//! but not in Postgres) is at its bound, new requests get 503 in their own API format before
//! anything is reserved; every accepted row stays in the spool; once Postgres is back and
//! the backlog drains the gateway serves again, and the books balance.

use crate::common;

use common::harness::{Options, TestGateway};
use common::http::{Reply, metric, post, send};
use common::money::{CHAT, assert_books_balance, settlement, wait_rows};
use common::scenarios::mock;
use common::services::PrivatePostgres;
use common::until;
use std::time::Duration;

const BOUND: u64 = 8;

fn assert_shed(r: &Reply, format: &str) {
    assert_eq!(r.status, 503, "{format}: {}", r.text());
    assert_eq!(r.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"), "{format}");
    let body = r.json();
    let message = match format {
        "openai" => {
            assert_eq!(body["error"]["type"], "api_error", "{body}");
            &body["error"]["message"]
        }
        "anthropic" => {
            assert_eq!(body["type"], "error", "{body}");
            assert!(body["error"]["type"].is_string(), "{body}");
            &body["error"]["message"]
        }
        _ => {
            assert_eq!(
                (&body["error"]["code"], &body["error"]["status"]),
                (&503.into(), &"UNAVAILABLE".into()),
                "{body}"
            );
            &body["error"]["message"]
        }
    };
    assert!(message.as_str().unwrap().contains("billing ledger"), "{format}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_backlog_sheds_new_requests_until_postgres_returns() {
    let pg = PrivatePostgres::start();
    let mock = mock().await;
    let billing_toml = format!("spool_max_rows = {BOUND}");
    let options = Options { database_url: Some(pg.url()), key_cache_ttl_ms: 100, billing_toml, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let (db, tenant, ledger) = (&gw.gw.db, gw.tenant, &gw.gw.billing.ledger);
    let chat = format!("{}/v1/chat/completions", gw.url);
    for _ in 0..3 {
        assert_eq!(post(&chat, &gw.key, &CHAT).await.status, 200);
    }
    wait_rows(db, tenant, 3, Duration::from_secs(10)).await;
    until("the backlog empties", Duration::from_secs(5), async || ledger.backlog().rows() == 0).await;

    // Postgres goes away: served requests' rows wait in the spool, one by one up to the
    // bound; then new requests are shed.
    pg.stop();
    let mut served = 0;
    let shed = loop {
        let r = post(&chat, &gw.key, &CHAT).await;
        if r.status != 200 {
            break r;
        }
        served += 1;
        assert!(served <= BOUND, "{served} requests served with the backlog at its bound of {BOUND}");
        until("the row is spooled", Duration::from_secs(5), async || ledger.backlog().rows() == served).await;
    };
    assert_eq!(served, BOUND, "served until the backlog reached its bound");
    assert_shed(&shed, "openai");
    let anthropic =
        [("x-api-key", gw.key.as_str()), ("anthropic-version", "2023-06-01"), ("content-type", "application/json")];
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
    assert_shed(&send("POST", &format!("{}/v1/messages", gw.url), &anthropic, body).await, "anthropic");
    let gemini = [("x-goog-api-key", gw.key.as_str()), ("content-type", "application/json")];
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
    let url = format!("{}/v1beta/models/gemini-2.5-flash:generateContent", gw.url);
    assert_shed(&send("POST", &url, &gemini, body).await, "gemini");
    // Shed before the reserve: the id left no trace in Redis (and stays usable).
    let auth = format!("Bearer {}", gw.key);
    let with_id =
        [("authorization", auth.as_str()), ("content-type", "application/json"), ("x-request-id", "shed-then-served")];
    assert_shed(&send("POST", &chat, &with_id, CHAT.to_string()).await, "openai");
    assert_eq!(settlement(tenant, "shed-then-served").await, (None, false), "nothing reserved for a shed request");
    assert!(metric(&gw.url, "xjp_ledger_shed_requests_total").await >= 4.0);
    let gauge = async || metric(&gw.url, "xjp_ledger_backlog_rows").await as u64 == BOUND;
    until("the backlog gauge reports the bound", Duration::from_secs(3), gauge).await;
    assert_eq!(ledger.backlog().rows(), BOUND, "every accepted row waits in the spool");
    assert!(ledger.backlog().bytes() > 0);

    // Postgres returns: the backlog drains and the gateway serves again by itself.
    pg.resume();
    let mut after = 0;
    until("requests are served again", Duration::from_secs(30), async || {
        let ok = post(&chat, &gw.key, &CHAT).await.status == 200;
        after += i64::from(ok);
        ok
    })
    .await;
    let r = send("POST", &chat, &with_id, CHAT.to_string()).await;
    assert_eq!(r.status, 200, "the shed id is served: {}", r.text());
    let total = 3 + BOUND as i64 + after + 1;
    let b = wait_rows(db, tenant, total, Duration::from_secs(20)).await;
    assert_eq!((b.rows, b.served), (total, total), "one row per served request, none for a shed one");
    let dupes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM billing_transactions GROUP BY tenant_id, request_id HAVING count(*) > 1) d",
    )
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(dupes, 0);
    until("the backlog drains", Duration::from_secs(10), async || ledger.backlog().rows() == 0).await;
    assert_books_balance(&gw.gw, db, tenant).await;
}
