//! Shared by the money and ledger benchmarks: N rows through a ledger from many tasks, each
//! `record` (durable in the spool) then, as the Redis settlement does, the debit registered
//! as pending and `confirm`; timed until `SELECT count(*)` reaches N.

use super::sample_row;
use anyhow::ensure;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use uuid::Uuid;
use xjp_gateway::ledger::Ledger;

/// What one drive measured.
pub struct Run {
    /// Each `record`'s time to the durable acknowledgement, sorted.
    pub acks: Vec<Duration>,
    pub all_acked: Duration,
    pub all_in_postgres: Duration,
    /// Rows per insert statement (rows sharing `recorded_at`), sorted.
    pub batches: Vec<i64>,
}

/// Drives `n` rows of `cost` over `tenants` (tenant, key) from `tasks` tasks, then shuts the
/// ledger down; the table must start empty.
pub async fn drive(
    pool: &sqlx::PgPool,
    ledger: Arc<Ledger>,
    tenants: &[(Uuid, Uuid)],
    n: usize,
    tasks: usize,
    cost: i64,
) -> anyhow::Result<Run> {
    let tenants: Arc<Vec<(Uuid, Uuid)>> = Arc::new(tenants.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let (ledger, next, tenants) = (ledger.clone(), next.clone(), tenants.clone());
        set.spawn(async move {
            let mut acks = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(acks);
                }
                let (tenant, key) = tenants[i % tenants.len()];
                let row = sample_row(tenant, key, i, cost);
                let id = row.request_id.clone();
                let t = Instant::now();
                ledger.record(row).await?;
                acks.push(t.elapsed());
                ledger.pending().add(tenant, cost);
                ledger.confirm(tenant, &id, Some(xjp_gateway::ledger::recount::Debit { cost, epoch: None })).await;
            }
        });
    }
    let submit = async {
        let mut acks = Vec::with_capacity(n);
        while let Some(done) = set.join_next().await {
            acks.extend(done??);
        }
        anyhow::Ok((acks, start.elapsed()))
    };
    let in_postgres = async {
        loop {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM billing_transactions").fetch_one(pool).await?;
            if count as usize >= n {
                return anyhow::Ok(start.elapsed());
            }
            ensure!(start.elapsed() < Duration::from_secs(900), "only {count} of {n} rows in Postgres after 15 min");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let ((mut acks, all_acked), all_in_postgres) = tokio::try_join!(submit, in_postgres)?;
    ledger.shutdown().await;
    acks.sort_unstable();
    // One insert statement is one transaction, so its rows share `recorded_at` (now()).
    let mut batches: Vec<i64> =
        sqlx::query_scalar("SELECT count(*) FROM billing_transactions GROUP BY recorded_at").fetch_all(pool).await?;
    batches.sort_unstable();
    Ok(Run { acks, all_acked, all_in_postgres, batches })
}
