//! Balance leases (ADR 0002), the Redis side: every [`EVERY`] (sooner when a lease runs low)
//! each tenant's leases are sized, renewed or returned, one `lease.lua` call per lease. A
//! lease is taken only while the account has at least [`MIN_HOLDS`] of the tenant's largest
//! hold available, and is at most an eighth of it: a nearly empty account is shared exactly,
//! through Redis, by every gateway. An idle lease goes back after [`IDLE`].
//!
//! Every call runs under the tenant's shared balance lock, so an account rebuilt here (which
//! holds this process's leases again, `load.lua`) never sees a lease half-changed.

use super::balance::{Balances, LEASE, LEASE_DROP};
use super::lease::{EVERY, Lease, usable_for};
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The least time between two rounds (a refill wakes the next one early).
pub const SPACING: Duration = Duration::from_millis(20);
/// A lease is taken only while `available` is at least this many of the largest hold.
pub const MIN_HOLDS: i64 = 32;
/// A lease is at least this many of the largest hold (a round is woken early once its free
/// part falls under [`REFILL_HOLDS`](super::lease::REFILL_HOLDS)).
const SIZE_HOLDS: i64 = 8;
/// A tenant is leased a slice only while this many of its requests a second reserve here.
pub const MIN_RATE: f64 = 16.0;
/// A lease unused this long is given back.
pub const IDLE: Duration = Duration::from_secs(2);
/// The longest a round waits for one rebuild, or the shutdown for one close.
const CALL_LIMIT: Duration = Duration::from_secs(2);
/// Tenants whose leases are seen to at once.
const FAN_OUT: usize = 16;

/// One call for one lease: lease `n`, whose last applied call was `prev`.
#[derive(Debug, Clone, Copy)]
struct Step {
    n: u64,
    prev: u64,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Renew,
    /// Give back this much (already taken off `free`).
    Give(i64),
    /// Take up to this much; `true` for a new lease.
    Take(i64, bool),
    /// Give back all it holds and drop it (already gone here).
    Close,
}

impl Step {
    fn of(l: &Lease, kind: Kind) -> Step {
        Step { n: l.n, prev: l.seq, kind }
    }
}

/// What a lease call answered.
enum Answer {
    /// Applied: (moved, available, this call's number).
    Done(i64, i64, u64),
    /// The lease is gone, or not the one this process knows.
    Lost,
    /// The account is not loaded: nothing was applied.
    NotLoaded,
}

impl Balances {
    /// One round over every tenant this process leases for (or may).
    pub(super) async fn lease_round(&self) {
        let _round = self.leases.rounds.lock().await;
        let tenants: Vec<Uuid> = self.leases.tenants.lock().keys().copied().collect();
        futures_util::stream::iter(tenants).for_each_concurrent(FAN_OUT, |t| self.lease_tenant(t)).await;
    }

    /// Gives every lease back (graceful shutdown), so no tenant's money waits for a sweep.
    pub(super) async fn return_leases(&self) {
        // A round stuck on Redis must not hold the shutdown: after a while, go on beside it.
        let _round = tokio::time::timeout(CALL_LIMIT, self.leases.rounds.lock()).await;
        self.leases.closed.store(true, Relaxed);
        let tenants: Vec<Uuid> = self.leases.tenants.lock().keys().copied().collect();
        for tenant in tenants {
            let _shared = self.pending.lock(tenant).read().await;
            let steps: Vec<Step> = {
                let mut map = self.leases.tenants.lock();
                let Some(t) = map.remove(&tenant) else { continue };
                t.all().map(|l| Step::of(l, Kind::Close)).collect()
            };
            for step in steps {
                let answer = tokio::time::timeout(CALL_LIMIT, self.lease_call(tenant, step)).await;
                if !matches!(answer, Ok(Ok(Answer::Done(..) | Answer::Lost))) {
                    tracing::warn!(%tenant, lease = step.n, "could not give a lease back; the sweeper will, a minute on");
                }
            }
        }
    }

