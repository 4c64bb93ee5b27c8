//! Transactions whose computed cost differs from the provider-reported cost by more than a
//! threshold, newest first.

use super::and;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Which rows to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MismatchFilter {
    pub tenant: Option<Uuid>,
    /// `created_at >= start`
    pub start: Option<DateTime<Utc>>,
    /// `created_at < end`
    pub end: Option<DateTime<Utc>>,
    /// Rows differing by more than this many nano-USD.
    pub threshold_nano: i64,
    pub limit: i64,
}

/// A row whose cost and provider cost differ.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Mismatch {
    pub request_id: String,
    pub tenant_id: Uuid,
    pub model_requested: String,
    pub model_served: Option<String>,
    pub cost_nano: i64,
    pub provider_cost_nano: i64,
    pub created_at: DateTime<Utc>,
}

/// The rows over the threshold, at most `filter.limit`.
pub async fn mismatches(db: &PgPool, filter: &MismatchFilter) -> Result<Vec<Mismatch>, sqlx::Error> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT request_id, tenant_id, model_requested, model_served, cost_nano, provider_cost_nano, created_at \
         FROM billing_transactions WHERE provider_cost_nano IS NOT NULL AND abs(cost_nano - provider_cost_nano) > ",
    );
    q.push_bind(filter.threshold_nano);
    and(&mut q, " AND tenant_id = ", filter.tenant);
    and(&mut q, " AND created_at >= ", filter.start);
    and(&mut q, " AND created_at < ", filter.end);
    q.push(" ORDER BY created_at DESC, seq DESC LIMIT ").push_bind(filter.limit);
    q.build_query_as::<Mismatch>().fetch_all(db).await
}
