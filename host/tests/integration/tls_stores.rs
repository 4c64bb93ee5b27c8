//! TLS to the data stores: a private Postgres that accepts only TLS connections (`hostssl`)
//! and a private Redis that speaks only TLS, both with a server certificate from a CA made
//! here (rcgen). The gateway connects with `sslmode=verify-full` and `rediss://` and serves
//! a billed request; a gateway that trusts another CA is refused by both.

use crate::common;

use common::harness::{Options, PROVIDER_KEY, TestGateway, config_toml_with};
use common::money::{CHAT, wait_rows};
use common::scenarios::mock;
use common::services::{PrivatePostgres, PrivateRedis};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use xjp_gateway::config::EnvLookup;
use xjp_gateway::gateway::Gateway;

/// A test CA and a server certificate it signed, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    (params, key)
}

/// A CA named `name` and a certificate for 127.0.0.1 and localhost signed by it.
fn pki(dir: &Path, name: &str) -> Pki {
    let (ca_params, ca_key) = ca(name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).unwrap();
    let write = |file: &str, text: String| {
        let path = dir.join(format!("{name}-{file}"));
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        cert: write("server.crt", cert.pem()),
        key: write("server.key", key.serialize_pem()),
        issuer,
    }
}

/// A client certificate signed by `pki`'s CA (for mutual TLS), as PEM files.
fn client_identity(dir: &Path, pki: &Pki) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "xjp-gateway");
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    let (cert_path, key_path) = (dir.join("client.crt"), dir.join("client.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// A Postgres that takes TLS connections only, with `pki`'s certificate.
fn tls_postgres(pki: &Pki) -> PrivatePostgres {
    PrivatePostgres::start_configured(|data| {
        std::fs::copy(&pki.cert, data.join("server.crt")).unwrap();
        std::fs::copy(&pki.key, data.join("server.key")).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(data.join("server.key"), mode).unwrap();
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        // TCP only over TLS; the socket (pg_ctl's readiness check) stays open.
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n").unwrap();
    })
}

fn verify_full(pg: &PrivatePostgres, ca: &Path) -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}", pg.port, ca.display())
}

fn redis_ca(ca: &Path) -> String {
    format!("ca_file = \"{}\"", ca.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_bills_over_verified_tls_to_postgres_and_redis() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), "xjp-test-ca");
    let pg = tls_postgres(&pki);
    let redis = PrivateRedis::start_tls(&pki.cert, &pki.key, None);
    let mock = mock().await;
    let options = Options {
        database_url: Some(verify_full(&pg, &pki.ca)),
        redis_url: Some(format!("rediss://127.0.0.1:{}", redis.port)),
        redis_toml: redis_ca(&pki.ca),
        ..Options::default()
    };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let r = common::http::post(&format!("{}/v1/chat/completions", gw.url), &gw.key, &CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The row reached Postgres, the debit Redis: both over TLS.
    wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(10)).await;
    let (connections, all_tls): (i64, bool) = sqlx::query_as(
        "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'xjp-gateway'",
    )
    .fetch_one(&gw.gw.db)
    .await
    .unwrap();
    assert!(connections > 0 && all_tls, "{connections} gateway connections, all TLS: {all_tls}");
    let ready = common::http::send("GET", &format!("{}/readyz", gw.url), &[], "").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
    let debited = live.loaded && live.available_nano < common::harness::TEST_BALANCE_NANO;
    assert!(debited, "the request was debited in Redis: {live:?}");
}

/// Builds a gateway on `database_url` / `redis_url`; the error text when it fails.
async fn build(
    mock_base: &str,
    database_url: String,
    redis_url: String,
    redis_toml: String,
) -> Result<Arc<Gateway>, String> {
    let dir = tempfile::tempdir().unwrap();
    let plugins = common::root().join("target/plugins").display().to_string();
    let cache = common::root().join("target/plugin-cache").display().to_string();
    let options = Options { redis_toml, ..Options::default() };
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config_toml_with(mock_base, &plugins, &cache, &options)).unwrap();
    let config = xjp_gateway::config::load_file(&path).unwrap();
    let vars: HashMap<&str, String> = [
        ("TEST_DATABASE_URL", database_url),
        ("TEST_REDIS_URL", redis_url),
        ("MOCK_PROVIDER_KEY", PROVIDER_KEY.to_string()),
    ]
    .into();
    let env: EnvLookup = Arc::new(move |name| vars.get(name).cloned());
    Gateway::build(config, Some(path), env).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_signed_by_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = pki(dir.path(), "xjp-test-ca");
    let other = pki(dir.path(), "some-other-ca");
    let pg = tls_postgres(&real);
    let redis = PrivateRedis::start_tls(&real.cert, &real.key, None);
    let mock = mock().await;
    let rediss = format!("rediss://127.0.0.1:{}", redis.port);

    // Postgres: verify-full against the wrong CA fails the start (migrations run first).
    let e = build(&mock.base_url(), verify_full(&pg, &other.ca), rediss.clone(), redis_ca(&real.ca)).await.unwrap_err();
    assert!(e.contains("database"), "{e}");
    // Without TLS the server refuses the connection (hostssl only).
    let plain = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", pg.port);
    let e = build(&mock.base_url(), plain, rediss.clone(), redis_ca(&real.ca)).await.unwrap_err();
    assert!(e.contains("database"), "{e}");

    // Redis: the connection is refused, so the gateway is not ready and spends nothing.
    match build(&mock.base_url(), verify_full(&pg, &real.ca), rediss.clone(), redis_ca(&other.ca)).await {
        Err(e) => assert!(e.contains("redis"), "{e}"),
        Ok(gw) => {
            assert!(!gw.billing.balances.ping().await, "Redis answered a client that does not trust its CA");
            gw.shutdown(Duration::from_secs(1)).await;
        }
    }
    // And a CA file with a plain redis:// URL is a configuration error, not a silent downgrade.
    let plain_redis = format!("redis://127.0.0.1:{}", redis.port);
    let e = build(&mock.base_url(), verify_full(&pg, &real.ca), plain_redis, redis_ca(&real.ca)).await.unwrap_err();
    assert!(e.contains("rediss://"), "{e}");
}

/// Mutual TLS: a Redis that asks for a client certificate signed by the test CA serves the
/// gateway that presents one ([redis] client_cert_file / client_key_file) and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), "xjp-test-ca");
    let (cert, key) = client_identity(dir.path(), &pki);
    let redis = PrivateRedis::start_tls(&pki.cert, &pki.key, Some(&pki.ca));
    let rediss = format!("rediss://127.0.0.1:{}", redis.port);
    let db = common::harness::TestDb::create().await;
    let mock = mock().await;
    let identity = format!(
        "{}\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
        redis_ca(&pki.ca),
        cert.display(),
        key.display()
    );
    let gw = build(&mock.base_url(), db.url.clone(), rediss.clone(), identity).await.unwrap();
    assert!(gw.billing.balances.ping().await, "Redis refused the gateway's client certificate");
    gw.shutdown(Duration::from_secs(1)).await;
    match build(&mock.base_url(), db.url.clone(), rediss, redis_ca(&pki.ca)).await {
        Err(e) => assert!(e.contains("redis"), "{e}"),
        Ok(gw) => {
            assert!(!gw.billing.balances.ping().await, "Redis served a client without a certificate");
            gw.shutdown(Duration::from_secs(1)).await;
        }
    }
}
