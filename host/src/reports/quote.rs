//! `POST /internal/billing/quote`: the cost of given usage, or of a raw recorded response
//! (JSON or stream) parsed by the provider's plugin; with the provider's own reported cost
//! when it sent one (OpenRouter `usage.cost`) and the difference (reconciliation).

use super::money;
use crate::api::respond::ok;
use crate::api::{ApiError, ApiResult, GatewayError};
use crate::config::ModelRoute;
use crate::gateway::Gateway;
use crate::plugins::bindings::{Fee, Usage};
use crate::plugins::convert::{plugin_error_json, usage_json};
use crate::plugins::{ApiFormat, PluginCallError, PluginStream};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Usage buckets as a client sends them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageInput {
    pub input_uncached_tokens: u64,
    pub cache_read_tokens: u64,
    #[serde(alias = "cache_write_tokens")]
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub fees: BTreeMap<String, u64>,
}

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// Public model name or alias, or the provider's model id together with `provider`.
    pub model: String,
    pub provider: Option<String>,
    pub usage: Option<UsageInput>,
    /// A recorded response body (text) to parse with the provider's plugin.
    pub response: Option<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default = "ok_status")]
    pub status: u16,
}

fn ok_status() -> u16 {
    200
}

fn find_route<'a>(gw: &'a crate::config::Settings, req: &QuoteRequest) -> Option<&'a Arc<ModelRoute>> {
    let by_name = gw.routes.route(&req.model).filter(|r| req.provider.as_ref().is_none_or(|p| *p == r.provider.name));
    by_name.or_else(|| {
        gw.routes
            .public_names
            .iter()
            .filter_map(|n| gw.routes.route(n))
            .find(|r| r.upstream_model == req.model && req.provider.as_ref().is_none_or(|p| *p == r.provider.name))
    })
}

fn usage_from(input: UsageInput) -> Usage {
    Usage {
        input_uncached_tokens: input.input_uncached_tokens,
        cache_read_tokens: input.cache_read_tokens,
        cache_write_5m_tokens: input.cache_write_5m_tokens,
        cache_write_1h_tokens: input.cache_write_1h_tokens,
        output_tokens: input.output_tokens,
        reasoning_tokens: input.reasoning_tokens,
        fees: input.fees.into_iter().map(|(name, count)| Fee { name, count }).collect(),
        provider_cost_nano_usd: None,
        served_model: None,
    }
}

/// 422 with the plugin's error as `detail`.
fn plugin_failure(e: PluginCallError) -> ApiError {
    let detail = match &e {
        PluginCallError::Plugin(p) => plugin_error_json(p),
        other => json!({ "kind": other.class(), "message": other.to_string() }),
    };
    ApiError::Unprocessable { message: e.to_string(), detail }
}

/// Handles the quote.
pub async fn handle(gw: &Gateway, body: bytes::Bytes) -> ApiResult {
    let req: QuoteRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid quote request: {e}")))?;
    let settings = gw.settings.load();
    let Some(route) = find_route(&settings, &req) else {
        return Err(ApiError::NotFound(format!("no configured model `{}`", req.model)));
    };
    let catalog = gw.catalog.load();
    let resolved = catalog.resolve(
        &route.provider.name,
        &route.upstream_model,
        route.price.as_ref(),
        route.fallback_price.as_ref(),
    );
    let Some(resolved) = resolved else {
        return Err(ApiError::BadRequest(format!("model `{}` has no price", route.name)));
    };
    let price = resolved.entry.clone();
    let plugins = gw.plugins.current();
    let Some(plugin) = plugins.get(&route.provider.plugin).cloned() else {
        return Err(GatewayError::PluginMissing(route.provider.plugin.clone()).into());
    };
    let format: ApiFormat = route.provider.api;
    let usage = match (req.usage, req.response) {
        (Some(u), None) => usage_from(u),
        (None, Some(text)) if req.stream => {
            let parsed = PluginStream::open(plugin.clone(), format).and_then(|mut s| {
                s.push(text.as_bytes())?;
                s.finish()
            });
            parsed
                .map_err(plugin_failure)?
                .usage
                .ok_or_else(|| ApiError::BadRequest("the stream reports no usage".into()))?
        }
        (None, Some(text)) => plugin
            .extract_response(format, req.status, text.as_bytes())
            .map_err(plugin_failure)?
            .ok_or_else(|| ApiError::BadRequest("the response reports no usage (an error body?)".into()))?,
        _ => return Err(ApiError::BadRequest("give exactly one of `usage` or `response`".into())),
    };
    let cost = plugin.price(&usage, &price).map_err(plugin_failure)?;
    let reconciliation = usage.provider_cost_nano_usd.map(|reported| {
        json!({ "provider_cost": money(reported), "computed": money(cost.total), "difference": money(cost.total - reported) })
    });
    ok(&json!({
        "model": route.name,
        "provider": route.provider.name,
        "upstream_model": route.upstream_model,
        "usage": usage_json(&usage),
        "cost": {
            "input_uncached": money(cost.input_uncached),
            "cache_read": money(cost.cache_read),
            "cache_write_5m": money(cost.cache_write_5m),
            "cache_write_1h": money(cost.cache_write_1h),
            "output": money(cost.output),
            "fees": money(cost.fees),
            "total": money(cost.total),
            "long_context_applied": cost.long_context_applied,
        },
        "price_version": resolved.version,
        "price_source": resolved.source.as_str(),
        "reconciliation": reconciliation,
    }))
}
