//! A hold lives as long as its request: running requests renew their holds past
//! `hold_ttl_secs`, a swept request id stays refused, streams end at their time limit, and a
//! stream still running when the shutdown grace period ends is recorded and debited.

use crate::common;

use common::harness::{Options, TestDb, TestGateway};
use common::money::{CHAT, assert_books_balance, hold_for, rows_for, settlement};
use common::process::GatewayProcess;
use common::scenarios::{mock, pair_for};
use std::time::{Duration, Instant};
use xjp_gateway::billing::IdOrigin;

const MODEL: &str = "gpt-4o-mini-2024-07-18";

fn streaming(body: &str) -> String {
    body.replacen("\"max_tokens\"", "\"stream\":true,\"max_tokens\"", 1)
}

async fn send(url: &str, key: &str, id: &str, body: &str) -> common::http::Reply {
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str()), ("x-request-id", id), ("content-type", "application/json")];
    common::http::send("POST", &format!("{url}/v1/chat/completions"), &h, body.to_string()).await
}

/// Waits for the one row of `id`.
async fn row(db: &sqlx::PgPool, id: &str) -> (String, String, i64) {
    let start = Instant::now();
    loop {
        let rows = rows_for(db, id).await;
        if let [only] = rows.as_slice() {
            return only.clone();
        }
        assert!(rows.len() < 2, "{id}: {rows:?}");
        assert!(start.elapsed() < Duration::from_secs(20), "{id}: no row");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_stream_longer_than_the_hold_ttl_keeps_its_hold() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_chunk_interval(Duration::from_millis(200)));
    let options = Options { hold_ttl_secs: 1, sweep_interval_ms: 100, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let (url, key) = (gw.url.clone(), gw.key.clone());
    let body = streaming(&CHAT);
    let stream = tokio::spawn(async move { send(&url, &key, "long-stream", &body).await });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!stream.is_finished(), "the stream outlives the hold TTL");
    let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
    assert!(live.held_nano > 0, "the hold was renewed, not swept: {live:?}");
    assert_eq!(settlement(gw.tenant, "long-stream").await, (None, true));
    assert_eq!(send(&gw.url, &gw.key, "long-stream", &CHAT).await.status, 409, "the id is taken while it runs");
    let reply = stream.await.unwrap();
    assert_eq!(reply.status, 200);
    let (_, status, cost) = row(&gw.gw.db, "long-stream").await;
    assert_eq!(status, "ok");
    assert_eq!(settlement(gw.tenant, "long-stream").await, (Some(format!("settled:{cost}")), false));
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

#[tokio::test]
async fn a_swept_request_id_stays_refused_and_still_settles() {
    let mock = mock().await;
    let options = Options { hold_ttl_secs: 1, sweep_interval_ms: 100, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    // A gateway that died after its reservation: the hold expires and is swept.
    let balances = &gw.gw.billing.balances;
    balances.load(gw.tenant).await.unwrap();
    let before = balances.live(gw.tenant).await.unwrap();
    balances.reserve(gw.tenant, "orphan", IdOrigin::Client, 5_000).await.unwrap();
    // The sweeper finds the tenant through the hold index, not by walking the keyspace.
    let client = redis::Client::open(common::harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let indexed: Option<f64> = redis::cmd("ZSCORE")
        .arg(balances.keys().hold_tenants())
        .arg(gw.tenant.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(indexed.is_some(), "a tenant with a hold is in the index");
    let start = Instant::now();
    while balances.live(gw.tenant).await.unwrap().held_nano > 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(settlement(gw.tenant, "orphan").await, (Some("swept:0".into()), false));
    assert_eq!(send(&gw.url, &gw.key, "orphan", &CHAT).await.status, 409, "a swept id is not reusable");
    // The dying gateway's settlement arrives late: it is debited once, then never again.
    balances.settle(gw.tenant, "orphan", IdOrigin::Client, 1_234, "settled", true).await.unwrap();
    balances.settle(gw.tenant, "orphan", IdOrigin::Client, 1_234, "settled", true).await.unwrap();
    let after = balances.live(gw.tenant).await.unwrap();
    assert_eq!(after.available_nano, before.available_nano - 1_234);
    assert_eq!(settlement(gw.tenant, "orphan").await, (Some("settled:1234".into()), false));
}

#[tokio::test]
async fn a_stream_past_its_time_limit_ends_and_is_billed() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_chunk_interval(Duration::from_millis(300)));
    let gw = TestGateway::start_with(&mock.base_url(), Options { stream_max_secs: 1, ..Options::default() }).await;
    let reply = send(&gw.url, &gw.key, "too-long", &streaming(&CHAT)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("stream time limit reached"), "the client is told: {}", reply.text());
    let (_, status, cost) = row(&gw.gw.db, "too-long").await;
    assert_eq!(status, "interrupted");
    assert_eq!(cost, hold_for(&gw.gw, "gpt-4o-mini", &streaming(&CHAT)), "billed the hold (the default policy)");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

#[tokio::test]
async fn a_stream_running_past_the_shutdown_grace_is_recorded_and_debited() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_chunk_interval(Duration::from_millis(500)));
    let db = TestDb::create().await;
    let options = Options { database_url: Some(db.url.clone()), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let process =
        GatewayProcess::start(&mock.base_url(), &db.url, &Options { shutdown_grace_secs: 1, ..Options::default() })
            .await;
    let (url, key) = (process.url.clone(), gw.key.clone());
    let body = streaming(&CHAT);
    let stream = tokio::spawn(async move { send(&url, &key, "at-shutdown", &body).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stopped = Instant::now();
    process.stop().await;
    assert!(stopped.elapsed() < Duration::from_secs(8), "shutdown took {:?}", stopped.elapsed());
    let _ = stream.await;
    let (_, status, cost) = row(&gw.gw.db, "at-shutdown").await;
    assert_eq!(status, "interrupted");
    assert!(cost > 0, "the stream cut by shutdown is billed");
    assert_eq!(settlement(gw.tenant, "at-shutdown").await, (Some(format!("settled:{cost}")), false));
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// A client that stops reading a stream: once a chunk cannot be written within
/// `client_write_timeout_secs`, the client counts as gone, the upstream is drained and the
/// request is billed its real usage, once; the tenant's slot is free again.
#[tokio::test]
async fn a_stalled_reader_ends_within_the_write_timeout_and_is_billed() {
    use tokio::io::AsyncWriteExt;
    let mock = mock().await;
    // 512 chunks of 64 KiB (32 MiB): more than any socket buffer holds.
    let text = "x".repeat(64 * 1024);
    let mut sse = String::new();
    for i in 0..512 {
        sse.push_str(&format!(
            "data: {{\"id\":\"c{i}\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{MODEL}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    sse.push_str(&format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{MODEL}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":412,\"completion_tokens\":200,\"total_tokens\":612}}}}\n\ndata: [DONE]\n\n"
    ));
    mock.set_scenario(MODEL, xjp_mock_upstream::Scenario::stream(sse));
    let options = Options { client_write_timeout_secs: 1, tenant_cap: 1, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = gw.url.trim_start_matches("http://").parse().unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let body = streaming(&CHAT);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {}\r\nx-request-id: never-reads\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        gw.key,
        body.len()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(body.as_bytes()).await.unwrap();
    // The client never reads; the connection stays open.
    let started = Instant::now();
    let (_, status, cost) = row(&gw.gw.db, "never-reads").await;
    assert!(started.elapsed() < Duration::from_secs(20), "ended by the write timeout, not a test timeout");
    assert_eq!(status, "client_disconnected", "the drained stream carries the provider's usage");
    assert!(cost > 0);
    assert_eq!(settlement(gw.tenant, "never-reads").await, (Some(format!("settled:{cost}")), false));
    // The tenant's only slot is free again while the stalled connection is still open.
    assert_eq!(send(&gw.url, &gw.key, "after-the-stall", &CHAT).await.status, 200);
    drop(stalled);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}
