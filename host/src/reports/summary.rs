//! `GET /internal/billing/summary` (and `/v1/billing/usage`): totals and breakdowns by
//! model, by key and by day for a tenant and a time range, from
//! `ledger::queries::summary` (exact: rollups plus the tail, one snapshot).

use super::money;
use super::params::{ParamError, Params};
use crate::api::respond::ok;
use crate::api::{ApiError, ApiResult};
use crate::ledger::queries::summary::{Group, Totals, summary};
use crate::ledger::queries::tenant_exists;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

fn totals(t: &Totals) -> Value {
    json!({
        "requests": t.requests, "errors": t.errors,
        "tokens": { "input_uncached": t.input_uncached, "cache_read": t.cache_read, "cache_write_5m": t.cache_write_5m,
                    "cache_write_1h": t.cache_write_1h, "output": t.output, "reasoning": t.reasoning },
        "cost": money(t.cost_nano),
    })
}

/// The summary JSON for `tenant` over `[start, end)`.
pub async fn summarize(
    db: &PgPool,
    tenant: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Value, sqlx::Error> {
    let rows = summary(db, tenant, start, end).await?;
    let mut out = json!({
        "tenant_id": tenant, "start": start.to_rfc3339(), "end": end.to_rfc3339(),
        "totals": { "requests": 0, "errors": 0, "cost": money(0) },
        "by_model": [], "by_api_key": [], "by_day": [],
    });
    for r in &rows {
        let (list, entry) = match &r.group {
            Group::All => {
                out["totals"] = totals(&r.totals);
                continue;
            }
            Group::Model(model) => ("by_model", json!({ "model": model, "totals": totals(&r.totals) })),
            Group::ApiKey(key) => ("by_api_key", json!({ "api_key_id": key, "totals": totals(&r.totals) })),
            Group::Day(day) => ("by_day", json!({ "day": day.map(|d| d.to_string()), "totals": totals(&r.totals) })),
        };
        out[list].as_array_mut().expect("array").push(entry);
    }
    for (list, field) in [("by_model", "model"), ("by_api_key", "api_key_id"), ("by_day", "day")] {
        out[list].as_array_mut().expect("array").sort_by(|a, b| a[field].to_string().cmp(&b[field].to_string()));
    }
    Ok(out)
}

/// The tenant and range asked for (`own_tenant`: a tenant's key reads only its own).
fn parse(p: &Params, own_tenant: Option<Uuid>) -> Result<(Uuid, DateTime<Utc>, DateTime<Utc>), ParamError> {
    let asked = p.uuid("tenant_id")?;
    let tenant = match (own_tenant, asked) {
        (Some(own), Some(t)) if t != own => return Err(ParamError("`tenant_id` must be your own tenant".into())),
        (Some(own), _) => own,
        (None, Some(t)) => t,
        (None, None) => return Err(ParamError("`tenant_id` is required".into())),
    };
    let (start, end) = p.range()?;
    let now = Utc::now();
    let start = start.unwrap_or_else(|| {
        Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().expect("first of the month exists")
    });
    let end = end.unwrap_or(now + Duration::seconds(1));
    if end <= start {
        return Err(ParamError("`end` must be after `start`".into()));
    }
    Ok((tenant, start, end))
}

/// Parses the tenant and range, then summarizes.
pub async fn handle(db: &PgPool, query: Option<&str>, own_tenant: Option<Uuid>) -> ApiResult {
    let (tenant, start, end) = parse(&Params::parse(query), own_tenant)?;
    if !tenant_exists(db, tenant).await? {
        return Err(ApiError::NotFound(format!("unknown tenant `{tenant}`")));
    }
    ok(&summarize(db, tenant, start, end).await?)
}
