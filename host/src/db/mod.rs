//! Postgres: the pool, embedded migrations, and the tenant / API-key store; the Redis client
//! (both data stores, with TLS when their URLs ask for it).

pub mod credits;
pub mod keys;
pub mod tenants;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::path::Path;
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

/// Why a Redis client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("cannot read {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Client(#[from] redis::RedisError),
    #[error("a CA or client certificate is configured, but the Redis URL is not `rediss://` (TLS)")]
    NotTls,
}

/// The Redis client for `url`. `rediss://` connects with TLS (rustls), verifying the server
/// against `ca_file` when given, the bundled Mozilla roots otherwise; `client_identity`
/// (certificate and key PEM files) is presented when the server asks for one. The URL's
/// `#insecure` fragment (no verification) is refused: it would send the password to anyone.
pub fn redis_client(
    url: &str,
    ca_file: Option<&Path>,
    client_identity: Option<(&Path, &Path)>,
) -> Result<redis::Client, RedisSetupError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| RedisSetupError::Read { path: path.into(), source });
    let info = redis::IntoConnectionInfo::into_connection_info(url)?;
    let tls = match info.addr() {
        redis::ConnectionAddr::TcpTls { insecure: true, .. } => {
            return Err(RedisSetupError::Client(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "`rediss://...#insecure` turns certificate checks off; give the CA as [redis] ca_file instead",
            ))));
        }
        redis::ConnectionAddr::TcpTls { .. } => true,
        _ => false,
    };
    if !tls {
        if ca_file.is_some() || client_identity.is_some() {
            return Err(RedisSetupError::NotTls);
        }
        return Ok(redis::Client::open(info)?);
    }
    if ca_file.is_none() && client_identity.is_none() {
        return Ok(redis::Client::open(info)?);
    }
    let root_cert = ca_file.map(read).transpose()?;
    let client_tls = match client_identity {
        Some((cert, key)) => Some(redis::ClientTlsConfig { client_cert: read(cert)?, client_key: read(key)? }),
        None => None,
    };
    Ok(redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls, root_cert })?)
}
