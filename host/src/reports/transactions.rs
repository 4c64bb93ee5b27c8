//! `GET /internal/billing/transactions` (and the tenant's own `/v1/billing/transactions`):
//! filters, keyset pagination on the unique order (created_at DESC, seq DESC) with an
//! opaque cursor, a maximum page size. The rows come from `ledger::queries::transactions`.

use super::money;
use super::params::{ParamError, Params};
use crate::api::respond::ok;
use crate::api::{ApiError, ApiResult};
use crate::ledger::queries::tenant_exists;
use crate::ledger::queries::transactions::{self as rows, Cursor, TransactionFilter};
use serde_json::{Value, json};
use sqlx::PgPool;
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

/// Handles the request.
pub async fn list(db: &PgPool, query: Option<&str>, scope: Scope) -> ApiResult {
    ok(&page(db, &Params::parse(query), scope).await?)
}

/// The tenant and key the parameters ask for, within `scope`.
fn whose(p: &Params, scope: Scope) -> Result<(Option<Uuid>, Option<Uuid>), ParamError> {
    let tenant = p.uuid("tenant_id")?;
    let api_key = p.uuid("api_key_id")?;
    match scope {
        Scope::Admin if tenant.is_none() && api_key.is_none() => {
            Err(ParamError("one of `tenant_id` or `api_key_id` is required".into()))
        }
        Scope::Admin => Ok((tenant, api_key)),
        Scope::Tenant(own) if tenant.is_some_and(|t| t != own) => {
            Err(ParamError("`tenant_id` must be your own tenant".into()))
        }
        Scope::Tenant(own) => Ok((Some(own), api_key)),
    }
}

/// One page as JSON.
pub async fn page(db: &PgPool, p: &Params, scope: Scope) -> Result<Value, ApiError> {
    let (tenant, api_key) = whose(p, scope)?;
    if let Some(t) = tenant
        && !tenant_exists(db, t).await?
    {
        return Err(ParamError(format!("unknown tenant `{t}`")).into());
    }
    let (start, end) = p.range()?;
    let limit = p.int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let after = p
        .get("cursor")
        .map(|c| {
            Cursor::decode(c).ok_or_else(|| ParamError("`cursor` is not a cursor returned by this endpoint".into()))
        })
        .transpose()?;
    let filter = TransactionFilter {
        tenant,
        api_key,
        start,
        end,
        model_requested: p.text("model")?.map(str::to_string),
        status: p.text("status")?.map(str::to_string),
        after,
    };
    let page = rows::page(db, &filter, limit).await?;
    let data: Vec<Value> = page
        .rows
        .into_iter()
        .map(|mut row| {
            let cost = row["cost_nano"].as_i64().unwrap_or(0);
            row["cost"] = money(cost);
            if let Some(pc) = row["provider_cost_nano"].as_i64() {
                row["provider_cost"] = money(pc);
            }
            row
        })
        .collect();
    Ok(json!({ "data": data, "next_cursor": page.next.map(Cursor::encode), "limit": limit }))
}
