//! LiteLLM's `model_prices_and_context_window.json` -> a price file
//! (`[prices."<provider>"."<model>"]` tables, USD per million tokens as exact decimal text).
//!
//! Prices are read from their JSON text, never through `f64`, and moved six decimal places
//! with [`xjp_money::per_token_to_per_million_text`], so `7.5e-08` becomes exactly `"0.075"`.
//! Only chat models (`mode = "chat"` or no mode) with both an input and an output price are
//! imported. A long-context tier (`*_above_<N>k_tokens`) keeps the fields LiteLLM gives; a
//! missing tier input or output falls back to the base rate, as in LiteLLM's own costing.
//!
//! Per-call and per-unit prices become the fees the provider's plugin reports ([`fee_names`]):
//!
//! | LiteLLM field | provider (ours) | fee |
//! | --- | --- | --- |
//! | `search_context_cost_per_query` `{search_context_size_low, _medium, _high}` | perplexity | `search_context_low`, `search_context_medium`, `search_context_high` |
//! | the same | anthropic | `web_search` (one price: the sizes must agree) |
//! | the same | openai, openrouter | `web_search` (the highest size: those plugins report no search, the fee only sizes the hold) |
//! | the same | gemini | `google_search` (the highest size) |
//! | `search_queries_cost_per_query` | perplexity | `search_queries` |
//! | `citation_cost_per_token` | perplexity | `citation_tokens` (per token) |
//! | `input_cost_per_request` | any | `request` (once per request) |
//!
//! Any other per-call or per-unit field (`*_cost_per_query`, `*_per_session`, `*_per_1k_calls`,
//! `*_per_image`, `*_per_second`, `*_per_page`, …) with a price above zero, and a mapped field
//! the provider's plugin has no fee for, is reported in [`Import::fees_skipped`] with why.

use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// First line of every emitted price file.
pub const HEADER: &str = "# Imported from LiteLLM model_prices_and_context_window.json by `xjp-gateway prices import`.";

/// LiteLLM `litellm_provider` -> our provider name; anything else is kept as given.
pub const DEFAULT_PROVIDER_MAP: &[(&str, &str)] = &[
    ("anthropic", "anthropic"),
    ("openai", "openai"),
    ("gemini", "gemini"),
    ("vertex_ai-language-models", "gemini"),
    ("openrouter", "openrouter"),
];

/// LiteLLM's documentation entry, always first in the file; never a model.
const SAMPLE_SPEC: &str = "sample_spec";

/// One imported model price: the shape of `PriceConfig`, USD per million tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedPrice {
    /// Our provider name (after the provider map).
    pub provider: String,
    /// The model name without LiteLLM's `<provider>/` prefix.
    pub model: String,
    /// The key in LiteLLM's file.
    pub litellm_key: String,
    pub input: String,
    pub output: String,
    pub cache_read: Option<String>,
    pub cache_write_5m: Option<String>,
    pub cache_write_1h: Option<String>,
    pub reasoning: Option<String>,
    pub long_context: Option<ImportedLongContext>,
    /// Fee name -> USD per unit, plain decimal text.
    pub fees: BTreeMap<String, String>,
}

/// A long-context tier: rates for the whole request above `threshold_tokens` prompt tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedLongContext {
    pub threshold_tokens: u64,
    pub input: String,
    pub output: String,
    pub cache_read: Option<String>,
    pub cache_write_5m: Option<String>,
    pub cache_write_1h: Option<String>,
}

/// Why one LiteLLM entry was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The entry is not a JSON object.
    NotAnObject,
    /// `mode` is not `chat` (embedding, image_generation, ...).
    Mode(String),
    /// No `litellm_provider`.
    NoProvider,
    /// No input or no output price.
    MissingPrice,
    /// A field we read is not what LiteLLM documents (a price that is not a
    /// non-negative number, a provider that is not a string).
    BadValue { field: String, text: String },
    /// Another entry maps to the same provider and model; `kept` is its LiteLLM key.
    Duplicate { kept: String },
}

