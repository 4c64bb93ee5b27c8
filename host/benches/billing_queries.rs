//! The billing read endpoints against a ledger of realistic size:
//!
//! 1. `reports::transactions::page` for the biggest tenant: the first page, pages deep in
//!    the result reached through the cursor, with a `model=` filter and with a `start`/`end`;
//! 2. `reports::summary::summarize` for the same tenant over one calendar month and over a
//!    range with partial days at both edges (daily rollups + not-rolled-up tail + raw edges).
//!
//! Seeding: N rows (`XJP_BENCH_ROWS`, default 1,000,000) with one `INSERT ... SELECT FROM
//! generate_series` (and their `billing_request_ids`), spread evenly over 2026-08-01 ..
//! 2026-11-01 in monthly partitions, 50 tenants of which one holds ~30% of the rows, 1-8
//! keys and 1-6 models per tenant. All but the newest ~20,000 rows are rolled up
//! (`ledger::rollup::rollup_all`); the tail is inserted after the rollup, so summaries read
//! both paths. Then `VACUUM (ANALYZE)`, as autovacuum would leave the tables.
//!
//! A plain `main` (not criterion): it needs a database of its own (created, migrated and
//! dropped, also on error or panic) and checks targets: page p50 <= 20 ms, summary p50 <=
//! 50 ms. `cargo bench -p xjp-gateway --bench billing_queries`. `XJP_BENCH_ITERS` changes
//! the samples per measurement (default 200); `XJP_BENCH_KEEP_DB=1` keeps the database
//! (for `EXPLAIN (ANALYZE, BUFFERS)` by hand).
//! Without `--bench` (`cargo test --benches`) it runs once with tiny sizes as a smoke test.

use anyhow::{Context, ensure};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::PgPool;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use uuid::Uuid;
use xjp_gateway::reports::params::Params;
use xjp_gateway::reports::summary::summarize;
use xjp_gateway::reports::transactions::{Scope, page};

#[path = "support/mod.rs"]
mod support;
use support::{BenchDb, env_usize};

/// Targets from the issue.
const PAGE_TARGET: Duration = Duration::from_millis(20);
const SUMMARY_TARGET: Duration = Duration::from_millis(50);
/// Tenants; tenant 0 is the big one.
const TENANTS: i64 = 50;
/// Share of all rows that belongs to tenant 0, in percent.
const BIG_TENANT_PERCENT: i64 = 30;
/// Rows inserted after the rollup (at most; 2% of the rows for small runs).
const TAIL_ROWS: usize = 20_000;
const PAGE_LIMIT: usize = 100;

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("valid time")
}

/// The seeded span: three calendar months.
fn span() -> (DateTime<Utc>, DateTime<Utc>) {
    (utc(2026, 8, 1, 0, 0), utc(2026, 11, 1, 0, 0))
}

/// A database of its own (`xjp_bench_<uuid>`), dropped with this guard, error or panic.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    rows: usize,
    tail: usize,
    iters: usize,
    warm_up: usize,
    /// Pages walked from each deep starting point.
    walk: usize,
}

fn main() -> anyhow::Result<()> {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let sizes = if bench_mode {
        let rows = env_usize("XJP_BENCH_ROWS", 1_000_000)?.max(1_000);
        let iters = env_usize("XJP_BENCH_ITERS", 200)?.max(1);
        Sizes { rows, tail: TAIL_ROWS.min(rows / 50), iters, warm_up: 20, walk: 20 }
    } else {
        Sizes { rows: 20_000, tail: 400, iters: 10, warm_up: 2, walk: 2 }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let db = BenchDb::create().await?;
        println!(
            "billing_queries bench: {} rows ({} after the rollup), {} samples per measurement (database {})",
            sizes.rows, sizes.tail, sizes.iters, db.name
        );
        let pool = xjp_gateway::db::connect_lazy(&db.url, 4)?;
        let result = run(&pool, sizes).await;
        pool.close().await;
        let (report, all_pass) = result?;
        println!("\n{report}");
        if !all_pass {
            println!("some targets were missed (see MISS above)");
        }
        anyhow::Ok(())
    })
}

