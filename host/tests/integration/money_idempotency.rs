//! A request id sent twice, sequentially or concurrently: one upstream call, one
//! transaction, one debit. The repeat is refused with 409 in the client's format, and so is
//! an id the gateway made, sent back by the client.

use crate::common;

use common::harness::TestGateway;
use common::http::send;
use common::money::{CHAT, assert_books_balance, books, wait_rows};
use common::scenarios::{mock, pair_for};
use std::time::Duration;

async fn call(url: &str, key: &str, id: &str) -> u16 {
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", id)];
    send("POST", &format!("{url}/v1/chat/completions"), &h, CHAT.clone()).await.status
}

async fn debits_for(db: &sqlx::PgPool, tenant: uuid::Uuid, id: &str) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), COALESCE(sum(cost_nano), 0)::BIGINT FROM billing_transactions WHERE tenant_id = $1 AND request_id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn sequential_repeat_is_refused_and_billed_once() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    assert_eq!(call(&gw.url, &gw.key, "order-42").await, 200);
    assert_eq!(call(&gw.url, &gw.key, "order-42").await, 409);
    assert_eq!(mock.take_requests().len(), 1, "one upstream call");
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(10)).await;
    let (rows, cost) = debits_for(&gw.gw.db, gw.tenant, "order-42").await;
    assert_eq!(rows, 1);
    assert!(cost > 0);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_repeats_are_billed_once() {
    let mock = mock().await;
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair_for("gpt-4o-mini-2024-07-18").with_first_byte_delay(Duration::from_millis(500)),
    );
    let gw = TestGateway::start(&mock.base_url()).await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn({
                let (url, key) = (gw.url.clone(), gw.key.clone());
                async move { call(&url, &key, "same-id").await }
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");
    assert_eq!(mock.take_requests().len(), 1);
    // Another tenant may use the same id: ids are per tenant.
    let b = wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(10)).await;
    assert_eq!(b.rows, 1);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    assert_eq!(books(&gw.gw.db, gw.tenant).await.rows, 1);
}

