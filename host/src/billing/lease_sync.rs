//! Balance leases (ADR 0002), the Redis side: every [`EVERY`] (sooner when a lease runs low)
//! each tenant's leases are sized, renewed or returned, one `lease.lua` call per lease. A
//! lease is taken only while the account has at least [`MIN_HOLDS`] of the tenant's largest
//! hold available, and is at most an eighth of it: a nearly empty account is shared exactly,
//! through Redis, by every gateway. An idle lease goes back after [`IDLE`].
//!
//! Every call runs under the tenant's shared balance lock, so an account rebuilt here (which
//! holds this process's leases again, `load.lua`) never sees a lease half-changed.

use super::balance::{Balances, LEASE, LEASE_DROP};
use super::lease::{Lease, usable_for};
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often leases are sized and renewed.
pub const EVERY: Duration = Duration::from_millis(250);
/// The least time between two rounds (a refill wakes the next one early).
pub const SPACING: Duration = Duration::from_millis(20);
/// A lease is taken only while `available` is at least this many of the largest hold.
pub const MIN_HOLDS: i64 = 32;
/// A lease is at least this many of the largest hold ...
const SIZE_HOLDS: i64 = 8;
/// ... and a round is woken early when its free part falls under this many.
pub const REFILL_HOLDS: i64 = 4;
/// A tenant is leased a slice only while this many of its requests a second reserve here.
pub const MIN_RATE: f64 = 16.0;
/// A lease unused this long is given back.
pub const IDLE: Duration = Duration::from_secs(2);
/// Tenants whose leases are seen to at once.
const FAN_OUT: usize = 16;

/// One call for one lease.
#[derive(Debug, Clone, Copy)]
enum Step {
    Renew(u64),
    /// Give back this much (already taken off `free`).
    Give(u64, i64),
    /// Take up to this much; `true` for a new lease.
    Take(u64, i64, bool),
    /// Give back all it holds and drop it (already gone here).
    Close(u64),
}

impl Balances {
    /// One round over every tenant this process leases for (or may).
    pub(super) async fn lease_round(&self) {
        let tenants: Vec<Uuid> = self.leases.tenants.lock().keys().copied().collect();
        futures_util::stream::iter(tenants).for_each_concurrent(FAN_OUT, |t| self.lease_tenant(t)).await;
    }

    /// Gives every lease back (graceful shutdown), so no tenant's money waits for a sweep.
    pub(super) async fn return_leases(&self) {
        self.leases.closed.store(true, Relaxed);
        let tenants: Vec<Uuid> = self.leases.tenants.lock().keys().copied().collect();
        for tenant in tenants {
            let _shared = self.pending.lock(tenant).read().await;
            let steps: Vec<Step> = {
                let mut map = self.leases.tenants.lock();
                let Some(t) = map.remove(&tenant) else { continue };
                t.current.iter().chain(t.retired.iter()).map(|l| Step::Close(l.n)).collect()
            };
            for step in steps {
                let _ = self.lease_call(tenant, step).await;
            }
        }
    }

    async fn lease_tenant(&self, tenant: Uuid) {
        let shared = self.pending.lock(tenant).read().await;
        let mut steps = self.plan(tenant);
        for pass in 0..2 {
            for step in steps {
                if !self.lease_step(tenant, step).await {
                    // Not loaded: rebuild the account (outside the shared lock); plan again
                    // next round.
                    drop(shared);
                    if let Err(e) = self.load(tenant).await {
                        tracing::warn!(%tenant, error = %e, "could not rebuild an account for its lease");
                    }
                    return;
                }
            }
            // An answer showing the account running low gives the free part back in this
            // round, not the next.
            if pass == 1 || !self.runs_low(tenant) {
                return;
            }
            steps = self.plan(tenant);
        }
    }

    /// Runs one call and applies its answer; `false` when the account is not loaded (nothing
    /// was applied, and what was to be given back is free here again).
    async fn lease_step(&self, tenant: Uuid, step: Step) -> bool {
        let sent = Instant::now();
        match self.lease_call(tenant, step).await {
            Ok((1, moved, available)) => {
                if let (false, Step::Take(n, ..)) = (self.applied(tenant, step, moved, available, sent), step) {
                    let _ = self.lease_call(tenant, Step::Close(n)).await;
                }
            }
            Ok((-1, _, _)) => {
                if let Step::Renew(n) | Step::Give(n, _) | Step::Take(n, _, false) = step {
                    self.leases.lose(tenant, n);
                }
            }
            Ok(_) => {
                if let Step::Give(n, amount) = step {
                    self.leases.restore(tenant, n, amount);
                }
                return false;
            }
            Err(e) => {
                metrics::counter!("xjp_lease_call_errors_total").increment(1);
                tracing::warn!(%tenant, error = %e, "lease call failed; the lease is given up");
                if let Step::Renew(n) | Step::Give(n, _) | Step::Take(n, _, false) = step {
                    self.leases.lose(tenant, n);
                }
            }
        }
        true
    }

    /// Whether the tenant's lease has a free part while the account runs low.
    fn runs_low(&self, tenant: Uuid) -> bool {
        let map = self.leases.tenants.lock();
        map.get(&tenant).is_some_and(|t| {
            t.available < t.max_hold.saturating_mul(MIN_HOLDS) && t.current.as_ref().is_some_and(|l| l.free > 0)
        })
    }