impl SkipReason {
    /// The group this reason is counted under in the summary.
    pub fn label(&self) -> String {
        match self {
            SkipReason::NotAnObject => "not an object".into(),
            SkipReason::Mode(mode) => format!("mode {mode}"),
            SkipReason::NoProvider => "no litellm_provider".into(),
            SkipReason::MissingPrice => "no input/output price".into(),
            SkipReason::BadValue { .. } => "invalid value".into(),
            SkipReason::Duplicate { .. } => "duplicate".into(),
        }
    }
}

/// Why an import failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a LiteLLM price file (expected a JSON object of models): {source}")]
    Json { path: String, source: serde_json::Error },
    #[error("bad --provider-map `{0}` (expected LITELLM=OURS, e.g. vertex_ai-anthropic_models=anthropic)")]
    ProviderMap(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// LiteLLM provider -> our provider.
#[derive(Debug, Clone)]
pub struct ProviderMap(BTreeMap<String, String>);

impl Default for ProviderMap {
    fn default() -> Self {
        ProviderMap(DEFAULT_PROVIDER_MAP.iter().map(|(from, to)| ((*from).to_string(), (*to).to_string())).collect())
    }
}

impl ProviderMap {
    /// The defaults plus `LITELLM=OURS` overrides.
    pub fn with_overrides<S: AsRef<str>>(overrides: &[S]) -> Result<Self, ImportError> {
        let mut map = ProviderMap::default();
        for pair in overrides {
            let pair = pair.as_ref();
            match pair.split_once('=') {
                Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
                    map.0.insert(from.trim().to_string(), to.trim().to_string());
                }
                _ => return Err(ImportError::ProviderMap(pair.to_string())),
            }
        }
        Ok(map)
    }

    /// Our name for a LiteLLM provider.
    pub fn map<'a>(&'a self, litellm_provider: &'a str) -> &'a str {
        self.0.get(litellm_provider).map_or(litellm_provider, String::as_str)
    }
}

/// The outcome of converting one LiteLLM file.
#[derive(Debug, Default)]
pub struct Import {
    /// Imported prices, sorted by provider then model.
    pub prices: Vec<ImportedPrice>,
    /// Skipped LiteLLM keys with the reason, in key order (`sample_spec` not included).
    pub skipped: Vec<(String, SkipReason)>,
    /// LiteLLM keys with more than one long-context tier: only the lowest was kept.
    pub tiers_dropped: Vec<String>,
    /// Fee fields of imported models that became no fee: (LiteLLM key, field, why).
    pub fees_skipped: Vec<(String, String, String)>,
}

impl Import {
    /// One line: models imported per provider, skipped per reason.
    pub fn summary(&self) -> String {
        let mut per_provider: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &self.prices {
            *per_provider.entry(&p.provider).or_default() += 1;
        }
        let mut per_reason: BTreeMap<String, usize> = BTreeMap::new();
        for (_, reason) in &self.skipped {
            *per_reason.entry(reason.label()).or_default() += 1;
        }
        let list =
            |counts: Vec<(String, usize)>| counts.into_iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>();
        let mut line = format!("imported {} models", self.prices.len());
        if !per_provider.is_empty() {
            let providers = list(per_provider.into_iter().map(|(k, n)| (k.to_string(), n)).collect());
            let _ = write!(line, " ({})", providers.join(", "));
        }
        let _ = write!(line, "; skipped {}", self.skipped.len());
        if !per_reason.is_empty() {
            let _ = write!(line, " ({})", list(per_reason.into_iter().collect()).join(", "));
        }
        let fees: usize = self.prices.iter().map(|p| p.fees.len()).sum();
        if fees > 0 {
            let _ = write!(line, "; {fees} fees mapped");
        }
        if !self.fees_skipped.is_empty() {
            // Grouped by field and reason: `field (why): n`.
            let mut groups: BTreeMap<(&str, &str), usize> = BTreeMap::new();
            for (_, field, why) in &self.fees_skipped {
                *groups.entry((field, why)).or_default() += 1;
            }
            let groups: Vec<String> =
                groups.into_iter().map(|((field, why), n)| format!("{field} ({why}): {n}")).collect();
            let _ = write!(line, "; fee fields not imported: {}", groups.join(", "));
        }
        if !self.tiers_dropped.is_empty() {
            let _ = write!(
                line,
                "; {} with several long-context tiers kept only the lowest ({})",
                self.tiers_dropped.len(),
                self.tiers_dropped.join(", ")
            );
        }
        line
    }

