//! `xjp-gateway seed-demo`: an idempotent demo tenant and API key (for `cargo xtask run`).

use crate::db;
use std::path::PathBuf;

/// Arguments of `seed-demo`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// The config file (for the database settings).
    #[arg(long, env = "XJP_CONFIG", default_value = "config/gateway.toml")]
    pub config: PathBuf,
    /// The demo key's plaintext (`XJP_...`); a random one when absent.
    #[arg(long, env = "XJP_DEMO_KEY")]
    pub key: Option<String>,
    /// The demo tenant's prepaid balance (credited once, idempotently).
    #[arg(long, default_value = "10")]
    pub balance_usd: String,
}

/// Migrates, then ensures tenant `demo` and the key exist; prints the key.
pub async fn run(args: &SeedArgs) -> Result<(), String> {
    let config = crate::config::load_file(&args.config).map_err(|e| e.to_string())?;
    let url = std::env::var(&config.database.url_env).map_err(|_| format!("{} is not set", config.database.url_env))?;
    let pool = db::connect_lazy(&url, 2).map_err(|e| e.to_string())?;
    db::migrate(&pool).await.map_err(|e| e.to_string())?;
    let key = args.key.clone().unwrap_or_else(db::keys::generate);
    if !key.starts_with(db::keys::KEY_PREFIX) {
        return Err(format!("the demo key must start with {}", db::keys::KEY_PREFIX));
    }
    let tenant: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE name = 'demo' ORDER BY created_at LIMIT 1")
            .fetch_optional(&pool)
            .await
            .map_err(|e| e.to_string())?;
    let tenant = match tenant {
        Some(id) => id,
        None => db::tenants::create(&pool, "demo").await.map_err(|e| e.to_string())?.id,
    };
    if db::keys::identify(&pool, &db::keys::digest(&key)).await.map_err(|e| e.to_string())?.is_none() {
        db::keys::create_with_plaintext(&pool, tenant, Some("demo"), &key).await.map_err(|e| e.to_string())?;
    }
    let amount = xjp_money::usd_to_nano(&args.balance_usd)
        .filter(|a| *a > 0)
        .ok_or("--balance-usd must be a positive decimal")?;
    let kind = db::credits::CreditKind::TopUp;
    db::credits::insert(&pool, tenant, "demo-initial-balance", kind, amount, Some("cargo xtask run"))
        .await
        .map_err(|e| e.to_string())?;
    println!("demo tenant: {tenant}");
    println!("demo balance: ${} (credit id demo-initial-balance)", args.balance_usd);
    println!("demo key:    {key}");
    Ok(())
}
