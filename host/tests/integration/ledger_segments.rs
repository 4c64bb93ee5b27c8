//! The spool stays small under a load that never leaves it empty: segments are sealed and
//! deleted once every row in them is in Postgres; rows beyond what the insert stage keeps
//! in memory wait in the spool only and are replayed from it, each exactly once.

use crate::common;
use crate::ledger_robustness::{database, metric, row};

use common::harness::TestDb;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xjp_gateway::ledger::recount::Debit;
use xjp_gateway::ledger::{Ledger, LedgerConfig, PendingDebits};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilled_rows_land_once_and_sealed_segments_go_once_recorded() {
    xjp_gateway::ops::install_metrics();
    let db = TestDb::create().await;
    let (pool, tenant, key) = database(&db.url).await;
    let spool = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(spool.path().to_path_buf());
    config.segment_bytes = 8 << 10; // a dozen rows a segment
    config.max_ready = 5; // most confirmed rows wait in the spool only
    config.max_batch = 7;
    let ledger = Arc::new(Ledger::start(pool.clone(), config, Arc::new(PendingDebits::default())).await.unwrap());

    let (n, tasks) = (400, 40);
    let submitters: Vec<_> = (0..tasks)
        .map(|t| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for i in 0..n / tasks {
                    let r = row(tenant, key, 1 + (t * n / tasks + i) as i64);
                    let (id, cost) = (r.request_id.clone(), r.cost_nano);
                    ledger.record(r).await.unwrap();
                    ledger.pending().add(tenant, cost);
                    ledger.confirm(tenant, &id, Some(Debit { cost, epoch: None })).await;
                }
            })
        })
        .collect();
    for s in submitters {
        s.await.unwrap();
    }
    let start = Instant::now();
    let sealed = |dir: &std::path::Path| {
        std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().len() > "ledger.spool".len()).count()
    };
    while ledger.backlog().rows() > 0 || sealed(spool.path()) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "backlog {}, sealed segments {}",
            ledger.backlog().rows(),
            sealed(spool.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rows, distinct, cost): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT request_id), sum(cost_nano)::BIGINT FROM billing_transactions WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rows, distinct, cost), (n as i64, n as i64, (1..=n as i64).sum::<i64>()));
    assert_eq!(ledger.pending().get(tenant), 0, "no debit stays pending");
    assert!(metric("xjp_ledger_replays_total") >= 1.0, "rows were replayed from the spool");
    assert_eq!(metric("xjp_ledger_duplicates_total"), 0.0, "no row was inserted twice");
    assert!(ledger.backlog().bytes() < 64 << 10, "the spool shrank: {} bytes", ledger.backlog().bytes());
    ledger.shutdown().await;
    pool.close().await;
}
