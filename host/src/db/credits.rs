//! Credits: top-ups and adjustments, idempotent by a client-supplied id.

use sqlx::PgPool;
use uuid::Uuid;

/// Top-up (positive) or adjustment (either sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditKind {
    TopUp,
    Adjustment,
}

impl CreditKind {
    fn as_str(self) -> &'static str {
        match self {
            CreditKind::TopUp => "topup",
            CreditKind::Adjustment => "adjustment",
        }
    }
}

/// What inserting a credit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditInsert {
    /// New: apply it to the live balance.
    Inserted,
    /// The id was used before, with this kind and amount.
    Existing { kind: String, amount_nano: i64 },
}

/// Inserts a credit unless its id exists for the tenant.
pub async fn insert(
    db: &PgPool,
    tenant: Uuid,
    id: &str,
    kind: CreditKind,
    amount_nano: i64,
    note: Option<&str>,
) -> Result<CreditInsert, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO credits (tenant_id, id, kind, amount_nano, note) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(id)
    .bind(kind.as_str())
    .bind(amount_nano)
    .bind(note)
    .execute(db)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(CreditInsert::Inserted);
    }
    let (kind, amount_nano): (String, i64) =
        sqlx::query_as("SELECT kind, amount_nano FROM credits WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_one(db)
            .await?;
    Ok(CreditInsert::Existing { kind, amount_nano })
}

/// Ids of the tenant's credits inserted within `window` (marked as counted when a balance
/// is loaded, so their own credit call does not apply them twice).
pub async fn recent_ids(db: &PgPool, tenant: Uuid, window: std::time::Duration) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM credits WHERE tenant_id = $1 AND created_at > now() - make_interval(secs => $2)")
        .bind(tenant)
        .bind(window.as_secs_f64())
        .fetch_all(db)
        .await
}
