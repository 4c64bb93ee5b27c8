//! Balance leases (ADR 0002), this process's side: a slice of a busy tenant's balance held in
//! Redis under one hold id per lease (`lease <replica>/<n>`), reserved against here without a
//! round trip. Only requests whose id the gateway made reserve from a lease (a client's id
//! needs its Redis state and the ledger check). A leased request still settles in Redis, from
//! the lease's hold (`settle.lua`), so Redis holds exactly what is reserved or unspent here.
//!
//! Per lease: `free` is what is not reserved, `out` what running requests reserved. The
//! Redis hold is `free + out`, plus the costs of settlements not yet applied there. A lease is
//! used only while its last renewal is recent (a second), so one the sweeper may have dropped
//! is never spent from.
//! [`lease_sync`](super::lease_sync) sizes, renews and returns leases; this file is the
//! in-process bookkeeping only.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

/// How often leases are sized and renewed (`lease_sync`).
pub const EVERY: Duration = Duration::from_millis(250);
/// A round is woken early when a lease's free part falls under this many of the largest hold.
pub const REFILL_HOLDS: i64 = 4;

/// Which lease a request reserved from (the `n` of `lease <replica>/<n>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTag(pub(super) u64);

/// One lease of one tenant.
#[derive(Debug)]
pub(super) struct Lease {
    pub n: u64,
    /// Not reserved by any request.
    pub free: i64,
    /// Reserved by requests still running.
    pub out: i64,
    /// Reserving from it stops here unless a renewal moves it.
    pub usable_until: Instant,
    /// The sequence number of the last call Redis applied to it (`lease.lua`): a call that
    /// finds another there finds a lease this process does not know (lost, rolled back).
    pub seq: u64,
}

/// What this process knows of one tenant.
#[derive(Debug)]
pub(super) struct TenantLeases {
    pub current: Option<Lease>,
    /// Leases given up (lost, or returned while idle) with requests still running under them.
    pub retired: Vec<Lease>,
    /// The largest hold a request of this tenant took lately (sizes the lease) ...
    pub max_hold: i64,
    /// ... and the largest since the last sizing.
    pub window_max: i64,
    /// Amount reserved here since the last sizing (the spending rate) ...
    pub reserved: i64,
    /// ... and how many requests reserved it.
    pub requests: u32,
    /// The account's `available` as Redis last answered.
    pub available: i64,
    pub last_use: Instant,
    /// When `reserved` was last reset.
    pub sized_at: Instant,
}

/// The leases of this process.
#[derive(Debug)]
pub struct Leases {
    enabled: bool,
    replica: Uuid,
    next: AtomicU64,
    pub(super) tenants: Mutex<HashMap<Uuid, TenantLeases>>,
    /// Woken when a lease runs low, so it is topped up before the next round.
    pub(super) refill: Arc<Notify>,
    /// Held by a round, and by the giving back at shutdown: one at a time.
    pub(super) rounds: tokio::sync::Mutex<()>,
    /// Set at shutdown, once the leases are being given back: none is taken or used again.
    pub(super) closed: AtomicBool,
    /// `xjp_lease_reserves_total`, kept: a request reserved from a lease counts with one
    /// atomic add, not a registry lookup.
    reserves: metrics::Counter,
}

