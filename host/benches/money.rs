//! The money path's own cost, against the real Postgres and Redis:
//!
//! 1. ledger throughput: rows pushed through `Ledger::record` (durable in the spool) and
//!    `Ledger::confirm` from many tasks, until `SELECT count(*)` in Postgres reaches N;
//! 2. `Balances::reserve` + `settle` latency, beside a bare `PING` on the same connection,
//!    sequential and from many tasks.
//!
//! A plain `main` (not criterion): it needs a database of its own and reports throughput
//! and percentiles of I/O-bound operations. `cargo bench -p xjp-gateway --bench money`;
//! `XJP_BENCH_ROWS`, `XJP_BENCH_PAIRS`, `XJP_BENCH_TASKS` change the sizes. Without
//! `--bench` (`cargo test --benches`) it runs once with tiny sizes as a smoke test.

use anyhow::{Context, ensure};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use uuid::Uuid;
use xjp_gateway::billing::{Balances, IdOrigin, KeySpace, Reservation, Settlement};
use xjp_gateway::db::RedisTarget;
use xjp_gateway::db::credits::{self, CreditKind};
use xjp_gateway::ledger::PendingDebits;
use xjp_gateway::ledger::{Ledger, LedgerConfig};

#[path = "support/mod.rs"]
mod support;
use support::{BenchDb, env_usize};

/// The tenant's credit: $1,000,000, far more than the benchmark spends.
const CREDIT_NANO: i64 = 1_000_000_000_000_000;
/// What one ledger row costs: 412 input + 187 output tokens of gpt-4o-mini ($0.15 / $0.60).
const ROW_COST_NANO: i64 = 174_000;
/// The hold a reservation takes and what its settlement debits.
const HOLD_NANO: i64 = 1_000_000;
const SETTLE_NANO: i64 = 174_000;
/// Unmeasured reserve + settle pairs and PINGs first (script load, account load, warm pool).
const WARM_UP: usize = 200;

fn redis_url() -> String {
    std::env::var("XJP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    rows: usize,
    pairs: usize,
    tasks: usize,
}

fn main() -> anyhow::Result<()> {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let sizes = if bench_mode {
        Sizes {
            rows: env_usize("XJP_BENCH_ROWS", 50_000)?,
            pairs: env_usize("XJP_BENCH_PAIRS", 5_000)?,
            tasks: env_usize("XJP_BENCH_TASKS", 64)?.max(1),
        }
    } else {
        Sizes { rows: 500, pairs: 50, tasks: 8 }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let db = BenchDb::create().await?;
        println!(
            "money bench: {} ledger rows from {} tasks, {} reserve+settle pairs (database {})",
            sizes.rows, sizes.tasks, sizes.pairs, db.name
        );
        let report = run(&db.url, sizes).await?;
        println!("\n{report}");
        anyhow::Ok(())
    })
}

async fn run(url: &str, sizes: Sizes) -> anyhow::Result<String> {
    let pool = xjp_gateway::db::connect_lazy(url, 8)?;
    xjp_gateway::db::migrate(&pool).await?;
    let tenant = xjp_gateway::db::tenants::create(&pool, "money bench").await?.id;
    let (key, _) = xjp_gateway::db::keys::create(&pool, tenant, Some("bench")).await?;
    credits::insert(&pool, tenant, "bench-credit", CreditKind::TopUp, CREDIT_NANO, None).await?;

    let redis = redis::Client::open(redis_url())?;
    let result = async {
        let mut table = Table::default();
        let rows = ledger_throughput(&pool, tenant, key.id, sizes, &mut table).await?;
        let pairs = reserve_settle(&pool, &redis, tenant, sizes, &mut table).await?;
        // Redis started from credits minus the ledger rows (loaded from Postgres after
        // part 1) and was debited once per settled pair.
        let spent = rows as i64 * ROW_COST_NANO + pairs as i64 * SETTLE_NANO;
        table.check(&pool, &redis, tenant, CREDIT_NANO - spent).await?;
        anyhow::Ok(table.render())
    }
    .await;
    let cleaned = delete_tenant_keys(&redis, tenant).await;
    pool.close().await;
    let report = result?;
    cleaned.context("deleting the bench tenant's Redis keys")?;
    Ok(report)
}

