//! The shared state of one gateway process, built from a config.

use crate::billing::Balances;
use crate::billing::pending::PendingDebits;
use crate::catalog::Catalog;
use crate::config::routes::Secret;
use crate::config::{Config, ConfigError, RouteTable};
use crate::ledger::{Ledger, LedgerConfig};
use crate::plugins::{PluginEngine, PluginRegistry, RuntimeLimits};
use crate::proxy::authenticate::KeyCache;
use crate::proxy::upstream::UpstreamClient;
use arc_swap::ArcSwap;
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Config and the routes compiled from it; swapped as one on reload.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    pub routes: RouteTable,
}

impl Settings {
    /// Compiles routes, reading provider credentials through `env`.
    pub fn new(config: Config, env: &EnvLookup) -> Settings {
        let routes = RouteTable::build(&config, &|name| env(name));
        Settings { config, routes }
    }
}

/// Where secrets come from: the process environment in production, a map in tests.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment.
pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok())
}

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

/// Everything a request needs.
pub struct Gateway {
    pub config_path: Option<PathBuf>,
    pub env: EnvLookup,
    pub settings: ArcSwap<Settings>,
    /// Prices from files and sync (see `catalog`).
    pub catalog: ArcSwap<Catalog>,
    pub plugins: Arc<PluginRegistry>,
    pub db: PgPool,
    /// Live balances (Redis).
    pub balances: Balances,
    /// The durable transaction ledger (spool + Postgres).
    pub ledger: Ledger,
    pub keys: KeyCache,
    pub upstream: UpstreamClient,
    pub admin_token: Option<Secret>,
    /// Background drains of streams whose client left (bounded).
    pub drains: Arc<Semaphore>,
    /// Tasks that must finish before shutdown completes (stream relays, drains).
    pub tasks: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("config_path", &self.config_path).finish()
    }
}

/// Loads the price files of `config`, keeping the synced prices of `previous`.
fn load_catalog(config: &Config, previous: &Catalog) -> Result<Catalog, String> {
    let mut catalog = Catalog { synced: previous.synced.clone(), ..Catalog::default() };
    for f in &config.catalog.files {
        catalog.config.extend(crate::catalog::file::load(f).map_err(|e| e.to_string())?);
    }
    for f in &config.catalog.imported {
        catalog.imported.extend(crate::catalog::file::load(f).map_err(|e| e.to_string())?);
    }
    Ok(catalog)
}

