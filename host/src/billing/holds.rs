//! Hold maintenance: the index of tenants that took holds (so the sweeper never walks the
//! keyspace), finding and releasing expired holds, renewing running ones, resyncing
//! settlements Redis missed, and reconciling the rows a previous run left in its spool.
//!
//! `<prefix>:hold-tenants` is a sorted set of tenant ids scored by the last time (ms) one of
//! their requests took or renewed a hold. A gateway refreshes a tenant's entry *before* the
//! hold, at most every `balance::index_refresh` (pipelined with the reserve, so no extra round trip;
//! most reserves skip it), renewal refreshes it, and the sweeper forgets tenants idle for two
//! hold TTLs plus a minute. A hold taken at `t` had its tenant scored at `t - refresh` or later,
//! so the tenant stays indexed until `t - refresh + 2 TTL + 60 s`, past the hold's expiry
//! (`t + TTL`) plus a sweep, because `refresh < TTL + 60 s - sweep`. A rebuilt account forgets
//! the refresh (a flushed Redis lost the index too). The index is the one key outside a
//! tenant's hash slot: on Redis Cluster its refresh is a command of its own, ahead of the hold.

use super::BalanceError;
use super::balance::{Balances, LEFT_BEHIND, RENEW, REQUEST_STATE_TTL_SECS, RESYNC, SWEEP, now_ms};
use crate::db::RedisConn;
use futures_util::{StreamExt, TryStreamExt};
use redis::{FromRedisValue, ScriptInvocation};
use std::time::Duration;
use uuid::Uuid;

/// Expired holds read per tenant per sweep.
const SWEEP_BATCH: usize = 1000;
/// Tenants whose expired holds are looked up at once (requests in flight on the connection).
const SWEEP_FAN_OUT: usize = 64;

impl Balances {
    /// Runs `invocation` (a script on `tenant`'s keys), first putting the tenant in the hold
    /// index unless this gateway did so within `balance::index_refresh`.
    pub(super) async fn index_then<T: FromRedisValue>(
        &self,
        tenant: Uuid,
        conn: &mut RedisConn,
        invocation: &ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        if self.indexed.contains_key(&tenant) {
            return invocation.invoke_async(conn).await;
        }
        let index = self.keys.hold_tenants();
        let answer = if self.target.is_cluster() {
            let _: () = redis::cmd("ZADD").arg(index).arg(now_ms()).arg(tenant.to_string()).query_async(conn).await?;
            invocation.invoke_async(conn).await?
        } else {
            let mut pipe = redis::pipe();
            pipe.cmd("ZADD").arg(index).arg(now_ms()).arg(tenant.to_string()).ignore();
            let (answer,): (T,) = pipe.invoke_script(invocation).query_async(conn).await?;
            answer
        };
        self.indexed.insert(tenant, ());
        Ok(answer)
    }

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
        let index = self.keys.hold_tenants();
        let (_, members): ((), Vec<String>) = redis::pipe()
            .cmd("ZREMRANGEBYSCORE")
            .arg(index)
            .arg("-inf")
            .arg(format!("({idle_before}"))
            .cmd("ZRANGE")
            .arg(index)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let tenants: Vec<Uuid> = members.iter().filter_map(|m| m.parse().ok()).collect();
        // One lookup per tenant, many in flight on the multiplexed connection (a cluster
        // cannot pipeline keys of different slots).
        let due: Vec<(Uuid, Vec<String>)> = futures_util::stream::iter(tenants)
            .map(|tenant| {
                let mut conn = conn.clone();
                let expiry = self.keys.tenant(tenant).expiry;
                async move {
                    let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                        .arg(expiry)
                        .arg("-inf")
                        .arg(now)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(SWEEP_BATCH)
                        .query_async(&mut conn)
                        .await?;
                    Ok::<_, redis::RedisError>((tenant, ids))
                }
            })
            .buffer_unordered(SWEEP_FAN_OUT)
            .try_collect()
            .await?;
        Ok(due.into_iter().filter(|(_, ids)| !ids.is_empty()).collect())
    }

    /// Drops the holds of `request_ids` that are still expired; their ids stay refused.
    /// Returns how many.
    pub async fn release_expired(&self, tenant: Uuid, request_ids: &[String]) -> Result<u64, BalanceError> {
        if request_ids.is_empty() {
            return Ok(0);
        }
        let k = self.keys.tenant(tenant);
        let mut conn = self.conn().await?;
        let mut invocation = SWEEP.key(&k.account);
        invocation.key(&k.holds).key(&k.expiry).arg(REQUEST_STATE_TTL_SECS);
        for rid in request_ids {
            invocation.key(self.keys.request(tenant, rid)).arg(rid);
        }
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Extends the holds of requests still running by a hold TTL from now. Returns how many.
    pub async fn renew(&self, tenant: Uuid, request_ids: &[String]) -> Result<u64, BalanceError> {
        if request_ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn().await?;
        let index = self.keys.hold_tenants();
        let _: () = redis::cmd("ZADD").arg(index).arg(now_ms()).arg(tenant.to_string()).query_async(&mut conn).await?;
        self.indexed.insert(tenant, ());
        let mut invocation = RENEW.key(self.keys.tenant(tenant).expiry);
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

    /// Once Redis answers again: drops the failed request's hold (or takes its cost out of
    /// the hold of `lease`, the hold id it was held from), records its state and marks the
    /// account for a rebuild (see `lua/resync.lua`).
    pub async fn resync(
        &self,
        tenant: Uuid,
        request_id: &str,
        cost: i64,
        lease: Option<&str>,
    ) -> Result<(), BalanceError> {
        let k = self.keys.tenant(tenant);
        let mut conn = self.conn().await?;
        let _: i64 = RESYNC
            .key(&k.account)
            .key(&k.holds)
            .key(&k.expiry)
            .key(self.keys.request(tenant, request_id))
            .arg(request_id)
            .arg(cost.max(0))
            .arg(REQUEST_STATE_TTL_SECS)
            .arg(lease.unwrap_or(""))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Makes the debits of rows a previous run left in its spool, which this run recorded,
    /// count once in Redis (see `lua/left_behind.lua`): open holds are settled from the rows
    /// (dropped on an account not loaded), and an account with any other such row with a cost
    /// is marked for a rebuild. `rows` are one tenant's (request id, cost). Returns (holds
    /// settled or dropped, account marked).
    pub async fn settle_left_behind(&self, tenant: Uuid, rows: &[(String, i64)]) -> Result<(u64, bool), BalanceError> {
        let k = self.keys.tenant(tenant);
        let mut conn = self.conn().await?;
        let (mut settled, mut marked) = (0, false);
        for chunk in rows.chunks(SWEEP_BATCH) {
            let mut invocation = LEFT_BEHIND.key(&k.account);
            invocation.key(&k.holds).key(&k.expiry).arg(REQUEST_STATE_TTL_SECS);
            for (rid, cost) in chunk {
                invocation.key(self.keys.request(tenant, rid)).arg(rid).arg(cost.max(&0));
            }
            let (n, rebuild): (u64, u8) = invocation.invoke_async(&mut conn).await?;
            settled += n;
            marked |= rebuild == 1;
        }
        Ok((settled, marked))
    }
}