async fn run(pool: &PgPool, sizes: Sizes) -> anyhow::Result<(String, bool)> {
    let seeded = seed(pool, sizes).await?;
    let big = seeded.big_tenant;
    let mut table = Table::default();

    // 1. Transactions pages.
    let base = format!("tenant_id={big}&limit={PAGE_LIMIT}");
    let model = "claude-sonnet-4-5";
    let (wk_start, wk_end) = ("2026-09-07T00:00:00Z", "2026-09-14T00:00:00Z");
    let cases: [(&str, String); 3] = [
        ("", base.clone()),
        (" model=", format!("{base}&model={model}")),
        (" start/end (1 week)", format!("{base}&start={wk_start}&end={wk_end}")),
    ];
    for (label, query) in &cases {
        let samples = time_first_page(pool, query, sizes).await?;
        table.add(format!("page{label}: first page"), samples, PAGE_TARGET);
        let samples = time_deep_walks(pool, query, sizes).await?;
        let walk = sizes.walk;
        table.add(format!("page{label}: cursor, walks of {walk} pages from deep points"), samples, PAGE_TARGET);
    }

    // 2. Summaries.
    let month = (utc(2026, 10, 1, 0, 0), utc(2026, 11, 1, 0, 0));
    let edges = (utc(2026, 9, 14, 9, 30), utc(2026, 10, 31, 17, 45));
    for (label, (start, end)) in
        [("summary: October (rollups + tail)", month), ("summary: partial days at both edges", edges)]
    {
        check_summary(pool, big, start, end).await?;
        let samples = time_summary(pool, big, start, end, sizes).await?;
        table.add(label.to_string(), samples, SUMMARY_TARGET);
    }

    let all_pass = table.all_pass();
    Ok((table.render(&seeded), all_pass))
}

struct Seeded {
    big_tenant: Uuid,
    big_rows: i64,
    seed_time: Duration,
    rollup_time: Duration,
}

/// Models: name, provider, upstream model, API format, then nano-USD per token for input,
/// output, cache read, cache write (5 min), and whether output includes reasoning.
const MODELS: &str = r#"
    (0, 'gpt-4o-mini', 'openai', 'gpt-4o-mini-2024-07-18', 'openai-chat', 150, 600, 75, 0, false),
    (1, 'gpt-4o', 'openai', 'gpt-4o-2024-11-20', 'openai-chat', 2500, 10000, 1250, 0, false),
    (2, 'claude-sonnet-4-5', 'anthropic', 'claude-sonnet-4-5-20250929', 'anthropic-messages', 3000, 15000, 300, 3750, false),
    (3, 'gemini-2.5-flash', 'gemini', 'gemini-2.5-flash', 'gemini-generate', 300, 2500, 30, 0, false),
    (4, 'o3-mini', 'openai', 'o3-mini-2025-01-31', 'openai-chat', 1100, 4400, 550, 0, true),
    (5, 'claude-haiku-4-5', 'anthropic', 'claude-haiku-4-5-20251001', 'anthropic-messages', 1000, 5000, 100, 1250, false),
    (6, 'gemini-2.5-pro', 'gemini', 'gemini-2.5-pro', 'gemini-generate', 1250, 10000, 125, 0, true),
    (7, 'or-sonnet', 'openrouter', 'anthropic/claude-sonnet-4.5', 'openai-chat', 3000, 15000, 300, 3750, false)
"#;

