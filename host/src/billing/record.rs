//! The transaction row of a finished request: one builder for served and refused requests.

use super::bill::Bill;
use super::ending::Verdict;
use crate::catalog::snapshot::row_snapshot;
use crate::ledger::TransactionRow;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

fn micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What the row says beyond the bill and the verdict.
#[derive(Debug, Clone, Copy)]
pub struct Charged {
    pub cost_nano: i64,
    /// Pricing failed and `cost_nano` is the hold: the row is an estimate for review.
    pub pricing_failed: bool,
    /// The provider billed more than the hold (debited, flagged for review), or more than
    /// one request is debited at most (`xjp_money::MAX_EXACT_NANO`: capped, flagged).
    pub over_hold: bool,
    /// `None` for refusals (they never reached a provider).
    pub latency: Option<Duration>,
}

/// The row for `bill`, billed per `verdict`. A refusal is recorded under an id of its own
/// (the client's id stays free for a retry) and moves no money.
pub fn row(bill: &Bill, verdict: &Verdict, charged: Charged) -> TransactionRow {
    let refused = charged.latency.is_none();
    let u = &verdict.usage;
    let routed = bill.routed.as_ref();
    TransactionRow {
        request_id: if refused { uuid::Uuid::now_v7().to_string() } else { bill.request_id.clone() },
        client_request_id: bill.client_request_id.clone(),
        tenant_id: bill.caller.tenant_id,
        api_key_id: bill.caller.key_id,
        provider: routed.map(|r| r.route.provider.name.clone()),
        model_requested: bill.model_requested.clone(),
        model_served: u.served_model.clone(),
        upstream_model: routed.map(|r| r.route.upstream_model.clone()),
        api_format: bill.format.as_str().to_string(),
        stream: bill.stream && !refused,
        status: verdict.status.to_string(),
        error_class: verdict.error.as_ref().map(|(class, _)| class.clone()),
        error_message: verdict.error.as_ref().map(|(_, message)| message.clone()),
        http_status: Some(i32::from(verdict.http_status)),
        input_uncached_tokens: clamp(u.input_uncached_tokens),
        cache_read_tokens: clamp(u.cache_read_tokens),
        cache_write_5m_tokens: clamp(u.cache_write_5m_tokens),
        cache_write_1h_tokens: clamp(u.cache_write_1h_tokens),
        output_tokens: clamp(u.output_tokens),
        reasoning_tokens: clamp(u.reasoning_tokens),
        fees: Value::Object(u.fees.iter().map(|f| (f.name.clone(), json!(f.count))).collect()),
        cost_nano: charged.cost_nano,
        provider_cost_nano: u.provider_cost_nano_usd,
        price_version: routed.map(|r| r.price_version.clone()),
        price_snapshot: routed.and_then(|r| row_snapshot(&r.price)),
        estimated: verdict.estimated || charged.pricing_failed,
        needs_review: verdict.needs_review || charged.pricing_failed || charged.over_hold,
        latency_ms: charged.latency.and_then(|l| i32::try_from(l.as_millis()).ok()),
        created_at_us: micros(bill.started_at),
    }
}
