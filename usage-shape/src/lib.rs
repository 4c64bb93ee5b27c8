//! The one definition of a usage record's zero value, prompt-side total and JSON object,
//! for the gateway and the plugin SDK alike.
//!
//! Why macros: both sides have a `Usage` generated from the same WIT record, the
//! gateway's by wasmtime's `bindgen!` and the SDK's by `wit_bindgen::generate!`. They are
//! two distinct Rust types with the same field names, and neither side can name the
//! other's. A macro expands to plain field accesses (or a struct literal) in the crate
//! that uses it, so one text serves both types, and a field the WIT adds or renames
//! fails to compile on both sides here rather than drifting in two copies. The macros
//! only bridge the types: [`usage_view!`] copies the fields into a [`UsageView`], and
//! the mapping itself is ordinary code ([`UsageView::to_json`], [`prompt_total`]).
//!
//! - `zero_usage!(Usage)`: every bucket zero, no fees, no provider cost, no model;
//! - `prompt_tokens!(&usage)`: all prompt-side tokens (saturating);
//! - `usage_json!(&usage)`: the stable JSON object of `plugin check --json`, the APIs
//!   and the golden cases.

use serde_json::{Map, Value, json};

/// A usage record's fields, borrowed from either generated `Usage` (see [`usage_view!`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageView<'a> {
    /// Prompt tokens neither read from nor written to a cache.
    pub input_uncached_tokens: u64,
    /// Prompt tokens read from a cache.
    pub cache_read_tokens: u64,
    /// Cache writes with the default (5 minute) lifetime.
    pub cache_write_5m_tokens: u64,
    /// Cache writes with the 1 hour lifetime.
    pub cache_write_1h_tokens: u64,
    /// All generated tokens, reasoning included.
    pub output_tokens: u64,
    /// The part of `output_tokens` that was reasoning.
    pub reasoning_tokens: u64,
    /// Named per-request fees: (name, count).
    pub fees: Vec<(&'a str, u64)>,
    /// The provider's own reported cost in nano-USD.
    pub provider_cost_nano_usd: Option<i64>,
    /// The model the provider says served the request.
    pub served_model: Option<&'a str>,
}

impl UsageView<'_> {
    /// Usage as the stable JSON object: `input_tokens` is every prompt-side token, the
    /// other counts are the non-overlapping buckets (`cache_write_tokens` is the 5-minute
    /// bucket), `reasoning_tokens` is part of `output_tokens`.
    pub fn to_json(&self) -> Value {
        let fees: Map<String, Value> =
            self.fees.iter().map(|&(name, count)| (name.to_owned(), Value::from(count))).collect();
        json!({
            "input_tokens": prompt_total(
                self.input_uncached_tokens,
                self.cache_read_tokens,
                self.cache_write_5m_tokens,
                self.cache_write_1h_tokens,
            ),
            "input_uncached_tokens": self.input_uncached_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "provider_cost_usd": self.provider_cost_nano_usd.map(xjp_money::nano_to_usd),
            "fees": fees,
            "served_model": self.served_model,
        })
    }
}

impl UsageView<'_> {
    /// Where this usage, an upper-bound estimate, falls short of `real`: its prompt-side
    /// total (the estimate prices every prompt token as uncached input), its output, and
    /// with `fees` every fee of `real` by name. Empty when the estimate bounds `real`.
    pub fn shortfalls(&self, real: &UsageView<'_>, fees: bool) -> Vec<String> {
        let mut short = Vec::new();
        let prompt = |u: &UsageView<'_>| {
            prompt_total(u.input_uncached_tokens, u.cache_read_tokens, u.cache_write_5m_tokens, u.cache_write_1h_tokens)
        };
        if prompt(self) < prompt(real) {
            short.push(format!("prompt tokens {} < {}", prompt(self), prompt(real)));
        }
        if self.output_tokens < real.output_tokens {
            short.push(format!("output tokens {} < {}", self.output_tokens, real.output_tokens));
        }
        if fees {
            for &(name, count) in &real.fees {
                let bound: u64 = self.fees.iter().filter(|(n, _)| *n == name).map(|&(_, c)| c).sum();
                if bound < count {
                    short.push(format!("fee `{name}` {bound} < {count}"));
                }
            }
        }
        short
    }
}

/// All prompt-side tokens: uncached input, cache reads and both cache-write buckets
/// (saturating).
pub const fn prompt_total(input_uncached: u64, cache_read: u64, cache_write_5m: u64, cache_write_1h: u64) -> u64 {
    input_uncached.saturating_add(cache_read).saturating_add(cache_write_5m).saturating_add(cache_write_1h)
}

