//! One billing transaction as the ledger stores it.

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
    pub price_snapshot: Option<serde_json::Value>,
    pub estimated: bool,
    pub needs_review: bool,
    pub latency_ms: Option<i32>,
    /// When the request started (the partition key), as microseconds since the epoch.
    pub created_at_us: i64,
}
