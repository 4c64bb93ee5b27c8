//! Reads of the ledger that money decisions rest on: a tenant's balance as Postgres knows
//! it, and which requests already have a row (and at what cost).

use sqlx::PgPool;
use uuid::Uuid;

/// Postgres's view of a tenant's money (nano-USD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LedgerBalance {
    pub credits_nano: i64,
    pub debits_nano: i64,
    pub balance_nano: i64,
}

/// Credits, recorded debits and their difference.
pub async fn balance(db: &PgPool, tenant: Uuid) -> Result<LedgerBalance, sqlx::Error> {
    let (credits_nano, debits_nano): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(SUM(amount_nano), 0) FROM credits WHERE tenant_id = $1)::BIGINT, \
                (SELECT COALESCE(SUM(cost_nano), 0) FROM billing_transactions WHERE tenant_id = $1)::BIGINT",
    )
    .bind(tenant)
    .fetch_one(db)
    .await?;
    Ok(LedgerBalance { credits_nano, debits_nano, balance_nano: credits_nano - debits_nano })
}

/// The clause that finds a tenant's rows by request id (`$1` the tenant, `$ids` the array of
/// ids): through each id's `billing_request_ids` entry, whose `created_at` leads to the row by
/// `billing_tx_tenant_time` (one probe per id; the ledger keeps no index on request ids).
macro_rules! rows_of_ids {
    ($ids:literal) => {
        concat!(
            "FROM billing_request_ids i JOIN billing_transactions t \
               ON t.tenant_id = i.tenant_id AND t.created_at = i.created_at AND t.request_id = i.request_id \
             WHERE i.tenant_id = $1 AND i.request_id = ANY(",
            $ids,
            ")"
        )
    };
}

/// What loading a balance reads (see [`balance_for_load`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSnapshot {
    /// Credits − recorded debits (nano-USD).
    pub balance_nano: i64,
    /// Credits inserted within the window: counted in `balance_nano`, so their own credit
    /// call must not apply them again.
    pub recent_credits: Vec<String>,
    /// The ids among the open holds asked about that already have a row, with its cost:
    /// counted in `balance_nano` and again when their hold settles, unless the load adds
    /// them back.
    pub recorded_under_holds: Vec<(String, i64)>,
    /// The statement's snapshot (`pg_current_snapshot()`, `xmin:xmax:xip,...`): which
    /// transactions' rows the balance counts.
    pub pg_snapshot: String,
}

/// What loading a balance reads, in one statement (one snapshot): credits − recorded debits,
/// the ids of the credits inserted within `window`, and which of `held` (request ids with an
/// open hold) already have a row. Separate statements could see a row or a credit inserted
/// between them in one and not the other, and count it twice or lose it.
pub async fn balance_for_load(
    db: &PgPool,
    tenant: Uuid,
    window: std::time::Duration,
    held: &[String],
) -> Result<LoadSnapshot, sqlx::Error> {
    let (balance_nano, recent_credits, ids, costs, pg_snapshot): (i64, Vec<String>, Vec<String>, Vec<i64>, String) =
        crate::db::retry_dropped(db, || {
            sqlx::query_as(concat!(
                "WITH recorded AS (SELECT i.request_id, t.cost_nano ",
                rows_of_ids!("$3"),
                ") SELECT (SELECT COALESCE(SUM(amount_nano), 0) FROM credits WHERE tenant_id = $1)::BIGINT \
              - (SELECT COALESCE(SUM(cost_nano), 0) FROM billing_transactions WHERE tenant_id = $1)::BIGINT, \
                ARRAY(SELECT id FROM credits WHERE tenant_id = $1 AND created_at > now() - make_interval(secs => $2)), \
                ARRAY(SELECT request_id FROM recorded ORDER BY request_id), \
                ARRAY(SELECT cost_nano FROM recorded ORDER BY request_id), \
                pg_current_snapshot()::text",
            ))
            .bind(tenant)
            .bind(window.as_secs_f64())
            .bind(held)
            .fetch_one(db)
        })
        .await?;
    let recorded_under_holds = ids.into_iter().zip(costs).collect();
    Ok(LoadSnapshot { balance_nano, recent_credits, recorded_under_holds, pg_snapshot })
}

/// Whether a request id already has a row (of any status) for the tenant.
pub async fn has_row(db: &PgPool, tenant: Uuid, request_id: &str) -> Result<bool, sqlx::Error> {
    crate::db::retry_dropped(db, || {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM billing_request_ids WHERE tenant_id = $1 AND request_id = $2)")
            .bind(tenant)
            .bind(request_id)
            .fetch_one(db)
    })
    .await
}

/// The ids among `request_ids` that have a row, with the row's cost.
pub async fn recorded_costs(
    db: &PgPool,
    tenant: Uuid,
    request_ids: &[String],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT i.request_id, t.cost_nano ", rows_of_ids!("$2")))
        .bind(tenant)
        .bind(request_ids)
        .fetch_all(db)
        .await
}

/// The ids among `request_ids` (bounded, as rows carry them) whose row was recorded at or
/// after `since` (the row's `recorded_at`, Postgres's clock).
pub async fn recorded_since(
    db: &PgPool,
    tenant: Uuid,
    request_ids: &[String],
    since: std::time::SystemTime,
) -> Result<Vec<String>, sqlx::Error> {
    let secs = since.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    sqlx::query_scalar(concat!("SELECT i.request_id ", rows_of_ids!("$2"), " AND t.recorded_at >= to_timestamp($3)"))
        .bind(tenant)
        .bind(request_ids)
        .bind(secs)
        .fetch_all(db)
        .await
}
