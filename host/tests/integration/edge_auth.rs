//! Authentication under attack: floods of random `XJP_…` keys are rate limited (429 without
//! a Postgres lookup beyond `unknown_key_lookups_per_sec`) and cached negatively in their own
//! cache, so they evict nothing: keys verified before keep working while Postgres is stopped,
//! and a key revoked on this gateway loses its outage grace.

use crate::common;

use bytes::Bytes;
use common::harness::{ADMIN_TOKEN, Options, TestGateway};
use common::http::{metric, post, send};
use common::money::CHAT;
use common::scenarios::mock;
use common::services::PrivatePostgres;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `n` requests with random keys from 32 concurrent callers on kept-alive connections:
/// the statuses they got, counted.
async fn flood(base: &str, n: usize) -> BTreeMap<u16, usize> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{base}/v1/models");
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut seen = BTreeMap::new();
                for _ in 0..n / 32 {
                    let key = format!("XJP_{}", uuid::Uuid::new_v4().simple());
                    let req = hyper::Request::get(&url)
                        .header("authorization", format!("Bearer {key}"))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let resp = client.request(req).await.expect("answered");
                    let status = resp.status().as_u16();
                    resp.into_body().collect().await.unwrap();
                    *seen.entry(status).or_insert(0) += 1;
                }
                seen
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    for c in callers {
        for (status, count) in c.await.unwrap() {
            *all.entry(status).or_insert(0) += count;
        }
    }
    all
}

async fn models(base: &str, key: &str) -> u16 {
    let auth = format!("Bearer {key}");
    send("GET", &format!("{base}/v1/models"), &[("authorization", auth.as_str())], "").await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_flood_during_a_postgres_outage_evicts_no_verified_key() {
    let pg = PrivatePostgres::start();
    let mock = mock().await;
    let options = Options {
        database_url: Some(pg.url()),
        key_cache_ttl_ms: 100,
        // Small caches: 2,000 random keys would evict every verified key from a shared one.
        auth_toml: "max_cached_keys = 50\nmax_negative_keys = 50\nunknown_key_lookups_per_sec = 20".into(),
        ..Options::default()
    };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let mut verified = vec![gw.key.clone()];
    for i in 0..5 {
        verified.push(xjp_gateway::db::keys::create(&gw.gw.db, gw.tenant, Some(&format!("k{i}"))).await.unwrap().1);
    }
    let (revoked_row, revoked) = xjp_gateway::db::keys::create(&gw.gw.db, gw.tenant, Some("revoked")).await.unwrap();
    for key in verified.iter().chain([&revoked]) {
        assert_eq!(models(&gw.url, key).await, 200);
    }
    // The tenant's balance is in Redis before the outage (a new account is loaded from Postgres).
    assert_eq!(post(&format!("{}/v1/chat/completions", gw.url), &gw.key, &CHAT).await.status, 200);

    // Postgres up: the flood is refused (401 or 429), and only ~20 lookups a second reach it.
    let started = Instant::now();
    let statuses = flood(&gw.url, 2_048).await;
    let took = started.elapsed().as_secs_f64();
    let looked_up = metric(&gw.url, "xjp_key_lookups_total{result=\"unknown\"}").await;
    let limited = metric(&gw.url, "xjp_key_lookups_total{result=\"limited\"}").await;
    println!("flood with Postgres up: {statuses:?} in {took:.2} s; {looked_up} lookups, {limited} limited");
    assert!(statuses.keys().all(|s| [401, 429].contains(s)), "{statuses:?}");
    assert!(looked_up <= 20.0 * took + 25.0, "{looked_up} Postgres lookups in {took:.2} s");
    assert!(limited >= 1_000.0, "{limited}");

    // Revoked through this gateway: its cached lookup and its outage grace go at once.
    let r = send(
        "POST",
        &format!("{}/admin/keys/{}/revoke", gw.url, revoked_row.id),
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    // It needs a lookup token now (the flood took them; they come back within a second).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(models(&gw.url, &revoked).await, 401);

    pg.stop();
    let started = Instant::now();
    let statuses = flood(&gw.url, 2_048).await;
    let took = started.elapsed();
    let failed = metric(&gw.url, "xjp_key_lookups_total{result=\"failed\"}").await;
    println!("flood with Postgres stopped: {statuses:?} in {took:?}; {failed} lookups tried");
    assert!(statuses.keys().all(|s| [401, 429, 503].contains(s)), "{statuses:?}");
    // The lookups already under way when Postgres went (at most the bucket's 20), then one
    // a second probes it; the rest are answered without trying.
    assert!(failed <= 20.0 + took.as_secs_f64() + 2.0, "{failed} failed lookups in {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");

    // Every key verified before the outage still works (its lookup fails: the grace answers).
    tokio::time::sleep(Duration::from_millis(200)).await;
    for key in &verified {
        assert_eq!(models(&gw.url, key).await, 200, "a verified key was evicted by the flood");
    }
    let r = post(&format!("{}/v1/chat/completions", gw.url), &verified[3], &CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(models(&gw.url, &revoked).await, 200, "a revoked key has no outage grace");
    assert!(metric(&gw.url, "xjp_key_lookups_total{result=\"grace\"}").await >= 6.0);
    pg.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_in_steady_use_is_refreshed_in_the_background_and_still_revoked_in_time() {
    let mock = mock().await;
    let options = Options { key_cache_ttl_ms: 400, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    // Three TTLs of steady use: only the first request waits on Postgres.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1200) {
        assert_eq!(models(&gw.url, &gw.key).await, 200);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let found = metric(&gw.url, "xjp_key_lookups_total{result=\"found\"}").await;
    let refreshes = metric(&gw.url, "xjp_key_refreshes_total").await;
    assert!(refreshes >= 2.0, "refreshed in the background: {refreshes}");
    assert_eq!(found - refreshes, 1.0, "one lookup a request waited for ({found} lookups, {refreshes} refreshes)");
    // Revoked behind this gateway's back (another replica, SQL): refused within the TTL.
    sqlx::query("UPDATE api_keys SET status = 'revoked' WHERE tenant_id = $1")
        .bind(gw.tenant)
        .execute(&gw.gw.db)
        .await
        .unwrap();
    let revoked = Instant::now();
    while models(&gw.url, &gw.key).await == 200 {
        assert!(
            revoked.elapsed() < Duration::from_millis(400 + 300),
            "still served {:?} after revocation",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
