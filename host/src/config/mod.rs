//! `gateway.toml`: typed with `deny_unknown_fields`, validated with messages that name the
//! bad key, secrets only from environment variables, reloaded without a restart.

pub mod forwarding;
pub mod load;
pub mod routes;
pub mod settings;
pub mod validate;
pub mod watch;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use load::{ConfigError, load_file, parse};
pub use routes::{ModelRoute, Provider, RouteTable};
pub use settings::{EnvLookup, LiveSettings, Settings, process_env};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub streaming: StreamingConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub billing: BillingConfig,
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub otel: OtelConfig,
}

/// `[server]`: listeners and what one connection may hold (README, "Limits").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address (a change needs a restart).
    pub listen: String,
    /// A second listener for `/metrics`, `/internal/*` and `/admin/*` (then the public one
    /// answers 404 for them); `None` serves everything on `listen`. Needs a restart.
    pub admin_listen: Option<String>,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// How long in-flight requests and streams may run after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// The one directory the gateway writes to (a change needs a restart): the ledger spool
    /// and the precompiled-plugin cache live under it unless set elsewhere, and relative
    /// `billing.spool_dir` / `plugins.cache_dir` resolve against it. Default: the config
    /// file's directory. In a container: a volume such as `/var/lib/xjp`, so the root file
    /// system can be read-only.
    pub state_dir: Option<PathBuf>,
    /// A request head (request line and headers) must arrive within this: a new
    /// connection's first one from its start (whatever it sends, before the protocol is
    /// known), and an HTTP/1.1 connection's next one.
    pub header_read_timeout_secs: u64,
    /// A connection that served a request and has none in flight for this long is closed
    /// (HTTP/1.1 and h2).
    pub idle_timeout_secs: u64,
    /// The whole request body must arrive within this (408 otherwise).
    pub body_read_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog (needs a restart).
    pub max_connections: usize,
    /// Largest HTTP/1.1 request head (431 beyond it; at least 8192).
    pub max_header_bytes: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list (decoded).
    pub http2_max_header_list_bytes: u32,
    /// The longest pause after failed `accept` calls (out of file descriptors, ...): the
    /// loop waits 5 ms, doubling up to this, instead of spinning.
    pub accept_backoff_max_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            admin_listen: None,
            body_limit_bytes: 4 << 20,
            shutdown_grace_secs: 30,
            state_dir: None,
            header_read_timeout_secs: 15,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 60,
            max_connections: 10_000,
            max_header_bytes: 64 << 10,
            http2_max_concurrent_streams: 100,
            http2_max_header_list_bytes: 64 << 10,
            accept_backoff_max_ms: 1_000,
        }
    }
}

/// `[limits]`: what one tenant may hold at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Concurrent proxied requests and streams per tenant (a stream counts until it ends,
    /// its drain included); more get 429.
    pub max_concurrent_per_tenant: usize,
    /// Per-tenant overrides: tenant id -> its own cap.
    pub per_tenant: BTreeMap<String, usize>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { max_concurrent_per_tenant: 64, per_tenant: BTreeMap::new() }
    }
}

impl LimitsConfig {
    /// The cap of one tenant.
    pub fn tenant_cap(&self, tenant: &uuid::Uuid) -> usize {
        // Keys were validated as UUIDs; compared in their canonical spelling.
        self.per_tenant
            .iter()
            .find(|(k, _)| k.parse::<uuid::Uuid>().ok().as_ref() == Some(tenant))
            .map_or(self.max_concurrent_per_tenant, |(_, v)| *v)
    }
}

/// `[database]`: the URL comes from an environment variable (it may hold a password).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url_env: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url_env: "DATABASE_URL".into(), max_connections: 16 }
    }
}

/// `[redis]`: the URL comes from an environment variable; `rediss://` connects with TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    pub url_env: String,
    /// PEM file of the CA(s) that sign the server's certificate, for `rediss://`; without
    /// it the bundled Mozilla roots are used (relative to the config file).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key the gateway presents when the server asks (mutual TLS);
    /// both or neither.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// One server, or a Redis Cluster whose seed nodes the URL variable lists
    /// (comma-separated).
    pub mode: RedisMode,
    /// Prefix of every key the gateway writes (`<prefix>:{tenant}:...`), so deployments that
    /// share a Redis keep apart. Every gateway of one deployment must use the same one.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url_env: "REDIS_URL".into(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            mode: RedisMode::Single,
            key_prefix: "xjp".into(),
        }
    }
}

/// `redis.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisMode {
    /// One server (or a proxy in front of several).
    Single,
    /// A Redis Cluster: a connection per node, MOVED and ASK followed.
    Cluster,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `span`).
    Json,
}

/// `[log]`: read at start-up (a change needs a restart).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `warn,xjp_gateway::access=info`); `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, filter: "info".into() }
    }
}