#[tokio::test]
async fn an_id_with_a_row_stays_refused_after_its_redis_state_expired() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    assert_eq!(call(&gw.url, &gw.key, "kept-a-week").await, 200);
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(15)).await;
    // A week later Redis has forgotten the request; the ledger has not.
    let client = redis::Client::open(common::harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(gw.gw.billing.balances.keys().request(gw.tenant, "kept-a-week"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(call(&gw.url, &gw.key, "kept-a-week").await, 409);
    assert_eq!(mock.requests().len(), 1, "no second upstream call");
    assert_eq!(common::money::rows_for(&gw.gw.db, "kept-a-week").await.len(), 1);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// A gateway on a Postgres of its own, which the test can stop and resume.
async fn on_private_postgres() -> (common::services::PrivatePostgres, xjp_mock_upstream::MockUpstream, TestGateway) {
    let pg = common::services::PrivatePostgres::start();
    let mock = mock().await;
    let options = common::harness::Options { database_url: Some(pg.url()), ..Default::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    (pg, mock, gw)
}

/// While Postgres cannot say whether a client's id has a row, that id is refused (503 in the
/// client's format, nothing held, no upstream call) rather than debited with a row that
/// could be dropped as a duplicate; requests without an id are still served, and the id is
/// served once Postgres is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_id_is_refused_while_the_ledger_cannot_check_it() {
    let (pg, mock, gw) = on_private_postgres().await;
    assert_eq!(call(&gw.url, &gw.key, "before-the-outage").await, 200);
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(15)).await;

    pg.stop();
    let auth = format!("Bearer {}", gw.key);
    let h = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", "unchecked")];
    let url = format!("{}/v1/chat/completions", gw.url);
    let r = send("POST", &url, &h, CHAT.clone()).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "api_error", "{}", r.text());
    assert!(r.text().contains("request id"), "{}", r.text());
    assert_eq!(common::money::settlement(gw.tenant, "unchecked").await, (None, false), "nothing held for it");
    assert_eq!(mock.requests().len(), 1, "no upstream call for the unchecked id");
    let plain = common::http::post(&url, &gw.key, &CHAT).await;
    assert_eq!(plain.status, 200, "a request without an id is served from the spool: {}", plain.text());

    pg.resume();
    let start = std::time::Instant::now();
    let status = loop {
        let status = call(&gw.url, &gw.key, "unchecked").await;
        if status != 503 || start.elapsed() > Duration::from_secs(30) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 200, "the id is served once the ledger answers");
    assert_eq!(call(&gw.url, &gw.key, "unchecked").await, 409);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// An id the gateway made is kept in Redis for an hour only; a client that sends it back
/// later is refused by the ledger, even while its row still waits in this gateway's spool
/// (Postgres down): no second upstream call, one row, one debit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_made_id_sent_back_is_refused_from_the_spool() {
    let (pg, mock, gw) = on_private_postgres().await;
    let url = format!("{}/v1/chat/completions", gw.url);
    // The account is loaded into Redis while Postgres is up.
    assert_eq!(common::http::post(&url, &gw.key, &CHAT).await.status, 200);
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(15)).await;
    pg.stop();
    let first = common::http::post(&url, &gw.key, &CHAT).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let id = first.headers["x-request-id"].to_str().unwrap().to_string();
    // An hour later Redis has forgotten it; the row is still only in the spool.
    let state = gw.gw.billing.balances.keys().request(gw.tenant, &id);
    let mut conn =
        redis::Client::open(common::harness::redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // The settlement follows the response.
    let mut ttl = -2;
    common::until("the request's state", Duration::from_secs(10), async || {
        ttl = redis::cmd("TTL").arg(&state).query_async(&mut conn).await.unwrap();
        ttl != -2
    })
    .await;
    assert!((1..=3600).contains(&ttl), "a gateway-made id's state is kept an hour, not {ttl} s");
    let _: i64 = redis::cmd("DEL").arg(&state).query_async(&mut conn).await.unwrap();

    assert_eq!(call(&gw.url, &gw.key, &id).await, 409, "the id sent back is refused");
    assert_eq!(mock.requests().len(), 2, "no upstream call for the id sent back");
    pg.resume();
    wait_rows(&gw.gw.db, gw.tenant, 2, Duration::from_secs(30)).await;
    assert_eq!(debits_for(&gw.gw.db, gw.tenant, &id).await.0, 1);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// Postgres dropping the gateway's pooled connections (backends terminated, as a restart or
/// an operator would) costs no client-id request: a connection taken from the pool is not
/// pinged first unless it sat idle over a second (a round trip less per request), and the
/// request's ledger check is tried again over the dropped ones. Each id is still billed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_pool_connections_cost_no_client_id_request() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let db = gw.db.as_ref().unwrap();
    // Several at once leave several connections in the pool, used a moment ago.
    let warm = (0..6).map(|i| {
        let (url, key) = (gw.url.clone(), gw.key.clone());
        async move { call(&url, &key, &format!("warm-{i}")).await }
    });
    assert_eq!(futures_util::future::join_all(warm).await, vec![200; 6]);
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let dropped: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'xjp-gateway'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(dropped.len() >= 2, "the gateway held {} connections", dropped.len());
    for i in 0..8 {
        assert_eq!(call(&gw.url, &gw.key, &format!("after-{i}")).await, 200, "request {i} after the drop");
    }
    assert_eq!(call(&gw.url, &gw.key, "after-0").await, 409, "an id is still checked");
    let start = std::time::Instant::now();
    let rows: i64 = loop {
        let n = sqlx::query_scalar("SELECT count(*) FROM billing_transactions WHERE tenant_id = $1")
            .bind(gw.tenant)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if n >= 14 || start.elapsed() > Duration::from_secs(30) {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows, 14, "one row per id");
    assert_eq!(mock.requests().len(), 14, "one upstream call per id");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}
