//! `GET /internal/billing/transactions` (and the tenant's own `/v1/billing/transactions`):
//! filters, keyset pagination on the unique order (created_at DESC, seq DESC) with an
//! opaque cursor, a maximum page size. Rows recorded while a client pages never make a
//! row appear twice or disappear.

use super::params::{ParamError, Params};
use super::{bad_request, money};
use crate::api::{Body, json_response};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Largest page.
pub const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 100;

/// Whose rows may be read.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Admin: one of `tenant_id` / `api_key_id` is required.
    Admin,
    /// A tenant's own key: only this tenant.
    Tenant(Uuid),
}

/// Position after the last row of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_us: i64,
    pub seq: i64,
}

impl Cursor {
    /// Opaque text form.
    pub fn encode(self) -> String {
        hex::encode(format!("{}.{}", self.created_us, self.seq))
    }

    /// Parses the opaque form.
    pub fn decode(text: &str) -> Result<Cursor, ParamError> {
        let bad = || ParamError("`cursor` is not a cursor returned by this endpoint".into());
        let raw = String::from_utf8(hex::decode(text).map_err(|_| bad())?).map_err(|_| bad())?;
        let (us, seq) = raw.split_once('.').ok_or_else(bad)?;
        Ok(Cursor { created_us: us.parse().map_err(|_| bad())?, seq: seq.parse().map_err(|_| bad())? })
    }
}

/// Handles the request.
pub async fn list(db: &PgPool, query: Option<&str>, scope: Scope) -> Response<Body> {
    match page(db, &Params::parse(query), scope).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(PageError::Param(e)) => bad_request(e.0),
        Err(PageError::Db(e)) => crate::admin::db_error(e),
    }
}

/// Why a page could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// One page as JSON.
pub async fn page(db: &PgPool, p: &Params, scope: Scope) -> Result<Value, PageError> {
    let mut tenant = p.uuid("tenant_id")?;
    let key = p.uuid("api_key_id")?;
    match scope {
        Scope::Admin if tenant.is_none() && key.is_none() => {
            return Err(ParamError("one of `tenant_id` or `api_key_id` is required".into()).into());
        }
        Scope::Tenant(own) => {
            if tenant.is_some_and(|t| t != own) {
                return Err(ParamError("`tenant_id` must be your own tenant".into()).into());
            }
            tenant = Some(own);
        }
        Scope::Admin => {}
    }
    if let Some(t) = tenant
        && !super::summary::tenant_exists(db, t).await?
    {
        return Err(ParamError(format!("unknown tenant `{t}`")).into());
    }
    let (start, end) = p.range()?;
    let limit = p.int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let cursor = p.get("cursor").map(Cursor::decode).transpose()?;
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT seq, (extract(epoch from created_at) * 1000000)::BIGINT AS created_us, \
         to_jsonb(t) - 'rolled_up' - 'seq' AS row FROM billing_transactions t WHERE true",
    );
    if let Some(t) = tenant {
        q.push(" AND tenant_id = ").push_bind(t);
    }
    if let Some(k) = key {
        q.push(" AND api_key_id = ").push_bind(k);
    }
    if let Some(s) = start {
        q.push(" AND created_at >= ").push_bind(s);
    }
    if let Some(e) = end {
        q.push(" AND created_at < ").push_bind(e);
    }
    if let Some(m) = p.get("model") {
        q.push(" AND model_requested = ").push_bind(m.to_string());
    }
    if let Some(s) = p.get("status") {
        q.push(" AND status = ").push_bind(s.to_string());
    }
    if let Some(c) = cursor {
        q.push(" AND (created_at, seq) < (timestamptz 'epoch' + ").push_bind(c.created_us);
        q.push(" * interval '1 microsecond', ").push_bind(c.seq).push(")");
    }
    q.push(" ORDER BY created_at DESC, seq DESC LIMIT ").push_bind(limit + 1);
    let rows: Vec<(i64, i64, Value)> = q.build_query_as().fetch_all(db).await?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let next = if more { rows.last().map(|(seq, us, _)| Cursor { created_us: *us, seq: *seq }.encode()) } else { None };
    let data: Vec<Value> = rows
        .iter()
        .map(|(_, _, row)| {
            let mut row = row.clone();
            let cost = row["cost_nano"].as_i64().unwrap_or(0);
            row["cost"] = money(cost);
            if let Some(pc) = row["provider_cost_nano"].as_i64() {
                row["provider_cost"] = money(pc);
            }
            row
        })
        .collect();
    Ok(json!({ "data": data, "next_cursor": next, "limit": limit }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor { created_us: 1_764_000_000_000_000, seq: 42 };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode(&hex::encode("12")).is_err());
    }
}
