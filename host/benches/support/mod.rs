//! Shared by the benchmarks: the Postgres admin URL, environment knobs, a private database.
#![allow(dead_code)]

pub mod ledger_run;

use anyhow::Context;
use std::time::SystemTime;
use uuid::Uuid;
use xjp_gateway::ledger::TransactionRow;

pub fn pg_admin_url() -> String {
    std::env::var("XJP_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.replace('_', "").parse().with_context(|| format!("{name}={v} is not a count")),
        Err(_) => Ok(default),
    }
}

pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A database of the benchmark's own, dropped at the end (kept with `XJP_BENCH_KEEP_DB=1`).
pub struct BenchDb {
    pub name: String,
    pub url: String,
    keep: bool,
}

impl BenchDb {
    /// Creates `xjp_bench_<uuid>` on the shared Postgres.
    pub async fn create() -> anyhow::Result<BenchDb> {
        let name = format!("xjp_bench_{}", Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&pg_admin_url()).await.context("Postgres reachable")?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
        admin.close().await;
        let base = pg_admin_url();
        let url = format!("{}/{name}", base.rsplit_once('/').context("admin URL names a database")?.0);
        Ok(BenchDb { name, url, keep: env_flag("XJP_BENCH_KEEP_DB") })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("keeping database {} (XJP_BENCH_KEEP_DB)", self.name);
            return;
        }
        // Its own thread and runtime: works inside or outside the benchmark's runtime.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let admin = sqlx::PgPool::connect(&pg_admin_url()).await.ok()?;
                let q = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(&q).execute(&admin).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop database {}", self.name);
        }
    }
}

/// A realistic row: a served gpt-4o-mini chat request with a price snapshot.
pub fn sample_row(tenant: Uuid, key: Uuid, i: usize, cost_nano: i64) -> TransactionRow {
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
        cost_nano,
        provider_cost_nano: None,
        price_version: None,
        price_snapshot: Some(serde_json::json!({ "rates": rates, "long_context": null, "fees": {} })),
        estimated: false,
        needs_review: false,
        latency_ms: Some(850),
        created_at_us: created.as_micros() as i64,
    }
}
