//! A client that leaves mid-stream: the gateway drains the upstream in the background and
//! bills the provider's real usage (not an estimate, never zero).

use crate::common;

use common::harness::TestGateway;
use common::money::{assert_books_balance, wait_rows};
use common::scenarios::{mock, pair_for};
use http_body_util::{BodyExt, Full};
use std::time::Duration;

#[tokio::test]
async fn drained_stream_carries_the_provider_usage() {
    let mock = mock().await;
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair_for("gpt-4o-mini-2024-07-18").with_chunk_interval(Duration::from_millis(60)),
    );
    let gw = TestGateway::start(&mock.base_url()).await;
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let body = r#"{"model":"gpt-4o-mini","max_tokens":300,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = hyper::Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {}", gw.key))
        .header("x-request-id", "leaves-early")
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.into_body();
    let first = stream.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(stream); // the client goes away after the first chunk
    drop(client);

    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(15)).await;
    let (status, output, input, estimated): (String, i64, i64, bool) = sqlx::query_as(
        "SELECT status, output_tokens, input_uncached_tokens, estimated FROM billing_transactions WHERE request_id = 'leaves-early'",
    )
    .fetch_one(&gw.gw.db)
    .await
    .unwrap();
    assert_eq!(status, "client_disconnected");
    assert!(!estimated, "the drained stream reported real usage");
    assert_eq!((input, output), (28, 41), "the provider's usage from the final chunk");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

#[tokio::test]
async fn broken_upstream_stream_is_billed_as_an_estimate() {
    let mock = mock().await;
    mock.set_scenario("gpt-4o-mini-2024-07-18", pair_for("gpt-4o-mini-2024-07-18").cut_after(3));
    let gw = TestGateway::start(&mock.base_url()).await;
    let body = r#"{"model":"gpt-4o-mini","max_tokens":300,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let h = [("authorization", format!("Bearer {}", gw.key)), ("x-request-id", "cut-short".to_string())];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = common::http::send("POST", &format!("{}/v1/chat/completions", gw.url), &h, body).await;
    assert_eq!(r.status, 200);
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(15)).await;
    let (status, output, cost, estimated): (String, i64, i64, bool) = sqlx::query_as(
        "SELECT status, output_tokens, cost_nano, estimated FROM billing_transactions WHERE request_id = 'cut-short'",
    )
    .fetch_one(&gw.gw.db)
    .await
    .unwrap();
    assert_eq!(status, "interrupted");
    assert!(estimated);
    assert!(output > 0 && cost > 0, "never zero: output {output}, cost {cost}");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}
