//! Phase 2, authenticate: the presented key, a short-TTL cache in front of Postgres.

use crate::api::GatewayError;
use crate::billing::Caller;
use crate::db::keys::{self, KeyIdentity};
use hyper::HeaderMap;
use parking_lot::Mutex;
use sqlx::PgPool;
use std::collections::HashMap;
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

type Entry = (Option<KeyIdentity>, Instant);

/// Digest -> identity, cached for `ttl` (revocation takes effect within it). Unknown keys
/// are cached too, for at most a second, so a flood of bad keys does not reach Postgres.
pub struct KeyCache {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

const MAX_ENTRIES: usize = 100_000;
/// How long a verified key keeps working while Postgres is unreachable.
const STALE_GRACE: Duration = Duration::from_secs(600);

impl KeyCache {
    /// An empty cache.
    pub fn new(ttl: Duration) -> Self {
        KeyCache { ttl, map: Mutex::new(HashMap::new()) }
    }

    /// Authenticates a presented key.
    pub async fn authenticate(&self, db: &PgPool, key: Option<String>) -> Result<Caller, GatewayError> {
        let key = key.ok_or(GatewayError::MissingKey)?;
        if !key.starts_with(keys::KEY_PREFIX) {
            return Err(GatewayError::InvalidKey);
        }
        let digest = keys::digest(&key);
        let identity = match self.cached(&digest, false) {
            Some(hit) => hit,
            None => match keys::identify(db, &digest).await {
                Ok(found) => {
                    self.insert(digest, found.clone());
                    found
                }
                // Postgres is down: a key verified within STALE_GRACE keeps working, so an
                // outage of the database does not take the proxy down with it.
                Err(e) => self.cached(&digest, true).flatten().map(Some).ok_or_else(|| {
                    tracing::error!(error = %e, "key lookup failed");
                    GatewayError::Unavailable("cannot verify API key right now".into())
                })?,
            },
        };
        let identity = identity.ok_or(GatewayError::InvalidKey)?;
        if identity.key_status != "active" {
            return Err(GatewayError::RevokedKey);
        }
        if identity.tenant_status != "active" {
            return Err(GatewayError::TenantSuspended);
        }
        Ok(Caller { key_id: identity.key_id, tenant_id: identity.tenant_id })
    }

    fn cached(&self, digest: &[u8; 32], stale_ok: bool) -> Option<Option<KeyIdentity>> {
        let map = self.map.lock();
        let (identity, at) = map.get(digest)?;
        let ttl = match (stale_ok, identity.is_some()) {
            (true, _) => STALE_GRACE,
            (false, true) => self.ttl,
            (false, false) => self.ttl.min(Duration::from_secs(1)),
        };
        (at.elapsed() < ttl).then(|| identity.clone())
    }

    fn insert(&self, digest: [u8; 32], identity: Option<KeyIdentity>) {
        let mut map = self.map.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(digest, (identity, Instant::now()));
    }

    /// Forgets every cached lookup (after an admin revokes a key on this instance).
    pub fn clear(&self) {
        self.map.lock().clear();
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
}
