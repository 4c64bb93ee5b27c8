//! One billing transaction as the ledger stores it, and its access line.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A `billing_transactions` row (also the spool's record format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRow {
    pub request_id: String,
    /// The id the client sent, when it sent one (rejected requests get their own id).
    pub client_request_id: Option<String>,
    pub tenant_id: Uuid,
    pub api_key_id: Uuid,
    pub provider: Option<String>,
    pub model_requested: String,
    pub model_served: Option<String>,
    pub upstream_model: Option<String>,
    pub api_format: String,
    pub stream: bool,
    /// `ok`, `upstream_error`, `interrupted`, `client_disconnected`, `plugin_error`,
    /// `insufficient_balance`, `budget_denied`, `routing_error`, `unavailable`.
    pub status: String,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub http_status: Option<i32>,
    pub input_uncached_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    /// `{name: count}`
    pub fees: serde_json::Value,
    pub cost_nano: i64,
    pub provider_cost_nano: Option<i64>,
    pub price_version: Option<String>,
    /// The price, when `price_versions` was not yet known to hold `price_version`'s
    /// snapshot as the row was made (`catalog::snapshot::row_snapshot`).
    pub price_snapshot: Option<serde_json::Value>,
    pub estimated: bool,
    pub needs_review: bool,
    pub latency_ms: Option<i32>,
    /// When the request started (the partition key), as microseconds since the epoch.
    pub created_at_us: i64,
}

/// The access line's `tracing` target (filter it with `xjp_gateway::access=info`); the
/// spend counters (`ops::access`) read the events of this target.
pub const ACCESS_TARGET: &str = "xjp_gateway::access";

impl TransactionRow {
    /// The access line for this row: one `info` event, target [`ACCESS_TARGET`], with the
    /// request id, tenant, key id, provider, model, status, HTTP status, cost, tokens and
    /// latency. Never a secret: no API key, prompt, answer or provider credential is in a row.
    pub fn log_access(&self) {
        let r = self;
        tracing::info!(
            target: ACCESS_TARGET,
            request_id = %r.request_id,
            tenant = %r.tenant_id,
            key_id = %r.api_key_id,
            provider = r.provider.as_deref().unwrap_or(""),
            model = %r.model_requested,
            upstream_model = r.upstream_model.as_deref().unwrap_or(""),
            format = %r.api_format,
            stream = r.stream,
            status = %r.status,
            http_status = r.http_status.unwrap_or(0),
            cost_nano = r.cost_nano,
            cost_usd = %xjp_money::nano_to_usd(r.cost_nano),
            input_tokens = r
                .input_uncached_tokens
                .saturating_add(r.cache_read_tokens)
                .saturating_add(r.cache_write_5m_tokens)
                .saturating_add(r.cache_write_1h_tokens),
            output_tokens = r.output_tokens,
            latency_ms = r.latency_ms.unwrap_or(0),
            estimated = r.estimated,
            needs_review = r.needs_review,
            "request"
        );
    }
}
