//! Ledger throughput against the real Postgres: how many rows a second the writer carries
//! from `Ledger::record` (durable in the spool) + `Ledger::confirm` into Postgres, sustained,
//! with as many submitters in flight as a busy gateway has settlements running; and, for
//! comparison, what Postgres takes through the ledger's insert statement alone.
//!
//! `cargo bench -p xjp-gateway --bench ledger`; `XJP_BENCH_ROWS` (200 000),
//! `XJP_BENCH_TASKS` (submitters in flight, 4 096), `XJP_BENCH_TENANTS` (64),
//! `XJP_BENCH_MAX_BATCH` (the writer's default when unset). Without `--bench`
//! (`cargo test --benches`) it runs once with tiny sizes as a smoke test.

use anyhow::ensure;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinSet;
use uuid::Uuid;
use xjp_gateway::ledger::{Ledger, LedgerConfig, PendingDebits, TransactionRow};

#[path = "support/mod.rs"]
mod support;
use support::{BenchDb, env_usize};

const ROW_COST_NANO: i64 = 174_000;

#[derive(Debug, Clone, Copy)]
struct Sizes {
    rows: usize,
    tasks: usize,
    tenants: usize,
    max_batch: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let sizes = if std::env::args().any(|a| a == "--bench") {
        let batch = env_usize("XJP_BENCH_MAX_BATCH", 0)?;
        Sizes {
            rows: env_usize("XJP_BENCH_ROWS", 200_000)?,
            tasks: env_usize("XJP_BENCH_TASKS", 4_096)?.max(1),
            tenants: env_usize("XJP_BENCH_TENANTS", 64)?.max(1),
            max_batch: (batch > 0).then_some(batch),
        }
    } else {
        Sizes { rows: 500, tasks: 16, tenants: 4, max_batch: None }
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

/// A realistic row: a served gpt-4o-mini chat request with a price snapshot.
fn sample_row((tenant, key): (Uuid, Uuid), i: usize) -> TransactionRow {
    let rates = serde_json::json!({
        "input": 150_000_000_000u64, "output": 600_000_000_000u64, "cache_read": 75_000_000_000u64,
        "cache_write_5m": 0, "cache_write_1h": 0, "reasoning": null, "unit": "atto_usd_per_token"
    });
    let created = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    TransactionRow {
        request_id: Uuid::now_v7().to_string(),
        client_request_id: None,
        tenant_id: tenant,
        api_key_id: key,
        provider: Some("openai".into()),
        model_requested: "gpt-4o-mini".into(),
        model_served: Some("gpt-4o-mini-2024-07-18".into()),
        upstream_model: Some("gpt-4o-mini-2024-07-18".into()),
        api_format: "openai-chat".into(),
        stream: i.is_multiple_of(2),
        status: "ok".into(),
        error_class: None,
        error_message: None,
        http_status: Some(200),
        input_uncached_tokens: 412,
        cache_read_tokens: 0,
        cache_write_5m_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 187,
        reasoning_tokens: 0,
        fees: serde_json::json!({}),
        cost_nano: ROW_COST_NANO,
        provider_cost_nano: None,
        price_version: None,
        price_snapshot: Some(serde_json::json!({ "rates": rates, "long_context": null, "fees": {} })),
        estimated: false,
        needs_review: false,
        latency_ms: Some(850),
        created_at_us: created.as_micros() as i64,
    }
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
    if let Some(b) = sizes.max_batch {
        config.max_batch = b;
    }
    let (max_batch, window) = (config.max_batch, config.batch_window);
    let pending = Arc::new(PendingDebits::default());
    let ledger = Arc::new(Ledger::start(pool.clone(), config, pending.clone()).await?);
    let tenants: Arc<Vec<(Uuid, Uuid)>> = Arc::new(tenants.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..sizes.tasks {
        let (ledger, next, tenants) = (ledger.clone(), next.clone(), tenants.clone());
        tasks.spawn(async move {
            let mut acks = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(acks);
                }
                let row = sample_row(tenants[i % tenants.len()], i);
                let (tenant, id) = (row.tenant_id, row.request_id.clone());
                let t = Instant::now();
                ledger.record(row).await?;
                acks.push(t.elapsed());
                // The Redis settlement registers the debit as pending, then confirms.
                ledger.pending().add(tenant, ROW_COST_NANO);
                ledger.confirm(tenant, &id, Some(ROW_COST_NANO)).await;
            }
        });
    }
    let submit = async {
        let mut acks = Vec::with_capacity(n);
        while let Some(done) = tasks.join_next().await {
            acks.extend(done??);
        }
        anyhow::Ok((acks, start.elapsed()))
    };
    let in_postgres = async {
        loop {
            let c = count(pool).await?;
            if c >= n {
                return anyhow::Ok(start.elapsed());
            }
            ensure!(start.elapsed() < Duration::from_secs(900), "only {c} of {n} rows in Postgres after 15 min");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let ((mut acks, all_acked), all_in) = tokio::try_join!(submit, in_postgres)?;
    ledger.shutdown().await;
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (tenant_id, request_id)) FROM billing_transactions")
            .fetch_one(pool)
            .await?;
    ensure!(rows as usize == n && distinct == rows, "{rows} rows, {distinct} distinct");
    let left: i64 = tenants.iter().map(|(t, _)| pending.get(*t)).sum();
    ensure!(left == 0, "{left} nano-USD still pending");
    let mut batches: Vec<i64> =
        sqlx::query_scalar("SELECT count(*) FROM billing_transactions GROUP BY recorded_at").fetch_all(pool).await?;
    batches.sort_unstable();
    acks.sort_unstable();
    let pct = |q: f64| acks[((acks.len() - 1) as f64 * q).round() as usize];
    let secs = all_in.as_secs_f64();
    println!("\nwriter: {n} rows, {} submitters, max_batch {max_batch}, window {window:?}", sizes.tasks);
    println!("  rows/s until count(*) = N      {:>10.0}  ({n} rows in {secs:.2} s)", n as f64 / secs);
    println!("  rows/s acknowledged (spooled)  {:>10.0}", n as f64 / all_acked.as_secs_f64());
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
    let rows: Vec<TransactionRow> = (0..n).map(|i| sample_row(tenants[i % tenants.len()], i)).collect();
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
