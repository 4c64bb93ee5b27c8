//! Phase 2, authenticate: the presented key, bounded caches and a lookup rate limit in
//! front of Postgres (see [`KeyCache`]).

use crate::api::GatewayError;
use crate::billing::Caller;
use crate::config::AuthConfig;
use crate::db::keys::{self, KeyIdentity};
use hyper::HeaderMap;
use moka::future::Cache;
use parking_lot::Mutex;
use sqlx::PgPool;
use std::time::{Duration, Instant};

/// The key a client presented: `Authorization: Bearer`, `x-api-key` (Anthropic clients),
/// `x-goog-api-key` or the `key` query parameter (Gemini clients).
pub fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    if let Some(auth) = header("authorization") {
        let (scheme, token) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string());
    }
    header("x-api-key")
        .or_else(|| header("x-goog-api-key"))
        .map(str::to_string)
        .or_else(|| query.and_then(|q| query_param(q, "key")))
}

/// A query parameter's (percent-decoded) value.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query_pairs(query).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Every `name=value` pair of a query, both percent-decoded and `+` read as a space (how
/// the key is found here, and how the upstream phase decides what it forwards).
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a lookup found no identity.
#[derive(Debug)]
enum Miss {
    /// Postgres has no such key.
    Unknown,
    /// Over `unknown_key_lookups_per_sec`: not looked up.
    Limited,
    /// Postgres failed or did not answer in time.
    Failed(String),
}

/// Digest -> identity, in three bounded caches (moka, TinyLFU admission) and a rate limit:
///
/// - `found`: keys Postgres knows (any status), for `key_cache_ttl_ms` — a revocation takes
///   effect within it (at once on the gateway that revoked);
/// - `grace`: keys verified *active*, for `outage_grace_secs` from their last verification:
///   while Postgres is unreachable they keep working. Only a successful lookup of an active
///   key enters, so no flood of unknown keys can evict them;
/// - `unknown`: keys Postgres does not know, for `negative_ttl_ms`, in their own cache (a
///   flood churns only this one);
/// - lookups of keys in none of them (new or random keys) take a token from a bucket of
///   `unknown_key_lookups_per_sec` per second; without one the request gets 429 and
///   Postgres is not asked. Keys in `grace` never need a token;
/// - after a failed lookup, Postgres counts as down for [`PROBE_INTERVAL`]: lookups fail at
///   once (keys in `grace` work, others get 503), one a second probes again. A dead
///   database costs one lookup timeout a second, not one per request.
///
/// Concurrent requests with the same uncached key share one lookup.
pub struct KeyCache {
    found: Cache<[u8; 32], KeyIdentity>,
    grace: Cache<[u8; 32], KeyIdentity>,
    unknown: Cache<[u8; 32], ()>,
    lookups: TokenBucket,
    lookup_timeout: Duration,
    /// Until when Postgres counts as down (set by a failed lookup).
    down_until: Mutex<Option<Instant>>,
}

/// How long a failed lookup marks Postgres as down before the next lookup tries again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

