//! Money on the request path: phase 4 ([`reserve`]) holds an upper bound before the
//! upstream call; phase 7 ([`settle`]) records the transaction durably and turns the hold
//! into the real debit. Balances live in Redis ([`balance`]); expired holds are swept
//! ([`sweeper`]). [`Billing`] owns the balances, the ledger and their background jobs.

pub mod balance;
pub mod bill;
pub mod ending;
pub mod holds;
pub mod keys;
pub mod lease;
pub mod lease_sync;
pub mod left_behind;
pub mod record;
pub mod recount;
pub mod reserve;
pub mod resync;
pub mod running;
pub mod settle;
pub mod settle_batch;
pub mod sweeper;

pub use balance::{BalanceError, Balances, LiveBalance, Reservation, Settlement};
pub use bill::{Bill, Caller, Hold, IdOrigin, Reserved, Routed};
pub use ending::{Ending, Refusal};
pub use keys::{KeySpace, TenantKeys};

use crate::api::GatewayError;
use crate::config::LiveSettings;
use crate::db::RedisTarget;
use crate::ledger::{Ledger, LedgerConfig, LedgerError, PendingDebits};
use sqlx::PgPool;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// The balances (Redis), the ledger (spool + Postgres) and the jobs that keep them true.
pub struct Billing {
    pub balances: Balances,
    pub ledger: Ledger,
    /// Holds of requests running here, renewed while they run.
    pub running: running::RunningHolds,
    /// Settlements that failed while Redis was unreachable, applied when it returns.
    pub resyncs: resync::Resyncs,
    /// Rows a previous run left in the spool, reconciled in Redis once recorded.
    pub left_behind: left_behind::LeftBehindRows,
    /// The `[billing]` policies are read from here at each use (reloadable).
    settings: LiveSettings,
    /// Settle-and-record tasks (waited for at shutdown, before the ledger flushes).
    tasks: TaskTracker,
    /// The check of committed debits against the account's rebuild (`recount`), which ends
    /// after the ledger: waited for at shutdown.
    recount: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// `[billing] enabled` at start; off (benchmarks only), nothing is held or recorded.
    enabled: bool,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Billing")
    }
}

impl Billing {
    /// Opens the ledger (replaying its spool) and the balance store (connected on first use).
    pub async fn start(
        db: PgPool,
        redis: RedisTarget,
        ledger: LedgerConfig,
        settings: LiveSettings,
    ) -> Result<Arc<Billing>, LedgerError> {
        let hold_ttl = Duration::from_secs(settings.load().config.billing.hold_ttl_secs);
        let pending = Arc::new(PendingDebits::default());
        let ledger = Ledger::start(db.clone(), ledger, pending.clone()).await?;
        let keys = KeySpace::new(&settings.load().config.redis.key_prefix);
        let leases = settings.load().config.billing.leases;
        let balances = Balances::new(redis, keys, db, pending, hold_ttl).with_leases(leases);
        let running = running::RunningHolds::default();
        let left_behind = left_behind::LeftBehindRows::of(&ledger);
        let (resyncs, tasks) = (resync::Resyncs::default(), TaskTracker::new());
        let enabled = settings.load().config.billing.enabled;
        if !enabled {
            tracing::warn!(
                "billing is OFF ([billing] enabled = false): requests are neither held, priced, recorded nor debited; for comparisons and benchmarks only"
            );
        }
        let recount = parking_lot::Mutex::new(None);
        Ok(Arc::new(Billing { balances, ledger, running, resyncs, left_behind, settings, tasks, recount, enabled }))
    }

