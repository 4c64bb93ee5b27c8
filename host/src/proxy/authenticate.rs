//! Phase 2, authenticate: the presented key, bounded caches and a lookup rate limit in
//! front of Postgres (see [`KeyCache`]).

use super::token_bucket::TokenBucket;
use crate::api::GatewayError;
use crate::billing::Caller;
use crate::config::AuthConfig;
use crate::db::keys::{self, KeyIdentity};
use moka::future::Cache;
use parking_lot::Mutex;
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use super::presented_key::{presented_key, query_pairs, query_param};

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
///   effect within it (at once on the gateway that revoked). An entry past half its TTL is
///   still served and refreshed in the background (one refresh per key at a time), so a key
///   in steady use never makes a request wait on Postgres;
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
    found: Cache<[u8; 32], Verified>,
    /// Entries older than this are refreshed in the background while served.
    refresh_after: Duration,
    /// Keys being refreshed.
    refreshing: Mutex<HashSet<[u8; 32]>>,
    /// Bumped by [`KeyCache::forget`]: a refresh that started before it does not store.
    generation: AtomicU64,
    grace: Cache<[u8; 32], KeyIdentity>,
    unknown: Cache<[u8; 32], ()>,
    lookups: TokenBucket,
    lookup_timeout: Duration,
    /// Until when Postgres counts as down (set by a failed lookup).
    down_until: Mutex<Option<Instant>>,
}

/// A lookup's answer and when it was made.
#[derive(Clone)]
struct Verified {
    identity: KeyIdentity,
    at: Instant,
}

/// How long a failed lookup marks Postgres as down before the next lookup tries again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

impl KeyCache {
    /// Empty caches sized and timed by `[auth]` (read once, at start).
    pub fn new(auth: &AuthConfig) -> Self {
        fn bounded<V: Clone + Send + Sync + 'static>(capacity: u64, ttl: Duration) -> Cache<[u8; 32], V> {
            Cache::builder().max_capacity(capacity).time_to_live(ttl).build()
        }
        let ttl = Duration::from_millis(auth.key_cache_ttl_ms.max(1));
        KeyCache {
            found: bounded(auth.max_cached_keys, ttl),
            refresh_after: ttl / 2,
            refreshing: Mutex::new(HashSet::new()),
            generation: AtomicU64::new(0),
            grace: bounded(auth.max_cached_keys, Duration::from_secs(auth.outage_grace_secs)),
            unknown: bounded(auth.max_negative_keys, Duration::from_millis(auth.negative_ttl_ms.max(1))),
            lookups: TokenBucket::new(auth.unknown_key_lookups_per_sec),
            lookup_timeout: Duration::from_millis(auth.lookup_timeout_ms),
            down_until: Mutex::new(None),
        }
    }

    /// Authenticates a presented key.
    pub async fn authenticate(self: &Arc<Self>, db: &PgPool, key: Option<String>) -> Result<Caller, GatewayError> {
        let key = key.ok_or(GatewayError::MissingKey)?;
        if !key.starts_with(keys::KEY_PREFIX) {
            return Err(GatewayError::InvalidKey);
        }
        let digest = keys::digest(&key);
        if self.unknown.contains_key(&digest) {
            return Err(GatewayError::InvalidKey);
        }
        let fresh = async { self.lookup(db, digest).await.map(|identity| Verified { identity, at: Instant::now() }) };
        let identity = match self.found.try_get_with(digest, fresh).await {
            Ok(verified) => {
                if verified.at.elapsed() >= self.refresh_after {
                    self.refresh(db, digest);
                }
                verified.identity
            }
            Err(miss) => match &*miss {
                Miss::Unknown => return Err(GatewayError::InvalidKey),
                Miss::Limited => return Err(GatewayError::KeyLookupsLimited),
                // Postgres is down: a key verified active within the grace keeps working.
                Miss::Failed(e) => match self.grace.get(&digest).await {
                    Some(known) => {
                        lookup_outcome("grace");
                        // Not asked again for a cache TTL: an outage costs one lookup per key.
                        self.found.insert(digest, Verified { identity: known.clone(), at: Instant::now() }).await;
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

    /// Looks `digest` up again in the background, unless that is already under way. A key
    /// Postgres no longer knows is dropped; a failed lookup leaves the entry to its TTL (and
    /// marks Postgres down, so the request after it goes straight to the outage grace).
    fn refresh(self: &Arc<Self>, db: &PgPool, digest: [u8; 32]) {
        if !self.refreshing.lock().insert(digest) {
            return;
        }
        let (cache, db) = (self.clone(), db.clone());
        let generation = self.generation.load(Ordering::Acquire);
        tokio::spawn(async move {
            metrics::counter!("xjp_key_refreshes_total").increment(1);
            let looked_up = cache.lookup(&db, digest).await;
            if cache.generation.load(Ordering::Acquire) == generation {
                match looked_up {
                    Ok(identity) => cache.found.insert(digest, Verified { identity, at: Instant::now() }).await,
                    Err(Miss::Unknown) => cache.found.invalidate(&digest).await,
                    Err(Miss::Limited | Miss::Failed(_)) => {}
                }
            }
            cache.refreshing.lock().remove(&digest);
        });
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
        self.generation.fetch_add(1, Ordering::AcqRel);
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