    /// The price file.
    pub fn to_toml(&self) -> String {
        to_toml(&self.prices)
    }
}

/// Converts LiteLLM's JSON text.
pub fn import(json: &str, providers: &ProviderMap, path: &str) -> Result<Import, ImportError> {
    let entries: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(json).map_err(|source| ImportError::Json { path: path.to_string(), source })?;
    let mut out = Import::default();
    // (provider, model) -> (price, whether its LiteLLM provider is our provider itself)
    let mut kept: BTreeMap<(String, String), (ImportedPrice, bool)> = BTreeMap::new();
    for (key, raw) in &entries {
        if key == SAMPLE_SPEC {
            continue;
        }
        let converted = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get())
            .map_err(|_| SkipReason::NotAnObject)
            .and_then(|fields| convert(key, &Fields(fields), providers));
        let (price, native, tiers_dropped, fees_skipped) = match converted {
            Ok(c) => c,
            Err(reason) => {
                out.skipped.push((key.clone(), reason));
                continue;
            }
        };
        if tiers_dropped {
            out.tiers_dropped.push(key.clone());
        }
        out.fees_skipped.extend(fees_skipped.into_iter().map(|(field, why)| (key.clone(), field, why)));
        match kept.entry((price.provider.clone(), price.model.clone())) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert((price, native));
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                // The provider's own entry wins over an aliased one (`gemini/...` over vertex).
                if native && !slot.get().1 {
                    let (old, _) = slot.insert((price, native));
                    out.skipped.push((old.litellm_key, SkipReason::Duplicate { kept: key.clone() }));
                } else {
                    out.skipped.push((key.clone(), SkipReason::Duplicate { kept: slot.get().0.litellm_key.clone() }));
                }
            }
        }
    }
    out.skipped.sort_by(|a, b| a.0.cmp(&b.0));
    out.prices = kept.into_values().map(|(p, _)| p).collect();
    Ok(out)
}

/// One LiteLLM entry's fields, kept as raw JSON text.
struct Fields(BTreeMap<String, Box<RawValue>>);

impl Fields {
    /// A field's raw text; `None` when absent or `null`.
    fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.get().trim()).filter(|t| *t != "null")
    }

    fn text(&self, name: &str) -> Result<Option<String>, SkipReason> {
        self.raw(name)
            .map(|t| {
                serde_json::from_str::<String>(t)
                    .map_err(|_| SkipReason::BadValue { field: name.into(), text: t.into() })
            })
            .transpose()
    }

    /// A per-token price, as USD per million tokens.
    fn price(&self, name: &str) -> Result<Option<String>, SkipReason> {
        self.raw(name)
            .map(|t| {
                xjp_money::per_token_to_per_million_text(t)
                    .ok_or_else(|| SkipReason::BadValue { field: name.into(), text: t.into() })
            })
            .transpose()
    }
}

/// Which rate a `*_above_<N>k_tokens` field sets.
#[derive(Debug, Clone, Copy)]
enum TierField {
    Input,
    Output,
    CacheRead,
    CacheWrite5m,
    CacheWrite1h,
}