/// Rows `$1..=$2` of `$3`, spread evenly over `[$4, $5)`. Every value derives from the row
/// number (`hashint8extended`), so a run is reproducible and the tail continues the body.
fn seed_sql() -> String {
    format!(
        r#"
WITH models (m, name, provider, upstream, api_format, p_in, p_out, p_cr, p_cw, reasoning) AS (VALUES {MODELS}),
priced AS (
    SELECT *, 'p_' || substr(md5(name || p_in || p_out), 1, 16) AS price_version,
           jsonb_build_object('rates', jsonb_build_object(
               'input', p_in::numeric * 1000000000, 'output', p_out::numeric * 1000000000,
               'cache_read', p_cr::numeric * 1000000000, 'cache_write_5m', p_cw::numeric * 1000000000,
               'cache_write_1h', p_cw::numeric * 1600000000, 'reasoning', NULL, 'unit', 'atto_usd_per_token'),
               'long_context', NULL, 'fees', '{{}}'::jsonb) AS snapshot
    FROM models
),
g AS (
    SELECT i,
           $4::timestamptz + ((i - 1) * (extract(epoch FROM $5::timestamptz - $4::timestamptz) / $3)
                              + abs(hashint8extended(i, 9)) % 1000 / 1000.0) * interval '1 second' AS created_at,
           CASE WHEN abs(hashint8extended(i, 1)) % 100 < {BIG_TENANT_PERCENT} THEN 0
                ELSE 1 + abs(hashint8extended(i, 2)) % ({TENANTS} - 1) END AS t,
           abs(hashint8extended(i, 3)) AS h3, abs(hashint8extended(i, 4)) AS h4,
           abs(hashint8extended(i, 5)) AS h5, abs(hashint8extended(i, 6)) AS h6,
           abs(hashint8extended(i, 7)) AS h7, abs(hashint8extended(i, 8)) AS h8
    FROM generate_series($1::bigint, $2::bigint) AS i
),
shaped AS (
    SELECT g.*,
           CASE WHEN t = 0 THEN 8 ELSE 1 + t % 4 END AS nkeys,
           CASE WHEN t = 0 THEN 6 ELSE 1 + t % 3 END AS nmodels,
           CASE WHEN h5 % 1000 < 950 THEN 'ok' WHEN h5 % 1000 < 970 THEN 'upstream_error'
                WHEN h5 % 1000 < 985 THEN 'client_disconnected' WHEN h5 % 1000 < 995 THEN 'interrupted'
                ELSE 'no_usage' END AS status
    FROM g
),
usage AS (
    SELECT s.*, p.*,
           md5('xjp-bench-key-' || t || '-' || h4 % nkeys)::uuid AS api_key_id,
           CASE WHEN status IN ('upstream_error', 'no_usage') THEN 0
                ELSE 20 + (h6 % 3000) * (h6 % 3000) / 1500 * (CASE WHEN h6 % 100 = 0 THEN 20 ELSE 1 END) END AS iu,
           CASE WHEN status IN ('upstream_error', 'no_usage') THEN 0 ELSE 10 + h7 % 1200 END AS o,
           CASE WHEN status IN ('upstream_error', 'no_usage') OR h8 % 10 >= 3 THEN 0 ELSE h8 % 20000 END AS cr,
           CASE WHEN p.p_cw = 0 OR h8 % 10 <> 3 OR status IN ('upstream_error', 'no_usage') THEN 0
                ELSE 500 + h8 % 4000 END AS cw
    FROM shaped s JOIN priced p ON p.m = (s.t + s.h3 % s.nmodels) % 8
),
ins AS (
    INSERT INTO billing_transactions (request_id, client_request_id, tenant_id, api_key_id, provider,
        model_requested, model_served, upstream_model, api_format, stream, status, error_class, error_message,
        http_status, input_uncached_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
        output_tokens, reasoning_tokens, fees, cost_nano, provider_cost_nano, price_version, price_snapshot,
        estimated, needs_review, latency_ms, created_at)
    SELECT md5('xjp-bench-req-' || i)::uuid::text,
           CASE WHEN h7 % 5 = 0 THEN 'idem-' || i END,
           md5('xjp-bench-tenant-' || t)::uuid, api_key_id, provider,
           name, CASE WHEN status <> 'upstream_error' THEN upstream END, upstream, api_format,
           h3 % 2 = 0, status,
           CASE WHEN status = 'upstream_error' THEN 'upstream_status' END,
           CASE WHEN status = 'upstream_error' THEN 'upstream answered 502 Bad Gateway' END,
           CASE WHEN status = 'upstream_error' THEN 502 ELSE 200 END,
           iu, cr, cw, 0, o, CASE WHEN reasoning THEN o * 6 / 10 ELSE 0 END, '{{}}'::jsonb,
           iu * p_in + cr * p_cr + cw * p_cw + o * p_out,
           CASE WHEN provider = 'openrouter' THEN iu * p_in + cr * p_cr + cw * p_cw + o * p_out END,
           price_version, snapshot,
           status = 'interrupted', status = 'no_usage',
           (200 + h6 % 20000)::int, created_at
    FROM usage
    RETURNING tenant_id, request_id, created_at
)
INSERT INTO billing_request_ids (tenant_id, request_id, created_at)
SELECT tenant_id, request_id, created_at FROM ins
"#
    )
}