fn required(env: &EnvLookup, name: &str) -> Result<String, StartError> {
    env(name).filter(|v| !v.is_empty()).ok_or_else(|| StartError::MissingEnv(name.into()))
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
        let redis = redis::Client::open(redis_url).map_err(|e| StartError::Redis(e.to_string()))?;
        let limits = RuntimeLimits {
            memory_bytes: config.plugins.memory_mb << 20,
            call_timeout_ms: config.plugins.call_timeout_ms,
            ..RuntimeLimits::default()
        };
        let engine = PluginEngine::new(limits).map_err(|e| StartError::Plugins(format!("{e:#}")))?;
        let cache_dir = config.plugins.cache_dir.clone().unwrap_or_else(|| config.plugins.dir.join(".cache"));
        let plugins = PluginRegistry::new(engine, config.plugins.dir.clone(), Some(cache_dir));
        let registry = plugins.clone();
        tokio::task::spawn_blocking(move || registry.reload()).await.map_err(|e| StartError::Plugins(e.to_string()))?;
        let pending = Arc::new(PendingDebits::default());
        let ledger = Ledger::start(db.clone(), LedgerConfig::new(config.billing.spool_dir.clone()), pending.clone())
            .await
            .map_err(|e| StartError::Ledger(e.to_string()))?;
        let balances = Balances::new(redis, db.clone(), pending, Duration::from_secs(config.billing.hold_ttl_secs));
        let admin_token = env("XJP_ADMIN_TOKEN").filter(|t| !t.is_empty()).map(Secret::new);
        let catalog = load_catalog(&config, &Catalog::default()).map_err(StartError::Catalog)?;
        let settings = Settings::new(config, &env);
        Ok(Arc::new(Gateway {
            config_path,
            env,
            keys: KeyCache::new(Duration::from_millis(settings.config.auth.key_cache_ttl_ms)),
            drains: Arc::new(Semaphore::new(settings.config.streaming.max_drains)),
            settings: ArcSwap::from_pointee(settings),
            catalog: ArcSwap::from_pointee(catalog),
            plugins,
            db,
            balances,
            ledger,
            upstream: UpstreamClient::new(),
            admin_token,
            tasks: tokio_util::task::TaskTracker::new(),
        }))
    }

    /// Records the current price of every route as a price version (when it changed).
    pub async fn record_price_versions(&self) {
        let settings = self.settings.load_full();
        let catalog = self.catalog.load_full();
        for name in &settings.routes.public_names {
            let Some(route) = settings.routes.route(name) else { continue };
            let resolved = catalog.resolve(
                &route.provider.name,
                &route.upstream_model,
                route.price.as_ref(),
                route.fallback_price.as_ref(),
            );
            if let Some(price) = resolved
                && let Err(e) =
                    crate::catalog::versions::record(&self.db, &route.provider.name, &route.upstream_model, &price)
                        .await
            {
                tracing::warn!(error = %e, "cannot record price versions now");
                return;
            }
        }
    }

    /// Fetches OpenRouter prices once; on failure the last good prices stay.
    pub async fn sync_prices(&self) -> Result<usize, crate::catalog::openrouter::SyncError> {
        let Some(sync) = self.settings.load().config.catalog.openrouter_sync.clone() else { return Ok(0) };
        let body = self
            .upstream
            .get(&sync.url, Duration::from_secs(30))
            .await
            .map_err(|message| crate::catalog::openrouter::SyncError::Fetch { url: sync.url.clone(), message })?;
        let synced = crate::catalog::openrouter::parse(&sync.provider, &body)?;
        let count = synced.len();
        let mut next = (**self.catalog.load()).clone();
        next.synced = synced;
        self.catalog.store(Arc::new(next));
        self.record_price_versions().await;
        metrics::gauge!("xjp_synced_prices").set(count as f64);
        Ok(count)
    }

    /// Starts the background jobs: the hold sweeper, the summary rollup, the price sync.
    pub fn start_background(self: &Arc<Self>) {
        if let Some(sync) = self.settings.load().config.catalog.openrouter_sync.clone() {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let Some(gw) = weak.upgrade() else { return };
                    match gw.sync_prices().await {
                        Ok(n) => tracing::info!(models = n, "OpenRouter prices synced"),
                        Err(e) => {
                            metrics::counter!("xjp_price_sync_errors_total").increment(1);
                            tracing::warn!(error = %e, "price sync failed; keeping the last good prices");
                        }
                    }
                    drop(gw);
                    tokio::time::sleep(Duration::from_secs(sync.interval_secs)).await;
                }
            });
        }
        let gw = self.clone();
        tokio::spawn(async move { gw.record_price_versions().await });
        let billing = &self.settings.load().config.billing;
        crate::billing::sweeper::spawn(Arc::downgrade(self), Duration::from_millis(billing.sweep_interval_ms));
        let (weak, every) = (Arc::downgrade(self), Duration::from_millis(billing.rollup_interval_ms));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(gw) = weak.upgrade() else { return };
                if let Err(e) = crate::ledger::rollup::rollup_all(&gw.db).await {
                    tracing::debug!(error = %e, "rollup skipped");
                }
            }
        });
    }

    /// Re-reads the config file; on any error the old config stays and the error is returned.
    pub fn reload_config(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.config_path else { return Ok(()) };
        let config = crate::config::load_file(path)?;
        let catalog = load_catalog(&config, &self.catalog.load())
            .map_err(|e| ConfigError::Invalid { path: path.clone(), errors: vec![e] })?;
        self.catalog.store(Arc::new(catalog));
        self.settings.store(Arc::new(Settings::new(config, &self.env)));
        tracing::info!(path = %path.display(), "config reloaded");
        Ok(())
    }
}
