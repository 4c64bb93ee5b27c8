//! A real gateway for integration tests: its own Postgres database, real Redis, real
//! plugins, a real hyper server on 127.0.0.1:0, routed to a mock upstream.

use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;
use xjp_gateway::config::EnvLookup;
use xjp_gateway::gateway::Gateway;
use xjp_gateway::server::RunningServer;

/// The shared Postgres server's maintenance database (tests create their own databases).
pub fn pg_admin_url() -> String {
    std::env::var("XJP_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Redis for tests.
pub fn redis_url() -> String {
    std::env::var("XJP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// This test process's Redis key prefix: tests share the Redis, and a gateway's sweeper must
/// only see the holds of gateways on its own database (the in-process gateway and any binary
/// a test starts share it).
pub fn key_prefix() -> &'static str {
    static PREFIX: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    &PREFIX
}

/// The key names under this test process's prefix.
pub fn keys() -> xjp_gateway::billing::KeySpace {
    xjp_gateway::billing::KeySpace::new(key_prefix())
}

/// A database of its own, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates `xjp_test_<uuid>`.
    pub async fn create() -> TestDb {
        let name = format!("xjp_test_{}", Uuid::new_v4().simple());
        let admin =
            sqlx::PgPool::connect(&pg_admin_url()).await.expect("Postgres reachable (cargo xtask test starts it)");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
        admin.close().await;
        let base = pg_admin_url();
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        TestDb { name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&pg_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
                }
            });
        })
        .join();
    }
}

/// What every test tenant starts with: $100.
pub const TEST_BALANCE_NANO: i64 = 100_000_000_000;

/// The admin token every test gateway uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// What the mock providers expect as their own key.
pub const PROVIDER_KEY: &str = "sk-provider-secret-abc";

/// Knobs a test may turn.
#[derive(Debug, Clone)]
pub struct Options {
    pub key_cache_ttl_ms: u64,
    pub hold_ttl_secs: u64,
    pub sweep_interval_ms: u64,
    /// Use this Postgres database instead of creating one.
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// Lines added to `[redis]` (e.g. `ca_file = "..."`).
    pub redis_toml: String,
    pub initial_balance_nano: i64,
    /// Appended to the generated config (e.g. a `[catalog]` table).
    pub extra_toml: String,
    pub shutdown_grace_secs: u64,
    pub stream_max_secs: u64,
    /// Lines added to `[server]` (limits, `admin_listen`).
    pub server_toml: String,
    /// Lines added to `[plugins]` (`max_instances`, ...).
    pub plugins_toml: String,
    /// Lines added to `[auth]`.
    pub auth_toml: String,
    /// `[limits] max_concurrent_per_tenant` (high by default: most tests are not about it).
    pub tenant_cap: usize,
    /// Lines added to `[billing]` (`enabled = false`, `spool_max_rows`, ...).
    pub billing_toml: String,
    /// `[streaming] drain_timeout_secs` and `max_drains`.
    pub drain_timeout_secs: u64,
    pub max_drains: usize,
    /// `[streaming] client_write_timeout_secs`.
    pub client_write_timeout_secs: u64,
    /// `[server] state_dir`; when set, the plugin cache is its default `<state_dir>/plugin-cache`
    /// instead of the shared `target/plugin-cache`.
    pub state_dir: Option<std::path::PathBuf>,
    /// `[plugins] dir` (default: target/plugins, where `cargo xtask build-plugins` puts them).
    pub plugin_dir: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            key_cache_ttl_ms: 200,
            hold_ttl_secs: 60,
            sweep_interval_ms: 500,
            database_url: None,
            redis_url: None,
            redis_toml: String::new(),
            initial_balance_nano: TEST_BALANCE_NANO,
            extra_toml: String::new(),
            shutdown_grace_secs: 10,
            stream_max_secs: 1800,
            server_toml: String::new(),
            plugins_toml: String::new(),
            auth_toml: String::new(),
            tenant_cap: 10_000,
            billing_toml: String::new(),
            drain_timeout_secs: 10,
            max_drains: 8,
            client_write_timeout_secs: 60,
            state_dir: None,
            plugin_dir: None,
        }
    }
}

