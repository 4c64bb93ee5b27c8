//! Authentication under attack (the real binary): floods of random `XJP_…` keys are rate
//! limited (429 without a Postgres lookup beyond `unknown_key_lookups_per_sec`) and cached
//! negatively in their own cache (a repeated unknown key is looked up once), so they evict
//! nothing: keys verified before keep working while Postgres is stopped, and a key revoked on
//! this gateway loses its outage grace.

use crate::common;

use bytes::Bytes;
use common::harness::{ADMIN_TOKEN, Options, TestGateway};
use common::http::{metric, post, send};
use common::money::CHAT;
use common::process::GatewayProcess;
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

const UNKNOWN: &str = "xjp_key_lookups_total{result=\"unknown\"}";
const LIMITED: &str = "xjp_key_lookups_total{result=\"limited\"}";

async fn models(base: &str, key: &str) -> u16 {
    let auth = format!("Bearer {key}");
    send("GET", &format!("{base}/v1/models"), &[("authorization", auth.as_str())], "").await.status
}

/// The real binary, flooded: the in-process gateway only migrates the database and makes the
/// tenant and its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_flood_during_a_postgres_outage_evicts_no_verified_key() {
    let pg = PrivatePostgres::start();
    let mock = mock().await;
    let owner =
        TestGateway::start_with(&mock.base_url(), Options { database_url: Some(pg.url()), ..Options::default() }).await;
    let options = Options {
        key_cache_ttl_ms: 100,
        // Small caches: 2,000 random keys would evict every verified key from a shared one.
        auth_toml: "max_cached_keys = 50\nmax_negative_keys = 50\nunknown_key_lookups_per_sec = 20\n\
                    negative_ttl_ms = 30000"
            .into(),
        ..Options::default()
    };
    let process = GatewayProcess::start(&mock.base_url(), &pg.url(), &options).await;
    let base = process.url.as_str();
    let db = &owner.gw.db;
    let mut verified = vec![owner.key.clone()];
    for i in 0..5 {
        verified.push(xjp_gateway::db::keys::create(db, owner.tenant, Some(&format!("k{i}"))).await.unwrap().1);
    }
    let (revoked_row, revoked) = xjp_gateway::db::keys::create(db, owner.tenant, Some("revoked")).await.unwrap();
    for key in verified.iter().chain([&revoked]) {
        assert_eq!(models(base, key).await, 200);
    }
    // The tenant's balance is in Redis before the outage (a new account is loaded from Postgres).
    assert_eq!(post(&format!("{base}/v1/chat/completions"), &owner.key, &CHAT).await.status, 200);

    // Postgres up: the flood is refused (401 or 429), and only ~20 lookups a second reach it.
    let started = Instant::now();
    let statuses = flood(base, 2_048).await;
    let took = started.elapsed().as_secs_f64();
    let looked_up = metric(base, UNKNOWN).await;
    let limited = metric(base, LIMITED).await;
    println!("flood with Postgres up: {statuses:?} in {took:.2} s; {looked_up} lookups, {limited} limited");
    assert!(statuses.keys().all(|s| [401, 429].contains(s)), "{statuses:?}");
    assert!(looked_up <= 20.0 * took + 25.0, "{looked_up} Postgres lookups in {took:.2} s");
    assert!(limited >= 1_000.0, "{limited}");

    // One unknown key, repeated: looked up once, then answered from the negative cache
    // (no lookup, no lookup token).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let unknown = format!("XJP_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(models(base, &unknown).await, 401);
    let (looked_up, limited) = (metric(base, UNKNOWN).await, metric(base, LIMITED).await);
    for _ in 0..40 {
        assert_eq!(models(base, &unknown).await, 401);
    }
    assert_eq!(metric(base, UNKNOWN).await, looked_up, "a repeated unknown key is looked up again");
    assert_eq!(metric(base, LIMITED).await, limited, "a repeated unknown key takes lookup tokens");

    // Revoked through this gateway: its cached lookup and its outage grace go at once.
    let r = send(
        "POST",
        &format!("{base}/admin/keys/{}/revoke", revoked_row.id),
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(models(base, &revoked).await, 401);

    pg.stop();
    let started = Instant::now();
    let statuses = flood(base, 2_048).await;
    let took = started.elapsed();
    let failed = metric(base, "xjp_key_lookups_total{result=\"failed\"}").await;
    println!("flood with Postgres stopped: {statuses:?} in {took:?}; {failed} lookups tried");
    assert!(statuses.keys().all(|s| [401, 429, 503].contains(s)), "{statuses:?}");
    // Until the first lookup fails nothing marks Postgres down, and a stopped server's
    // lookups hang up to `lookup_timeout_ms` (1 s, sqlx retrying its connect): the bucket's 20
    // plus its refill over that second; then one lookup a second probes it, the rest are
    // answered without trying. (Unmarked, the flood would cost 20 lookups every second.)
    assert!(failed <= 20.0 + 20.0 + took.as_secs_f64() + 2.0, "{failed} failed lookups in {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");

    // Every key verified before the outage still works (its lookup fails: the grace answers).
    tokio::time::sleep(Duration::from_millis(200)).await;
    for key in &verified {
        assert_eq!(models(base, key).await, 200, "a verified key was evicted by the flood");
    }
    let r = post(&format!("{base}/v1/chat/completions"), &verified[3], &CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(models(base, &revoked).await, 200, "a revoked key has no outage grace");
    assert!(metric(base, "xjp_key_lookups_total{result=\"grace\"}").await >= 6.0);
    process.stop().await;
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
