//! Admin money endpoints: top-ups and adjustments (idempotent by id), balances, a
//! tenant's transactions.

use super::{json_body, known_tenant};
use crate::api::respond::{ok, reply};
use crate::api::{ApiError, ApiResult};
use crate::db::credits::{self, CreditInsert, CreditKind};
use crate::gateway::Gateway;
use crate::ledger::queries::transactions;
use crate::reports::money;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use xjp_money::nano_to_usd;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCredit {
    /// Idempotency id chosen by the caller (e.g. the payment id).
    id: String,
    amount_usd: Option<String>,
    amount_nano: Option<i64>,
    note: Option<String>,
}

/// The largest credit, either sign ([`xjp_money::MAX_EXACT_NANO`], about $9 million): a
/// tenant's credits must also sum within a BIGINT. One of i64::MAX was recorded in Postgres,
/// failed to apply in Redis, and made every read of the tenant's balance fail (the sum
/// overflowed).
const MAX_CREDIT_NANO: i64 = xjp_money::MAX_EXACT_NANO;

fn amount(c: &NewCredit) -> Result<i64, &'static str> {
    let nano = match (&c.amount_usd, c.amount_nano) {
        (Some(usd), None) => {
            xjp_money::usd_to_nano(usd).ok_or("`amount_usd` must be a decimal USD amount like \"10.50\"")?
        }
        (None, Some(n)) => n,
        _ => return Err("give exactly one of `amount_usd` (decimal string) or `amount_nano` (integer)"),
    };
    if nano.unsigned_abs() > MAX_CREDIT_NANO as u64 {
        return Err("a credit must be at most 9007199254740991 nano-USD (9007199.254740991 USD) either way");
    }
    Ok(nano)
}

/// `POST /admin/tenants/{id}/topups` and `.../adjustments`.
pub async fn credit(gw: &Gateway, tenant: Uuid, kind: CreditKind, req: Request<Incoming>) -> ApiResult {
    let body: NewCredit = json_body(gw, req).await?;
    let amount_nano = amount(&body).map_err(|m| ApiError::BadRequest(m.into()))?;
    if body.id.trim().is_empty() || body.id.len() > 200 {
        return Err(ApiError::BadRequest("`id` must be 1 to 200 characters".into()));
    }
    if kind == CreditKind::TopUp && amount_nano <= 0 {
        return Err(ApiError::BadRequest("a top-up must be positive (use an adjustment to deduct)".into()));
    }
    known_tenant(gw, tenant).await?;
    let status = match credits::insert(&gw.db, tenant, &body.id, kind, amount_nano, body.note.as_deref()).await? {
        CreditInsert::Inserted => {
            if let Err(e) = gw.billing.balances.credit(tenant, &body.id, amount_nano).await {
                // Postgres has it; the live balance gets it once Redis answers.
                tracing::warn!(%tenant, error = %e, "credit recorded, applied to the live balance when Redis returns");
                gw.billing.resyncs.push_credit(tenant, &body.id, amount_nano);
            }
            StatusCode::CREATED
        }
        // A retry: apply it if an earlier attempt's Redis step failed (idempotent by marker).
        CreditInsert::Existing { amount_nano: existing, age, .. } if existing == amount_nano => {
            if age < crate::billing::Balances::credit_marker_ttl() - std::time::Duration::from_secs(3600)
                && let Err(e) = gw.billing.balances.credit(tenant, &body.id, amount_nano).await
            {
                tracing::warn!(%tenant, error = %e, "credit recorded, applied to the live balance when Redis returns");
                gw.billing.resyncs.push_credit(tenant, &body.id, amount_nano);
            }
            StatusCode::OK
        }
        CreditInsert::Existing { .. } => {
            return Err(ApiError::Conflict("this credit id was already used with a different amount".into()));
        }
    };
    reply(
        status,
        &json!({ "tenant_id": tenant, "id": body.id, "amount_nano": amount_nano, "amount_usd": nano_to_usd(amount_nano),
                 "duplicate": status == StatusCode::OK }),
    )
}

/// `GET /admin/tenants/{id}/balance`: live (Redis) and ledger (Postgres) views.
pub async fn balance(gw: &Gateway, tenant: Uuid) -> ApiResult {
    let ledger = crate::ledger::lookup::balance(&gw.db, tenant).await?;
    let live = gw.billing.balances.live(tenant).await.ok();
    ok(&json!({
        "tenant_id": tenant,
        "live": live.map(|l| json!({ "loaded": l.loaded, "available": money(l.available_nano), "held": money(l.held_nano) })),
        "ledger": { "credits": money(ledger.credits_nano), "debits": money(ledger.debits_nano), "balance": money(ledger.balance_nano) },
    }))
}

/// `GET /admin/tenants/{id}/transactions?limit=N`: newest first.
pub async fn transactions(gw: &Gateway, tenant: Uuid, query: Option<&str>) -> ApiResult {
    let limit: i64 = query
        .and_then(|q| crate::proxy::authenticate::query_param(q, "limit"))
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    ok(&json!({ "data": transactions::latest(&gw.db, tenant, limit).await? }))
}
