//! Phases 7 and 8, settle and record: price the real usage, make the transaction row
//! durable (ledger spool), then turn the hold into the debit in Redis. Runs after the
//! response, never delaying it. Requests refused after authentication get a row too.

use super::reserve::Hold;
use crate::api::GatewayError;
use crate::gateway::Gateway;
use crate::ledger::TransactionRow;
use crate::plugins::bindings::{PriceEntry, Usage};
use crate::plugins::convert::prompt_tokens;
use crate::plugins::{ApiFormat, PluginCallError};
use crate::proxy::authenticate::Caller;
use crate::proxy::outcome::Outcome;
use crate::proxy::route::Routed;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Bytes of generated text per token assumed when a stream broke before its usage.
const BYTES_PER_TOKEN: u64 = 4;

/// How a finished request is billed.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    usage: Usage,
    status: &'static str,
    estimated: bool,
    needs_review: bool,
}

fn zero_usage() -> Usage {
    Usage {
        input_uncached_tokens: 0,
        cache_read_tokens: 0,
        cache_write_5m_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 0,
        reasoning_tokens: 0,
        fees: Vec::new(),
        provider_cost_nano_usd: None,
        served_model: None,
    }
}

/// Usage for a response whose real usage is unknown or partial: what the provider did
/// report, the prompt bounded from the request, the output from the text that streamed.
fn estimated_usage(o: &Outcome) -> Usage {
    let mut u = o.usage.clone().unwrap_or_else(zero_usage);
    if prompt_tokens(&u) == 0 {
        u.input_uncached_tokens = o.reserved.estimate.input_uncached_tokens.div_ceil(BYTES_PER_TOKEN).max(1);
    }
    u.output_tokens = u.output_tokens.max(o.output_text_bytes.div_ceil(BYTES_PER_TOKEN));
    u
}

fn verdict(o: &Outcome) -> Verdict {
    let v = |usage, status, estimated, needs_review| Verdict { usage, status, estimated, needs_review };
    if o.plugin_error.is_some() {
        return v(estimated_usage(o), "plugin_error", true, true);
    }
    let upstream_ok = (200..300).contains(&o.upstream_status);
    if !upstream_ok {
        // Cost 0 unless the provider reported usage (it billed) in its error.
        return v(o.usage.clone().unwrap_or_else(zero_usage), "upstream_error", false, false);
    }
    let broke = o.upstream_error.is_some() || (o.client_disconnected && !o.complete);
    match (&o.usage, broke) {
        (Some(u), false) => {
            v(u.clone(), if o.client_disconnected { "client_disconnected" } else { "ok" }, false, false)
        }
        (_, true) => v(estimated_usage(o), "interrupted", true, false),
        // A whole 2xx response without usage: not billed, flagged for an operator to look at.
        (None, false) => v(zero_usage(), "no_usage", false, true),
    }
}

fn fees_json(u: &Usage) -> Value {
    Value::Object(u.fees.iter().map(|f| (f.name.clone(), json!(f.count))).collect())
}