/// Config for a gateway whose four providers are the mock at `base`.
pub fn config_toml(base: &str, plugin_dir: &str, cache_dir: &str) -> String {
    config_toml_with(base, plugin_dir, cache_dir, &Options::default())
}

/// Config with tuning from `o`.
pub fn config_toml_with(base: &str, plugin_dir: &str, cache_dir: &str, o: &Options) -> String {
    let (ttl, hold, sweep) = (o.key_cache_ttl_ms, o.hold_ttl_secs, o.sweep_interval_ms);
    let extra = &o.extra_toml;
    let (grace, stream_max) = (o.shutdown_grace_secs, o.stream_max_secs);
    let (redis_toml, prefix) = (&o.redis_toml, key_prefix());
    let (server, plugins, auth, tenant_cap) = (&o.server_toml, &o.plugins_toml, &o.auth_toml, o.tenant_cap);
    let billing = &o.billing_toml;
    let (drain_timeout, max_drains, write_timeout) = (o.drain_timeout_secs, o.max_drains, o.client_write_timeout_secs);
    let (state_dir, cache_dir) = match &o.state_dir {
        Some(state) => (format!("state_dir = \"{}\"", state.display()), String::new()),
        None => (String::new(), format!("cache_dir = \"{cache_dir}\"")),
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
body_limit_bytes = 65536
shutdown_grace_secs = {grace}
{state_dir}
{server}

[database]
url_env = "TEST_DATABASE_URL"
max_connections = 8

[redis]
url_env = "TEST_REDIS_URL"
key_prefix = "{prefix}"
{redis_toml}

[plugins]
dir = "{plugin_dir}"
{cache_dir}
{plugins}

[auth]
key_cache_ttl_ms = {ttl}
{auth}

[billing]
hold_ttl_secs = {hold}
sweep_interval_ms = {sweep}
rollup_interval_ms = 500
{billing}

[streaming]
drain_timeout_secs = {drain_timeout}
max_drains = {max_drains}
client_write_timeout_secs = {write_timeout}
max_duration_secs = {stream_max}

[limits]
max_concurrent_per_tenant = {tenant_cap}

[providers.openai]
base_url = "{base}"
api = "openai-chat"
credential_env = "MOCK_PROVIDER_KEY"
auth = "bearer"
plugin = "openai"
first_byte_timeout_ms = 3000
between_chunks_timeout_ms = 3000

[providers.anthropic]
base_url = "{base}"
api = "anthropic-messages"
credential_env = "MOCK_PROVIDER_KEY"
auth = "x-api-key"
plugin = "anthropic"
default_headers = {{ "anthropic-version" = "2023-06-01" }}
first_byte_timeout_ms = 3000
between_chunks_timeout_ms = 3000

[providers.gemini]
base_url = "{base}"
api = "gemini-generate"
credential_env = "MOCK_PROVIDER_KEY"
auth = "x-goog-api-key"
plugin = "gemini"
first_byte_timeout_ms = 3000
between_chunks_timeout_ms = 3000

[providers.openrouter]
base_url = "{base}/api"
api = "openai-chat"
credential_env = "MOCK_PROVIDER_KEY"
auth = "bearer"
plugin = "openrouter"
first_byte_timeout_ms = 3000
between_chunks_timeout_ms = 3000

[providers.nowhere]
base_url = "http://127.0.0.1:9"
api = "openai-chat"
credential_env = "MOCK_PROVIDER_KEY"
auth = "bearer"
plugin = "openai"
connect_timeout_ms = 1000

[[models]]
name = "gpt-4o-mini"
provider = "openai"
upstream_model = "gpt-4o-mini-2024-07-18"
price = {{ input = "0.15", output = "0.60", cache_read = "0.075" }}

[[models]]
name = "claude-sonnet-4-5"
aliases = ["claude-latest"]
provider = "anthropic"
upstream_model = "claude-sonnet-4-5-20250929"
price = {{ input = "3", output = "15", cache_read = "0.30", cache_write_5m = "3.75", cache_write_1h = "6", fees = {{ web_search = "0.01", web_fetch = "0" }} }}

[[models]]
name = "gemini-2.5-flash"
provider = "gemini"
upstream_model = "gemini-2.5-flash"
price = {{ input = "0.30", output = "2.50", cache_read = "0.03", fees = {{ google_search = "0.035" }} }}

[[models]]
name = "or-sonnet"
provider = "openrouter"
upstream_model = "anthropic/claude-sonnet-4.5"
price = {{ input = "3", output = "15", cache_read = "0.30", cache_write_5m = "3.75" }}

[[models]]
name = "or-haiku"
provider = "openrouter"
upstream_model = "anthropic/claude-3.5-haiku"
price = {{ input = "0.80", output = "4" }}

[[models]]
name = "unreachable"
provider = "nowhere"
upstream_model = "x"
price = {{ input = "1", output = "1" }}

[[models]]
name = "unpriced"
provider = "openai"
upstream_model = "gpt-unpriced"

{extra}
"#
    )
}

