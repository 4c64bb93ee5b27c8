//! Daily rollups per tenant / day / model / key. Rows written by the ledger's insert are
//! added to the summary by that same statement (`ledger::insert`, through `summary_upsert!`),
//! so a row is written once and counted in the same transaction. The job here is the safety
//! net for rows that arrive `NOT rolled_up` (written by an older gateway during an upgrade,
//! or by hand): each run flips `rolled_up` on a batch of them and adds them to the summary in
//! one statement, so every transaction is counted exactly once, however many gateways run
//! the job. A batch is taken in the order of the partial index
//! `billing_tx_tenant_not_rolled`, which holds just those rows: the order changes no sum,
//! but without an `ORDER BY` an index can serve, the plan Postgres caches for the statement
//! while the table is new (no statistics) is a sequential scan of every row version.
//!
//! No row's content can make the statement fail (it would stop the rollup for every
//! tenant): the model key is `xjp_summary_model(model_requested)` (names over 1024 bytes
//! become a prefix and a hash, within the summary key's B-tree limit), and every sum is
//! clamped to BIGINT (`xjp_saturate`: the ledger stores token counts up to i64::MAX).

use sqlx::PgPool;

/// Adds the rows of the CTE `picked` (columns as `billing_transactions`' `RETURNING` below
/// gives them) to `tenant_billing_summary`. Summary rows are locked in key order, so two
/// statements adding to the same keys wait for each other and never deadlock.
macro_rules! summary_upsert {
    () => {
        r#"
INSERT INTO tenant_billing_summary AS t (tenant_id, day, model, api_key_id, requests, errors,
    input_uncached_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
    output_tokens, reasoning_tokens, cost_nano)
SELECT tenant_id, day, model, api_key_id, count(*), count(*) FILTER (WHERE status <> 'ok'),
       xjp_saturate(sum(input_uncached_tokens)), xjp_saturate(sum(cache_read_tokens)),
       xjp_saturate(sum(cache_write_5m_tokens)), xjp_saturate(sum(cache_write_1h_tokens)),
       xjp_saturate(sum(output_tokens)), xjp_saturate(sum(reasoning_tokens)), xjp_saturate(sum(cost_nano))
FROM picked GROUP BY tenant_id, day, model, api_key_id
ORDER BY tenant_id, day, model, api_key_id
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
"#
    };
}
pub(super) use summary_upsert;

/// What `RETURNING` gives `summary_upsert!` from a `billing_transactions` row `b`.
macro_rules! summary_columns {
    () => {
        r#"b.tenant_id, (b.created_at AT TIME ZONE 'UTC')::date AS day,
              xjp_summary_model(b.model_requested) AS model, b.api_key_id, b.status,
              b.input_uncached_tokens, b.cache_read_tokens, b.cache_write_5m_tokens,
              b.cache_write_1h_tokens, b.output_tokens, b.reasoning_tokens, b.cost_nano"#
    };
}
pub(super) use summary_columns;

const ROLLUP: &str = concat!(
    r#"
WITH picked AS (
    UPDATE billing_transactions b SET rolled_up = true
    FROM (SELECT created_at, seq FROM billing_transactions WHERE NOT rolled_up
          ORDER BY tenant_id, created_at LIMIT $1 FOR UPDATE SKIP LOCKED) s
    WHERE b.created_at = s.created_at AND b.seq = s.seq
    RETURNING "#,
    summary_columns!(),
    ")",
    summary_upsert!()
);

/// Rolls up at most `limit` rows; returns how many summary rows changed.
pub async fn rollup_once(db: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(ROLLUP).bind(limit).execute(db).await?.rows_affected())
}

/// Rolls up until nothing is left.
pub async fn rollup_all(db: &PgPool) -> Result<(), sqlx::Error> {
    while rollup_once(db, 10_000).await? > 0 {}
    Ok(())
}
