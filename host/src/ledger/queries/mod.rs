//! Reads of `billing_transactions` for the reports and the admin API: filters in, typed rows
//! out. The SQL (and so the query plans the billing benchmark measures) lives here; the
//! callers only parse requests and shape JSON.

pub mod reconciliation;
pub mod summary;
pub mod transactions;

use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Appends `sql` (` AND column op `) and the bound value when a filter is set.
fn and<'args, T>(q: &mut QueryBuilder<'args, Postgres>, sql: &str, value: Option<T>)
where
    T: 'args + sqlx::Encode<'args, Postgres> + sqlx::Type<Postgres>,
{
    if let Some(v) = value {
        q.push(sql).push_bind(v);
    }
}

/// Whether a tenant exists (the reports refuse an unknown tenant before reading its rows).
pub async fn tenant_exists(db: &PgPool, tenant: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)").bind(tenant).fetch_one(db).await
}
