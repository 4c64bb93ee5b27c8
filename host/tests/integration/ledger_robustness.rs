//! Nothing a client sends can stop or skew the ledger: rows Postgres refuses are set aside
//! (a dead letter for an operator, a placeholder that keeps the money recorded) while the
//! rest of their batch lands — live, in a spool replay after an outage and at start-up;
//! rows of any size fit a spool frame; the rollup takes any row; the gauges return to 0.

use crate::common;

use common::harness::{TestDb, TestGateway};
use common::http::{post, send};
use common::money::CHAT;
use common::scenarios::mock;
use common::services::PrivatePostgres;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;
use xjp_gateway::ledger::bounds::{MAX_MESSAGE_BYTES, MAX_NAME_BYTES};
use xjp_gateway::ledger::dead_letter::{PLACEHOLDER_CLASS, PLACEHOLDER_TEXT};
use xjp_gateway::ledger::recount::Debit;
use xjp_gateway::ledger::{Ledger, LedgerConfig, PendingDebits, TransactionRow};

/// A migrated database with a tenant and a key.
pub(crate) async fn database(url: &str) -> (PgPool, Uuid, Uuid) {
    let pool = xjp_gateway::db::connect_lazy(url, 4).unwrap();
    xjp_gateway::db::migrate(&pool).await.unwrap();
    let tenant = xjp_gateway::db::tenants::create(&pool, "ledger robustness").await.unwrap().id;
    let (key, _) = xjp_gateway::db::keys::create(&pool, tenant, Some("k")).await.unwrap();
    (pool, tenant, key.id)
}

async fn start_ledger(pool: &PgPool, dir: &std::path::Path) -> Ledger {
    let mut config = LedgerConfig::new(dir.to_path_buf());
    // One batch for everything a test submits at once; quick retries.
    config.batch_window = Duration::from_millis(100);
    config.retry_interval = Duration::from_millis(100);
    Ledger::start(pool.clone(), config, Arc::new(PendingDebits::default())).await.unwrap()
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros() as i64
}

pub(crate) fn row(tenant: Uuid, key: Uuid, cost_nano: i64) -> TransactionRow {
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
        stream: false,
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
        fees: json!({}),
        cost_nano,
        provider_cost_nano: None,
        price_version: Some("p_test".into()),
        price_snapshot: Some(json!({"rates": {"input": 150_000_000_000u64}})),
        estimated: false,
        needs_review: false,
        latency_ms: Some(100),
        created_at_us: now_us(),
    }
}

/// Rows Postgres refuses, each for another reason, with the SQLSTATE it answers.
fn refused(tenant: Uuid, key: Uuid) -> Vec<(TransactionRow, &'static str)> {
    let mut nul_model = row(tenant, key, 1_001);
    nul_model.model_requested = "gpt-4o-mini\0evil".into();
    let mut nul_id = row(tenant, key, 1_002);
    nul_id.request_id = format!("id\0{}", Uuid::now_v7());
    let mut nul_fee = row(tenant, key, 1_003);
    nul_fee.fees = json!({ "web\u{0}search": 1 });
    let mut out_of_time = row(tenant, key, 1_004);
    out_of_time.created_at_us = i64::MIN;
    vec![(nul_model, "22021"), (nul_id, "22021"), (nul_fee, "22P05"), (out_of_time, "22008")]
}

/// A row of 3 MB strings everywhere a string goes: it lands, bounded.
fn huge(tenant: Uuid, key: Uuid) -> TransactionRow {
    let s = || "x".repeat(3 << 20);
    let mut r = row(tenant, key, 2_000);
    r.model_requested = "é".repeat(3 << 19);
    r.model_served = Some(s());
    r.provider = Some(s());
    r.status = "upstream_error".into();
    r.error_class = Some(s());
    r.error_message = Some(s());
    r.client_request_id = Some(s());
    r.fees = json!({ s(): 1 });
    r.price_snapshot = Some(json!({ "blob": s() }));
    r
}

/// Records rows concurrently (one batch), then settles them: each debit is registered as
/// pending (what the Redis settlement does) and confirmed with its cost.
async fn submit(ledger: &Ledger, rows: &[TransactionRow]) {
    let records = rows.iter().map(|r| ledger.record(r.clone()));
    for done in futures_util::future::join_all(records).await {
        done.unwrap();
    }
    let confirms = rows.iter().map(|r| {
        ledger.pending().add(r.tenant_id, r.cost_nano);
        ledger.confirm(r.tenant_id, &r.request_id, Some(Debit { cost: r.cost_nano, epoch: None }))
    });
    futures_util::future::join_all(confirms).await;
}