/// Tier field prefixes; the 1 h one before the 5 min one it starts with.
const TIER_PREFIXES: &[(&str, TierField)] = &[
    ("input_cost_per_token_above_", TierField::Input),
    ("output_cost_per_token_above_", TierField::Output),
    ("cache_read_input_token_cost_above_", TierField::CacheRead),
    ("cache_creation_input_token_cost_above_1hr_above_", TierField::CacheWrite1h),
    ("cache_creation_input_token_cost_above_", TierField::CacheWrite5m),
];

/// `input_cost_per_token_above_200k_tokens` -> (200000, Input). Variants with more after
/// `_tokens` (`..._priority`) are other service tiers and not ours.
fn tier_field(key: &str) -> Option<(u64, TierField)> {
    for (prefix, field) in TIER_PREFIXES {
        let Some(n) = key.strip_prefix(prefix).and_then(|rest| rest.strip_suffix("k_tokens")) else { continue };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let threshold = n.parse::<u64>().ok().and_then(|k| k.checked_mul(1000)).filter(|t| *t > 0)?;
        return Some((threshold, *field));
    }
    None
}

#[derive(Debug, Default)]
struct Tier {
    input: Option<String>,
    output: Option<String>,
    cache_read: Option<String>,
    cache_write_5m: Option<String>,
    cache_write_1h: Option<String>,
}

/// Strips the `<provider>/` prefix LiteLLM puts on some keys (`gemini/gemini-2.5-flash`,
/// `openrouter/anthropic/claude-3.5-haiku`, `vertex_ai/...`), once.
fn model_name<'a>(key: &'a str, litellm_provider: &str, ours: &str) -> &'a str {
    let family = litellm_provider.split('-').next().unwrap_or(litellm_provider);
    [litellm_provider, ours, family]
        .into_iter()
        .filter(|p| !p.is_empty())
        .find_map(|p| key.strip_prefix(p).and_then(|rest| rest.strip_prefix('/')).filter(|m| !m.is_empty()))
        .unwrap_or(key)
}

/// A fee field that was not imported, and why.
type FeeSkip = (String, String);

/// The fee names a provider's plugin reports for LiteLLM's fee fields:
/// `(search context fees by size, or one fee for every size; the sizes must agree)`,
/// `search_queries`, `citation_tokens`. `None` for a provider without a known plugin.
pub fn fee_names(provider: &str) -> Option<ProviderFees> {
    let one = |name: &'static str, agree: bool| SearchContext::One { name, sizes_must_agree: agree };
    Some(match provider {
        "perplexity" => ProviderFees {
            search_context: SearchContext::BySize([
                "search_context_low",
                "search_context_medium",
                "search_context_high",
            ]),
            search_queries: Some("search_queries"),
            citation_tokens: Some("citation_tokens"),
        },
        "anthropic" => {
            ProviderFees { search_context: one("web_search", true), search_queries: None, citation_tokens: None }
        }
        "openai" | "openrouter" => {
            ProviderFees { search_context: one("web_search", false), search_queries: None, citation_tokens: None }
        }
        "gemini" => {
            ProviderFees { search_context: one("google_search", false), search_queries: None, citation_tokens: None }
        }
        "xai" => ProviderFees { search_context: SearchContext::None, search_queries: None, citation_tokens: None },
        _ => return None,
    })
}

/// How a plugin names the fees LiteLLM prices.
#[derive(Debug, Clone, Copy)]
pub struct ProviderFees {
    pub search_context: SearchContext,
    pub search_queries: Option<&'static str>,
    pub citation_tokens: Option<&'static str>,
}