/// Part 1. Returns the number of rows written.
async fn ledger_throughput(
    pool: &sqlx::PgPool,
    tenant: Uuid,
    key: Uuid,
    sizes: Sizes,
    table: &mut Table,
) -> anyhow::Result<usize> {
    let n = sizes.rows;
    let spool = tempfile::tempdir()?;
    let config = LedgerConfig::new(spool.path().to_path_buf());
    let (max_batch, window) = (config.max_batch, config.batch_window);
    let pending = Arc::new(PendingDebits::default());
    let ledger = Arc::new(Ledger::start(pool.clone(), config, pending.clone()).await?);

    let run = support::ledger_run::drive(pool, ledger, &[(tenant, key)], n, sizes.tasks, ROW_COST_NANO).await?;

    let (rows, distinct, ids, cost): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT request_id), (SELECT count(*) FROM billing_request_ids), \
                COALESCE(sum(cost_nano), 0)::BIGINT FROM billing_transactions",
    )
    .fetch_one(pool)
    .await?;
    ensure!(rows as usize == n && distinct == rows && ids == rows, "{rows} rows, {distinct} distinct ids, {ids} ids");
    ensure!(cost == n as i64 * ROW_COST_NANO, "rows cost {cost}");
    ensure!(pending.get(tenant) == 0, "{} nano-USD still pending", pending.get(tenant));
    let (acks, batches, all_acked) = (&run.acks, &run.batches, run.all_acked);
    let secs = run.all_in_postgres.as_secs_f64();
    table.section(&format!(
        "ledger: {n} rows, {} tasks, each `record` (spool fsync) then `confirm`; max_batch {max_batch}, window {}",
        sizes.tasks,
        fmt_dur(window)
    ));
    table.row("rows/s until `count(*)` = N", &format!("{} ({n} rows in {secs:.2} s)", thousands(n as f64 / secs)));
    table.row(
        "all rows acknowledged durable (spool)",
        &format!("{:.2} s ({} rows/s)", all_acked.as_secs_f64(), thousands(n as f64 / all_acked.as_secs_f64())),
    );
    table.row(
        "durable ack (`record` → spool fsync) p50 / p99 / max",
        &format!("{} / {} / {}", fmt_dur(pct(acks, 0.50)), fmt_dur(pct(acks, 0.99)), fmt_dur(pct(acks, 1.0))),
    );
    let mean = batches.iter().sum::<i64>() as f64 / batches.len().max(1) as f64;
    table.row(
        "Postgres insert batches: count, rows mean / p50 / max",
        &format!(
            "{}, {mean:.1} / {} / {}",
            batches.len(),
            batches.get(batches.len() / 2).copied().unwrap_or(0),
            batches.last().copied().unwrap_or(0)
        ),
    );
    table.row("check", &format!("{rows} rows, {distinct} distinct request ids, no duplicates, nothing pending"));
    Ok(n)
}

/// Part 2. Returns the number of settled pairs (warm-up included).
async fn reserve_settle(
    pool: &sqlx::PgPool,
    redis: &redis::Client,
    tenant: Uuid,
    sizes: Sizes,
    table: &mut Table,
) -> anyhow::Result<usize> {
    let balances = Arc::new(Balances::new(
        RedisTarget::Single(Box::new(redis.clone())),
        KeySpace::default(),
        pool.clone(),
        Arc::new(PendingDebits::default()),
        Duration::from_secs(600),
    ));
    let run = Uuid::new_v4().simple().to_string();
    for i in 0..WARM_UP {
        ensure!(balances.ping().await, "redis PING failed");
        pair(&balances, tenant, &format!("warm-{run}-{i}")).await?;
    }

    // Sequential: a PING, then a pair, interleaved so both see the same noise.
    let mut stats = redis.get_multiplexed_async_connection().await?;
    let before = commandstats(&mut stats).await?;
    let (mut pings, mut reserves, mut settles, mut pairs) = (vec![], vec![], vec![], vec![]);
    for i in 0..sizes.pairs {
        let t = Instant::now();
        ensure!(balances.ping().await, "redis PING failed");
        pings.push(t.elapsed());
        let (r, s) = pair(&balances, tenant, &format!("seq-{run}-{i}")).await?;
        reserves.push(r);
        settles.push(s);
        pairs.push(r + s);
    }
    let after = commandstats(&mut stats).await?;
    let per_pair = |cmd: &str| {
        let calls = after.get(cmd).unwrap_or(&0) - before.get(cmd).unwrap_or(&0);
        calls as f64 / sizes.pairs as f64
    };
    let (evalsha, eval) = (per_pair("evalsha"), per_pair("eval"));

    // Concurrent: many tasks on the one (multiplexed) connection.
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..sizes.tasks {
        let (balances, next, run) = (balances.clone(), next.clone(), run.clone());
        let total = sizes.pairs;
        tasks.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(lat);
                }
                let (r, s) = pair(&balances, tenant, &format!("par-{run}-{i}")).await?;
                lat.push(r + s);
            }
        });
    }
    let mut concurrent = Vec::with_capacity(sizes.pairs);
    while let Some(done) = tasks.join_next().await {
        concurrent.extend(done??);
    }
    let elapsed = start.elapsed();

    for v in [&mut pings, &mut reserves, &mut settles, &mut pairs, &mut concurrent] {
        v.sort_unstable();
    }
    let ping50 = pct(&pings, 0.5);
    let ratio = |d: Duration| d.as_secs_f64() / ping50.as_secs_f64();
    table.section(&format!(
        "redis: {} sequential reserve + settle pairs on distinct request ids, one tenant, \
         each after a bare PING on the same `ConnectionManager`",
        sizes.pairs
    ));
    let line = |v: &[Duration]| format!("{} / {} / {}", fmt_dur(pct(v, 0.5)), fmt_dur(pct(v, 0.99)), fmt_dur(mean(v)));
    table.row("PING p50 / p99 / mean", &line(&pings));
    table.row(
        "reserve p50 / p99 / mean",
        &format!("{} ({:.1} × PING p50)", line(&reserves), ratio(pct(&reserves, 0.5))),
    );
    table.row("settle p50 / p99 / mean", &format!("{} ({:.1} × PING p50)", line(&settles), ratio(pct(&settles, 0.5))));
    table.row(
        "reserve + settle p50 / p99 / mean",
        &format!("{} ({:.1} × PING p50)", line(&pairs), ratio(pct(&pairs, 0.5))),
    );
    table.row("round trips per pair (EVALSHA / EVAL calls, Redis-wide delta)", &format!("{evalsha:.2} / {eval:.2}"));
    table
        .section(&format!("redis: {} pairs from {} concurrent tasks on the same connection", sizes.pairs, sizes.tasks));
    table.row(
        "pairs/s",
        &format!(
            "{} ({} pairs in {:.2} s)",
            thousands(sizes.pairs as f64 / elapsed.as_secs_f64()),
            sizes.pairs,
            elapsed.as_secs_f64()
        ),
    );
    table.row("pair latency p50 / p99 / mean", &line(&concurrent));
    Ok(WARM_UP + 2 * sizes.pairs)
}

