//! `GET /internal/billing/reconciliation`: transactions whose computed cost differs from
//! the provider-reported cost by more than a threshold (`ledger::queries::reconciliation`).

use super::money;
use super::params::{ParamError, Params};
use crate::api::ApiResult;
use crate::api::respond::ok;
use crate::ledger::queries::reconciliation::{MismatchFilter, mismatches};
use serde_json::json;
use sqlx::PgPool;

fn parse(p: &Params) -> Result<MismatchFilter, ParamError> {
    let tenant = p.uuid("tenant_id")?;
    let (start, end) = p.range()?;
    let threshold_nano = p.int("threshold_nano", 1000, 0, i64::MAX)?;
    let limit = p.int("limit", 100, 1, 1000)?;
    Ok(MismatchFilter { tenant, start, end, threshold_nano, limit })
}

/// Handles the request (`tenant_id` optional, `start`/`end`, `threshold_nano` default 1000
/// i.e. $0.000001, `limit` up to 1000).
pub async fn handle(db: &PgPool, query: Option<&str>) -> ApiResult {
    let filter = parse(&Params::parse(query))?;
    let data: Vec<_> = mismatches(db, &filter)
        .await?
        .into_iter()
        .map(|m| {
            json!({ "request_id": m.request_id, "tenant_id": m.tenant_id, "model": m.model_requested,
                    "model_served": m.model_served, "computed": money(m.cost_nano),
                    "provider_cost": money(m.provider_cost_nano), "difference": money(m.cost_nano - m.provider_cost_nano),
                    "created_at": m.created_at.to_rfc3339() })
        })
        .collect();
    ok(&json!({ "threshold": money(filter.threshold_nano), "data": data }))
}
