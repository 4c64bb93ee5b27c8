//! Price sync from OpenRouter's `GET /api/v1/models`: per-token USD strings (`prompt`,
//! `completion`, `input_cache_read`, `input_cache_write`, `internal_reasoning`,
//! `web_search`, `request`) converted exactly to integer rates.

use super::PriceMap;
use crate::plugins::bindings::{FeeRate, PriceEntry, TokenRates};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Models {
    data: Vec<Model>,
}

#[derive(Debug, Deserialize)]
struct Model {
    id: String,
    pricing: Option<Pricing>,
}

#[derive(Debug, Default, Deserialize)]
struct Pricing {
    prompt: Option<String>,
    completion: Option<String>,
    input_cache_read: Option<String>,
    input_cache_write: Option<String>,
    internal_reasoning: Option<String>,
    web_search: Option<String>,
    request: Option<String>,
}

/// Why a sync failed (the last good prices stay).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("fetching {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("the model list is not OpenRouter's format: {0}")]
    Format(String),
    #[error("the model list has no priced models")]
    Empty,
}

fn rate(v: &Option<String>) -> Option<u64> {
    v.as_deref().and_then(xjp_money::usd_per_token_to_atto)
}

/// Parses a model list into prices for `provider`. Models without a valid prompt and
/// completion price (or with OpenRouter's `-1` "variable" marker) are skipped.
pub fn parse(provider: &str, body: &[u8]) -> Result<PriceMap, SyncError> {
    let models: Models = serde_json::from_slice(body).map_err(|e| SyncError::Format(e.to_string()))?;
    let mut map = PriceMap::new();
    for m in models.data {
        let Some(p) = m.pricing else { continue };
        let (Some(input), Some(output)) = (rate(&p.prompt), rate(&p.completion)) else { continue };
        let write = rate(&p.input_cache_write).unwrap_or(input);
        let mut fees = Vec::new();
        for (name, v) in [("web_search", &p.web_search), ("request", &p.request)] {
            if let Some(atto) = rate(v).filter(|a| *a > 0) {
                fees.push(FeeRate { name: name.into(), atto_usd_per_unit: atto });
            }
        }
        let rates = TokenRates {
            input,
            output,
            cache_read: rate(&p.input_cache_read).unwrap_or(input),
            cache_write_5m: write,
            cache_write_1h: write,
            reasoning: rate(&p.internal_reasoning).filter(|r| *r > 0),
        };
        map.insert((provider.to_string(), m.id), PriceEntry { rates, long_context: None, fees });
    }
    if map.is_empty() {
        return Err(SyncError::Empty);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_per_token_strings_exactly() {
        let body = br#"{"data":[
            {"id":"anthropic/claude-3.5-haiku","pricing":{"prompt":"0.0000008","completion":"0.000004","input_cache_read":"0.00000008","input_cache_write":"0.000001","web_search":"0.004","request":"0","image":"0"}},
            {"id":"openrouter/auto","pricing":{"prompt":"-1","completion":"-1"}},
            {"id":"meta/free","pricing":{"prompt":"0","completion":"0"}}
        ]}"#;
        let map = parse("openrouter", body).unwrap();
        let p = &map[&("openrouter".to_string(), "anthropic/claude-3.5-haiku".to_string())];
        assert_eq!(p.rates.input, 800_000_000_000);
        assert_eq!(p.rates.output, 4_000_000_000_000);
        assert_eq!(p.rates.cache_read, 80_000_000_000);
        assert_eq!(p.rates.cache_write_5m, 1_000_000_000_000);
        assert_eq!(p.fees, vec![FeeRate { name: "web_search".into(), atto_usd_per_unit: 4_000_000_000_000_000 }]);
        assert!(!map.contains_key(&("openrouter".to_string(), "openrouter/auto".to_string())));
        assert_eq!(map[&("openrouter".to_string(), "meta/free".to_string())].rates.input, 0);
        assert_eq!(parse("openrouter", b"{\"data\":[]}"), Err(SyncError::Empty));
        assert!(matches!(parse("openrouter", b"<html>"), Err(SyncError::Format(_))));
    }
}
