//! The Redis target: one server (a reconnecting `ConnectionManager`) or a Redis Cluster (a
//! connection per node, MOVED and ASK followed, slots refreshed), with TLS when the URL says
//! `rediss://`. Both answer through [`RedisConn`], so callers send the same commands.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::path::Path;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a Redis client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("cannot read {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Client(#[from] redis::RedisError),
    #[error("a CA or client certificate is configured, but the Redis URL is not `rediss://` (TLS)")]
    NotTls,
    #[error("cluster seed URLs mix `redis://` and `rediss://`")]
    MixedTls,
}

/// Where Redis is: one server or a cluster (seed nodes).
#[derive(Clone)]
pub enum RedisTarget {
    Single(Box<redis::Client>),
    Cluster(Box<ClusterClient>),
}

/// A live connection to a [`RedisTarget`]; cheap to clone (both kinds multiplex).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisTarget {
    /// One server at `url`. `rediss://` connects with TLS (rustls), verifying the server
    /// against `ca_file` when given, the bundled Mozilla roots otherwise; `client_identity`
    /// (certificate and key PEM files) is presented when the server asks for one. The URL's
    /// `#insecure` fragment (no verification) is refused: it would send the password to anyone.
    pub fn single(
        url: &str,
        ca_file: Option<&Path>,
        client_identity: Option<(&Path, &Path)>,
    ) -> Result<RedisTarget, RedisSetupError> {
        let info = redis::IntoConnectionInfo::into_connection_info(url)?;
        let Some(certs) = certificates(tls_of(&info)?, ca_file, client_identity)? else {
            return Ok(RedisTarget::Single(Box::new(redis::Client::open(info)?)));
        };
        Ok(RedisTarget::Single(Box::new(redis::Client::build_with_tls(info, certs)?)))
    }

    /// A cluster reached through `urls` (comma-separated seed nodes; any one that answers
    /// is enough), TLS as for [`RedisTarget::single`].
    pub fn cluster(
        urls: &str,
        ca_file: Option<&Path>,
        client_identity: Option<(&Path, &Path)>,
    ) -> Result<RedisTarget, RedisSetupError> {
        let mut infos = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            infos.push(redis::IntoConnectionInfo::into_connection_info(url)?);
        }
        let tls: Vec<bool> = infos.iter().map(tls_of).collect::<Result<_, _>>()?;
        if tls.windows(2).any(|w| w[0] != w[1]) {
            return Err(RedisSetupError::MixedTls);
        }
        let mut builder = ClusterClientBuilder::new(infos)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(3);
        if let Some(certs) = certificates(tls.first().copied().unwrap_or(false), ca_file, client_identity)? {
            builder = builder.certs(certs);
        }
        Ok(RedisTarget::Cluster(Box::new(builder.build()?)))
    }

    /// Whether this is a cluster (multi-key commands must stay within one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }

    /// Connects: short timeouts, so a Redis outage fails requests fast instead of piling
    /// them up.
    pub async fn connect(&self) -> redis::RedisResult<RedisConn> {
        match self {
            RedisTarget::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1);
                Ok(RedisConn::Single(ConnectionManager::new_with_config((**client).clone(), config).await?))
            }
            RedisTarget::Cluster(client) => Ok(RedisConn::Cluster(client.get_async_connection().await?)),
        }
    }
}

/// Whether `info` asks for TLS; `#insecure` is refused.
fn tls_of(info: &redis::ConnectionInfo) -> Result<bool, RedisSetupError> {
    match info.addr() {
        redis::ConnectionAddr::TcpTls { insecure: true, .. } => {
            Err(RedisSetupError::Client(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "`rediss://...#insecure` turns certificate checks off; give the CA as [redis] ca_file instead",
            ))))
        }
        redis::ConnectionAddr::TcpTls { .. } => Ok(true),
        _ => Ok(false),
    }
}

/// The certificates to use, when any are configured; a CA or identity without TLS is an
/// error, not a silent downgrade.
fn certificates(
    tls: bool,
    ca_file: Option<&Path>,
    client_identity: Option<(&Path, &Path)>,
) -> Result<Option<redis::TlsCertificates>, RedisSetupError> {
    if ca_file.is_none() && client_identity.is_none() {
        return Ok(None);
    }
    if !tls {
        return Err(RedisSetupError::NotTls);
    }
    let read = |path: &Path| std::fs::read(path).map_err(|source| RedisSetupError::Read { path: path.into(), source });
    let root_cert = ca_file.map(read).transpose()?;
    let client_tls = match client_identity {
        Some((cert, key)) => Some(redis::ClientTlsConfig { client_cert: read(cert)?, client_key: read(key)? }),
        None => None,
    };
    Ok(Some(redis::TlsCertificates { client_tls, root_cert }))
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}