async fn seed(pool: &PgPool, sizes: Sizes) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    xjp_gateway::db::migrate(pool).await?;
    let (from, to) = span();
    // Monthly partitions first, so no row lands in the default partition.
    sqlx::query(
        "SELECT xjp_ensure_month_partition(d::date) \
         FROM generate_series($1::timestamptz AT TIME ZONE 'UTC', $2::timestamptz AT TIME ZONE 'UTC' - interval '1 day', \
                              interval '1 month') AS d",
    )
    .bind(from)
    .bind(to)
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO tenants (id, name) SELECT md5('xjp-bench-tenant-' || t)::uuid, 'bench tenant ' || t \
         FROM generate_series(0, {TENANTS} - 1) AS t"
    ))
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO api_keys (id, tenant_id, digest, prefix, name) \
         SELECT md5('xjp-bench-key-' || t || '-' || k)::uuid, md5('xjp-bench-tenant-' || t)::uuid, \
                sha256(convert_to('xjp-bench-key-' || t || '-' || k, 'UTF8')), \
                'xjp_' || substr(md5('xjp-bench-key-' || t || '-' || k), 1, 8), 'key ' || k \
         FROM generate_series(0, {TENANTS} - 1) AS t, generate_series(0, 7) AS k \
         WHERE k < CASE WHEN t = 0 THEN 8 ELSE 1 + t % 4 END"
    ))
    .execute(pool)
    .await?;
    let big_tenant: Uuid = sqlx::query_scalar("SELECT md5('xjp-bench-tenant-0')::uuid").fetch_one(pool).await?;

    let sql = seed_sql();
    let insert = |lo: usize, hi: usize| {
        sqlx::query(&sql).bind(lo as i64).bind(hi as i64).bind(sizes.rows as i64).bind(from).bind(to).execute(pool)
    };
    let body = sizes.rows - sizes.tail;
    let t = Instant::now();
    insert(1, body).await?;
    println!("seeded {body} rows in {:.1} s", t.elapsed().as_secs_f64());
    sqlx::query("ANALYZE").execute(pool).await?;

    let t = Instant::now();
    xjp_gateway::ledger::rollup::rollup_all(pool).await?;
    let rollup_time = t.elapsed();
    println!("rolled up {body} rows in {:.1} s", rollup_time.as_secs_f64());

    let t = Instant::now();
    insert(body + 1, sizes.rows).await?;
    println!("seeded the {}-row tail in {:.1} s", sizes.tail, t.elapsed().as_secs_f64());
    let t = Instant::now();
    sqlx::query("VACUUM (ANALYZE)").execute(pool).await?;
    println!("VACUUM (ANALYZE) in {:.1} s", t.elapsed().as_secs_f64());

    let (total, in_default, not_rolled, big_rows, ids): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM billing_transactions), (SELECT count(*) FROM billing_transactions_default), \
                (SELECT count(*) FROM billing_transactions WHERE NOT rolled_up), \
                (SELECT count(*) FROM billing_transactions WHERE tenant_id = $1), \
                (SELECT count(*) FROM billing_request_ids)",
    )
    .bind(big_tenant)
    .fetch_one(pool)
    .await?;
    ensure!(total == sizes.rows as i64 && ids == total, "seeded {total} rows and {ids} request ids");
    ensure!(in_default == 0, "{in_default} rows landed in the default partition");
    ensure!(not_rolled == sizes.tail as i64, "{not_rolled} rows not rolled up, expected {}", sizes.tail);
    Ok(Seeded { big_tenant, big_rows, seed_time: started.elapsed(), rollup_time })
}

/// Timed `page` calls for one query (admin scope, as `GET /internal/billing/transactions`).
async fn timed_page(pool: &PgPool, query: &str) -> anyhow::Result<(Duration, Value)> {
    let params = Params::parse(Some(query));
    let t = Instant::now();
    let v = page(pool, &params, Scope::Admin).await.map_err(|e| anyhow::anyhow!("page({query}): {e}"))?;
    Ok((t.elapsed(), v))
}

async fn time_first_page(pool: &PgPool, query: &str, sizes: Sizes) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(sizes.iters);
    for i in 0..sizes.warm_up + sizes.iters {
        let (d, v) = timed_page(pool, query).await?;
        ensure!(v["data"].as_array().is_some_and(|a| a.len() == PAGE_LIMIT), "a full first page for {query}");
        if i >= sizes.warm_up {
            samples.push(d);
        }
    }
    Ok(samples)
}