/// `[otel]`: OpenTelemetry trace export over OTLP/HTTP (protobuf); off unless `enabled`.
/// Read at start-up (a change needs a restart).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    pub enabled: bool,
    /// The collector's traces URL (OTLP/HTTP), `http://` or `https://`.
    pub endpoint: String,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Share of new traces sampled, 0.0 to 1.0 (a request with a sampled parent follows it).
    pub sample_ratio: f64,
    /// Export timeout per batch.
    pub timeout_ms: u64,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig {
            enabled: false,
            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
            service_name: "xjp-gateway".into(),
            sample_ratio: 1.0,
            timeout_ms: 10_000,
        }
    }
}

/// `[plugins]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Directory of `<name>.wasm` files (relative paths are relative to the config file).
    pub dir: PathBuf,
    /// Precompiled-component cache; default `<server.state_dir>/plugin-cache` when a state
    /// directory is set, `<dir>/.cache` otherwise (relative paths: against the state dir).
    /// Always set after loading.
    pub cache_dir: Option<PathBuf>,
    pub call_timeout_ms: u64,
    pub memory_mb: usize,
    /// Plugin instances that may exist at once, across plugins (streams hold one each).
    pub max_instances: u32,
    /// Plugin calls on inputs larger than this run on the blocking thread pool instead
    /// of an async worker (whole bodies, request estimates, stream chunks).
    pub offload_threshold_bytes: usize,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: "plugins".into(),
            cache_dir: None,
            call_timeout_ms: 100,
            memory_mb: 64,
            max_instances: 2_000,
            offload_threshold_bytes: 256 << 10,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// How long a key lookup is cached; a revocation takes effect within this time.
    pub key_cache_ttl_ms: u64,
    /// Keys held by the lookup cache (and, separately, by the outage-grace store).
    pub max_cached_keys: u64,
    /// While Postgres is unreachable, a key verified active within this time keeps working.
    pub outage_grace_secs: u64,
    /// How long an unknown key is remembered as unknown (its own bounded cache).
    pub negative_ttl_ms: u64,
    /// Unknown keys remembered at once.
    pub max_negative_keys: u64,
    /// Postgres lookups of keys in no cache, per second (a token bucket of one second's
    /// worth); beyond it such keys get 429 without a lookup.
    pub unknown_key_lookups_per_sec: u32,
    /// A key lookup that takes longer counts as Postgres unreachable.
    pub lookup_timeout_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            key_cache_ttl_ms: 2_000,
            max_cached_keys: 100_000,
            outage_grace_secs: 600,
            negative_ttl_ms: 1_000,
            max_negative_keys: 100_000,
            unknown_key_lookups_per_sec: 100,
            lookup_timeout_ms: 1_000,
        }
    }
}

/// `[streaming]`: background drains of streams whose client left.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    pub drain_timeout_secs: u64,
    pub max_drains: usize,
    /// The longest a stream may run in total; then it ends (an error event in the client's
    /// format) and is billed as interrupted.
    pub max_duration_secs: u64,
    /// A client that does not take a chunk within this time is treated as gone (a stalled
    /// reader): the upstream is drained within the drain bounds and billed.
    pub client_write_timeout_secs: u64,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            drain_timeout_secs: 120,
            max_drains: 256,
            max_duration_secs: 1800,
            client_write_timeout_secs: 60,
        }
    }
}

/// What to do when Redis (the live balances) is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Refuse requests with 503 (no request spends money it may not have).
    Closed,
    /// Serve without a hold; the debit is applied when Redis returns.
    Open,
}

/// How an answer whose real usage is unknown is billed: a 2xx without readable usage, a
/// failed plugin, a broken or abandoned answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownUsage {
    /// The hold: the request's reserved upper bound (the default: protects the operator).
    Hold,
    /// What was seen: reported usage, the prompt bound / 4 and streamed text / 4. Output
    /// the provider does not show (hidden reasoning) is not counted.
    Estimate,
}

/// `[billing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// `false`: comparison/benchmark only; requests are authenticated and routed but
    /// neither held, priced, recorded nor debited (read at start).
    pub enabled: bool,
    /// A hold not settled within this time is released by the sweeper.
    pub hold_ttl_secs: u64,
    pub redis_failure: FailurePolicy,
    /// The ledger spool (relative paths are relative to `server.state_dir`, which defaults
    /// to the config file's directory). One process per directory: it is locked.
    pub spool_dir: PathBuf,
    /// New requests are refused (503) while this many rows wait in the spool for Postgres.
    pub spool_max_rows: u64,
    /// ... or while the spool holds this many bytes.
    pub spool_max_bytes: u64,
    /// How long the ledger's insert stage lets a batch short of 5 000 rows gather more
    /// before inserting it (fewer, larger Postgres transactions at moderate rates).
    pub insert_linger_ms: u64,
    pub sweep_interval_ms: u64,
    pub rollup_interval_ms: u64,
    /// A 2xx answer whose usage cannot be read, or a plugin that failed on it.
    pub unreadable_usage: UnknownUsage,
    /// An answer that broke off (stream cut or stalled, client gone past the drain bounds).
    pub interrupted_usage: UnknownUsage,
    /// Balance leases (ADR 0002): requests whose id the gateway made reserve from a slice of
    /// a busy tenant's balance leased to this process, without a Redis round trip (read at start).
    pub leases: bool,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            enabled: true,
            hold_ttl_secs: 900,
            redis_failure: FailurePolicy::Closed,
            spool_dir: "spool".into(),
            spool_max_rows: 1_000_000,
            spool_max_bytes: 512 << 20,
            insert_linger_ms: 250,
            sweep_interval_ms: 2_000,
            rollup_interval_ms: 5_000,
            unreadable_usage: UnknownUsage::Hold,
            interrupted_usage: UnknownUsage::Hold,
            leases: true,
        }
    }
}

