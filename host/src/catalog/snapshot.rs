//! A price's stored form and identity: the snapshot kept with every transaction row and
//! the content version (`p_<hash>`) that names it.

use crate::plugins::bindings::{PriceEntry, TokenRates};
use serde_json::{Value, json};

/// The price as stored with every row, so any bill can be re-derived.
pub fn price_snapshot(p: &PriceEntry) -> Value {
    let rates = |r: &TokenRates| {
        json!({ "input": r.input, "output": r.output, "cache_read": r.cache_read, "cache_write_5m": r.cache_write_5m,
                "cache_write_1h": r.cache_write_1h, "reasoning": r.reasoning, "unit": "atto_usd_per_token" })
    };
    json!({
        "rates": rates(&p.rates),
        "long_context": p.long_context.as_ref().map(|t| json!({ "threshold_tokens": t.threshold_tokens, "rates": rates(&t.rates) })),
        "fees": p.fees.iter().map(|f| (f.name.clone(), json!(f.atto_usd_per_unit))).collect::<serde_json::Map<_, _>>(),
    })
}

/// A stable identity of a price: `p_` + the first 16 hex digits of SHA-256 of its snapshot.
/// Equal prices share a version; any change of any rate makes a new one.
pub fn price_version(p: &PriceEntry) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(price_snapshot(p).to_string().as_bytes());
    format!("p_{}", &hex::encode(digest)[..16])
}