/// A new database and an in-process gateway on it that owns the tenant and its key: for
/// tests that run the real binary (`GatewayProcess`) on the same database.
pub async fn owner(mock_base: &str) -> (TestDb, TestGateway) {
    let db = TestDb::create().await;
    let owner =
        TestGateway::start_with(mock_base, Options { database_url: Some(db.url.clone()), ..Options::default() }).await;
    (db, owner)
}

/// A running gateway with a tenant and a key.
pub struct TestGateway {
    pub url: String,
    pub gw: Arc<Gateway>,
    pub server: Option<RunningServer>,
    pub tenant: Uuid,
    pub key: String,
    pub db: Option<TestDb>,
    pub dir: tempfile::TempDir,
}

impl TestGateway {
    /// Starts a gateway routed to `mock_base` (the mock upstream's base URL).
    pub async fn start(mock_base: &str) -> TestGateway {
        Self::start_with(mock_base, Options::default()).await
    }

    /// Starts a gateway with `options`.
    pub async fn start_with(mock_base: &str, options: Options) -> TestGateway {
        xjp_gateway::ops::install_metrics();
        // Access lines count into the spend metrics, as under `serve`.
        xjp_gateway::ops::access::install_spend_counters();
        let db = match &options.database_url {
            Some(_) => None,
            None => Some(TestDb::create().await),
        };
        let database_url = options.database_url.clone().unwrap_or_else(|| db.as_ref().unwrap().url.clone());
        let dir = tempfile::tempdir().unwrap();
        let plugin_dir = options.plugin_dir.clone().unwrap_or_else(|| {
            let built = super::root().join("target/plugins");
            assert!(built.join("openai.wasm").exists(), "run `cargo xtask build-plugins` first");
            built
        });
        let cache = super::root().join("target/plugin-cache");
        let path = dir.path().join("gateway.toml");
        let toml =
            config_toml_with(mock_base, &plugin_dir.display().to_string(), &cache.display().to_string(), &options);
        std::fs::write(&path, toml).unwrap();
        let config = xjp_gateway::config::load_file(&path).expect("test config is valid");
        let vars: HashMap<String, String> = [
            ("TEST_DATABASE_URL", database_url),
            ("TEST_REDIS_URL", options.redis_url.clone().unwrap_or_else(redis_url)),
            ("MOCK_PROVIDER_KEY", PROVIDER_KEY.to_string()),
            ("XJP_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let env: EnvLookup = Arc::new(move |name| vars.get(name).cloned());
        let gw = Gateway::build(config, Some(path), env).await.expect("gateway builds");
        let server =
            xjp_gateway::server::start(gw.clone(), "127.0.0.1:0".parse().unwrap(), std::time::Duration::from_secs(10))
                .await
                .unwrap();
        let url = format!("http://{}", server.addr);
        gw.start_background();
        let tenant = xjp_gateway::db::tenants::create(&gw.db, "test tenant").await.unwrap();
        let (_, key) = xjp_gateway::db::keys::create(&gw.db, tenant.id, Some("test")).await.unwrap();
        let kind = xjp_gateway::db::credits::CreditKind::TopUp;
        if options.initial_balance_nano > 0 {
            let amount = options.initial_balance_nano;
            xjp_gateway::db::credits::insert(&gw.db, tenant.id, "initial", kind, amount, None).await.unwrap();
        }
        TestGateway { url, gw, server: Some(server), tenant: tenant.id, key, db, dir }
    }

    /// Stops the server (graceful).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}
