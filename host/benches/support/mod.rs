//! Shared by the benchmarks: the Postgres admin URL, environment knobs, a private database.
#![allow(dead_code)]

use anyhow::Context;
use uuid::Uuid;

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
