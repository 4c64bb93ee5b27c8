//! Fairness: one tenant's stalled streams, more of them than the plugin instance pool has,
//! take only its own `[limits]` cap (429 beyond it) while another tenant keeps getting 200s
//! (the real binary); a `[limits.per_tenant]` override raises one tenant's cap; an exhausted
//! pool answers 503 in the client's format, never 500; plugin calls on large inputs run on
//! the blocking pool.

use crate::common;

use bytes::Bytes;
use common::harness::{Options, TestGateway};
use common::http::{metric, post};
use common::money::CHAT;
use common::process::GatewayProcess;
use common::scenarios::{mock, pair_for};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use xjp_gateway::gateway::Gateway;

const MODEL: &str = "gpt-4o-mini-2024-07-18";
const STREAM: &str =
    r#"{"model":"gpt-4o-mini","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;

/// Opens `n` streams at once with `key` and keeps them open without reading (stalled
/// readers): the answers, bodies unread.
async fn open_streams(base: &str, key: &str, n: usize) -> Vec<hyper::Response<Incoming>> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (url, auth) = (format!("{base}/v1/chat/completions"), format!("Bearer {key}"));
            tokio::spawn(async move {
                let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
                let req = hyper::Request::post(url)
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(STREAM.as_bytes())))
                    .unwrap();
                client.request(req).await.expect("answered")
            })
        })
        .collect();
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

/// A second tenant with $10 and a key.
async fn other_tenant(gw: &Gateway) -> String {
    let tenant = xjp_gateway::db::tenants::create(&gw.db, "tenant b").await.unwrap();
    let (_, key) = xjp_gateway::db::keys::create(&gw.db, tenant.id, Some("b")).await.unwrap();
    let kind = xjp_gateway::db::credits::CreditKind::TopUp;
    xjp_gateway::db::credits::insert(&gw.db, tenant.id, "b", kind, 10_000_000_000, None).await.unwrap();
    key
}

/// The real binary with a plugin pool of 24 instances (the six plugins keep idle ones, so
/// fewer are free): tenant A opens 30 never-read streams (more than the pool holds; without
/// the cap they would take it all and B would get 503s), runs its cap of 4, and tenant B keeps
/// getting 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenants_stalled_streams_take_only_its_own_cap() {
    const POOL: usize = 24;
    const A_STREAMS: usize = 30;
    let mock = mock().await;
    // About 10 s per stream.
    mock.set_scenario(MODEL, pair_for(MODEL).with_chunk_interval(Duration::from_millis(500)));
    let (db, owner) = common::harness::owner(&mock.base_url()).await;
    let b = other_tenant(&owner.gw).await;
    let options = Options { plugins_toml: format!("max_instances = {POOL}"), tenant_cap: 4, ..Options::default() };
    let process = GatewayProcess::start(&mock.base_url(), &db.url, &options).await;
    let base = process.url.as_str();

    let streams = open_streams(base, &owner.key, A_STREAMS).await;
    let ok = streams.iter().filter(|r| r.status() == 200).count();
    let mut refused = Vec::new();
    for r in streams.into_iter().filter(|r| r.status() != 200) {
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        refused.push(r.into_body().collect().await.unwrap().to_bytes());
    }
    assert_eq!(ok, 4, "tenant A runs exactly its cap");
    assert_eq!(refused.len(), A_STREAMS - 4);
    let v: serde_json::Value = serde_json::from_slice(&refused[0]).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("limit 4"), "{v}");

    // Tenant B is served while A's four streams stall.
    for _ in 0..5 {
        let r = post(&format!("{base}/v1/chat/completions"), &b, &CHAT).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let b_streams = open_streams(base, &b, 3).await;
    assert!(b_streams.iter().all(|r| r.status() == 200));
    // A still cannot start more.
    assert_eq!(post(&format!("{base}/v1/chat/completions"), &owner.key, &CHAT).await.status, 429);
    assert_eq!(metric(base, "xjp_plugin_instance_unavailable_total").await, 0.0, "the pool was never exhausted");
    process.stop().await;
}