/// One reservation and its settlement; their latencies.
async fn pair(balances: &Balances, tenant: Uuid, id: &str) -> anyhow::Result<(Duration, Duration)> {
    let t = Instant::now();
    let reserved = balances.reserve(tenant, id, IdOrigin::Gateway, HOLD_NANO).await?;
    let r = t.elapsed();
    ensure!(matches!(reserved, Reservation::Reserved { .. }), "reserve {id}: {reserved:?}");
    let t = Instant::now();
    let settled = balances.settle(tenant, id, IdOrigin::Gateway, SETTLE_NANO, "settled", false).await?;
    let s = t.elapsed();
    ensure!(matches!(settled, Settlement::Settled { .. }), "settle {id}: {settled:?}");
    Ok((r, s))
}

/// `INFO commandstats` as command -> calls.
async fn commandstats(
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<std::collections::HashMap<String, u64>> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await?;
    Ok(info
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect())
}

/// Deletes every Redis key of the bench tenant.
async fn delete_tenant_keys(redis: &redis::Client, tenant: Uuid) -> anyhow::Result<()> {
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(KeySpace::default().tenant_pattern(tenant))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query_async::<i64>(&mut conn).await?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(());
        }
    }
}

#[derive(Default)]
struct Table {
    lines: Vec<String>,
}

impl Table {
    fn section(&mut self, title: &str) {
        if !self.lines.is_empty() {
            self.lines.push(String::new());
        }
        self.lines.push(format!("{title}\n\n| measurement | value |\n|---|---|"));
    }

    fn row(&mut self, what: &str, value: &str) {
        self.lines.push(format!("| {what} | {value} |"));
    }

    /// Redis and Postgres agree at the end: nothing held, available = credits - debits.
    async fn check(
        &mut self,
        pool: &sqlx::PgPool,
        redis: &redis::Client,
        tenant: Uuid,
        expected: i64,
    ) -> anyhow::Result<()> {
        let target = RedisTarget::Single(Box::new(redis.clone()));
        let balances = Balances::new(
            target,
            KeySpace::default(),
            pool.clone(),
            Arc::new(PendingDebits::default()),
            Duration::ZERO,
        );
        let live = balances.live(tenant).await?;
        ensure!(
            live.loaded && live.held_nano == 0 && live.available_nano == expected,
            "live balance {live:?}, expected {expected} available and nothing held"
        );
        self.row(
            "check",
            &format!("every pair settled; Redis available = credits − debits ({expected} nano-USD), 0 held"),
        );
        Ok(())
    }

    fn render(&self) -> String {
        self.lines.join("\n")
    }
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len().max(1) as u32
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 { format!("{us:.0} µs") } else { format!("{:.2} ms", us / 1000.0) }
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
