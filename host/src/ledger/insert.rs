//! Multi-row, idempotent insert of transaction rows: one statement per batch (UNNEST),
//! `ON CONFLICT DO NOTHING` on the global (tenant, request id) index, telling inserted
//! rows from duplicates. The same statement adds the new rows to the daily summary
//! (`ledger::rollup`), so a row is written once: before, the rollup job rewrote every row
//! to flip `rolled_up`, as much Postgres work again as the insert.

use super::rollup::{summary_columns, summary_upsert};
use super::row::TransactionRow;
use sqlx::PgPool;

const INSERT: &str = concat!(
    r#"
WITH input AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::bool[], $10::text[], $11::text[], $12::text[], $13::int4[],
        $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[],
        $20::jsonb[], $21::int8[], $22::int8[], $23::text[], $24::jsonb[], $25::bool[], $26::bool[],
        $27::int4[], $28::int8[], $29::text[]
    ) AS t(request_id, tenant_id, api_key_id, provider, model_requested, model_served, upstream_model,
           api_format, stream, status, error_class, error_message, http_status,
           input_uncached_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
           output_tokens, reasoning_tokens, fees, cost_nano, provider_cost_nano, price_version,
           price_snapshot, estimated, needs_review, latency_ms, created_us, client_request_id)
), stamped AS (
    SELECT DISTINCT ON (tenant_id, request_id) *,
           timestamptz 'epoch' + created_us * interval '1 microsecond' AS created_at
    FROM input
), fresh AS (
    INSERT INTO billing_request_ids (tenant_id, request_id, created_at)
    SELECT tenant_id, request_id, created_at FROM stamped
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, request_id
), picked AS (
    INSERT INTO billing_transactions AS b (
        request_id, tenant_id, api_key_id, provider, model_requested, model_served, upstream_model,
        api_format, stream, status, error_class, error_message, http_status,
        input_uncached_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
        output_tokens, reasoning_tokens, fees, cost_nano, provider_cost_nano, price_version,
        price_snapshot, estimated, needs_review, latency_ms, created_at, client_request_id, rolled_up)
    SELECT s.request_id, s.tenant_id, s.api_key_id, s.provider, s.model_requested, s.model_served,
           s.upstream_model, s.api_format, s.stream, s.status, s.error_class, s.error_message,
           s.http_status, s.input_uncached_tokens, s.cache_read_tokens, s.cache_write_5m_tokens,
           s.cache_write_1h_tokens, s.output_tokens, s.reasoning_tokens, s.fees, s.cost_nano,
           s.provider_cost_nano, s.price_version, s.price_snapshot, s.estimated, s.needs_review,
           s.latency_ms, s.created_at, s.client_request_id, true
    FROM stamped s JOIN fresh f USING (tenant_id, request_id)
    RETURNING "#,
    summary_columns!(),
    "), summed AS (",
    summary_upsert!(),
    ")\nSELECT count(*), pg_current_xact_id()::text FROM picked"
);

/// Inserts a batch; returns how many rows were new (the rest were already recorded).
pub async fn insert_batch(db: &PgPool, rows: &[TransactionRow]) -> Result<u64, sqlx::Error> {
    Ok(insert_rows(db, rows).await?.0)
}

/// [`insert_batch`], also returning the transaction that committed it (`pg_current_xact_id()`,
/// decimal; empty when there were no rows).
pub async fn insert_rows(db: &PgPool, rows: &[TransactionRow]) -> Result<(u64, String), sqlx::Error> {
    if rows.is_empty() {
        return Ok((0, String::new()));
    }
    // Columns of references: a row's strings and JSON are encoded straight from the row.
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|r| &r.$f).collect::<Vec<_>>()
        };
    }
    let (inserted, xid): (i64, String) = sqlx::query_as(INSERT)
        .bind(col!(request_id))
        .bind(col!(tenant_id))
        .bind(col!(api_key_id))
        .bind(col!(provider))
        .bind(col!(model_requested))
        .bind(col!(model_served))
        .bind(col!(upstream_model))
        .bind(col!(api_format))
        .bind(col!(stream))
        .bind(col!(status))
        .bind(col!(error_class))
        .bind(col!(error_message))
        .bind(col!(http_status))
        .bind(col!(input_uncached_tokens))
        .bind(col!(cache_read_tokens))
        .bind(col!(cache_write_5m_tokens))
        .bind(col!(cache_write_1h_tokens))
        .bind(col!(output_tokens))
        .bind(col!(reasoning_tokens))
        .bind(col!(fees))
        .bind(col!(cost_nano))
        .bind(col!(provider_cost_nano))
        .bind(col!(price_version))
        .bind(col!(price_snapshot))
        .bind(col!(estimated))
        .bind(col!(needs_review))
        .bind(col!(latency_ms))
        .bind(col!(created_at_us))
        .bind(col!(client_request_id))
        .fetch_one(db)
        .await?;
    Ok((inserted as u64, xid))
}

/// Creates the monthly partitions around now (previous month to two months ahead).
pub async fn ensure_partitions(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT xjp_ensure_month_partition((date_trunc('month', now()) + make_interval(months => m))::date) \
         FROM generate_series(-1, 2) AS m",
    )
    .execute(db)
    .await?;
    Ok(())
}
