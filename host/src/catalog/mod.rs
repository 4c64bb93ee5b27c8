//! The price catalog: where a model's price comes from, in order of precedence:
//! 1. **config** — the route's own `price` in gateway.toml, then the static price files
//!    (`[catalog] files`, e.g. config/prices.toml);
//! 2. **synced** — OpenRouter's `GET /api/v1/models`, refreshed on a schedule (a failed
//!    sync keeps the last good prices);
//! 3. **imported** — LiteLLM tables converted by `xjp-gateway prices import` (`[catalog] imported`);
//! 4. the route's `fallback_price`, only if the operator allowed one.
//!
//! No price at all refuses the model before the upstream call. Every price has a content
//! version (`p_<hash>`), recorded in Postgres when it becomes a model's price.

pub mod file;
pub mod openrouter;
pub mod prices;
pub mod snapshot;
pub mod versions;

pub use prices::{Fetch, Prices};

use crate::plugins::bindings::PriceEntry;
use std::collections::HashMap;

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriceSource {
    Config,
    Synced,
    Imported,
    Fallback,
}

impl PriceSource {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            PriceSource::Config => "config",
            PriceSource::Synced => "synced",
            PriceSource::Imported => "imported",
            PriceSource::Fallback => "fallback",
        }
    }
}

/// (provider, model) -> price.
pub type PriceMap = HashMap<(String, String), PriceEntry>;

/// A resolved price with its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPrice {
    pub entry: PriceEntry,
    pub source: PriceSource,
    pub version: String,
}

/// Prices from files and sync (immutable; swapped whole when one part changes).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub config: PriceMap,
    pub synced: PriceMap,
    pub imported: PriceMap,
}

impl Catalog {
    /// The price of `model` at `provider`: the route override first, then by precedence.
    pub fn resolve(
        &self,
        provider: &str,
        model: &str,
        route_price: Option<&PriceEntry>,
        fallback: Option<&PriceEntry>,
    ) -> Option<ResolvedPrice> {
        let key = (provider.to_string(), model.to_string());
        let (entry, source) = route_price
            .map(|p| (p, PriceSource::Config))
            .or_else(|| self.config.get(&key).map(|p| (p, PriceSource::Config)))
            .or_else(|| self.synced.get(&key).map(|p| (p, PriceSource::Synced)))
            .or_else(|| self.imported.get(&key).map(|p| (p, PriceSource::Imported)))
            .or_else(|| fallback.map(|p| (p, PriceSource::Fallback)))?;
        Some(ResolvedPrice { version: snapshot::price_version(entry), entry: entry.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::bindings::TokenRates;

    fn price(input: u64) -> PriceEntry {
        PriceEntry {
            rates: TokenRates {
                input,
                output: 1,
                cache_read: 1,
                cache_write_5m: 1,
                cache_write_1h: 1,
                reasoning: None,
            },
            long_context: None,
            fees: vec![],
        }
    }

    #[test]
    fn precedence_is_config_then_synced_then_imported_then_fallback() {
        let key = ("p".to_string(), "m".to_string());
        let mut c = Catalog::default();
        assert_eq!(c.resolve("p", "m", None, None), None);
        assert_eq!(c.resolve("p", "m", None, Some(&price(9))).unwrap().source, PriceSource::Fallback);
        c.imported.insert(key.clone(), price(3));
        assert_eq!(c.resolve("p", "m", None, Some(&price(9))).unwrap().entry, price(3));
        c.synced.insert(key.clone(), price(2));
        assert_eq!(c.resolve("p", "m", None, None).unwrap().source, PriceSource::Synced);
        c.config.insert(key, price(1));
        assert_eq!(c.resolve("p", "m", None, None).unwrap().entry, price(1));
        let r = c.resolve("p", "m", Some(&price(7)), None).unwrap();
        assert_eq!((r.entry, r.source), (price(7), PriceSource::Config));
        assert_ne!(c.resolve("p", "m", None, None).unwrap().version, r.version, "versions follow content");
    }
}