impl KeyCache {
    /// Empty caches sized and timed by `[auth]` (read once, at start).
    pub fn new(auth: &AuthConfig) -> Self {
        fn bounded<V: Clone + Send + Sync + 'static>(capacity: u64, ttl: Duration) -> Cache<[u8; 32], V> {
            Cache::builder().max_capacity(capacity).time_to_live(ttl).build()
        }
        KeyCache {
            found: bounded(auth.max_cached_keys, Duration::from_millis(auth.key_cache_ttl_ms.max(1))),
            grace: bounded(auth.max_cached_keys, Duration::from_secs(auth.outage_grace_secs)),
            unknown: bounded(auth.max_negative_keys, Duration::from_millis(auth.negative_ttl_ms.max(1))),
            lookups: TokenBucket::new(auth.unknown_key_lookups_per_sec),
            lookup_timeout: Duration::from_millis(auth.lookup_timeout_ms),
            down_until: Mutex::new(None),
        }
    }

    /// Authenticates a presented key.
    pub async fn authenticate(&self, db: &PgPool, key: Option<String>) -> Result<Caller, GatewayError> {
        let key = key.ok_or(GatewayError::MissingKey)?;
        if !key.starts_with(keys::KEY_PREFIX) {
            return Err(GatewayError::InvalidKey);
        }
        let digest = keys::digest(&key);
        if self.unknown.contains_key(&digest) {
            return Err(GatewayError::InvalidKey);
        }
        let identity = match self.found.try_get_with(digest, self.lookup(db, digest)).await {
            Ok(identity) => identity,
            Err(miss) => match &*miss {
                Miss::Unknown => return Err(GatewayError::InvalidKey),
                Miss::Limited => return Err(GatewayError::KeyLookupsLimited),
                // Postgres is down: a key verified active within the grace keeps working.
                Miss::Failed(e) => match self.grace.get(&digest).await {
                    Some(known) => {
                        lookup_outcome("grace");
                        // Not asked again for a cache TTL: an outage costs one lookup per key.
                        self.found.insert(digest, known.clone()).await;
                        known
                    }
                    None => {
                        tracing::error!(error = %e, "key lookup failed");
                        return Err(GatewayError::Unavailable("cannot verify API key right now".into()));
                    }
                },
            },
        };
        if identity.key_status != "active" {
            return Err(GatewayError::RevokedKey);
        }
        if identity.tenant_status != "active" {
            return Err(GatewayError::TenantSuspended);
        }
        Ok(Caller { key_id: identity.key_id, tenant_id: identity.tenant_id })
    }

    /// One Postgres lookup (shared by concurrent requests with the same key).
    async fn lookup(&self, db: &PgPool, digest: [u8; 32]) -> Result<KeyIdentity, Miss> {
        if !self.grace.contains_key(&digest) && !self.lookups.take() {
            lookup_outcome("limited");
            return Err(Miss::Limited);
        }
        {
            // Postgres failed a moment ago: do not queue behind its timeouts; one lookup a
            // `PROBE_INTERVAL` tries again.
            let mut down = self.down_until.lock();
            match *down {
                Some(until) if Instant::now() < until => {
                    lookup_outcome("skipped");
                    return Err(Miss::Failed("Postgres unreachable (a lookup failed within the last second)".into()));
                }
                Some(_) => *down = Some(Instant::now() + self.lookup_timeout + PROBE_INTERVAL),
                None => {}
            }
        }
        let failed = |e: String| {
            lookup_outcome("failed");
            *self.down_until.lock() = Some(Instant::now() + PROBE_INTERVAL);
            Err(Miss::Failed(e))
        };
        let found = match tokio::time::timeout(self.lookup_timeout, keys::identify(db, &digest)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return failed(e.to_string()),
            Err(_) => return failed(format!("no answer within {:?}", self.lookup_timeout)),
        };
        *self.down_until.lock() = None;
        match found {
            Some(identity) if identity.key_status == "active" && identity.tenant_status == "active" => {
                lookup_outcome("found");
                self.grace.insert(digest, identity.clone()).await;
                Ok(identity)
            }
            Some(identity) => {
                lookup_outcome("found");
                self.grace.invalidate(&digest).await;
                Ok(identity)
            }
            None => {
                lookup_outcome("unknown");
                self.grace.invalidate(&digest).await;
                self.unknown.insert(digest, ()).await;
                Err(Miss::Unknown)
            }
        }
    }

    /// Forgets cached lookups and the outage grace of `key_id` (after an admin revoked it
    /// on this instance).
    pub async fn forget(&self, key_id: uuid::Uuid) {
        self.found.invalidate_all();
        let revoked: Vec<_> = self.grace.iter().filter(|(_, id)| id.key_id == key_id).map(|(d, _)| *d).collect();
        for digest in revoked {
            self.grace.invalidate(&digest).await;
        }
    }
}

fn lookup_outcome(result: &'static str) {
    metrics::counter!("xjp_key_lookups_total", "result" => result).increment(1);
}

/// A token bucket holding one second's worth of tokens.
struct TokenBucket {
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    fn new(per_sec: u32) -> Self {
        let per_sec = f64::from(per_sec);
        TokenBucket { per_sec, state: Mutex::new((per_sec, Instant::now())) }
    }

    /// Takes a token if there is one.
    fn take(&self) -> bool {
        let mut state = self.state.lock();
        let now = Instant::now();
        let (tokens, at) = *state;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.per_sec).min(self.per_sec);
        let (left, taken) = if tokens >= 1.0 { (tokens - 1.0, true) } else { (tokens, false) };
        *state = (left, now);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_key_wherever_clients_put_it() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer XJP_abc".parse().unwrap());
        assert_eq!(presented_key(&h, None).as_deref(), Some("XJP_abc"));
        h.insert("authorization", "Basic Zm9v".parse().unwrap());
        assert_eq!(presented_key(&h, None), None);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "XJP_a".parse().unwrap());
        assert_eq!(presented_key(&h, None).as_deref(), Some("XJP_a"));
        let h = HeaderMap::new();
        assert_eq!(presented_key(&h, Some("alt=sse&key=XJP_q%2B1")).as_deref(), Some("XJP_q+1"));
        assert_eq!(presented_key(&h, Some("alt=sse")), None);
    }

    #[test]
    fn the_bucket_holds_one_second() {
        let bucket = TokenBucket::new(5);
        assert_eq!((0..10).filter(|_| bucket.take()).count(), 5);
        std::thread::sleep(Duration::from_millis(220));
        assert!(bucket.take(), "refilled at 5 per second");
    }
}
