//! Postgres: the pool, embedded migrations, and the tenant / API-key store; the Redis target
//! (both data stores, with TLS when their URLs ask for it).

pub mod credits;
pub mod keys;
pub mod redis_conn;
pub mod tenants;

pub use redis_conn::{RedisConn, RedisSetupError, RedisTarget};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Migrations embedded at build time from `migrations/` (no database needed to build).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects (lazily: the gateway starts and reports not-ready while Postgres is down).
/// TLS as the URL says, libpq's way: `sslmode=require` (encrypted, any certificate),
/// `verify-ca` / `verify-full` (the chain, and for verify-full the host name, checked against
/// `sslrootcert=FILE`, or the bundled Mozilla roots without it), `sslcert` / `sslkey` for a
/// client certificate; rustls, no OpenSSL.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("xjp-gateway");
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
