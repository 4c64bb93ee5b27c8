//! Price versions in Postgres: each distinct price once, and a history row whenever a
//! model's current price changes, so any past bill can be re-derived from its version.

use super::ResolvedPrice;
use sqlx::PgPool;

/// Records `price` as the current price of (provider, model) if it is not already.
///
/// Callers race (start-up, every sync, config reloads, other replicas): a transaction-scoped
/// advisory lock per (provider, model) makes "compare with the latest row, insert if
/// different" one step, so a change is recorded once, never twice.
pub async fn record(db: &PgPool, provider: &str, model: &str, price: &ResolvedPrice) -> Result<bool, sqlx::Error> {
    let snapshot = super::snapshot::price_snapshot(&price.entry);
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
        .bind(provider)
        .bind(model)
        .execute(&mut *tx)
        .await?;
    let changed = sqlx::query(
        "WITH v AS (INSERT INTO price_versions (version, snapshot) VALUES ($1, $2) ON CONFLICT DO NOTHING) \
         INSERT INTO model_price_history (provider, model, version, source) \
         SELECT $3, $4, $1, $5 WHERE $1 IS DISTINCT FROM ( \
             SELECT version FROM model_price_history WHERE provider = $3 AND model = $4 \
             ORDER BY effective_from DESC LIMIT 1)",
    )
    .bind(&price.version)
    .bind(snapshot)
    .bind(provider)
    .bind(model)
    .bind(price.source.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    super::snapshot::mark_stored(&price.entry);
    Ok(changed > 0)
}