/// `n` streams opened at once with `key` (kept open, unread) and their statuses.
async fn stream_statuses(base: &str, key: &str, n: usize) -> (Vec<hyper::Response<Incoming>>, Vec<u16>) {
    let streams = open_streams(base, key, n).await;
    let statuses = streams.iter().map(|r| r.status().as_u16()).collect();
    (streams, statuses)
}

/// `[limits.per_tenant]` raises tenant B's cap to 6 above the default of 2 (its id spelled
/// in upper case); tenant A keeps the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_tenant_override_raises_one_tenants_cap() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_chunk_interval(Duration::from_millis(500)));
    // This gateway makes tenant B (the one with the override) before the one under test starts.
    let (db, b) = common::harness::owner(&mock.base_url()).await;
    let options = Options {
        database_url: Some(db.url.clone()),
        tenant_cap: 2,
        extra_toml: format!("[limits.per_tenant]\n\"{}\" = 6\n", b.tenant.to_string().to_uppercase()),
        ..Options::default()
    };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let (_a_streams, a) = stream_statuses(&gw.url, &gw.key, 5).await;
    let (_b_streams, b_got) = stream_statuses(&gw.url, &b.key, 8).await;
    let ok = |s: &[u16]| s.iter().filter(|s| **s == 200).count();
    assert_eq!((ok(&a), a.len() - ok(&a)), (2, 3), "tenant A has the default cap: {a:?}");
    assert_eq!((ok(&b_got), b_got.len() - ok(&b_got)), (6, 2), "tenant B has its own cap: {b_got:?}");
    assert!(a.iter().chain(&b_got).all(|s| [200, 429].contains(s)), "{a:?} {b_got:?}");
    let r = post(&format!("{}/v1/chat/completions", gw.url), &b.key, &CHAT).await;
    assert_eq!(r.status, 429);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("limit 6"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_plugin_pool_answers_503_in_the_clients_format() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_chunk_interval(Duration::from_millis(500)));
    let options = Options { plugins_toml: "max_instances = 8".into(), tenant_cap: 64, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let streams = open_streams(&gw.url, &gw.key, 12).await;
    let statuses: Vec<u16> = streams.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| [200, 503].contains(s)), "{statuses:?}");
    assert!(statuses.contains(&503), "the pool of 8 held 12 streams: {statuses:?}");
    // A whole answer gets the same clear 503 while the pool is full.
    let r = post(&format!("{}/v1/chat/completions", gw.url), &gw.key, &CHAT).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.headers["retry-after"], "1");
    let v = r.json();
    assert_eq!(v["error"]["type"], "api_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("no free plugin instance"), "{v}");
    // (Plugins with a ready instance of their own keep serving: instances are per plugin.)
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugin_calls_on_large_inputs_run_on_the_blocking_pool() {
    let mock = mock().await;
    // Every input is "large": each call goes to the blocking pool.
    let options = Options { plugins_toml: "offload_threshold_bytes = 1".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let whole = post(&url, &gw.key, &CHAT).await;
    assert_eq!(whole.status, 200);
    let stream = post(&url, &gw.key, STREAM).await;
    assert_eq!(stream.status, 200);
    assert!(stream.text().contains("data: [DONE]"));
    let offloaded = metric(&gw.url, "xjp_plugin_offloaded_calls_total").await;
    // Two estimates, one whole body and the stream's chunks.
    assert!(offloaded >= 5.0, "{offloaded}");
    common::money::wait_rows(&gw.gw.db, gw.tenant, 2, Duration::from_secs(10)).await;
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM billing_transactions WHERE tenant_id = $1")
        .bind(gw.tenant)
        .fetch_all(&gw.gw.db)
        .await
        .unwrap();
    assert_eq!(statuses, ["ok", "ok"], "both priced by the plugin");
}
