//! The compiled routing table: public model name or alias -> provider + upstream model + price.

use super::forwarding::Forwarding;
use super::{AuthStyle, Config, PriceConfig};
use crate::plugins::ApiFormat;
use crate::plugins::bindings::{FeeRate, LongContextTier, ModelLimits, PriceEntry, TokenRates};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A provider key read from the environment. Never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret value, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A provider ready to be called.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub api: ApiFormat,
    pub credential_env: Option<String>,
    pub credential: Option<Secret>,
    pub auth: AuthStyle,
    pub plugin: String,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_chunks_timeout: Duration,
    pub default_headers: BTreeMap<String, String>,
    pub gemini_path_prefix: String,
    /// OpenAI format: the output-limit field added when a request sets none.
    pub output_limit_field: String,
    /// What the client may send this provider and get back from it.
    pub forwarding: Forwarding,
}

/// A public model and where it goes.
#[derive(Debug)]
pub struct ModelRoute {
    /// Public name (aliases resolve to the same route).
    pub name: String,
    pub provider: Arc<Provider>,
    pub upstream_model: String,
    pub limits: ModelLimits,
    /// The route's own price (highest precedence); the catalog supplies it otherwise.
    pub price: Option<PriceEntry>,
    /// Allowed flat price when no source has one.
    pub fallback_price: Option<PriceEntry>,
}

/// Every route, by public name and alias.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub providers: BTreeMap<String, Arc<Provider>>,
    models: HashMap<String, Arc<ModelRoute>>,
    /// Public names in config order (for `GET /v1/models`).
    pub public_names: Vec<String>,
}

impl RouteTable {
    /// The route for a public name or alias.
    pub fn route(&self, model: &str) -> Option<&Arc<ModelRoute>> {
        self.models.get(model)
    }

    /// Builds the table from a validated config, reading credentials from `env`.
    pub fn build(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> RouteTable {
        let providers: BTreeMap<String, Arc<Provider>> = config
            .providers
            .iter()
            .map(|(name, p)| {
                let credential = p.credential_env.as_deref().and_then(env).filter(|v| !v.is_empty()).map(Secret);
                let api = p.api.parse().unwrap_or(ApiFormat::OpenaiChat);
                let provider = Provider {
                    name: name.clone(),
                    base_url: p.base_url.trim_end_matches('/').to_string(),
                    api,
                    credential_env: p.credential_env.clone(),
                    credential,
                    auth: p.auth,
                    plugin: p.plugin.clone(),
                    connect_timeout: Duration::from_millis(p.connect_timeout_ms),
                    first_byte_timeout: Duration::from_millis(p.first_byte_timeout_ms),
                    between_chunks_timeout: Duration::from_millis(p.between_chunks_timeout_ms),
                    default_headers: p.default_headers.clone(),
                    gemini_path_prefix: p.gemini_path_prefix.clone().unwrap_or_else(|| "/v1beta".into()),
                    output_limit_field: p.output_limit_field.clone().unwrap_or_else(|| "max_completion_tokens".into()),
                    forwarding: p.forwarding(api).0,
                };
                (name.clone(), Arc::new(provider))
            })
            .collect();
        let mut models = HashMap::new();
        let mut public_names = Vec::new();
        for m in &config.models {
            let Some(provider) = providers.get(&m.provider) else { continue };
            let route = Arc::new(ModelRoute {
                name: m.name.clone(),
                provider: provider.clone(),
                upstream_model: m.upstream_model.clone(),
                limits: ModelLimits {
                    default_max_output_tokens: m.default_max_output_tokens,
                    max_output_tokens: m.max_output_tokens,
                },
                price: m.price.as_ref().and_then(|p| price_entry(p).ok()),
                fallback_price: m.fallback_price.as_ref().and_then(|p| price_entry(p).ok()),
            });
            public_names.push(m.name.clone());
            for name in std::iter::once(&m.name).chain(&m.aliases) {
                models.insert(name.clone(), route.clone());
            }
        }
        RouteTable { providers, models, public_names }
    }
}

fn rate(field: &str, text: &str) -> Result<u64, String> {
    xjp_money::usd_per_million_to_atto(text)
        .ok_or_else(|| format!("{field}: `{text}` is not a non-negative decimal USD amount per million tokens"))
}

fn opt_rate(field: &str, text: Option<&String>, fallback: u64) -> Result<u64, String> {
    text.map(|t| rate(field, t)).unwrap_or(Ok(fallback))
}

/// Converts a price from config (USD per million tokens) to exact integer rates.
/// Missing cache rates default to the input rate; a missing 1 h write rate to the 5 min one.
pub fn price_entry(p: &PriceConfig) -> Result<PriceEntry, String> {
    let input = rate("input", &p.input)?;
    let write_5m = opt_rate("cache_write_5m", p.cache_write_5m.as_ref(), input)?;
    let rates = TokenRates {
        input,
        output: rate("output", &p.output)?,
        cache_read: opt_rate("cache_read", p.cache_read.as_ref(), input)?,
        cache_write_5m: write_5m,
        cache_write_1h: opt_rate("cache_write_1h", p.cache_write_1h.as_ref(), write_5m)?,
        reasoning: p.reasoning.as_ref().map(|t| rate("reasoning", t)).transpose()?,
    };
    let long_context = match &p.long_context {
        Some(lc) => {
            let input = rate("long_context.input", &lc.input)?;
            let write_5m = opt_rate("long_context.cache_write_5m", lc.cache_write_5m.as_ref(), input)?;
            Some(LongContextTier {
                threshold_tokens: lc.threshold_tokens,
                rates: TokenRates {
                    input,
                    output: rate("long_context.output", &lc.output)?,
                    cache_read: opt_rate("long_context.cache_read", lc.cache_read.as_ref(), input)?,
                    cache_write_5m: write_5m,
                    cache_write_1h: opt_rate("long_context.cache_write_1h", lc.cache_write_1h.as_ref(), write_5m)?,
                    reasoning: rates.reasoning,
                },
            })
        }
        None => None,
    };
    let fees = p
        .fees
        .iter()
        .map(|(name, usd)| {
            xjp_money::usd_per_unit_to_atto(usd)
                .map(|atto| FeeRate { name: name.clone(), atto_usd_per_unit: atto })
                .ok_or_else(|| format!("fees.{name}: `{usd}` is not a non-negative decimal USD amount"))
        })
        .collect::<Result<_, _>>()?;
    Ok(PriceEntry { rates, long_context, fees })
}
