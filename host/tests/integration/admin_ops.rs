//! Admin API (tenants, keys, revocation), ops endpoints, plugin status, config reload.

use crate::common;

use common::harness::{ADMIN_TOKEN, Options, TestGateway};
use common::http::{post, send};
use common::scenarios::mock;
use common::services::PrivateRedis;
use std::time::Duration;

fn admin() -> [(&'static str, String); 2] {
    [("authorization", format!("Bearer {ADMIN_TOKEN}")), ("content-type", "application/json".into())]
}

async fn admin_call(method: &str, url: &str, body: &str) -> common::http::Reply {
    let h = admin();
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    send(method, url, &h, body.to_string()).await
}

#[tokio::test]
async fn tenant_and_key_lifecycle() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let r = admin_call("POST", &format!("{}/admin/tenants", gw.url), r#"{"name":"acme"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let tenant = r.json()["id"].as_str().unwrap().to_string();
    let r = admin_call("POST", &format!("{}/admin/tenants/{tenant}/keys", gw.url), r#"{"name":"ci"}"#).await;
    assert_eq!(r.status, 201);
    let created = r.json();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("XJP_"));
    assert_eq!(created["prefix"].as_str().unwrap(), &key[..12]);

    let r = admin_call("GET", &format!("{}/admin/tenants/{tenant}/keys", gw.url), "").await;
    let listed = r.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(!r.text().contains(&key), "the plaintext is shown only once");

    let chat = |k: String| {
        let url = format!("{}/v1/chat/completions", gw.url);
        async move { post(&url, &k, r#"{"model":"gpt-4o-mini","messages":[]}"#).await.status }
    };
    assert_eq!(chat(key.clone()).await, 402, "a new tenant has no balance");
    let r =
        admin_call("POST", &format!("{}/admin/tenants/{tenant}/topups", gw.url), r#"{"id":"pay_1","amount_usd":"5"}"#)
            .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(chat(key.clone()).await, 200);
    let id = created["id"].as_str().unwrap();
    let r = admin_call("POST", &format!("{}/admin/keys/{id}/revoke", gw.url), "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "revoked");
    assert_eq!(chat(key).await, 401, "revocation through this gateway is immediate");

    let r = admin_call("POST", &format!("{}/admin/tenants/{}/keys", gw.url, uuid::Uuid::now_v7()), "{}").await;
    assert_eq!(r.status, 404);
    let r = admin_call("POST", &format!("{}/admin/tenants", gw.url), r#"{"nme":"typo"}"#).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn admin_needs_the_admin_token() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    for auth in [None, Some(format!("Bearer {}", gw.key)), Some(format!("Bearer {ADMIN_TOKEN}x"))] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = send("POST", &format!("{}/admin/tenants", gw.url), &headers, r#"{"name":"x"}"#).await;
        assert_eq!(r.status, 403, "{auth:?}");
        let r = send("GET", &format!("{}/internal/plugins", gw.url), &headers, "").await;
        assert_eq!(r.status, 403);
    }
}

#[tokio::test]
async fn ops_endpoints() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    assert_eq!(send("GET", &format!("{}/healthz", gw.url), &[], "").await.status, 200);
    let r = send("GET", &format!("{}/readyz", gw.url), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["postgres"], true);
    assert_eq!(r.json()["redis"], true);

    post(&format!("{}/v1/chat/completions", gw.url), &gw.key, r#"{"model":"gpt-4o-mini","messages":[]}"#).await;
    post(&format!("{}/v1/chat/completions", gw.url), &gw.key, r#"{"model":"nope","messages":[]}"#).await;
    let metrics = send("GET", &format!("{}/metrics", gw.url), &[], "").await.text();
    for name in [
        "xjp_requests_total",
        "xjp_request_duration_seconds",
        "xjp_upstream_headers_seconds",
        "xjp_plugin_call_seconds",
        "xjp_errors_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains(r#"class="routing""#));

    let r = admin_call("GET", &format!("{}/internal/plugins", gw.url), "").await;
    assert_eq!(r.status, 200);
    let plugins = r.json();
    let names: Vec<&str> =
        plugins["plugins"].as_array().unwrap().iter().map(|p| p["loaded"]["name"].as_str().unwrap()).collect();
    for p in ["openai", "anthropic", "gemini", "openrouter"] {
        assert!(names.contains(&p), "{names:?}");
    }
}

#[tokio::test]
async fn config_reload_adds_a_model_and_keeps_the_old_config_on_error() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let _watch = gw.gw.watch_config().unwrap();
    let path = gw.dir.path().join("gateway.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let chat = |model: &'static str| {
        let url = format!("{}/v1/chat/completions", gw.url);
        let key = gw.key.clone();
        async move { post(&url, &key, &format!(r#"{{"model":"{model}","messages":[]}}"#)).await.status }
    };
    assert_eq!(chat("gpt-4o-mini-alias").await, 404);
    let added = format!(
        "{original}\n[[models]]\nname = \"gpt-4o-mini-alias\"\nprovider = \"openai\"\nupstream_model = \"gpt-4o-mini-2024-07-18\"\nprice = {{ input = \"1\", output = \"2\" }}\n"
    );
    std::fs::write(&path, &added).unwrap();
    let mut status = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = chat("gpt-4o-mini-alias").await;
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "the new model is served without a restart");
    std::fs::write(&path, format!("{added}\n[server]\nbogus = 1\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(chat("gpt-4o-mini-alias").await, 200, "a broken config leaves the old one serving");
    assert_eq!(chat("gpt-4o-mini").await, 200);
}

/// `/readyz` asks Redis over the balance store's connection (a probe every few seconds
/// must not open a connection each time), reports an outage within its 2 s limit, and
/// is ready again once Redis is back.
#[tokio::test]
async fn readyz_follows_redis_without_a_connection_per_probe() {
    let mut redis = PrivateRedis::start();
    let mock = mock().await;
    let options = Options { redis_url: Some(redis.url()), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let readyz = || async {
        let r = send("GET", &format!("{}/readyz", gw.url), &[], "").await;
        (r.status, r.json()["redis"].as_bool().unwrap())
    };
    assert_eq!(readyz().await, (200, true));
    let before = redis.connections_received();
    for _ in 0..20 {
        assert_eq!(readyz().await, (200, true));
    }
    // One connection for the count itself; none per probe.
    let opened = redis.connections_received() - before;
    assert!(opened <= 2, "20 probes opened {opened} connections");

    redis.stop();
    let started = std::time::Instant::now();
    assert_eq!(readyz().await, (503, false));
    assert!(started.elapsed() < Duration::from_secs(3), "an outage is reported within the probe limit");

    let redis = PrivateRedis::start_on(redis.port);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while readyz().await != (200, true) {
        assert!(std::time::Instant::now() < deadline, "still not ready 10 s after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(redis);
}

/// The admin endpoints read their bodies under the proxy's body-read timeout: a body that
/// stops arriving gets 408 after `body_read_timeout_secs`, on the small JSON endpoints and
/// on the 16 MiB quote endpoint alike; a body that arrives is served.
#[tokio::test]
async fn admin_bodies_that_do_not_arrive_in_time_get_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = mock().await;
    let options = Options { server_toml: "body_read_timeout_secs = 1".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    for path in ["/admin/tenants", "/internal/billing/quote", &format!("/admin/tenants/{}/topups", gw.tenant)] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: 500\r\n\r\n{{\"name\":"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer:?}");
        assert!(answer.contains("request body not received within 1 s"), "{path}: {answer}");
        let took = started.elapsed();
        assert!((Duration::from_millis(900)..Duration::from_secs(3)).contains(&took), "{path}: {took:?}");
    }
    let r = admin_call("POST", &format!("{}/admin/tenants", gw.url), r#"{"name":"on time"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
}