/// What `search_context_cost_per_query` becomes.
#[derive(Debug, Clone, Copy)]
pub enum SearchContext {
    /// One fee per size (`low`, `medium`, `high`).
    BySize([&'static str; 3]),
    /// One fee: the price every size agrees on, or else (when they need not agree) the highest.
    One { name: &'static str, sizes_must_agree: bool },
    /// The plugin bills no search per query.
    None,
}

/// The sizes of `search_context_cost_per_query`, in order.
const SEARCH_CONTEXT_SIZES: [&str; 3] =
    ["search_context_size_low", "search_context_size_medium", "search_context_size_high"];

/// Whether a LiteLLM field prices something per call or per unit other than a token (the
/// fields a price file can only carry as fees).
fn is_fee_field(name: &str) -> bool {
    const UNITS: &[&str] = &[
        "_per_query",
        "_per_request",
        "_per_session",
        "_per_1k_calls",
        "_per_image",
        "_per_second",
        "_per_character",
        "_per_page",
        "_per_gb_per_day",
        "_per_1k_tokens",
        "_per_credit",
    ];
    name == "citation_cost_per_token" || (name.contains("cost") && UNITS.iter().any(|u| name.contains(u)))
}

/// Whether a raw JSON price is above zero (so that skipping it loses money).
fn above_zero(raw: &str) -> bool {
    xjp_money::usd_per_unit_to_atto(raw).is_none_or(|atto| atto > 0)
}

/// The fees of one entry for `provider`, and the fee fields that became none.
fn fees(f: &Fields, provider: &str) -> Result<(BTreeMap<String, String>, Vec<FeeSkip>), SkipReason> {
    let mut fees = BTreeMap::new();
    let mut skipped: Vec<FeeSkip> = Vec::new();
    let names = fee_names(provider);
    let per_unit = |name: &str| -> Result<Option<String>, SkipReason> {
        f.raw(name)
            .map(|t| {
                xjp_money::plain_decimal_text(t)
                    .ok_or_else(|| SkipReason::BadValue { field: name.into(), text: t.into() })
            })
            .transpose()
    };
    let no_plugin = || format!("no plugin fee known for provider {provider}");
    for name in f.0.keys().filter(|n| is_fee_field(n)) {
        let Some(raw) = f.raw(name) else { continue };
        let mapped = match (name.as_str(), names) {
            ("search_context_cost_per_query", Some(names)) => {
                search_context_fees(f, name, names.search_context, provider)?
            }
            ("search_queries_cost_per_query", Some(ProviderFees { search_queries: Some(fee), .. }))
            | ("citation_cost_per_token", Some(ProviderFees { citation_tokens: Some(fee), .. })) => {
                per_unit(name)?.map(|usd| vec![(fee.to_string(), usd)]).ok_or_else(|| "null".to_string())
            }
            ("input_cost_per_request", _) => {
                per_unit(name)?.map(|usd| vec![("request".to_string(), usd)]).ok_or_else(|| "null".to_string())
            }
            ("search_context_cost_per_query" | "search_queries_cost_per_query" | "citation_cost_per_token", None) => {
                Err(no_plugin())
            }
            ("search_queries_cost_per_query" | "citation_cost_per_token", _) => {
                Err(format!("the {provider} plugin reports no such fee"))
            }
            _ => Err("no plugin reports this quantity".to_string()),
        };
        match mapped {
            Ok(pairs) => fees.extend(pairs),
            // Nothing is lost by dropping a price of zero: say nothing.
            Err(why) if raw.starts_with('{') || above_zero(raw) => skipped.push((name.clone(), why)),
            Err(_) => {}
        }
    }
    Ok((fees, skipped))
}

/// `search_context_cost_per_query` (an object of sizes) as the plugin's fees.
fn search_context_fees(
    f: &Fields,
    field: &str,
    how: SearchContext,
    provider: &str,
) -> Result<Result<Vec<(String, String)>, String>, SkipReason> {
    let bad = |text: &str| SkipReason::BadValue { field: field.into(), text: text.into() };
    let raw = f.raw(field).unwrap_or("{}");
    let sizes: BTreeMap<String, Box<RawValue>> = serde_json::from_str(raw).map_err(|_| bad(raw))?;
    let mut prices = Vec::new();
    for size in SEARCH_CONTEXT_SIZES {
        let Some(v) = sizes.get(size).map(|v| v.get().trim()).filter(|t| *t != "null") else { continue };
        prices.push((size, xjp_money::plain_decimal_text(v).ok_or_else(|| bad(v))?));
    }
    if prices.is_empty() {
        return Ok(Err("no search context size priced".into()));
    }
    Ok(match how {
        SearchContext::BySize(names) => Ok(prices
            .into_iter()
            .map(|(size, usd)| {
                let i = SEARCH_CONTEXT_SIZES.iter().position(|s| *s == size).unwrap_or(0);
                (names[i].to_string(), usd)
            })
            .collect()),
        SearchContext::One { name, sizes_must_agree } => {
            let atto = |usd: &str| xjp_money::usd_per_unit_to_atto(usd).unwrap_or(u64::MAX);
            let highest =
                prices.iter().max_by_key(|(_, usd)| atto(usd)).map(|(_, usd)| usd.clone()).unwrap_or_default();
            if sizes_must_agree && prices.iter().any(|(_, usd)| atto(usd) != atto(&highest)) {
                Err(format!("the sizes differ and the plugin bills one `{name}` price"))
            } else {
                Ok(vec![(name.to_string(), highest)])
            }
        }
        SearchContext::None => Err(format!("the {provider} plugin bills no search per query")),
    })
}

/// One entry -> (price, native provider, several tiers seen, fee fields not imported).
fn convert(
    key: &str,
    f: &Fields,
    providers: &ProviderMap,
) -> Result<(ImportedPrice, bool, bool, Vec<FeeSkip>), SkipReason> {
    if let Some(mode) = f.text("mode")?
        && mode != "chat"
    {
        return Err(SkipReason::Mode(mode));
    }
    let litellm_provider = f.text("litellm_provider")?.filter(|p| !p.is_empty()).ok_or(SkipReason::NoProvider)?;
    let (Some(input), Some(output)) = (f.price("input_cost_per_token")?, f.price("output_cost_per_token")?) else {
        return Err(SkipReason::MissingPrice);
    };
    let mut tiers: BTreeMap<u64, Tier> = BTreeMap::new();
    for name in f.0.keys() {
        let Some((threshold, field)) = tier_field(name) else { continue };
        let Some(value) = f.price(name)? else { continue };
        let tier = tiers.entry(threshold).or_default();
        let slot = match field {
            TierField::Input => &mut tier.input,
            TierField::Output => &mut tier.output,
            TierField::CacheRead => &mut tier.cache_read,
            TierField::CacheWrite5m => &mut tier.cache_write_5m,
            TierField::CacheWrite1h => &mut tier.cache_write_1h,
        };
        *slot = Some(value);
    }
    let several_tiers = tiers.len() > 1;
    let long_context = tiers.into_iter().next().map(|(threshold_tokens, t)| ImportedLongContext {
        threshold_tokens,
        input: t.input.unwrap_or_else(|| input.clone()),
        output: t.output.unwrap_or_else(|| output.clone()),
        cache_read: t.cache_read,
        cache_write_5m: t.cache_write_5m,
        cache_write_1h: t.cache_write_1h,
    });
    let provider = providers.map(&litellm_provider).to_string();
    let native = provider == litellm_provider;
    let (fees, fees_skipped) = fees(f, &provider)?;
    let price = ImportedPrice {
        model: model_name(key, &litellm_provider, &provider).to_string(),
        provider,
        litellm_key: key.to_string(),
        input,
        output,
        cache_read: f.price("cache_read_input_token_cost")?,
        cache_write_5m: f.price("cache_creation_input_token_cost")?,
        cache_write_1h: f.price("cache_creation_input_token_cost_above_1hr")?,
        reasoning: f.price("output_cost_per_reasoning_token")?,
        long_context,
        fees,
    };
    Ok((price, native, several_tiers, fees_skipped))
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, else quoted.
fn key(s: &str) -> String {
    let bare = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { s.to_string() } else { quoted(s) }
}

/// The price file: a header line, then one table per model.
pub fn to_toml(prices: &[ImportedPrice]) -> String {
    let mut out = format!("{HEADER}\n");
    for p in prices {
        let _ = writeln!(out, "\n[prices.{}.{}]", quoted(&p.provider), quoted(&p.model));
        let _ = writeln!(out, "input = {}", quoted(&p.input));
        let _ = writeln!(out, "output = {}", quoted(&p.output));
        let optional = [
            ("cache_read", &p.cache_read),
            ("cache_write_5m", &p.cache_write_5m),
            ("cache_write_1h", &p.cache_write_1h),
            ("reasoning", &p.reasoning),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                let _ = writeln!(out, "{name} = {}", quoted(v));
            }
        }
        if let Some(lc) = &p.long_context {
            let mut fields = vec![
                format!("threshold_tokens = {}", lc.threshold_tokens),
                format!("input = {}", quoted(&lc.input)),
                format!("output = {}", quoted(&lc.output)),
            ];
            let optional = [
                ("cache_read", &lc.cache_read),
                ("cache_write_5m", &lc.cache_write_5m),
                ("cache_write_1h", &lc.cache_write_1h),
            ];
            fields.extend(
                optional.into_iter().filter_map(|(name, v)| v.as_ref().map(|v| format!("{name} = {}", quoted(v)))),
            );
            let _ = writeln!(out, "long_context = {{ {} }}", fields.join(", "));
        }
        if !p.fees.is_empty() {
            let fees: Vec<String> =
                p.fees.iter().map(|(name, usd)| format!("{} = {}", key(name), quoted(usd))).collect();
            let _ = writeln!(out, "fees = {{ {} }}", fees.join(", "));
        }
        out.push_str("source = \"litellm\"\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PriceConfig;
    use crate::config::routes::price_entry;

    const SAMPLE: &str = include_str!("../../tests/fixtures/litellm_sample.json");

    fn sample() -> Import {
        import(SAMPLE, &ProviderMap::default(), "litellm_sample.json").unwrap()
    }

    #[test]
    fn every_emitted_table_is_a_valid_price_config() {
        let import = sample();
        assert!(!import.prices.is_empty());
        let doc: toml::Table = import.to_toml().parse().unwrap();
        let providers = doc["prices"].as_table().unwrap();
        let mut tables = 0;
        for (provider, models) in providers {
            for (model, table) in models.as_table().unwrap() {
                let mut table = table.as_table().unwrap().clone();
                assert_eq!(
                    table.remove("source").and_then(|s| s.as_str().map(str::to_string)).as_deref(),
                    Some("litellm")
                );
                let cfg: PriceConfig =
                    toml::Value::Table(table).try_into().unwrap_or_else(|e| panic!("{provider}/{model}: {e}"));
                price_entry(&cfg).unwrap_or_else(|e| panic!("{provider}/{model}: {e}"));
                tables += 1;
            }
        }
        assert_eq!(tables, import.prices.len());
    }

    #[test]
    fn converts_rates_to_the_same_atto_usd_as_the_per_token_text() {
        let import = sample();
        let sonnet = import.prices.iter().find(|p| p.model == "claude-sonnet-4-5-20250929").unwrap();
        let cfg: PriceConfig = toml::from_str(&format!(
            "input = \"{}\"\noutput = \"{}\"\ncache_read = \"{}\"\n",
            sonnet.input,
            sonnet.output,
            sonnet.cache_read.as_deref().unwrap()
        ))
        .unwrap();
        let entry = price_entry(&cfg).unwrap();
        assert_eq!(Some(entry.rates.input), xjp_money::usd_per_token_to_atto("3e-06"));
        assert_eq!(Some(entry.rates.output), xjp_money::usd_per_token_to_atto("1.5e-05"));
        assert_eq!(Some(entry.rates.cache_read), xjp_money::usd_per_token_to_atto("3e-07"));
    }

    #[test]
    fn skips_with_reasons_and_prefers_the_native_provider() {
        let import = sample();
        let reasons: Vec<(&str, String)> = import.skipped.iter().map(|(k, r)| (k.as_str(), r.label())).collect();
        assert_eq!(
            reasons,
            [
                ("gemini-2.5-flash", "duplicate".to_string()),
                ("mistral/mistral-tiny", "no input/output price".to_string()),
                ("text-embedding-3-small", "mode embedding".to_string()),
            ]
        );
        let flash = import.prices.iter().find(|p| p.model == "gemini-2.5-flash").unwrap();
        assert_eq!(flash.litellm_key, "gemini/gemini-2.5-flash");
        assert_eq!(flash.cache_read.as_deref(), Some("0.03"));
    }

    #[test]
    fn reads_tiers_names_and_bad_values() {
        assert!(matches!(tier_field("input_cost_per_token_above_200k_tokens"), Some((200_000, TierField::Input))));
        assert!(matches!(
            tier_field("cache_creation_input_token_cost_above_1hr_above_200k_tokens"),
            Some((200_000, TierField::CacheWrite1h))
        ));
        assert!(tier_field("cache_creation_input_token_cost_above_1hr").is_none());
        assert!(tier_field("input_cost_per_token_above_272k_tokens_priority").is_none());
        assert!(tier_field("input_cost_per_token_above_0k_tokens").is_none());
        assert_eq!(
            model_name("openrouter/anthropic/claude-3.5-haiku", "openrouter", "openrouter"),
            "anthropic/claude-3.5-haiku"
        );
        assert_eq!(model_name("gemini/gemini-2.5-flash", "gemini", "gemini"), "gemini-2.5-flash");
        assert_eq!(model_name("vertex_ai/gemini-3-pro", "vertex_ai-language-models", "gemini"), "gemini-3-pro");
        assert_eq!(model_name("gpt-4o", "openai", "openai"), "gpt-4o");

        let json = r#"{
            "a": {"litellm_provider": "openai", "input_cost_per_token": "3e-06", "output_cost_per_token": 1e-06},
            "b": {"litellm_provider": "openai", "input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06},
            "c": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
            "d": [1, 2],
            "e": {"litellm_provider": "x", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                  "input_cost_per_token_above_128k_tokens": 2e-06, "input_cost_per_token_above_256k_tokens": 4e-06},
            "vertex_ai/claude-x": {"litellm_provider": "vertex_ai-anthropic_models", "mode": "chat",
                  "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}
        }"#;
        let map = ProviderMap::with_overrides(&["vertex_ai-anthropic_models=anthropic"]).unwrap();
        let import = import(json, &map, "inline.json").unwrap();
        let labels: Vec<String> = import.skipped.iter().map(|(_, r)| r.label()).collect();
        assert_eq!(labels, ["invalid value", "invalid value", "no litellm_provider", "not an object"]);
        assert_eq!(import.tiers_dropped, ["e"]);
        let e = import.prices.iter().find(|p| p.litellm_key == "e").unwrap();
        let lc = e.long_context.as_ref().unwrap();
        assert_eq!((lc.threshold_tokens, lc.input.as_str(), lc.output.as_str()), (128_000, "2", "2"));
        let claude = import.prices.iter().find(|p| p.litellm_key == "vertex_ai/claude-x").unwrap();
        assert_eq!((claude.provider.as_str(), claude.model.as_str()), ("anthropic", "claude-x"));
        assert!(ProviderMap::with_overrides(&["nope"]).is_err());
        assert!(ProviderMap::with_overrides(&["a="]).is_err());
        assert!(matches!(super::import("[]", &map, "x.json"), Err(ImportError::Json { .. })));
    }

    #[test]
    fn quotes_keys_for_toml() {
        let doc: toml::Table = format!("{} = 1", quoted("a\"b\\c\td\u{1}")).parse().unwrap();
        assert!(doc.contains_key("a\"b\\c\td\u{1}"));
    }
}