/// `iters / walk` walks of `walk` pages each; walk `w` starts at a cursor spread from 5% to
/// 95% of the way into the result (as far as a whole walk still fits), every page timed.
async fn time_deep_walks(pool: &PgPool, query: &str, sizes: Sizes) -> anyhow::Result<Vec<Duration>> {
    let step = (sizes.walk * PAGE_LIMIT).min(1000);
    let walks = sizes.iters.div_ceil(sizes.walk);
    // Starting points: page through once with the largest page size, keeping each cursor
    // (`starts[j]` is the position after `j * step` rows).
    let mut starts: Vec<Option<String>> = vec![None];
    loop {
        let q = match starts.last().expect("non-empty") {
            None => format!("{query}&limit={step}"),
            Some(c) => format!("{query}&limit={step}&cursor={c}"),
        };
        let (_, v) = timed_page(pool, &q).await?;
        match v["next_cursor"].as_str() {
            Some(c) => starts.push(Some(c.to_string())),
            None => break,
        }
    }
    // After `starts[j]` at least `(starts.len() - 1 - j) * step + 1` rows remain; a walk
    // needs more than `walk * PAGE_LIMIT` of them (every page it times has a next page).
    let fits = (starts.len() - 1).checked_sub((sizes.walk * PAGE_LIMIT).div_ceil(step));
    let last = fits.with_context(|| format!("the result of {query} is too short for a walk"))?;
    let mut samples = Vec::with_capacity(walks * sizes.walk);
    for w in 0..walks {
        let mut cursor = starts[last * (5 + 90 * w / walks) / 100].clone();
        let warm_up = if w == 0 { sizes.warm_up } else { 0 };
        for p in 0..sizes.walk + warm_up {
            let q = match &cursor {
                None => query.to_string(),
                Some(c) => format!("{query}&cursor={c}"),
            };
            let (d, v) = timed_page(pool, &q).await?;
            ensure!(v["data"].as_array().is_some_and(|a| a.len() == PAGE_LIMIT), "a full page deep in {query}");
            if p >= warm_up {
                samples.push(d);
            }
            cursor = Some(v["next_cursor"].as_str().context("more pages")?.to_string());
        }
    }
    Ok(samples)
}

async fn time_summary(
    pool: &PgPool,
    tenant: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    sizes: Sizes,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(sizes.iters);
    for i in 0..sizes.warm_up + sizes.iters {
        let t = Instant::now();
        let v = summarize(pool, tenant, start, end).await?;
        let d = t.elapsed();
        ensure!(v["totals"]["requests"].as_i64().is_some_and(|n| n > 0), "a non-empty summary");
        if i >= sizes.warm_up {
            samples.push(d);
        }
    }
    Ok(samples)
}

/// The summary equals a plain aggregate over the raw rows (both paths are exercised).
async fn check_summary(pool: &PgPool, tenant: Uuid, start: DateTime<Utc>, end: DateTime<Utc>) -> anyhow::Result<()> {
    let v = summarize(pool, tenant, start, end).await?;
    let (requests, unrolled, cost): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE NOT rolled_up), COALESCE(sum(cost_nano), 0)::BIGINT \
         FROM billing_transactions WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3",
    )
    .bind(tenant)
    .bind(start)
    .bind(end)
    .fetch_one(pool)
    .await?;
    ensure!(unrolled > 0, "the range {start}..{end} includes not-rolled-up rows");
    ensure!(v["totals"]["requests"].as_i64() == Some(requests), "summary requests {} != {requests}", v["totals"]);
    ensure!(v["totals"]["cost"]["nano"].as_i64() == Some(cost), "summary cost {} != {cost}", v["totals"]["cost"]);
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[derive(Default)]
struct Table {
    rows: Vec<(String, usize, Duration, Duration, Duration, Duration)>,
}

impl Table {
    fn add(&mut self, label: String, mut samples: Vec<Duration>, target: Duration) {
        samples.sort();
        let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
        let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
        println!("{label}: p50 {} p99 {} mean {}", ms(p50), ms(p99), ms(mean));
        self.rows.push((label, samples.len(), p50, p99, mean, target));
    }

    fn all_pass(&self) -> bool {
        self.rows.iter().all(|r| r.2 <= r.5)
    }

    fn render(&self, s: &Seeded) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seeded, rolled up and vacuumed in {:.0} s (rollup {:.0} s); big tenant {} rows\n",
            s.seed_time.as_secs_f64(),
            s.rollup_time.as_secs_f64(),
            s.big_rows
        );
        let _ = writeln!(out, "| measurement | n | p50 | p99 | mean | target (p50) | |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for (label, n, p50, p99, mean, target) in &self.rows {
            let verdict = if p50 <= target { "PASS" } else { "MISS" };
            let _ = writeln!(
                out,
                "| {label} | {n} | {} | {} | {} | <= {} ms | {verdict} |",
                ms(*p50),
                ms(*p99),
                ms(*mean),
                target.as_millis()
            );
        }
        out
    }
}
