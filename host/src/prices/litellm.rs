//! LiteLLM's `model_prices_and_context_window.json` -> a price file
//! (`[prices."<provider>"."<model>"]` tables, USD per million tokens as exact decimal text).
//!
//! Prices are read from their JSON text, never through `f64`, and moved six decimal places
//! with [`xjp_money::per_token_to_per_million_text`], so `7.5e-08` becomes exactly `"0.075"`.
//! Only chat models (`mode = "chat"` or no mode) with both an input and an output price are
//! imported. A long-context tier (`*_above_<N>k_tokens`) keeps the fields LiteLLM gives; a
//! missing tier input or output falls back to the base rate, as in LiteLLM's own costing.

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
        let (price, native, tiers_dropped) = match converted {
            Ok(c) => c,
            Err(reason) => {
                out.skipped.push((key.clone(), reason));
                continue;
            }
        };
        if tiers_dropped {
            out.tiers_dropped.push(key.clone());
        }
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

/// One entry -> (price, native provider, several tiers seen).
fn convert(key: &str, f: &Fields, providers: &ProviderMap) -> Result<(ImportedPrice, bool, bool), SkipReason> {
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
    };
    Ok((price, native, several_tiers))
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
