//! Hold maintenance: the index of tenants that took holds (so the sweeper never walks the
//! keyspace), finding and releasing expired holds, renewing running ones, and resyncing
//! settlements Redis missed.
//!
//! `xjp:hold-tenants` is a sorted set of tenant ids scored by the last time (ms) one of their
//! requests took or renewed a hold. Reserve adds the tenant *before* its hold (pipelined, same
//! round trip), renewal refreshes it, and the sweeper forgets tenants idle for two hold TTLs
//! plus a minute: any hold such a tenant had expired at least a TTL ago, while the tenant was
//! still indexed and swept every few seconds. It is the one key outside a tenant's hash slot;
//! on Redis Cluster it is a separate command to its own node.

use super::BalanceError;
pub use super::balance::HOLD_TENANTS;
use super::balance::{Balances, RENEW, REQUEST_STATE_TTL_SECS, RESYNC, SWEEP, keys, now_ms, request_key};
use std::time::Duration;
use uuid::Uuid;

/// Expired holds read per tenant per sweep.
const SWEEP_BATCH: usize = 1000;

impl Balances {
    /// How long an idle tenant stays in the index.
    fn forget_after(&self) -> Duration {
        self.hold_ttl * 2 + Duration::from_secs(60)
    }

    /// Expired holds by tenant (requests whose gateway never settled them), found through the
    /// index: one ZRANGEBYSCORE per indexed tenant, in one pipeline.
    pub async fn expired_holds(&self) -> Result<Vec<(Uuid, Vec<String>)>, BalanceError> {
        let mut conn = self.conn().await?;
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let now = secs * 1000 + micros / 1000;
        let idle_before = now - self.forget_after().as_millis() as i64;
        let (_, members): ((), Vec<String>) = redis::pipe()
            .cmd("ZREMRANGEBYSCORE")
            .arg(HOLD_TENANTS)
            .arg("-inf")
            .arg(format!("({idle_before}"))
            .cmd("ZRANGE")
            .arg(HOLD_TENANTS)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let tenants: Vec<Uuid> = members.iter().filter_map(|m| m.parse().ok()).collect();
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for tenant in &tenants {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(keys(*tenant).expiry)
                .arg("-inf")
                .arg(now)
                .arg("LIMIT")
                .arg(0)
                .arg(SWEEP_BATCH);
        }
        let due: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        Ok(tenants.into_iter().zip(due).filter(|(_, ids)| !ids.is_empty()).collect())
    }

    /// Drops the holds of `request_ids` that are still expired; their ids stay refused.
    /// Returns how many.
    pub async fn release_expired(&self, tenant: Uuid, request_ids: &[String]) -> Result<u64, BalanceError> {
        if request_ids.is_empty() {
            return Ok(0);
        }
        let k = keys(tenant);
        let mut conn = self.conn().await?;
        let mut invocation = SWEEP.key(&k.account);
        invocation.key(&k.holds).key(&k.expiry).arg(REQUEST_STATE_TTL_SECS);
        for rid in request_ids {
            invocation.key(request_key(tenant, rid)).arg(rid);
        }
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Extends the holds of requests still running by a hold TTL from now. Returns how many.
    pub async fn renew(&self, tenant: Uuid, request_ids: &[String]) -> Result<u64, BalanceError> {
        if request_ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn().await?;
        let _: () =
            redis::cmd("ZADD").arg(HOLD_TENANTS).arg(now_ms()).arg(tenant.to_string()).query_async(&mut conn).await?;
        let mut invocation = RENEW.key(keys(tenant).expiry);
        invocation.arg(self.hold_ttl.as_millis() as u64);
        for rid in request_ids {
            invocation.arg(rid);
        }
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// For a settlement that failed while Redis was unreachable: registers its debit as
    /// unrecorded (so any load counts it until its row is in Postgres). Call once.
    pub async fn settle_failed(&self, tenant: Uuid, cost: i64) {
        let _shared = self.pending.lock(tenant).read().await;
        self.pending.add(tenant, cost.max(0));
    }

    /// Once Redis answers again: drops the failed request's hold, records its state and
    /// marks the account for a rebuild (see `lua/resync.lua`).
    pub async fn resync(&self, tenant: Uuid, request_id: &str, cost: i64) -> Result<(), BalanceError> {
        let k = keys(tenant);
        let mut conn = self.conn().await?;
        let _: i64 = RESYNC
            .key(&k.account)
            .key(&k.holds)
            .key(&k.expiry)
            .key(request_key(tenant, request_id))
            .arg(request_id)
            .arg(cost.max(0))
            .arg(REQUEST_STATE_TTL_SECS)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}
