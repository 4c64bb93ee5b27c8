//! Daily rollups per tenant / day / model / key, maintained asynchronously. Each run flips
//! `rolled_up` on a batch of rows and adds them to the summary in one statement, so every
//! transaction is counted exactly once, however many gateways run the job. A batch is
//! any not-rolled-up rows (the partial index `billing_tx_tenant_not_rolled` holds just
//! them); the order they are taken in changes no sum.
//!
//! No row's content can make the statement fail (it would stop the rollup for every
//! tenant): the model key is `xjp_summary_model(model_requested)` (names over 1024 bytes
//! become a prefix and a hash, within the summary key's B-tree limit), and every sum is
//! clamped to BIGINT (`xjp_saturate`: the ledger stores token counts up to i64::MAX).

use sqlx::PgPool;

const ROLLUP: &str = r#"
WITH picked AS (
    UPDATE billing_transactions b SET rolled_up = true
    FROM (SELECT created_at, seq FROM billing_transactions WHERE NOT rolled_up
          LIMIT $1 FOR UPDATE SKIP LOCKED) s
    WHERE b.created_at = s.created_at AND b.seq = s.seq
    RETURNING b.tenant_id, (b.created_at AT TIME ZONE 'UTC')::date AS day,
              xjp_summary_model(b.model_requested) AS model, b.api_key_id, b.status,
              b.input_uncached_tokens, b.cache_read_tokens, b.cache_write_5m_tokens,
              b.cache_write_1h_tokens, b.output_tokens, b.reasoning_tokens, b.cost_nano
)
INSERT INTO tenant_billing_summary AS t (tenant_id, day, model, api_key_id, requests, errors,
    input_uncached_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
    output_tokens, reasoning_tokens, cost_nano)
SELECT tenant_id, day, model, api_key_id, count(*), count(*) FILTER (WHERE status <> 'ok'),
       xjp_saturate(sum(input_uncached_tokens)), xjp_saturate(sum(cache_read_tokens)),
       xjp_saturate(sum(cache_write_5m_tokens)), xjp_saturate(sum(cache_write_1h_tokens)),
       xjp_saturate(sum(output_tokens)), xjp_saturate(sum(reasoning_tokens)), xjp_saturate(sum(cost_nano))
FROM picked GROUP BY tenant_id, day, model, api_key_id
ON CONFLICT (tenant_id, day, model, api_key_id) DO UPDATE SET
    requests = t.requests + EXCLUDED.requests,
    errors = t.errors + EXCLUDED.errors,
    input_uncached_tokens = xjp_saturate(t.input_uncached_tokens::numeric + EXCLUDED.input_uncached_tokens),
    cache_read_tokens = xjp_saturate(t.cache_read_tokens::numeric + EXCLUDED.cache_read_tokens),
    cache_write_5m_tokens = xjp_saturate(t.cache_write_5m_tokens::numeric + EXCLUDED.cache_write_5m_tokens),
    cache_write_1h_tokens = xjp_saturate(t.cache_write_1h_tokens::numeric + EXCLUDED.cache_write_1h_tokens),
    output_tokens = xjp_saturate(t.output_tokens::numeric + EXCLUDED.output_tokens),
    reasoning_tokens = xjp_saturate(t.reasoning_tokens::numeric + EXCLUDED.reasoning_tokens),
    cost_nano = xjp_saturate(t.cost_nano::numeric + EXCLUDED.cost_nano)
"#;

/// Rolls up at most `limit` rows; returns how many summary rows changed.
pub async fn rollup_once(db: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(ROLLUP).bind(limit).execute(db).await?.rows_affected())
}

/// Rolls up until nothing is left.
pub async fn rollup_all(db: &PgPool) -> Result<(), sqlx::Error> {
    while rollup_once(db, 10_000).await? > 0 {}
    Ok(())
}
