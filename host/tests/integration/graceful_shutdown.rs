//! SIGTERM on the real binary: no new connections, the stream in flight completes, exit 0.

use crate::common;

use common::harness::{PROVIDER_KEY, TestDb, config_toml, redis_url};
use common::http::post;
use common::scenarios::{fixture, mock, pair_for};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn a_stream_in_flight_at_sigterm_completes() {
    let mock = mock().await;
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair_for("gpt-4o-mini-2024-07-18").with_chunk_interval(Duration::from_millis(150)),
    );
    let db = TestDb::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    xjp_gateway::db::migrate(&pool).await.unwrap();
    let tenant = xjp_gateway::db::tenants::create(&pool, "t").await.unwrap();
    let (_, key) = xjp_gateway::db::keys::create(&pool, tenant.id, None).await.unwrap();
    let kind = xjp_gateway::db::credits::CreditKind::TopUp;
    xjp_gateway::db::credits::insert(&pool, tenant.id, "t", kind, 1_000_000_000, None).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let plugins = common::root().join("target/plugins");
    let cache = common::root().join("target/plugin-cache");
    std::fs::write(&path, config_toml(&mock.base_url(), &plugins.display().to_string(), &cache.display().to_string()))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xjp-gateway"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("TEST_DATABASE_URL", &db.url)
        .env("TEST_REDIS_URL", redis_url())
        .env("MOCK_PROVIDER_KEY", PROVIDER_KEY)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("xjp-gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line}"))
        .to_string();

    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let stream = tokio::spawn({
        let (url, key) = (url.clone(), key.clone());
        async move { post(&format!("{url}/v1/chat/completions"), &key, body).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!stream.is_finished(), "the stream is still in flight");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = url.trim_start_matches("http://").to_string();
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "no new connections after SIGTERM");

    let r = stream.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_error, None);
    assert_eq!(r.body, std::fs::read(fixture("openai/stream_usage.sse")).unwrap(), "the whole stream arrived");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}
