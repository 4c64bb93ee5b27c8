//! Postgres: the pool, embedded migrations, and the tenant / API-key store; the Redis target
//! (both data stores, with TLS when their URLs ask for it).

pub mod credits;
pub mod keys;
pub mod redis_conn;
pub mod tenants;

pub use redis_conn::{RedisConn, RedisSetupError, RedisTarget};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

/// Migrations embedded at build time from `migrations/` (no database needed to build).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects (lazily: the gateway starts and reports not-ready while Postgres is down).
/// TLS as the URL says, libpq's way: `sslmode=require` (encrypted, any certificate),
/// `verify-ca` / `verify-full` (the chain, and for verify-full the host name, checked against
/// `sslrootcert=FILE`, or the bundled Mozilla roots without it), `sslcert` / `sslkey` for a
/// client certificate; rustls, no OpenSSL.
///
/// A connection taken from the pool is pinged only when it sat idle over [`PING_IDLE_OVER`]
/// (sqlx pings every one taken by default): sqlx already pings each one as it goes back, off
/// the caller's path, so a ping when taken only catches a connection dropped while idle
/// (Postgres restarted, a backend terminated), and it cost a round trip before every
/// statement, on a request's path too (a client id's ledger check, a key lookup). Those
/// statements run under [`retry_dropped`], which also covers a connection dropped within
/// that second.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("xjp-gateway");
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IDLE_OVER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options))
}

/// How long a pooled connection may sit idle before it is pinged when taken.
pub const PING_IDLE_OVER: Duration = Duration::from_secs(1);

/// Runs a read-only `statement` again when it failed on a connection Postgres had dropped
/// while it sat idle: sqlx discards such a connection, and every pooled one may be dead after
/// a restart, so up to the pool's size plus one tries, within [`RETRY_DROPPED_FOR`] (a dead
/// connection fails at once; a slow failure is an outage, not a dropped connection).
pub async fn retry_dropped<T, F, Fut>(db: &PgPool, mut statement: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let started = std::time::Instant::now();
    let mut tries = db.options().get_max_connections() + 1;
    loop {
        match statement().await {
            Err(e) if tries > 1 && dropped(&e) && started.elapsed() < RETRY_DROPPED_FOR => tries -= 1,
            done => return done,
        }
    }
}

/// How long [`retry_dropped`] keeps trying.
pub const RETRY_DROPPED_FOR: Duration = Duration::from_secs(1);

/// Whether `e` says the connection was lost, not that the statement failed: an I/O error, or
/// Postgres's "terminating connection" (57P01–57P03) and connection exceptions (08).
fn dropped(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