/// A [`UsageView`] of a `&Usage` (either generated type).
#[macro_export]
macro_rules! usage_view {
    ($usage:expr) => {{
        let u: &_ = $usage;
        $crate::UsageView {
            input_uncached_tokens: u.input_uncached_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_5m_tokens: u.cache_write_5m_tokens,
            cache_write_1h_tokens: u.cache_write_1h_tokens,
            output_tokens: u.output_tokens,
            reasoning_tokens: u.reasoning_tokens,
            fees: u.fees.iter().map(|f| (f.name.as_str(), f.count)).collect(),
            provider_cost_nano_usd: u.provider_cost_nano_usd,
            served_model: u.served_model.as_deref(),
        }
    }};
}

/// A `&Usage` as the stable JSON object ([`UsageView::to_json`]).
#[macro_export]
macro_rules! usage_json {
    ($usage:expr) => {
        $crate::usage_view!($usage).to_json()
    };
}

/// All prompt-side tokens of a `&Usage` (saturating; [`prompt_total`]).
#[macro_export]
macro_rules! prompt_tokens {
    ($usage:expr) => {{
        let u: &_ = $usage;
        $crate::prompt_total(
            u.input_uncached_tokens,
            u.cache_read_tokens,
            u.cache_write_5m_tokens,
            u.cache_write_1h_tokens,
        )
    }};
}

/// The `Usage` (the type named) with every bucket zero and nothing else set.
#[macro_export]
macro_rules! zero_usage {
    ($($usage:ident)::+) => {
        $($usage)::+ {
            input_uncached_tokens: 0,
            cache_read_tokens: 0,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            fees: ::std::vec::Vec::new(),
            provider_cost_nano_usd: ::core::option::Option::None,
            served_model: ::core::option::Option::None,
        }
    };
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The WIT record's shape, as both generated types have it.
    #[derive(Debug, Clone, PartialEq)]
    struct Usage {
        input_uncached_tokens: u64,
        cache_read_tokens: u64,
        cache_write_5m_tokens: u64,
        cache_write_1h_tokens: u64,
        output_tokens: u64,
        reasoning_tokens: u64,
        fees: Vec<Fee>,
        provider_cost_nano_usd: Option<i64>,
        served_model: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Fee {
        name: String,
        count: u64,
    }

    #[test]
    fn zero_usage_is_all_zero_and_maps_to_zeros() {
        let zero = zero_usage!(Usage);
        assert_eq!(prompt_tokens!(&zero), 0);
        let json = usage_json!(&zero);
        let fields = json.as_object().expect("an object");
        assert_eq!(fields.len(), 10);
        for (key, value) in fields {
            match key.as_str() {
                "fees" => assert_eq!(value, &json!({}), "{key}"),
                "provider_cost_usd" | "served_model" => assert!(value.is_null(), "{key}"),
                _ => assert_eq!(value, 0, "{key}"),
            }
        }
    }

    #[test]
    fn every_field_maps_to_its_json_key() {
        let mut u = zero_usage!(Usage);
        u.input_uncached_tokens = 1;
        u.cache_read_tokens = 20;
        u.cache_write_5m_tokens = 300;
        u.cache_write_1h_tokens = 4000;
        u.output_tokens = 50;
        u.reasoning_tokens = 6;
        u.fees = vec![Fee { name: "web_search".into(), count: 2 }, Fee { name: "image".into(), count: 1 }];
        u.provider_cost_nano_usd = Some(13_320_300);
        u.served_model = Some("m-1".into());
        assert_eq!(prompt_tokens!(&u), 4321);
        assert_eq!(
            usage_json!(&u),
            json!({
                "input_tokens": 4321, "input_uncached_tokens": 1, "cache_read_tokens": 20, "cache_write_tokens": 300,
                "cache_write_1h_tokens": 4000, "output_tokens": 50, "reasoning_tokens": 6,
                "provider_cost_usd": "0.0133203", "fees": {"image": 1, "web_search": 2}, "served_model": "m-1",
            })
        );
        u.cache_read_tokens = u64::MAX;
        assert_eq!(prompt_tokens!(&u), u64::MAX, "saturates");
    }

    #[test]
    fn an_estimate_bounds_prompt_output_and_fees() {
        let mut real = zero_usage!(Usage);
        real.input_uncached_tokens = 10;
        real.cache_read_tokens = 90;
        real.output_tokens = 5;
        real.fees = vec![Fee { name: "search".into(), count: 2 }];
        let mut est = zero_usage!(Usage);
        est.input_uncached_tokens = 100;
        est.output_tokens = 5;
        let short = usage_view!(&est).shortfalls(&usage_view!(&real), true);
        assert_eq!(short, vec!["fee `search` 0 < 2".to_string()]);
        assert!(usage_view!(&est).shortfalls(&usage_view!(&real), false).is_empty());
        est.fees = vec![Fee { name: "search".into(), count: 1 }, Fee { name: "search".into(), count: 1 }];
        est.input_uncached_tokens = 99;
        est.output_tokens = 4;
        let short = usage_view!(&est).shortfalls(&usage_view!(&real), true);
        assert_eq!(short, vec!["prompt tokens 99 < 100".to_string(), "output tokens 4 < 5".to_string()]);
    }
}
