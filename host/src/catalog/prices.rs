//! The price catalog's owner: the current [`Catalog`], reloaded from its files with the
//! config, refreshed by the OpenRouter sync job, and recorded as price versions.

use super::{Catalog, openrouter, versions};
use crate::config::{Config, LiveSettings};
use arc_swap::{ArcSwap, Guard};
use bytes::Bytes;
use sqlx::PgPool;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Fetches a URL's whole body (the price sync's only way out to the network).
pub type Fetch = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>> + Send + Sync>;

/// Prices from files and sync, with the jobs that keep them current.
pub struct Prices {
    current: ArcSwap<Catalog>,
    settings: LiveSettings,
    db: PgPool,
    fetch: Fetch,
}

impl std::fmt::Debug for Prices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prices")
    }
}

/// Loads the price files of `config`, keeping the synced prices of `previous`.
pub fn load_files(config: &Config, previous: &Catalog) -> Result<Catalog, String> {
    let mut catalog = Catalog { synced: previous.synced.clone(), ..Catalog::default() };
    for f in &config.catalog.files {
        catalog.config.extend(super::file::load(f).map_err(|e| e.to_string())?);
    }
    for f in &config.catalog.imported {
        catalog.imported.extend(super::file::load(f).map_err(|e| e.to_string())?);
    }
    Ok(catalog)
}

impl Prices {
    /// Loads the price files of the current settings.
    pub fn new(settings: LiveSettings, db: PgPool, fetch: Fetch) -> Result<Arc<Prices>, String> {
        let catalog = load_files(&settings.load().config, &Catalog::default())?;
        Ok(Arc::new(Prices { current: ArcSwap::from_pointee(catalog), settings, db, fetch }))
    }

    /// The current catalog.
    pub fn load(&self) -> Guard<Arc<Catalog>> {
        self.current.load()
    }

    /// Reads the price files of a new config (before it is swapped in); on error the old
    /// prices stay.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let catalog = load_files(config, &self.current.load())?;
        self.current.store(Arc::new(catalog));
        Ok(())
    }

    /// Records the current price of every route as a price version (when it changed).
    pub async fn record_price_versions(&self) {
        let settings = self.settings.load_full();
        let catalog = self.current.load_full();
        for name in &settings.routes.public_names {
            let Some(route) = settings.routes.route(name) else { continue };
            let resolved = catalog.resolve(
                &route.provider.name,
                &route.upstream_model,
                route.price.as_ref(),
                route.fallback_price.as_ref(),
            );
            if let Some(price) = resolved
                && let Err(e) = versions::record(&self.db, &route.provider.name, &route.upstream_model, &price).await
            {
                tracing::warn!(error = %e, "cannot record price versions now");
                return;
            }
        }
    }

    /// Fetches OpenRouter prices once; on failure the last good prices stay.
    pub async fn sync_prices(&self) -> Result<usize, openrouter::SyncError> {
        let Some(sync) = self.settings.load().config.catalog.openrouter_sync.clone() else { return Ok(0) };
        let body = (self.fetch)(sync.url.clone())
            .await
            .map_err(|message| openrouter::SyncError::Fetch { url: sync.url.clone(), message })?;
        let synced = openrouter::parse(&sync.provider, &body)?;
        let count = synced.len();
        let mut next = (**self.current.load()).clone();
        next.synced = synced;
        self.current.store(Arc::new(next));
        self.record_price_versions().await;
        metrics::gauge!("xjp_synced_prices").set(count as f64);
        Ok(count)
    }

    /// Starts the catalog's jobs: record the start-up prices, then sync on schedule (while
    /// the catalog lives).
    pub fn spawn_jobs(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.record_price_versions().await });
        let Some(sync) = self.settings.load().config.catalog.openrouter_sync.clone() else { return };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(prices) = weak.upgrade() else { return };
                match prices.sync_prices().await {
                    Ok(n) => tracing::info!(models = n, "OpenRouter prices synced"),
                    Err(e) => {
                        metrics::counter!("xjp_price_sync_errors_total").increment(1);
                        tracing::warn!(error = %e, "price sync failed; keeping the last good prices");
                    }
                }
                drop(prices);
                tokio::time::sleep(Duration::from_secs(sync.interval_secs)).await;
            }
        });
    }
}