/// The price as stored with every row, so any bill can be re-derived.
pub fn price_snapshot(p: &PriceEntry) -> Value {
    let rates = |r: &crate::plugins::bindings::TokenRates| {
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

fn micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Hands a finished request to settle + record in the background.
pub fn complete(gw: &Arc<Gateway>, outcome: Outcome) {
    let gw2 = gw.clone();
    gw.tasks.spawn(async move { settle_and_record(&gw2, outcome).await });
}

async fn settle_and_record(gw: &Gateway, o: Outcome) {
    let verdict = verdict(&o);
    let hold = o.reserved.hold;
    // Price is a function of (usage, price): the cost priced with the extraction holds
    // whenever the verdict bills the usage exactly as extracted.
    let cost = match o.cost {
        Some(cost) if o.usage.as_ref() == Some(&verdict.usage) => cost.map_err(PluginCallError::Plugin),
        _ => o.routed.plugin.price(&verdict.usage, &o.routed.price),
    };
    let (cost, priced) = match cost {
        Ok(c) => (c.total.max(0), true),
        // Pricing failed: charge the reserved upper bound and flag the row.
        Err(e) => {
            tracing::error!(request_id = %o.request_id, error = %e, "pricing failed; charging the estimate");
            (hold.map(|h| h.amount_nano).unwrap_or(0), false)
        }
    };
    let u = &verdict.usage;
    let row = TransactionRow {
        request_id: o.request_id.clone(),
        client_request_id: o.client_request_id.clone(),
        tenant_id: o.caller.tenant_id,
        api_key_id: o.caller.key_id,
        provider: Some(o.routed.route.provider.name.clone()),
        model_requested: o.model_requested.clone(),
        model_served: u.served_model.clone(),
        upstream_model: Some(o.routed.route.upstream_model.clone()),
        api_format: o.format.as_str().to_string(),
        stream: o.stream,
        status: verdict.status.to_string(),
        error_class: o
            .plugin_error
            .as_ref()
            .map(|e| e.class().to_string())
            .or_else(|| o.upstream_error.as_ref().map(|_| "upstream".into())),
        error_message: o.plugin_error.as_ref().map(|e| e.to_string()).or_else(|| o.upstream_error.clone()),
        http_status: Some(i32::from(o.upstream_status)),
        input_uncached_tokens: clamp(u.input_uncached_tokens),
        cache_read_tokens: clamp(u.cache_read_tokens),
        cache_write_5m_tokens: clamp(u.cache_write_5m_tokens),
        cache_write_1h_tokens: clamp(u.cache_write_1h_tokens),
        output_tokens: clamp(u.output_tokens),
        reasoning_tokens: clamp(u.reasoning_tokens),
        fees: fees_json(u),
        cost_nano: cost,
        provider_cost_nano: u.provider_cost_nano_usd,
        price_version: Some(o.routed.price_version.clone()),
        price_snapshot: Some(price_snapshot(&o.routed.price)),
        estimated: verdict.estimated || !priced,
        needs_review: verdict.needs_review || !priced,
        latency_ms: i32::try_from(o.latency.as_millis()).ok(),
        created_at_us: micros(o.started_at),
    };
    metrics::counter!("xjp_billed_nano_usd_total").increment(cost as u64);
    if let Err(e) = gw.ledger.record(row).await {
        tracing::error!(request_id = %o.request_id, error = %e, "ledger refused the row");
    }
    let settled = settle(gw, o.caller, &o.request_id, hold, cost).await;
    gw.ledger.confirm(o.caller.tenant_id, &o.request_id, settled.then_some(cost)).await;
}

/// Turns the hold into the debit, retrying briefly; if Redis stays down the hold expires
/// and the sweeper settles it from the recorded row. Returns whether Redis was debited.
async fn settle(gw: &Gateway, caller: Caller, request_id: &str, hold: Option<Hold>, cost: i64) -> bool {
    if hold.is_none() && cost == 0 {
        return false;
    }
    let label = if cost > 0 { "settled" } else { "released" };
    let mut delay = Duration::from_millis(50);
    for attempt in 0..4 {
        match gw.balances.settle(caller.tenant_id, request_id, cost, label, false).await {
            Ok(crate::billing::Settlement::Settled { .. }) => return true,
            Ok(crate::billing::Settlement::AlreadySettled) => return false,
            Err(e) if attempt == 3 => {
                tracing::error!(request_id, error = %e, "could not settle in Redis; the sweeper will settle from the ledger");
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
    false
}

/// A request refused after authentication.
#[derive(Debug)]
pub struct Rejection<'a> {
    pub caller: Caller,
    pub client_request_id: Option<String>,
    pub format: ApiFormat,
    pub model: &'a str,
    pub routed: Option<&'a Routed>,
    pub started_at: SystemTime,
}

/// Records a request refused after authentication (no money moved) under its own id.
pub fn record_rejection(gw: &Arc<Gateway>, r: Rejection<'_>, error: &GatewayError) {
    let Rejection { caller, client_request_id, format, model, routed, started_at } = r;
    let status = match error {
        GatewayError::InsufficientBalance { .. } => "insufficient_balance",
        GatewayError::BudgetDenied(_) => "budget_denied",
        GatewayError::UnknownModel(_) | GatewayError::WrongEndpoint { .. } | GatewayError::Unpriced(_) => {
            "routing_error"
        }
        GatewayError::Unavailable(_) => "unavailable",
        GatewayError::Plugin(_) | GatewayError::PluginMissing(_) => "plugin_error",
        _ => "rejected",
    };
    let row = TransactionRow {
        request_id: uuid::Uuid::now_v7().to_string(),
        client_request_id,
        tenant_id: caller.tenant_id,
        api_key_id: caller.key_id,
        provider: routed.map(|r| r.route.provider.name.clone()),
        model_requested: model.to_string(),
        model_served: None,
        upstream_model: routed.map(|r| r.route.upstream_model.clone()),
        api_format: format.as_str().to_string(),
        stream: false,
        status: status.to_string(),
        error_class: Some(error.class().as_str().to_string()),
        error_message: Some(error.to_string()),
        http_status: Some(i32::from(error.status().as_u16())),
        input_uncached_tokens: 0,
        cache_read_tokens: 0,
        cache_write_5m_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 0,
        reasoning_tokens: 0,
        fees: json!({}),
        cost_nano: 0,
        provider_cost_nano: None,
        price_version: routed.map(|r| r.price_version.clone()),
        price_snapshot: routed.map(|r| price_snapshot(&r.price)),
        estimated: false,
        needs_review: false,
        latency_ms: None,
        created_at_us: micros(started_at),
    };
    let gw2 = gw.clone();
    gw.tasks.spawn(async move {
        if let Err(e) = gw2.ledger.record_final(row).await {
            tracing::error!(error = %e, "ledger refused a rejection row");
        }
    });
}
