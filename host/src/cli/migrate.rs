//! `xjp-gateway migrate`: apply the embedded migrations (what `serve` does at start-up) as a
//! step of its own — a deploy job before the new version starts — or, with `--dry-run`,
//! only show what is pending.

use crate::db::MIGRATOR;
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::PathBuf;

/// Arguments of `migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The config file (for `[database] url_env`, the variable holding the URL).
    #[arg(long, env = "XJP_CONFIG", default_value = "config/gateway.toml")]
    pub config: PathBuf,
    /// Show the pending migrations and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What the database has against what this binary carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// (version, description) not yet applied, in order.
    pub pending: Vec<(i64, String)>,
    /// Applied, and the same as this binary's.
    pub applied: usize,
    /// Applied with a different checksum: the migration file changed after it ran.
    pub changed: Vec<i64>,
    /// Applied but failed (`success = false`): needs an operator.
    pub failed: Vec<i64>,
    /// Applied by a newer binary (unknown here).
    pub unknown: Vec<i64>,
}

impl MigrationStatus {
    /// Problems that make applying unsafe.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in &self.changed {
            out.push(format!("migration {v} was applied with a different checksum (its file changed since)"));
        }
        for v in &self.failed {
            out.push(format!("migration {v} is recorded as failed (fix it by hand, then delete its row)"));
        }
        for v in &self.unknown {
            out.push(format!("migration {v} is applied but unknown to this binary (a newer version ran here)"));
        }
        out
    }
}

/// Reads `_sqlx_migrations` (absent: nothing applied) without creating anything.
pub async fn status(pool: &PgPool) -> Result<MigrationStatus, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    let rows: Vec<(i64, Vec<u8>, bool)> = if exists {
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let applied: HashMap<i64, (Vec<u8>, bool)> = rows.into_iter().map(|(v, c, s)| (v, (c, s))).collect();
    let mut status = MigrationStatus::default();
    for m in MIGRATOR.iter().filter(|m| !m.migration_type.is_down_migration()) {
        match applied.get(&m.version) {
            None => status.pending.push((m.version, m.description.to_string())),
            Some((_, false)) => status.failed.push(m.version),
            Some((checksum, true)) if checksum.as_slice() != &*m.checksum => status.changed.push(m.version),
            Some(_) => status.applied += 1,
        }
    }
    let mut unknown: Vec<i64> = applied.keys().copied().filter(|v| !MIGRATOR.version_exists(*v)).collect();
    unknown.sort_unstable();
    status.unknown = unknown;
    Ok(status)
}

/// Runs `migrate`; prints what is (or was) pending. Errors end with exit code 1.
pub async fn run(args: &MigrateArgs) -> Result<(), String> {
    let config = crate::config::load_file(&args.config).map_err(|e| e.to_string())?;
    let var = &config.database.url_env;
    let url = std::env::var(var).map_err(|_| format!("{var} is not set (the database URL, [database] url_env)"))?;
    let pool = crate::db::connect_lazy(&url, 1).map_err(|e| format!("database URL in {var}: {e}"))?;
    let before = status(&pool).await.map_err(|e| format!("database: {e}"))?;
    let problems = before.problems();
    if !problems.is_empty() {
        return Err(format!("the database's migrations do not match this binary:\n  - {}", problems.join("\n  - ")));
    }
    if before.pending.is_empty() {
        println!("up to date: {} migrations applied", before.applied);
        return Ok(());
    }
    let verb = if args.dry_run { "pending" } else { "applying" };
    for (version, description) in &before.pending {
        println!("{verb} {version} {description}");
    }
    if args.dry_run {
        println!("{} pending, {} applied (dry run: nothing changed)", before.pending.len(), before.applied);
        return Ok(());
    }
    crate::db::migrate(&pool).await.map_err(|e| format!("migrate: {e}"))?;
    let after = status(&pool).await.map_err(|e| format!("database: {e}"))?;
    println!("applied {}; {} migrations applied", before.pending.len(), after.applied);
    pool.close().await;
    Ok(())
}