    async fn lease_tenant(&self, tenant: Uuid) {
        let shared = self.pending.lock(tenant).read().await;
        let mut steps = self.plan(tenant);
        for pass in 0..2 {
            for (i, &step) in steps.iter().enumerate() {
                if !self.lease_step(tenant, step).await {
                    // Not loaded: nothing of this or the later steps was applied; undo them
                    // here, rebuild the account (outside the shared lock), plan next round.
                    steps[i..].iter().for_each(|s| self.undo(tenant, *s));
                    drop(shared);
                    // Bounded: a slow Postgres must not stall every tenant's renewals.
                    match tokio::time::timeout(CALL_LIMIT, self.load(tenant)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(%tenant, error = %e, "could not rebuild an account for its lease"),
                        Err(_) => tracing::warn!(%tenant, "rebuilding an account for its lease took too long"),
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

    /// Runs one call and applies its answer; `false` when the account is not loaded.
    async fn lease_step(&self, tenant: Uuid, step: Step) -> bool {
        let sent = Instant::now();
        match self.lease_call(tenant, step).await {
            Ok(Answer::Done(moved, available, seq)) => {
                if !self.applied(tenant, step, moved, available, seq, sent) {
                    let close = Step { n: step.n, prev: seq, kind: Kind::Close };
                    let _ = self.lease_call(tenant, close).await;
                }
            }
            Ok(Answer::Lost) if step.kind != Kind::Close => self.leases.lose(tenant, step.n),
            Ok(Answer::Lost) => {}
            Ok(Answer::NotLoaded) => return false,
            Err(e) => {
                metrics::counter!("xjp_lease_call_errors_total").increment(1);
                tracing::warn!(%tenant, error = %e, "lease call failed; the lease is given up");
                match step.kind {
                    // Applied or not, it is closed next round (once nothing runs under it):
                    // a close gives back what the lease holds, whatever Redis applied last.
                    Kind::Close | Kind::Take(_, true) => self.undo(tenant, Step { kind: Kind::Close, ..step }),
                    _ => self.leases.lose(tenant, step.n),
                }
            }
        }
        true
    }

    /// Puts back what a step not applied took here: a give-back's amount, a closed lease.
    fn undo(&self, tenant: Uuid, step: Step) {
        match step.kind {
            Kind::Give(amount) => self.leases.restore(tenant, step.n, amount),
            Kind::Close => {
                let mut map = self.leases.tenants.lock();
                if let Some(t) = map.get_mut(&tenant).filter(|t| !t.all().any(|l| l.n == step.n)) {
                    let usable_until = Instant::now();
                    t.retired.push(Lease { n: step.n, free: 0, out: 0, usable_until, seq: step.prev });
                }
            }
            Kind::Renew | Kind::Take(..) => {}
        }
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
            steps.push(Step::of(l, if l.out <= 0 { Kind::Close } else { Kind::Renew }));
            l.out > 0
        });
        let idle = now.duration_since(t.last_use) > IDLE;
        // The largest hold of this window, or an eighth less than the last (so one big request
        // does not size the tenant's leases for good).
        t.max_hold = std::mem::take(&mut t.window_max).max(t.max_hold - t.max_hold / 8);
        let threshold = t.max_hold.saturating_mul(MIN_HOLDS);
        let elapsed = now.duration_since(std::mem::replace(&mut t.sized_at, now)).max(EVERY / 4);
        let per_second = (t.reserved as f64 / elapsed.as_secs_f64()) as i64;
        let busy = f64::from(t.requests) / elapsed.as_secs_f64() >= MIN_RATE;
        (t.reserved, t.requests) = (0, 0);
        let target = per_second.max(t.max_hold.saturating_mul(SIZE_HOLDS));
        match t.current.as_mut() {
            Some(l) if idle && l.out > 0 => {
                // Requests still run under it: it is closed once they end.
                let give = std::mem::take(&mut l.free).max(0);
                steps.push(Step::of(l, Kind::Give(give)));
                t.retired.extend(t.current.take());
            }
            Some(l) if idle => {
                steps.push(Step::of(l, Kind::Close));
                t.current = None;
            }
            Some(l) if t.available < threshold || l.free > 2 * target => {
                let keep = if t.available < threshold { 0 } else { target };
                let give = (l.free - keep).max(0);
                l.free -= give;
                steps.push(Step::of(l, if give > 0 { Kind::Give(give) } else { Kind::Renew }));
            }
            Some(l) if l.free < target / 2 => steps.push(Step::of(l, Kind::Take(target - l.free, false))),
            Some(l) => steps.push(Step::of(l, Kind::Renew)),
            None if busy && t.max_hold > 0 && t.available >= threshold && !self.leases.closed.load(Relaxed) => {
                steps.push(Step { n: self.leases.fresh(), prev: 0, kind: Kind::Take(target, true) })
            }
            None => {}
        }
        if idle && t.current.is_none() && t.retired.is_empty() && steps.is_empty() {
            map.remove(&tenant);
        }
        steps
    }

    /// What call `seq` did, applied here. `false` when a new lease has no taker (the gateway
    /// is stopping): it is to be closed at once.
    fn applied(&self, tenant: Uuid, step: Step, moved: i64, available: i64, seq: u64, sent: Instant) -> bool {
        let mut map = self.leases.tenants.lock();
        let new = matches!(step.kind, Kind::Take(_, true));
        let taker = map.get_mut(&tenant).filter(|_| !self.leases.closed.load(Relaxed));
        let Some(t) = taker else { return !new || moved == 0 };
        t.available = available;
        let usable_until = sent + usable_for(self.hold_ttl);
        if new {
            if moved > 0 && t.current.is_some() {
                return false;
            }
            if moved > 0 {
                t.current = Some(Lease { n: step.n, free: moved, out: 0, usable_until, seq });
                metrics::counter!("xjp_leases_taken_total").increment(1);
            }
            return true;
        }
        let current = t.current.as_ref().is_some_and(|l| l.n == step.n);
        if let Some(l) = t.lease_mut(step.n) {
            l.seq = seq;
            if current {
                l.free += moved.max(0);
                l.usable_until = usable_until;
            }
        }
        true
    }

    /// One `lease.lua` call.
    async fn lease_call(&self, tenant: Uuid, step: Step) -> Result<Answer, super::BalanceError> {
        let (amount, exists, close) = match step.kind {
            Kind::Renew => (0, true, false),
            Kind::Give(amount) => (-amount, true, false),
            Kind::Take(amount, new) => (amount, !new, false),
            Kind::Close => (0, false, true),
        };
        let threshold =
            self.leases.tenants.lock().get(&tenant).map_or(i64::MAX, |t| t.max_hold.saturating_mul(MIN_HOLDS));
        let seq = self.leases.fresh();
        let k = self.keys.tenant(tenant);
        let mut invocation = LEASE.key(&k.account);
        invocation.key(&k.holds).key(&k.expiry).arg(self.leases.hold_id(step.n)).arg(amount).arg(u8::from(exists));
        invocation.arg(super::lease::ttl(self.hold_ttl).as_millis() as u64).arg(u8::from(close)).arg(threshold);
        invocation.arg(seq).arg(step.prev);
        let mut conn = self.conn().await?;
        // The tenant stays in the hold index while it holds a lease, so the sweeper finds the
        // lease if this gateway dies. A pipelined script is not reloaded by the client: a
        // Redis that lost its scripts answers NOSCRIPT (nothing ran), and the call goes again.
        let mut answer = self.index_then(tenant, &mut conn, &invocation).await;
        if let Err(e) = &answer
            && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
        {
            invocation.load_async(&mut conn).await?;
            answer = self.index_then(tenant, &mut conn, &invocation).await;
        }
        let (code, moved, available): (i64, i64, i64) = answer?;
        Ok(match code {
            1 => Answer::Done(moved, available, seq),
            -1 => Answer::Lost,
            _ => Answer::NotLoaded,
        })
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