    /// Phase 4: estimates, prices and holds for a routed bill (see [`reserve::reserve`]).
    /// With billing off it holds nothing. Sheds the request first, before anything is held,
    /// while the ledger's backlog is at its bound (`[billing] spool_max_rows` /
    /// `spool_max_bytes`).
    pub async fn reserve(&self, bill: &mut Bill, body: &[u8]) -> Result<(), GatewayError> {
        if !self.enabled {
            return Ok(());
        }
        let (policy, max_rows, max_bytes) = {
            let b = &self.settings.load().config.billing;
            (b.redis_failure, b.spool_max_rows, b.spool_max_bytes)
        };
        if self.ledger.backlog().exceeds(max_rows, max_bytes) {
            metrics::counter!("xjp_ledger_shed_requests_total").increment(1);
            return Err(GatewayError::LedgerBacklog);
        }
        reserve::reserve(self, bill, body, policy).await?;
        // A lease is renewed by the lease rounds, not per request.
        if bill.hold().is_some_and(|h| h.lease.is_none()) {
            self.running.add(bill.caller.tenant_id, &bill.request_id);
        }
        Ok(())
    }

    /// Phases 7 and 8 for an ended request, in the background: price, record, settle.
    /// Taking the bill by value is what makes it happen once.
    /// With billing off it records nothing.
    pub fn finish(self: &Arc<Self>, bill: Bill, ending: Ending, latency: Duration) {
        if !self.enabled {
            return;
        }
        let billing = self.clone();
        // Boxed, as the request's task is (`proxy::handle`): the bill is moved once.
        self.tasks.spawn(Box::pin(async move { settle::settle_and_record(&billing, bill, ending, latency).await }));
    }

    /// Starts the hold renewal, the hold sweeper (with the resyncs and the reconciling of
    /// rows a previous run left), the lease rounds (with `[billing] leases`), the summary
    /// rollup and the check of committed debits (`recount`); they stop when billing is
    /// dropped (the check when the ledger has stopped).
    pub fn spawn_jobs(self: &Arc<Self>, sweep_every: Duration, rollup_every: Duration) {
        if let Some(commits) = self.ledger.take_commits() {
            *self.recount.lock() = Some(tokio::spawn(recount::run(Arc::downgrade(self), commits)));
        }
        if self.balances.leases.enabled() {
            let (billing, refill) = (Arc::downgrade(self), self.balances.leases.refill.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(lease::EVERY) => {}
                        _ = refill.notified() => {}
                    }
                    let Some(b) = billing.upgrade() else { return };
                    b.balances.lease_round().await;
                    drop(b);
                    tokio::time::sleep(lease_sync::SPACING).await;
                }
            });
        }
        let renew_every = (self.balances.hold_ttl() / 3).max(Duration::from_millis(100));
        every(Arc::downgrade(self), renew_every, |b| async move { b.running.renew(&b.balances).await });
        every(Arc::downgrade(self), sweep_every, |b| async move {
            b.resyncs.run(&b.balances).await;
            b.left_behind.run(&b.balances, &b.ledger).await;
            if let Err(e) = sweeper::sweep_once(&b.balances, &b.ledger).await {
                tracing::debug!(error = %e, "hold sweep skipped");
            }
        });
        every(Arc::downgrade(self), rollup_every, |b| async move {
            if let Err(e) = b.ledger.rollup().await {
                tracing::error!(error = %e, "rollup failed");
            }
        });
    }

    /// Waits (up to `grace`) for the requests being settled, then flushes the ledger.
    pub async fn shutdown(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("grace period over with settlements still running");
        }
        self.balances.return_leases().await;
        self.ledger.shutdown().await;
        // The ledger's last commits are checked before the process goes.
        let recount = self.recount.lock().take();
        if let Some(task) = recount
            && tokio::time::timeout(grace, task).await.is_err()
        {
            tracing::warn!("grace period over with committed debits still being checked");
        }
    }
}

/// Runs `job` every `interval` while billing lives.
fn every<F, Fut>(billing: Weak<Billing>, interval: Duration, job: F)
where
    F: Fn(Arc<Billing>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(billing) = billing.upgrade() else { return };
            job(billing).await;
        }
    });
}
