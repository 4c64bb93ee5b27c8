//! Assembles one gateway process from a config: the settings, the price catalog, the
//! plugin registry, billing and the proxy. Each part owns and runs its own background
//! work; this file only builds them, starts them and wires config reloads through them.

use crate::billing::Billing;
use crate::catalog::{Fetch, Prices};
use crate::config::routes::Secret;
use crate::config::watch::{ConfigWatcher, Reload};
use crate::config::{Config, ConfigError, EnvLookup, LiveSettings, RedisMode, Settings};
use crate::db::RedisTarget;
use crate::ledger::LedgerConfig;
use crate::plugins::{PluginEngine, PluginRegistry, RuntimeLimits};
use crate::proxy::Proxy;
use crate::proxy::upstream::UpstreamClient;
use arc_swap::ArcSwap;
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("database: {0}")]
    Database(String),
    #[error("redis: {0}")]
    Redis(String),
    #[error("plugins: {0}")]
    Plugins(String),
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("price catalog: {0}")]
    Catalog(String),
}

/// The parts of one gateway.
pub struct Gateway {
    pub settings: LiveSettings,
    /// Prices from files and sync (see `catalog`).
    pub catalog: Arc<Prices>,
    pub plugins: Arc<PluginRegistry>,
    /// Live balances (Redis) and the durable ledger (spool + Postgres).
    pub billing: Arc<Billing>,
    pub proxy: Arc<Proxy>,
    /// Postgres, for the admin and billing endpoints.
    pub db: PgPool,
    admin_token: Option<Secret>,
    config_path: Option<PathBuf>,
    env: EnvLookup,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("config_path", &self.config_path).finish()
    }
}

fn required(env: &EnvLookup, name: &str) -> Result<String, StartError> {
    env(name).filter(|v| !v.is_empty()).ok_or_else(|| StartError::MissingEnv(name.into()))
}

/// The price sync's fetch, over the proxy's pooled client.
fn fetch_with(client: Arc<UpstreamClient>) -> Fetch {
    Arc::new(move |url| {
        let client = client.clone();
        Box::pin(async move { client.get(&url, Duration::from_secs(30)).await })
    })
}

impl Gateway {
    /// Builds the gateway: connects (lazily) to Postgres and Redis, migrates, loads plugins.
    /// Secrets (database URL, admin token, provider keys) are read through `env`.
    pub async fn build(
        config: Config,
        config_path: Option<PathBuf>,
        env: EnvLookup,
    ) -> Result<Arc<Gateway>, StartError> {
        let db_url = required(&env, &config.database.url_env)?;
        let db = crate::db::connect_lazy(&db_url, config.database.max_connections)
            .map_err(|e| StartError::Database(e.to_string()))?;
        crate::db::migrate(&db).await.map_err(|e| StartError::Database(e.to_string()))?;
        let redis_url = env(&config.redis.url_env).unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        let r = &config.redis;
        let identity = r.client_cert_file.as_deref().zip(r.client_key_file.as_deref());
        let redis = match r.mode {
            RedisMode::Single => RedisTarget::single(&redis_url, r.ca_file.as_deref(), identity),
            RedisMode::Cluster => RedisTarget::cluster(&redis_url, r.ca_file.as_deref(), identity),
        }
        .map_err(|e| StartError::Redis(e.to_string()))?;
        let limits = RuntimeLimits {
            memory_bytes: config.plugins.memory_mb << 20,
            call_timeout_ms: config.plugins.call_timeout_ms,
            max_instances: config.plugins.max_instances,
            offload_bytes: config.plugins.offload_threshold_bytes,
            ..RuntimeLimits::default()
        };
        let engine = PluginEngine::new(limits).map_err(|e| StartError::Plugins(format!("{e:#}")))?;
        let cache_dir = config.plugins.cache_dir.clone().unwrap_or_else(|| config.plugins.dir.join(".cache"));
        let plugins = PluginRegistry::new(engine, config.plugins.dir.clone(), Some(cache_dir));
        let registry = plugins.clone();
        tokio::task::spawn_blocking(move || registry.reload()).await.map_err(|e| StartError::Plugins(e.to_string()))?;
        let insert_linger = Duration::from_millis(config.billing.insert_linger_ms);
        let ledger = LedgerConfig { insert_linger, ..LedgerConfig::new(config.billing.spool_dir.clone()) };
        let admin_token = env("XJP_ADMIN_TOKEN").filter(|t| !t.is_empty()).map(Secret::new);
        let settings: LiveSettings = Arc::new(ArcSwap::from_pointee(Settings::new(config, &env)));
        let billing = Billing::start(db.clone(), redis, ledger, settings.clone())
            .await
            .map_err(|e| StartError::Ledger(e.to_string()))?;
        let upstream = Arc::new(UpstreamClient::new());
        let catalog =
            Prices::new(settings.clone(), db.clone(), fetch_with(upstream.clone())).map_err(StartError::Catalog)?;
        let proxy = Proxy::new(crate::proxy::Parts {
            settings: settings.clone(),
            prices: catalog.clone(),
            plugins: plugins.clone(),
            billing: billing.clone(),
            db: db.clone(),
            upstream,
        });
        Ok(Arc::new(Gateway { settings, catalog, plugins, billing, proxy, db, admin_token, config_path, env }))
    }

    /// Starts every part's background jobs: the price sync and versions (catalog), the hold
    /// sweeper and the summary rollup (billing).
    pub fn start_background(&self) {
        self.catalog.spawn_jobs();
        let b = &self.settings.load().config.billing;
        self.billing
            .spawn_jobs(Duration::from_millis(b.sweep_interval_ms), Duration::from_millis(b.rollup_interval_ms));
    }

    /// The admin token, when the admin API is enabled.
    pub fn admin_token(&self) -> Option<&Secret> {
        self.admin_token.as_ref()
    }

    /// Re-reads the config file; on any error the old config stays and the error is returned.
    pub fn reload_config(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.config_path else { return Ok(()) };
        let config = crate::config::load_file(path)?;
        self.catalog.reload(&config).map_err(|e| ConfigError::Invalid { path: path.clone(), errors: vec![e] })?;
        self.settings.store(Arc::new(Settings::new(config, &self.env)));
        tracing::info!(path = %path.display(), "config reloaded");
        // The routes' prices may have changed: their versions go to `price_versions` (until
        // then rows carry their price snapshot themselves).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let catalog = self.catalog.clone();
            runtime.spawn(async move { catalog.record_price_versions().await });
        }
        Ok(())
    }

    /// Reloads the config when its file changes or on SIGHUP (`None` without a file).
    pub fn watch_config(self: &Arc<Self>) -> notify::Result<Option<ConfigWatcher>> {
        let Some(path) = self.config_path.clone() else { return Ok(None) };
        let weak = Arc::downgrade(self);
        let reload: Reload = Arc::new(move || weak.upgrade().map_or(Ok(()), |gw| gw.reload_config()));
        crate::config::watch::watch(path, reload).map(Some)
    }

    /// Stops in order: requests and streams finish (within `grace`), then their settlements,
    /// then the ledger flushes.
    pub async fn shutdown(&self, grace: Duration) {
        self.proxy.shutdown(grace).await;
        self.billing.shutdown(grace).await;
    }
}