/// (transaction rows, their cost (clamped to BIGINT), dead letters) of a tenant.
async fn counts(db: &PgPool, tenant: Uuid) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM billing_transactions WHERE tenant_id = $1), \
                (SELECT xjp_saturate(COALESCE(sum(cost_nano), 0)) FROM billing_transactions WHERE tenant_id = $1), \
                (SELECT count(*) FROM ledger_dead_letters WHERE tenant_id = $1)",
    )
    .bind(tenant)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn wait_counts(db: &PgPool, tenant: Uuid, rows: i64, dead: i64, within: Duration) -> (i64, i64, i64) {
    let start = Instant::now();
    loop {
        let c = counts(db, tenant).await;
        if c.0 >= rows && c.2 >= dead {
            return c;
        }
        assert!(start.elapsed() < within, "{c:?}: expected {rows} rows and {dead} dead letters within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of a metric over its label sets in this process's Prometheus output.
pub(crate) fn metric(name: &str) -> f64 {
    parse_metric(&xjp_gateway::ops::install_metrics().render(), name)
}

fn parse_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the ledger gauges read 0 (nothing queued, every spooled row in Postgres).
async fn wait_gauges_zero(read: impl Fn() -> (f64, f64)) {
    let start = Instant::now();
    loop {
        let (queue, oldest) = read();
        if queue == 0.0 && oldest == 0.0 {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "gauges stay at queue {queue}, oldest {oldest}s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ledger_gauges() -> (f64, f64) {
    (metric("xjp_ledger_queue_depth"), metric("xjp_ledger_oldest_unrecorded_seconds"))
}

/// Every refused row is a dead letter with its SQLSTATE and a placeholder carrying its cost;
/// its debit is no longer pending.
async fn assert_set_aside(db: &PgPool, refused: &[(TransactionRow, &str)]) {
    for (r, code) in refused {
        let id = r.request_id.replace('\0', "\u{FFFD}");
        let (sqlstate, placeholder, stored, error): (Option<String>, bool, serde_json::Value, String) = sqlx::query_as(
            "SELECT sqlstate, placeholder, row, error FROM ledger_dead_letters WHERE tenant_id = $1 AND request_id = $2",
        )
        .bind(r.tenant_id)
        .bind(&id)
        .fetch_one(db)
        .await
        .unwrap_or_else(|e| panic!("no dead letter for {id:?}: {e}"));
        assert_eq!(sqlstate.as_deref(), Some(*code), "{id:?}: {error}");
        assert!(placeholder);
        assert_eq!(stored["cost_nano"], r.cost_nano);
        assert_eq!(stored["model_requested"], r.model_requested.replace('\0', "\u{FFFD}"));
        let (model, cost, review, class): (String, i64, bool, Option<String>) = sqlx::query_as(
            "SELECT model_requested, cost_nano, needs_review, error_class FROM billing_transactions \
             WHERE tenant_id = $1 AND request_id = $2",
        )
        .bind(r.tenant_id)
        .bind(&id)
        .fetch_one(db)
        .await
        .unwrap();
        assert_eq!(
            (model.as_str(), cost, review, class.as_deref()),
            (PLACEHOLDER_TEXT, r.cost_nano, true, Some(PLACEHOLDER_CLASS))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rows_are_set_aside_and_the_rest_of_the_batch_lands() {
    xjp_gateway::ops::install_metrics();
    let db = TestDb::create().await;
    let (pool, tenant, key) = database(&db.url).await;
    let spool = tempfile::tempdir().unwrap();
    let ledger = start_ledger(&pool, spool.path()).await;

    let bad = refused(tenant, key);
    let mut rows: Vec<TransactionRow> = (0..10).map(|i| row(tenant, key, 100 + i)).collect();
    rows.push(huge(tenant, key));
    for (i, (r, _)) in bad.iter().enumerate() {
        rows.insert(i * 3 + 1, r.clone());
    }
    let total: i64 = rows.iter().map(|r| r.cost_nano).sum();
    submit(&ledger, &rows).await;

    // 11 good rows + 4 placeholders; every debit recorded.
    let (n, cost, dead) = wait_counts(&pool, tenant, 15, 4, Duration::from_secs(10)).await;
    assert_eq!((n, cost, dead), (15, total, 4));
    assert_set_aside(&pool, &bad).await;
    assert_eq!(ledger.pending().get(tenant), 0, "no debit stays pending");
    assert_eq!(metric("xjp_ledger_dead_letters_total"), 4.0);

    // The 3 MB row landed, bounded; its unreadable JSON fields dropped and flagged.
    let (model, message, client_id, fees, review): (String, String, String, serde_json::Value, bool) = sqlx::query_as(
        "SELECT model_requested, error_message, client_request_id, fees, needs_review FROM billing_transactions \
             WHERE tenant_id = $1 AND cost_nano = 2000",
    )
    .bind(tenant)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(model.len() <= MAX_NAME_BYTES && model.starts_with("éé"), "{}", model.len());
    assert!(message.len() <= MAX_MESSAGE_BYTES && message.ends_with(&format!("(truncated from {} bytes)", 3 << 20)));
    assert!(client_id.len() <= 256);
    assert_eq!((fees, review), (json!({}), true));

    // The writer keeps flowing.
    let later: Vec<TransactionRow> = (0..5).map(|i| row(tenant, key, 10 + i)).collect();
    submit(&ledger, &later).await;
    wait_counts(&pool, tenant, 20, 4, Duration::from_secs(10)).await;
    wait_gauges_zero(ledger_gauges).await;
    let balance = xjp_gateway::ledger::lookup::balance(&pool, tenant).await.unwrap();
    assert_eq!(balance.debits_nano, total + later.iter().map(|r| r.cost_nano).sum::<i64>());

    // The spool still holds the refused rows; replaying it at start-up adds nothing.
    ledger.shutdown().await;
    let again = start_ledger(&pool, spool.path()).await;
    again.shutdown().await;
    assert_eq!(counts(&pool, tenant).await, (20, balance.debits_nano, 4));
    assert_eq!(metric("xjp_ledger_dead_letters_total"), 4.0);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rows_in_a_spool_replay_after_an_outage_and_at_start_up() {
    xjp_gateway::ops::install_metrics();
    let pg = PrivatePostgres::start();
    let (pool, tenant, key) = database(&pg.url()).await;
    let spool = tempfile::tempdir().unwrap();
    let ledger = start_ledger(&pool, spool.path()).await;

    // Postgres stops: rows are acknowledged from the spool, and the ledger says it is stuck.
    pg.stop();
    let bad = refused(tenant, key);
    let mut rows: Vec<TransactionRow> = (0..8).map(|i| row(tenant, key, 100 + i)).collect();
    rows.extend(bad.iter().map(|(r, _)| r.clone()));
    submit(&ledger, &rows).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stuck = metric("xjp_ledger_oldest_unrecorded_seconds");
    assert!(stuck >= 1.0, "oldest unrecorded row: {stuck}s");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(metric("xjp_ledger_oldest_unrecorded_seconds") > stuck, "the age grows while Postgres is down");

    // It returns: the replay lands the good rows and sets the refused ones aside.
    pg.resume();
    let total: i64 = rows.iter().map(|r| r.cost_nano).sum();
    let (n, cost, dead) = wait_counts(&pool, tenant, 12, 4, Duration::from_secs(20)).await;
    assert_eq!((n, cost, dead), (12, total, 4));
    assert_set_aside(&pool, &bad).await;
    assert_eq!(ledger.pending().get(tenant), 0);
    wait_gauges_zero(ledger_gauges).await;
    assert_eq!(metric("xjp_ledger_dead_letters_total"), 4.0);

    // Down again, and the gateway stops before it returns: the next start replays the spool.
    pg.stop();
    let mut odd = row(tenant, key, 3_000);
    odd.upstream_model = Some("model\0with a NUL".into());
    let more = vec![row(tenant, key, 3_001), odd.clone(), row(tenant, key, 3_002)];
    submit(&ledger, &more).await;
    ledger.shutdown().await;
    pg.resume();
    let restarted = start_ledger(&pool, spool.path()).await;
    let total = total + 9_003;
    let (n, cost, dead) = wait_counts(&pool, tenant, 15, 5, Duration::from_secs(20)).await;
    assert_eq!((n, cost, dead), (15, total, 5));
    // A NUL in a name the ledger set is replaced in the placeholder too.
    let upstream: String =
        sqlx::query_scalar("SELECT upstream_model FROM billing_transactions WHERE tenant_id = $1 AND request_id = $2")
            .bind(tenant)
            .bind(&odd.request_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(upstream, PLACEHOLDER_TEXT);
    wait_gauges_zero(ledger_gauges).await;
    restarted.shutdown().await;
    pool.close().await;
}

/// 3 KB of hex: no compression brings it under the B-tree's entry limit.
fn long_model(seed: &str) -> String {
    (0..48).map(|i| hex::encode(Sha256::digest(format!("{seed}{i}")))).collect::<String>()[..3000].to_string()
}

#[tokio::test]
async fn the_rollup_takes_any_row() {
    xjp_gateway::ops::install_metrics();
    let db = TestDb::create().await;
    let (pool, tenant, key) = database(&db.url).await;
    // Written around the ledger's bounds, as an older version or a hand-made row may be.
    let long = long_model("a");
    let mut rows = Vec::new();
    for _ in 0..2 {
        let mut r = row(tenant, key, 5);
        r.model_requested = long.clone();
        rows.push(r);
        let mut r = row(tenant, key, i64::MAX / 2);
        r.model_requested = "overflow".into();
        r.output_tokens = i64::MAX;
        rows.push(r);
    }
    xjp_gateway::ledger::insert::insert_batch(&pool, &rows).await.unwrap();
    // And through the ledger, which bounds the name first.
    let spool = tempfile::tempdir().unwrap();
    let ledger = start_ledger(&pool, spool.path()).await;
    let mut bounded = row(tenant, key, 7);
    bounded.model_requested = long_model("b");
    submit(&ledger, std::slice::from_ref(&bounded)).await;
    wait_counts(&pool, tenant, 5, 0, Duration::from_secs(10)).await;

    ledger.rollup().await.unwrap();
    // The sums saturate when the summary row already exists too.
    let mut r = row(tenant, key, i64::MAX);
    r.model_requested = "overflow".into();
    r.output_tokens = i64::MAX;
    xjp_gateway::ledger::insert::insert_batch(&pool, &[r]).await.unwrap();
    ledger.rollup().await.unwrap();

    let summary: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT model, requests, output_tokens, cost_nano FROM tenant_billing_summary WHERE tenant_id = $1 ORDER BY model",
    )
    .bind(tenant)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(summary.len(), 3, "{summary:?}");
    let overflow = summary.iter().find(|s| s.0 == "overflow").unwrap();
    assert_eq!((overflow.1, overflow.2, overflow.3), (3, i64::MAX, i64::MAX));
    let capped = summary.iter().find(|s| s.0.starts_with(&long[..200])).unwrap();
    assert!(capped.0.len() <= 1024 && capped.0.contains('…'));
    assert_eq!((capped.1, capped.3), (2, 10));
    let through_ledger = summary.iter().find(|s| s.0.starts_with(&bounded.model_requested[..100])).unwrap();
    assert!(through_ledger.0.len() <= MAX_NAME_BYTES);
    assert_eq!(metric("xjp_rollup_errors_total"), 0.0);
    let unrolled: i64 = sqlx::query_scalar("SELECT count(*) FROM billing_transactions WHERE NOT rolled_up")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unrolled, 0);
    ledger.shutdown().await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_stop_the_ledger_through_the_gateway() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let chat = format!("{}/v1/chat/completions", gw.url);
    // A model name with a NUL and one of 3 KB are refused at the edge (400, no row): the
    // ledger-level defences behind it are tested directly above.
    let nul = post(&chat, &gw.key, r#"{"model":"gpt-4o-mini\u0000x","messages":[]}"#).await;
    assert_eq!(nul.status, 400);
    let long = long_model("gateway");
    let body = format!(r#"{{"model":"{long}","messages":[]}}"#);
    assert_eq!(post(&chat, &gw.key, &body).await.status, 400);
    for _ in 0..3 {
        assert_eq!(post(&chat, &gw.key, &CHAT).await.status, 200);
    }
    let (rows, _, dead) = wait_counts(&gw.gw.db, gw.tenant, 3, 0, Duration::from_secs(10)).await;
    assert_eq!((rows, dead), (3, 0));

    // The gateway's own rollup (every 500 ms) folds every row.
    let start = Instant::now();
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM billing_transactions WHERE NOT rolled_up")
        .fetch_one(&gw.gw.db)
        .await
        .unwrap()
        > 0
    {
        assert!(start.elapsed() < Duration::from_secs(10), "rows stay un-rolled-up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // /metrics: no dead letter, no rollup error, gauges back at 0.
    let text = send("GET", &format!("{}/metrics", gw.url), &[], "").await.text();
    assert_eq!(parse_metric(&text, "xjp_ledger_dead_letters_total"), 0.0);
    assert_eq!(parse_metric(&text, "xjp_rollup_errors_total"), 0.0);
    assert!(text.contains("xjp_ledger_oldest_unrecorded_seconds") && text.contains("xjp_ledger_queue_depth"));
    wait_gauges_zero(ledger_gauges).await;
}
