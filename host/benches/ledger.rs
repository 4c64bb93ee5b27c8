//! Ledger throughput against the real Postgres: how many rows a second the writer carries
//! from `Ledger::record` (durable in the spool) + `Ledger::confirm` into Postgres, sustained,
//! with as many submitters in flight as a busy gateway has settlements running; and, for
//! comparison, what Postgres takes through the ledger's insert statement alone.
//!
//! `cargo bench -p xjp-gateway --bench ledger`; `XJP_BENCH_ROWS` (200 000),
//! `XJP_BENCH_TASKS` (submitters in flight, 4 096), `XJP_BENCH_TENANTS` (64),
//! `XJP_BENCH_MAX_BATCH`, `XJP_BENCH_INSERTERS` (the writer's defaults when unset). Without `--bench`
//! (`cargo test --benches`) it runs once with tiny sizes as a smoke test.

use anyhow::ensure;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;
use xjp_gateway::ledger::{Ledger, LedgerConfig, PendingDebits, TransactionRow};

#[path = "support/mod.rs"]
mod support;
use support::{BenchDb, env_usize, sample_row};

const ROW_COST_NANO: i64 = 174_000;

#[derive(Debug, Clone, Copy)]
struct Sizes {
    rows: usize,
    tasks: usize,
    tenants: usize,
    max_batch: Option<usize>,
    inserters: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let sizes = if std::env::args().any(|a| a == "--bench") {
        let batch = env_usize("XJP_BENCH_MAX_BATCH", 0)?;
        let inserters = env_usize("XJP_BENCH_INSERTERS", 0)?;
        Sizes {
            rows: env_usize("XJP_BENCH_ROWS", 200_000)?,
            tasks: env_usize("XJP_BENCH_TASKS", 4_096)?.max(1),
            tenants: env_usize("XJP_BENCH_TENANTS", 64)?.max(1),
            max_batch: (batch > 0).then_some(batch),
            inserters: (inserters > 0).then_some(inserters),
        }
    } else {
        Sizes { rows: 500, tasks: 16, tenants: 4, max_batch: None, inserters: None }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let db = BenchDb::create().await?;
        println!("ledger bench: {sizes:?} (database {})", db.name);
        let pool = xjp_gateway::db::connect_lazy(&db.url, 8)?;
        xjp_gateway::db::migrate(&pool).await?;
        let mut tenants = Vec::new();
        for i in 0..sizes.tenants {
            let tenant = xjp_gateway::db::tenants::create(&pool, &format!("ledger bench {i}")).await?.id;
            let (key, _) = xjp_gateway::db::keys::create(&pool, tenant, Some("bench")).await?;
            tenants.push((tenant, key.id));
        }
        let result = async {
            writer(&pool, &tenants, sizes).await?;
            statement(&pool, &tenants, sizes).await
        }
        .await;
        pool.close().await;
        result
    })
}

async fn count(pool: &sqlx::PgPool) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM billing_transactions").fetch_one(pool).await?;
    Ok(n as usize)
}

/// Rows through the writer, `tasks` submitters in flight, until `count(*)` = N.
async fn writer(pool: &sqlx::PgPool, tenants: &[(Uuid, Uuid)], sizes: Sizes) -> anyhow::Result<()> {
    let n = sizes.rows;
    let spool = tempfile::tempdir()?;
    let mut config = LedgerConfig::new(spool.path().to_path_buf());
    config.max_batch = sizes.max_batch.unwrap_or(config.max_batch);
    config.inserters = sizes.inserters.unwrap_or(config.inserters);
    let (max_batch, window, inserters) = (config.max_batch, config.batch_window, config.inserters);
    let pending = Arc::new(PendingDebits::default());
    let ledger = Arc::new(Ledger::start(pool.clone(), config, pending.clone()).await?);
    let run = support::ledger_run::drive(pool, ledger, tenants, n, sizes.tasks, ROW_COST_NANO).await?;
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (tenant_id, request_id)) FROM billing_transactions")
            .fetch_one(pool)
            .await?;
    ensure!(rows as usize == n && distinct == rows, "{rows} rows, {distinct} distinct");
    let left: i64 = tenants.iter().map(|(t, _)| pending.get(*t)).sum();
    ensure!(left == 0, "{left} nano-USD still pending");
    let (acks, batches) = (&run.acks, &run.batches);
    let pct = |q: f64| acks[((acks.len() - 1) as f64 * q).round() as usize];
    let secs = run.all_in_postgres.as_secs_f64();
    println!(
        "\nwriter: {n} rows, {} submitters, max_batch {max_batch}, window {window:?}, {inserters} inserters",
        sizes.tasks
    );
    println!("  rows/s until count(*) = N      {:>10.0}  ({n} rows in {secs:.2} s)", n as f64 / secs);
    println!("  rows/s acknowledged (spooled)  {:>10.0}", n as f64 / run.all_acked.as_secs_f64());
    println!("  durable ack p50 / p99 / max    {:?} / {:?} / {:?}", pct(0.5), pct(0.99), pct(1.0));
    let mean = batches.iter().sum::<i64>() as f64 / batches.len().max(1) as f64;
    println!(
        "  insert statements: {}, rows mean {mean:.0} / p50 {} / max {}",
        batches.len(),
        batches[batches.len() / 2],
        batches.last().copied().unwrap_or(0)
    );
    Ok(())
}

/// What Postgres takes through the insert statement alone, batches of `max_batch` (5 000),
/// one after another.
async fn statement(pool: &sqlx::PgPool, tenants: &[(Uuid, Uuid)], sizes: Sizes) -> anyhow::Result<()> {
    let (n, batch) = (sizes.rows, sizes.max_batch.unwrap_or(5_000));
    let rows: Vec<TransactionRow> = (0..n)
        .map(|i| {
            let (tenant, key) = tenants[i % tenants.len()];
            sample_row(tenant, key, i, ROW_COST_NANO)
        })
        .collect();
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        xjp_gateway::ledger::insert::insert_batch(pool, chunk).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("\ninsert statement alone: {n} rows in batches of {batch}");
    println!("  rows/s                         {:>10.0}  ({secs:.2} s)", n as f64 / secs);
    ensure!(count(pool).await? == 2 * n, "every row inserted once");
    Ok(())
}
