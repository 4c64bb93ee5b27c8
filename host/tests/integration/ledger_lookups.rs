//! The ledger's reads that money rests on, over rows in several monthly partitions: which
//! request ids have a row and at what cost (the sweeper settles from it), whether a client's
//! id is taken, and every row counted once in the daily summary: by the insert itself, or by
//! the rollup job for rows that arrive not rolled up. The ledger keeps no index on request
//! ids of its own: these go through `billing_request_ids`.

use crate::common;

use super::ledger_robustness::{database, row};
use common::harness::TestDb;
use std::sync::Arc;
use std::time::Duration;
use xjp_gateway::ledger::recount::Debit;
use xjp_gateway::ledger::{Ledger, LedgerConfig, PendingDebits, TransactionRow};

const MONTH_US: i64 = 31 * 24 * 3600 * 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_costs_and_ids_are_found_across_partitions_and_rolled_up_once() {
    let db = TestDb::create().await;
    let (pool, tenant, key) = database(&db.url).await;
    let (other_tenant, other_key) = {
        let t = xjp_gateway::db::tenants::create(&pool, "other").await.unwrap().id;
        (t, xjp_gateway::db::keys::create(&pool, t, Some("k")).await.unwrap().0.id)
    };
    let spool = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(spool.path().to_path_buf());
    config.batch_window = Duration::from_millis(50);
    let ledger = Ledger::start(pool.clone(), config, Arc::new(PendingDebits::default())).await.unwrap();

    // This month, last month (both partitions exist) and a year ago (the default partition).
    let mut rows: Vec<TransactionRow> = Vec::new();
    for (i, age) in [0, 0, 1, 1, 12].into_iter().enumerate() {
        let mut r = row(tenant, key, 1_000 + i as i64);
        r.created_at_us -= age * MONTH_US;
        rows.push(r);
    }
    // The same id under another tenant: never mistaken for this tenant's.
    let mut shadow = row(other_tenant, other_key, 77);
    shadow.request_id = rows[2].request_id.clone();
    rows.push(shadow);
    for r in &rows {
        ledger.record(r.clone()).await.unwrap();
        ledger.pending().add(r.tenant_id, r.cost_nano);
        ledger.confirm(r.tenant_id, &r.request_id, Some(Debit { cost: r.cost_nano, epoch: None })).await;
    }
    common::until("every row in Postgres", Duration::from_secs(10), async || {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM billing_transactions").fetch_one(&pool).await.unwrap();
        n == rows.len() as i64
    })
    .await;

    let unknown = uuid::Uuid::now_v7().to_string();
    let asked: Vec<String> = rows[..5].iter().map(|r| r.request_id.clone()).chain([unknown.clone()]).collect();
    let mut found = ledger.recorded_costs(tenant, &asked).await.unwrap();
    found.sort();
    let mut expected: Vec<(String, i64)> = rows[..5].iter().map(|r| (r.request_id.clone(), r.cost_nano)).collect();
    expected.sort();
    assert_eq!(found, expected, "every recorded id with its own cost, the unknown one absent");
    assert_eq!(
        ledger.recorded_costs(other_tenant, &asked).await.unwrap(),
        vec![(rows[2].request_id.clone(), 77)],
        "another tenant sees only its own row"
    );
    for r in &rows[..5] {
        assert!(ledger.has_row(tenant, &r.request_id).await.unwrap());
    }
    assert!(!ledger.has_row(tenant, &unknown).await.unwrap());

    // The insert counted its rows in the daily summary itself: nothing is left to roll up.
    let summed = async || -> (i64, i64) {
        sqlx::query_as(
            "SELECT sum(requests)::BIGINT, sum(cost_nano)::BIGINT FROM tenant_billing_summary WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let spent: i64 = rows[..5].iter().map(|r| r.cost_nano).sum();
    assert_eq!(summed().await, (5, spent));
    let not_rolled = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM billing_transactions WHERE NOT rolled_up")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(not_rolled().await, 0);

    // Rows that arrive not rolled up (an older gateway's, during an upgrade) are counted by
    // the rollup job, in batches of two, in whatever order: each once.
    let columns = "tenant_id, api_key_id, provider, model_requested, model_served, upstream_model, api_format, \
        stream, status, error_class, error_message, http_status, input_uncached_tokens, cache_read_tokens, \
        cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, fees, cost_nano, \
        provider_cost_nano, price_version, price_snapshot, estimated, needs_review, latency_ms, created_at, \
        client_request_id";
    for (i, old) in rows[..3].iter().enumerate() {
        sqlx::query(&format!(
            "WITH old AS (SELECT {columns} FROM billing_transactions WHERE tenant_id = $3 AND request_id = $1), \
                  ids AS (INSERT INTO billing_request_ids (tenant_id, request_id, created_at) \
                          SELECT tenant_id, $2, created_at FROM old) \
             INSERT INTO billing_transactions (request_id, rolled_up, {columns}) SELECT $2, false, {columns} FROM old"
        ))
        .bind(&old.request_id)
        .bind(format!("legacy-{i}"))
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    }
    assert_eq!(not_rolled().await, 3);
    while xjp_gateway::ledger::rollup::rollup_once(&pool, 2).await.unwrap() > 0 {}
    assert_eq!(not_rolled().await, 0);
    let legacy: i64 = rows[..3].iter().map(|r| r.cost_nano).sum();
    assert_eq!(summed().await, (8, spent + legacy));

    // No index on billing_transactions names a request id: each would be one more B-tree
    // entry per row written (`billing_request_ids` holds the ids).
    let by_id: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'billing_transactions' AND indexdef LIKE '%request_id%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(by_id.is_empty(), "indexes on request ids: {by_id:?}");
    ledger.shutdown().await;
}
