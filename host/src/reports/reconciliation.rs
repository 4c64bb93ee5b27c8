//! `GET /internal/billing/reconciliation`: transactions whose computed cost differs from
//! the provider-reported cost by more than a threshold.

use super::params::Params;
use super::{bad_request, money};
use crate::api::{Body, json_response};
use hyper::{Response, StatusCode};
use serde_json::json;
use sqlx::{PgPool, Postgres, QueryBuilder};

/// Handles the request (`tenant_id` optional, `start`/`end`, `threshold_nano` default 1000
/// i.e. $0.000001, `limit` up to 1000).
pub async fn handle(db: &PgPool, query: Option<&str>) -> Response<Body> {
    let p = Params::parse(query);
    let parsed = (|| {
        Ok::<_, super::params::ParamError>((
            p.uuid("tenant_id")?,
            p.range()?,
            p.int("threshold_nano", 1000, 0, i64::MAX)?,
            p.int("limit", 100, 1, 1000)?,
        ))
    })();
    let (tenant, (start, end), threshold, limit) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_request(e.0),
    };
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT request_id, tenant_id, model_requested, model_served, cost_nano, provider_cost_nano, created_at \
         FROM billing_transactions WHERE provider_cost_nano IS NOT NULL AND abs(cost_nano - provider_cost_nano) > ",
    );
    q.push_bind(threshold);
    if let Some(t) = tenant {
        q.push(" AND tenant_id = ").push_bind(t);
    }
    if let Some(s) = start {
        q.push(" AND created_at >= ").push_bind(s);
    }
    if let Some(e) = end {
        q.push(" AND created_at < ").push_bind(e);
    }
    q.push(" ORDER BY created_at DESC, seq DESC LIMIT ").push_bind(limit);
    type Row = (String, uuid::Uuid, String, Option<String>, i64, i64, chrono::DateTime<chrono::Utc>);
    match q.build_query_as::<Row>().fetch_all(db).await {
        Ok(rows) => {
            let data: Vec<_> = rows
                .into_iter()
                .map(|(rid, tenant, model, served, cost, reported, at)| {
                    json!({ "request_id": rid, "tenant_id": tenant, "model": model, "model_served": served,
                            "computed": money(cost), "provider_cost": money(reported), "difference": money(cost - reported),
                            "created_at": at.to_rfc3339() })
                })
                .collect();
            json_response(StatusCode::OK, &json!({ "threshold": money(threshold), "data": data }))
        }
        Err(e) => crate::admin::db_error(e),
    }
}
