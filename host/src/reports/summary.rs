//! `GET /internal/billing/summary` (and `/v1/billing/usage`): totals and breakdowns by
//! model, by key and by day for a tenant and a time range. Exact: the daily rollups for
//! whole UTC days inside the range, plus the not-yet-rolled-up rows of those days, plus
//! raw rows for the partial days at the edges — read in one statement (one snapshot).

use super::params::{ParamError, Params};
use super::{bad_request, money};
use crate::api::{Body, json_response};
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const SUMMARY: &str = r#"
WITH facts AS (
    SELECT day, model, api_key_id, requests, errors, input_uncached_tokens AS iu, cache_read_tokens AS cr,
           cache_write_5m_tokens AS w5, cache_write_1h_tokens AS w1, output_tokens AS o, reasoning_tokens AS r, cost_nano AS c
    FROM tenant_billing_summary
    WHERE tenant_id = $1 AND day >= ($4 AT TIME ZONE 'UTC')::date AND day < ($5 AT TIME ZONE 'UTC')::date
  UNION ALL
    SELECT (created_at AT TIME ZONE 'UTC')::date, model_requested, api_key_id, 1, (status <> 'ok')::int,
           input_uncached_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_nano
    FROM billing_transactions
    WHERE tenant_id = $1 AND (
          (NOT rolled_up AND created_at >= $4 AND created_at < $5)
       OR (created_at >= $2 AND created_at < LEAST($4, $3))
       OR (created_at >= GREATEST($5, $2) AND created_at < $3))
)
SELECT GROUPING(day)::int, GROUPING(model)::int, GROUPING(api_key_id)::int, day, model, api_key_id,
       sum(requests)::BIGINT, sum(errors)::BIGINT, sum(iu)::BIGINT, sum(cr)::BIGINT, sum(w5)::BIGINT, sum(w1)::BIGINT,
       sum(o)::BIGINT, sum(r)::BIGINT, sum(c)::BIGINT
FROM facts GROUP BY GROUPING SETS ((), (model), (api_key_id), (day))
"#;

type Row = (
    i32,
    i32,
    i32,
    Option<chrono::NaiveDate>,
    Option<String>,
    Option<Uuid>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// Whether a tenant exists.
pub async fn tenant_exists(db: &PgPool, tenant: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)").bind(tenant).fetch_one(db).await
}

fn midnight_at_or_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let day = Utc.from_utc_datetime(&t.date_naive().and_time(NaiveTime::MIN));
    if day == t { day } else { day + Duration::days(1) }
}

fn midnight_at_or_before(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_time(NaiveTime::MIN))
}

fn totals(r: &Row) -> Value {
    json!({
        "requests": r.6, "errors": r.7,
        "tokens": { "input_uncached": r.8, "cache_read": r.9, "cache_write_5m": r.10, "cache_write_1h": r.11, "output": r.12, "reasoning": r.13 },
        "cost": money(r.14),
    })
}

/// The summary JSON for `tenant` over `[start, end)`.
pub async fn summarize(
    db: &PgPool,
    tenant: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Value, sqlx::Error> {
    let (d0, d1) = (midnight_at_or_after(start), midnight_at_or_before(end));
    // Without a whole day inside the range everything comes from raw rows.
    let (d0, d1) = if d0 < d1 { (d0, d1) } else { (end, end) };
    let rows: Vec<Row> =
        sqlx::query_as(SUMMARY).bind(tenant).bind(start).bind(end).bind(d0).bind(d1).fetch_all(db).await?;
    let mut out = json!({
        "tenant_id": tenant, "start": start.to_rfc3339(), "end": end.to_rfc3339(),
        "totals": { "requests": 0, "errors": 0, "cost": money(0) },
        "by_model": [], "by_api_key": [], "by_day": [],
    });
    for r in &rows {
        match (r.0, r.1, r.2) {
            (1, 1, 1) => out["totals"] = totals(r),
            (1, 0, 1) => {
                out["by_model"].as_array_mut().expect("array").push(json!({ "model": r.4, "totals": totals(r) }))
            }
            (1, 1, 0) => {
                out["by_api_key"].as_array_mut().expect("array").push(json!({ "api_key_id": r.5, "totals": totals(r) }))
            }
            (0, 1, 1) => out["by_day"]
                .as_array_mut()
                .expect("array")
                .push(json!({ "day": r.3.map(|d| d.to_string()), "totals": totals(r) })),
            _ => {}
        }
    }
    for key in ["by_model", "by_api_key", "by_day"] {
        let field = match key {
            "by_model" => "model",
            "by_api_key" => "api_key_id",
            _ => "day",
        };
        out[key].as_array_mut().expect("array").sort_by(|a, b| a[field].to_string().cmp(&b[field].to_string()));
    }
    Ok(out)
}

/// Parses the tenant and range, then summarizes.
pub async fn handle(db: &PgPool, query: Option<&str>, own_tenant: Option<Uuid>) -> Response<Body> {
    let p = Params::parse(query);
    let parsed = (|| -> Result<(Uuid, DateTime<Utc>, DateTime<Utc>), ParamError> {
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
    })();
    let (tenant, start, end) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_request(e.0),
    };
    match tenant_exists(db, tenant).await {
        Ok(true) => {}
        Ok(false) => {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({ "error": { "message": format!("unknown tenant `{tenant}`"), "type": "not_found" } }),
            );
        }
        Err(e) => return crate::admin::db_error(e),
    }
    match summarize(db, tenant, start, end).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => crate::admin::db_error(e),
    }
}
