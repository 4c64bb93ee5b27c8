//! A settlement that cannot reach Redis is not lost: its debit is registered as unrecorded,
//! and once Redis answers the request's hold is dropped and the account rebuilt from
//! Postgres, so the live balance equals the ledger to the nano-USD. Top-ups are never lost
//! from the live balance either: not when their Redis step failed, not when retried.

use crate::common;

use common::harness::{Options, TestGateway};
use common::money::{CHAT, assert_books_balance, rows_for};
use common::scenarios::{mock, pair_for};
use common::services::PrivateRedis;
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini-2024-07-18";

fn redis_cmd(url: &str, args: &[&str]) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query(&mut conn).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_redis_missed_is_resynced_when_it_returns() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_first_byte_delay(Duration::from_millis(1000)));
    let redis = PrivateRedis::start();
    let options = Options { redis_url: Some(redis.url()), sweep_interval_ms: 200, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let (url, key) = (format!("{}/v1/chat/completions", gw.url), gw.key.clone());
    let auth = format!("Bearer {key}");
    let send = |id: &'static str| {
        let (url, auth) = (url.clone(), auth.clone());
        async move {
            let h = [("authorization", auth.as_str()), ("x-request-id", id), ("content-type", "application/json")];
            common::http::send("POST", &url, &h, CHAT.to_string()).await.status
        }
    };
    assert_eq!(send("before").await, 200);
    // Redis stops taking writes while the next request waits on the provider (its hold is
    // already taken): every settle attempt times out; the data stays.
    let pending = tokio::spawn(send("while-paused"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis_cmd(&redis.url(), &["CLIENT", "PAUSE", "60000", "WRITE"]);
    assert_eq!(pending.await.unwrap(), 200, "the answer does not wait for billing");
    common::until("the failed settlement is queued", Duration::from_secs(40), async || {
        !gw.gw.billing.resyncs.is_empty()
    })
    .await;
    // The row is confirmed right after the settlement is queued for resync, then inserted.
    common::until("the row is recorded anyway", Duration::from_secs(10), async || {
        !rows_for(&gw.gw.db, "while-paused").await.is_empty()
    })
    .await;
    assert_eq!(rows_for(&gw.gw.db, "while-paused").await.len(), 1, "recorded once");
    // The settle commands Redis queued while paused are lost with their connections: only
    // the resync can bring the debit back.
    redis_cmd(&redis.url(), &["CLIENT", "KILL", "TYPE", "normal"]);
    redis_cmd(&redis.url(), &["CLIENT", "UNPAUSE"]);
    // The resync marks the account for a rebuild. The first command on a killed connection
    // fails ("broken pipe") and the connection manager reconnects: an error here is "not yet".
    common::until("the account is marked for a rebuild", Duration::from_secs(20), async || {
        gw.gw.billing.balances.live(gw.tenant).await.is_ok_and(|live| !live.loaded)
    })
    .await;
    // The run marks the account before it ends: wait for its end, not just the mark.
    common::until("the resync run is over", Duration::from_secs(5), async || gw.gw.billing.resyncs.is_empty()).await;
    gw.gw.billing.balances.load(gw.tenant).await.unwrap();
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    assert_eq!(send("after").await, 200);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// `redis_failure = "open"`: with Redis not answering, a request is served without a hold,
/// and its settlement, which Redis never got, is applied (by a rebuild) once it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_request_is_debited_when_redis_returns() {
    let mock = mock().await;
    let redis = PrivateRedis::start();
    let billing_toml = "redis_failure = \"open\"".to_string();
    let options = Options { redis_url: Some(redis.url()), sweep_interval_ms: 200, billing_toml, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    assert_eq!(common::http::post(&url, &gw.key, &CHAT).await.status, 200);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    let before = gw.gw.billing.balances.live(gw.tenant).await.unwrap().available_nano;

    redis_cmd(&redis.url(), &["CLIENT", "PAUSE", "60000", "WRITE"]);
    let auth = format!("Bearer {}", gw.key);
    let h = [("authorization", auth.as_str()), ("x-request-id", "served-open"), ("content-type", "application/json")];
    let r = common::http::send("POST", &url, &h, CHAT.to_string()).await;
    assert_eq!(r.status, 200, "served without a hold: {}", r.text());
    common::until("the row is recorded anyway", Duration::from_secs(30), async || {
        !rows_for(&gw.gw.db, "served-open").await.is_empty()
    })
    .await;
    let cost = rows_for(&gw.gw.db, "served-open").await[0].2;
    assert!(cost > 0, "billed its real usage");
    assert!(!gw.gw.billing.resyncs.is_empty(), "the settlement waits for Redis");
    // Whatever Redis queued while paused is lost with its connections.
    redis_cmd(&redis.url(), &["CLIENT", "KILL", "TYPE", "normal"]);
    redis_cmd(&redis.url(), &["CLIENT", "UNPAUSE"]);
    common::until("the settlement is resynced", Duration::from_secs(20), async || gw.gw.billing.resyncs.is_empty())
        .await;
    gw.gw.billing.balances.load(gw.tenant).await.unwrap();
    let after = gw.gw.billing.balances.live(gw.tenant).await.unwrap().available_nano;
    assert_eq!(before - after, cost, "the live balance carries the debit Redis missed");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

#[tokio::test]
async fn top_ups_are_never_lost_from_the_live_balance() {
    let mock = mock().await;
    let redis = PrivateRedis::start();
    let gw =
        TestGateway::start_with(&mock.base_url(), Options { redis_url: Some(redis.url()), ..Options::default() }).await;
    let admin = |path: String, body: String| async move {
        let auth = format!("Bearer {}", common::harness::ADMIN_TOKEN);
        let h = [("authorization", auth.as_str()), ("content-type", "application/json")];
        common::http::send("POST", &path, &h, body).await.status
    };
    let topups = format!("{}/admin/tenants/{}/topups", gw.url, gw.tenant);
    // Never loaded: the top-up loads the account, which counts it once.
    assert_eq!(admin(topups.clone(), r#"{"id":"t1","amount_usd":"1"}"#.into()).await, 201);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    // Its Redis step fails (writes paused past the response timeout, the queued command
    // lost with its connection): recorded, not applied…
    redis_cmd(&redis.url(), &["CLIENT", "PAUSE", "6000", "WRITE"]);
    assert_eq!(admin(topups.clone(), r#"{"id":"t2","amount_usd":"2"}"#.into()).await, 201);
    redis_cmd(&redis.url(), &["CLIENT", "KILL", "TYPE", "normal"]);
    redis_cmd(&redis.url(), &["CLIENT", "UNPAUSE"]);
    // …and applied once Redis answers, without the client retrying…
    common::until("the credit is applied", Duration::from_secs(20), async || gw.gw.billing.resyncs.is_empty()).await;
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    // …and a retry does not apply it again.
    assert_eq!(admin(topups.clone(), r#"{"id":"t2","amount_usd":"2"}"#.into()).await, 200);
    assert_eq!(admin(topups.clone(), r#"{"id":"t2","amount_usd":"2"}"#.into()).await, 200);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    // Racing loads: the account is dropped and top-ups race the rebuilds it triggers.
    for round in 0..20 {
        redis_cmd(&redis.url(), &["DEL", &common::harness::keys().tenant(gw.tenant).account]);
        let (a, b) = tokio::join!(
            admin(topups.clone(), format!(r#"{{"id":"race-{round}","amount_nano":1000}}"#)),
            gw.gw.billing.balances.load(gw.tenant),
        );
        assert_eq!(a, 201);
        b.unwrap();
    }
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}