impl Leases {
    /// Leases for this process, used only when `enabled` (`[billing] leases`).
    pub fn new(enabled: bool) -> Self {
        Leases {
            enabled,
            replica: Uuid::new_v4(),
            next: AtomicU64::new(1),
            tenants: Mutex::new(HashMap::new()),
            refill: Arc::new(Notify::new()),
            rounds: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            reserves: metrics::counter!("xjp_lease_reserves_total"),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The hold id of lease `n`. The space keeps it apart from every request id: a client's
    /// id is visible ASCII only (`proxy/accept.rs`), a gateway's a UUID.
    pub(super) fn hold_id(&self, n: u64) -> String {
        format!("lease {}/{n}", self.replica)
    }

    /// This process's id among the gateways sharing Redis (random per start).
    pub fn replica(&self) -> Uuid {
        self.replica
    }

    /// Whether a hold id names a lease (any replica's).
    pub fn is_lease(hold_id: &str) -> bool {
        hold_id.starts_with("lease ")
    }

    /// A fresh lease number.
    pub(super) fn fresh(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Reserves `amount` for a request from the tenant's lease, if it has a usable one with
    /// room: the lease and what the tenant had before (Redis's last `available` + the free
    /// part). `None` sends the request to Redis.
    pub fn take(&self, tenant: Uuid, amount: i64) -> Option<(LeaseTag, i64)> {
        if !self.enabled || self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        let mut tenants = self.tenants.lock();
        let t = tenants.get_mut(&tenant)?;
        t.last_use = now;
        let lease = t.current.as_mut().filter(|l| now < l.usable_until && l.free >= amount)?;
        let before = t.available.saturating_add(lease.free);
        lease.free -= amount;
        lease.out += amount;
        let (n, free) = (lease.n, lease.free);
        t.count(amount);
        if free < t.max_hold.saturating_mul(REFILL_HOLDS) {
            self.refill.notify_one();
        }
        self.reserves.increment(1);
        Some((LeaseTag(n), before))
    }

    /// A request of the tenant asked Redis for `amount`: `available` is what the account has
    /// left, and `held` whether it got it (only holds that were taken size a lease, so one huge
    /// refused request does not). The next round may lease the tenant a slice.
    pub fn observe(&self, tenant: Uuid, amount: i64, available: i64, held: bool) {
        if !self.enabled {
            return;
        }
        let mut tenants = self.tenants.lock();
        let t = tenants.entry(tenant).or_insert_with(|| TenantLeases {
            current: None,
            retired: Vec::new(),
            max_hold: 0,
            window_max: 0,
            reserved: 0,
            requests: 0,
            available,
            last_use: Instant::now(),
            sized_at: Instant::now(),
        });
        t.available = available;
        if held {
            t.count(amount);
        }
        t.last_use = Instant::now();
    }

    /// Puts back what a round took off `free` to give back, when Redis applied none of it.
    pub(super) fn restore(&self, tenant: Uuid, n: u64, amount: i64) {
        if let Some(lease) = self.tenants.lock().get_mut(&tenant).and_then(|t| t.lease_mut(n)) {
            lease.free += amount;
        }
    }

    /// A request reserved from lease `tag` with `hold` ended costing `cost` (applied in Redis,
    /// or registered for a resync): the hold's unused part is free again.
    pub(super) fn settled(&self, tenant: Uuid, tag: LeaseTag, hold: i64, cost: i64) {
        if let Some(lease) = self.tenants.lock().get_mut(&tenant).and_then(|t| t.lease_mut(tag.0)) {
            lease.out -= hold;
            lease.free += hold - cost;
        }
    }

    /// Lease `n` is not what Redis holds (lost to a flush or a sweep, or a call's outcome is
    /// unknown): nothing more is reserved from it; requests under it settle as they run out.
    pub(super) fn lose(&self, tenant: Uuid, n: u64) {
        let mut tenants = self.tenants.lock();
        let Some(t) = tenants.get_mut(&tenant) else { return };
        if t.current.as_ref().is_some_and(|l| l.n == n) {
            let mut lease = t.current.take().expect("checked");
            lease.free = 0;
            t.retired.push(lease);
            metrics::counter!("xjp_leases_lost_total").increment(1);
            tracing::warn!(%tenant, lease = n, "balance lease lost; reserving through Redis until a new one");
        }
    }

    /// What this process holds leased for `tenant` now (free and reserved, every lease).
    pub fn held(&self, tenant: Uuid) -> i64 {
        let tenants = self.tenants.lock();
        tenants.get(&tenant).map_or(0, |t| t.all().map(|l| l.free + l.out).sum())
    }

    /// What this process's leases of `tenant` hold (hold id, `free + out`, last sequence
    /// number), for an account being rebuilt: a lease Redis lost is held again, as its money
    /// is still being spent here (unless the sweeper dropped it: `load.lua`).
    pub(super) fn outstanding(&self, tenant: Uuid) -> Vec<(String, i64, u64)> {
        let tenants = self.tenants.lock();
        let Some(t) = tenants.get(&tenant) else { return Vec::new() };
        t.all().filter(|l| l.free + l.out > 0).map(|l| (self.hold_id(l.n), l.free + l.out, l.seq)).collect()
    }
}

impl TenantLeases {
    /// A hold of `amount` was taken for one of its requests (here or through Redis): it
    /// counts toward the spending rate and the largest hold.
    fn count(&mut self, amount: i64) {
        self.reserved = self.reserved.saturating_add(amount);
        self.requests = self.requests.saturating_add(1);
        self.max_hold = self.max_hold.max(amount);
        self.window_max = self.window_max.max(amount);
    }

    /// Its leases, current and retired.
    pub(super) fn all(&self) -> impl Iterator<Item = &Lease> {
        self.current.iter().chain(self.retired.iter())
    }

    /// Lease `n`, current or retired.
    pub(super) fn lease_mut(&mut self, n: u64) -> Option<&mut Lease> {
        self.current.iter_mut().chain(self.retired.iter_mut()).find(|l| l.n == n)
    }
}

/// How long a lease lives in Redis unless renewed (every round): the hold TTL, at most a
/// minute, so a dead gateway's lease is back in its tenant's account about a minute later.
pub(super) fn ttl(hold_ttl: Duration) -> Duration {
    hold_ttl.min(Duration::from_secs(60))
}

/// How long a renewed lease may be reserved from: a second (four rounds), at most two thirds
/// of its TTL, so the sweeper (which drops it a full TTL after the renewal) never drops one
/// still in use, and a gateway whose rounds stall stops spending from a lease Redis may have
/// lost within a second.
pub(super) fn usable_for(hold_ttl: Duration) -> Duration {
    (ttl(hold_ttl) * 2 / 3).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease is reserved from only within its use window: past it (its rounds stalled: the
    /// process was stopped, or Redis did not answer) requests go to Redis, whatever is free.
    #[test]
    fn a_lease_past_its_use_window_reserves_nothing() {
        let (leases, tenant) = (Leases::new(true), Uuid::from_u128(7));
        leases.observe(tenant, 100, 10_000, true);
        let lease = |usable_until| Lease { n: 1, free: 1_000, out: 0, usable_until, seq: 1 };
        let now = Instant::now();
        leases.tenants.lock().get_mut(&tenant).unwrap().current = Some(lease(now + Duration::from_secs(1)));
        assert!(leases.take(tenant, 100).is_some(), "within its window");
        leases.tenants.lock().get_mut(&tenant).unwrap().current = Some(lease(now));
        assert!(leases.take(tenant, 100).is_none(), "past its window");
        assert_eq!(leases.held(tenant), 1_000, "and nothing was taken from it");
    }
}
