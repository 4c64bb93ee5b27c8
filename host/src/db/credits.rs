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
    /// The id was used before, with this kind and amount, this long ago.
    Existing { kind: String, amount_nano: i64, age: std::time::Duration },
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
    let (kind, amount_nano, age_secs): (String, i64, f64) = sqlx::query_as(
        "SELECT kind, amount_nano, EXTRACT(EPOCH FROM now() - created_at)::float8 FROM credits WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(db)
    .await?;
    let age = std::time::Duration::from_secs_f64(age_secs.max(0.0));
    Ok(CreditInsert::Existing { kind, amount_nano, age })
}