    /// Decides this round's calls for a tenant, taking given-back amounts off `free` now.
    fn plan(&self, tenant: Uuid) -> Vec<Step> {
        let now = Instant::now();
        let mut map = self.leases.tenants.lock();
        let Some(t) = map.get_mut(&tenant) else { return Vec::new() };
        let mut steps = Vec::new();
        t.retired.retain(|l| {
            steps.push(if l.out <= 0 { Step::Close(l.n) } else { Step::Renew(l.n) });
            l.out > 0
        });
        let idle = now.duration_since(t.last_use) > IDLE;
        let threshold = t.max_hold.saturating_mul(MIN_HOLDS);
        let elapsed = now.duration_since(std::mem::replace(&mut t.sized_at, now)).max(EVERY / 4);
        let per_second = (t.reserved as f64 / elapsed.as_secs_f64()) as i64;
        let busy = f64::from(t.requests) / elapsed.as_secs_f64() >= MIN_RATE;
        (t.reserved, t.requests) = (0, 0);
        let target = per_second.max(t.max_hold.saturating_mul(SIZE_HOLDS));
        match t.current.as_mut() {
            Some(l) if idle => {
                if l.out > 0 {
                    // Requests still run under it: it is closed once they end.
                    steps.push(Step::Give(l.n, std::mem::take(&mut l.free)));
                    t.retired.extend(t.current.take());
                } else {
                    steps.push(Step::Close(l.n));
                    t.current = None;
                }
            }
            Some(l) if t.available < threshold || l.free > 2 * target => {
                let keep = if t.available < threshold { 0 } else { target };
                let give = l.free - keep;
                l.free = keep;
                steps.push(if give > 0 { Step::Give(l.n, give) } else { Step::Renew(l.n) });
            }
            Some(l) if l.free < target / 2 => steps.push(Step::Take(l.n, target - l.free, false)),
            Some(l) => steps.push(Step::Renew(l.n)),
            None if busy && t.max_hold > 0 && t.available >= threshold && !self.leases.closed.load(Relaxed) => {
                steps.push(Step::Take(self.leases.fresh(), target, true))
            }
            None => {}
        }
        if idle && t.current.is_none() && t.retired.is_empty() && steps.is_empty() {
            map.remove(&tenant);
        }
        steps
    }

    /// What a call did, applied here. `false` when a new lease has no taker any more (the
    /// gateway is stopping): it is to be closed at once.
    fn applied(&self, tenant: Uuid, step: Step, moved: i64, available: i64, sent: Instant) -> bool {
        let mut map = self.leases.tenants.lock();
        let taker = map.get_mut(&tenant).filter(|_| !self.leases.closed.load(Relaxed));
        let Some(t) = taker else { return !matches!(step, Step::Take(_, _, true)) || moved == 0 };
        t.available = available;
        let usable_until = sent + usable_for(self.hold_ttl);
        match step {
            Step::Take(n, _, true) if moved > 0 && t.current.is_none() => {
                t.current = Some(Lease { n, free: moved, out: 0, usable_until });
                metrics::counter!("xjp_leases_taken_total").increment(1);
            }
            Step::Take(_, _, true) if moved > 0 => return false,
            Step::Take(n, ..) | Step::Renew(n) | Step::Give(n, _) => {
                if let Some(l) = t.current.as_mut().filter(|l| l.n == n) {
                    l.free += moved.max(0);
                    l.usable_until = usable_until;
                }
            }
            Step::Close(_) => {}
        }
        true
    }

    /// One `lease.lua` call: (code, moved, available).
    async fn lease_call(&self, tenant: Uuid, step: Step) -> Result<(i64, i64, i64), super::BalanceError> {
        let (n, amount, exists, close) = match step {
            Step::Renew(n) => (n, 0, true, false),
            Step::Give(n, amount) => (n, -amount, true, false),
            Step::Take(n, amount, new) => (n, amount, !new, false),
            Step::Close(n) => (n, 0, false, true),
        };
        let threshold =
            self.leases.tenants.lock().get(&tenant).map_or(i64::MAX, |t| t.max_hold.saturating_mul(MIN_HOLDS));
        let k = self.keys.tenant(tenant);
        let mut invocation = LEASE.key(&k.account);
        invocation.key(&k.holds).key(&k.expiry).arg(self.leases.hold_id(n)).arg(amount);
        invocation.arg(u8::from(exists)).arg(self.hold_ttl.as_millis() as u64).arg(u8::from(close)).arg(threshold);
        invocation.arg(self.leases.fresh());
        let mut conn = self.conn().await?;
        // The tenant stays in the hold index while it holds a lease, so the sweeper finds the
        // lease if this gateway dies.
        Ok(self.index_then(tenant, &mut conn, &invocation).await?)
    }

    /// Drops an expired lease of any gateway and marks the account for a rebuild
    /// (`lease_drop.lua`). Returns whether it was dropped.
    pub(super) async fn drop_lease(&self, tenant: Uuid, hold_id: &str) -> Result<bool, super::BalanceError> {
        let k = self.keys.tenant(tenant);
        let mut conn = self.conn().await?;
        let dropped: i64 =
            LEASE_DROP.key(&k.account).key(&k.holds).key(&k.expiry).arg(hold_id).invoke_async(&mut conn).await?;
        Ok(dropped == 1)
    }
}