/// `[catalog]`: price sources besides the routes' own `price` (see `catalog`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Static price files (config precedence), relative to this file.
    pub files: Vec<PathBuf>,
    /// Imported price files (LiteLLM conversions; lowest precedence).
    pub imported: Vec<PathBuf>,
    pub openrouter_sync: Option<OpenRouterSync>,
}

/// `[catalog.openrouter_sync]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRouterSync {
    /// The provider whose models these prices are for.
    pub provider: String,
    /// The model list URL (`https://openrouter.ai/api/v1/models`).
    pub url: String,
    #[serde(default = "default_sync_secs")]
    pub interval_secs: u64,
}

fn default_sync_secs() -> u64 {
    3600
}

/// How the provider credential is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI, OpenRouter, Vertex with a token).
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: <key>` (Gemini AI Studio).
    XGoogApiKey,
    /// No credential (mock upstreams).
    None,
}

/// `[providers.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Scheme, host and optional path prefix; request paths are appended to it.
    pub base_url: String,
    /// The API format the provider speaks.
    pub api: String,
    /// Environment variable holding the provider key.
    pub credential_env: Option<String>,
    pub auth: AuthStyle,
    /// Plugin key (file stem in the plugin directory).
    pub plugin: String,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_first_byte_ms")]
    pub first_byte_timeout_ms: u64,
    #[serde(default = "default_between_chunks_ms")]
    pub between_chunks_timeout_ms: u64,
    /// Headers the gateway sends (e.g. `anthropic-version`); a client's value replaces one
    /// only when its name is on `forward_headers`.
    #[serde(default)]
    pub default_headers: BTreeMap<String, String>,
    /// Client request headers the provider may get (`name` or `name=value`); replaces the
    /// format's default list (`forwarding::default_request_headers`).
    pub forward_headers: Option<Vec<String>>,
    /// Client query parameters the provider may get (`name` or `name=value`, compared
    /// percent-decoded); replaces the format's default list (`forwarding::default_query`).
    pub forward_query: Option<Vec<String>>,
    /// Provider response headers the client may get (names); replaces
    /// `forwarding::DEFAULT_RESPONSE_HEADERS`.
    pub forward_response_headers: Option<Vec<String>>,
    /// Gemini only: path style, `ai-studio` (`/v1beta/models/...`) or a Vertex prefix.
    #[serde(default)]
    pub gemini_path_prefix: Option<String>,
    /// OpenAI format only: the field the gateway adds when a request sets no output limit,
    /// `max_completion_tokens` (OpenAI's, the default) or `max_tokens` (OpenRouter and most
    /// OpenAI-compatible servers).
    #[serde(default)]
    pub output_limit_field: Option<String>,
}

fn default_connect_ms() -> u64 {
    5_000
}
fn default_first_byte_ms() -> u64 {
    120_000
}
fn default_between_chunks_ms() -> u64 {
    60_000
}

/// USD per million tokens, as exact decimal strings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub input: String,
    pub output: String,
    pub cache_read: Option<String>,
    pub cache_write_5m: Option<String>,
    pub cache_write_1h: Option<String>,
    pub reasoning: Option<String>,
    /// Long-context tier: rates for the whole request above `threshold_tokens` prompt tokens.
    pub long_context: Option<LongContextConfig>,
    /// USD per unit of a named fee (`web_search`, `request`).
    #[serde(default)]
    pub fees: BTreeMap<String, String>,
}

/// `[models.price.long_context]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextConfig {
    pub threshold_tokens: u64,
    pub input: String,
    pub output: String,
    pub cache_read: Option<String>,
    pub cache_write_5m: Option<String>,
    pub cache_write_1h: Option<String>,
}

/// `[[models]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Public model name clients send.
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub provider: String,
    /// The provider's model id.
    pub upstream_model: String,
    #[serde(default = "default_max_output")]
    pub max_output_tokens: u64,
    #[serde(default = "default_default_output")]
    pub default_max_output_tokens: u64,
    /// This route's own price (highest precedence).
    pub price: Option<PriceConfig>,
    /// Used only when no catalog has a price: allows serving the model at a flat rate
    /// instead of refusing it.
    pub fallback_price: Option<PriceConfig>,
}

fn default_max_output() -> u64 {
    32_768
}
fn default_default_output() -> u64 {
    4_096
}
