//! Balance changes that failed while Redis was unreachable. Settlements (fail-open requests,
//! or a settle that ran out of retries): their rows are recorded and their debits registered
//! as unrecorded; once Redis answers, each request's hold is dropped and its tenant's account
//! is rebuilt from Postgres, so the live balance catches up with the ledger. Credits (top-ups,
//! adjustments) recorded in Postgres whose Redis step failed: applied once Redis answers (by
//! their marker, so never twice). Kept in memory: after a restart a stale account is only
//! fixed by its next rebuild (README, Money).

use super::Balances;
use super::lease::LeaseTag;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

/// Failed balance changes waiting for Redis.
#[derive(Debug, Default)]
pub struct Resyncs {
    waiting: Mutex<Vec<Waiting>>,
    /// Changes taken out of `waiting` by a run in progress.
    in_flight: AtomicUsize,
}

/// One change Redis missed.
#[derive(Debug)]
enum Waiting {
    /// `lease`: the lease the request was held from, and its hold.
    Settle {
        tenant: Uuid,
        request_id: String,
        cost: i64,
        lease: Option<(LeaseTag, i64)>,
    },
    Credit {
        tenant: Uuid,
        credit_id: String,
        amount: i64,
    },
}

impl Resyncs {
    /// A settlement of `cost` for `request_id` (held from a lease, with a hold of the given
    /// amount, if any) could not be applied.
    pub fn push(&self, tenant: Uuid, request_id: &str, cost: i64, lease: Option<(LeaseTag, i64)>) {
        metrics::counter!("xjp_settle_resyncs_total").increment(1);
        self.wait(Waiting::Settle { tenant, request_id: request_id.to_string(), cost, lease });
    }

    /// A credit recorded in Postgres could not be applied to the live balance.
    pub fn push_credit(&self, tenant: Uuid, credit_id: &str, amount: i64) {
        metrics::counter!("xjp_credit_resyncs_total").increment(1);
        self.wait(Waiting::Credit { tenant, credit_id: credit_id.to_string(), amount });
    }

    fn wait(&self, change: Waiting) {
        let mut waiting = self.waiting.lock();
        waiting.push(change);
        metrics::gauge!("xjp_settle_resyncs_waiting").set(waiting.len() as f64);
    }

    /// Whether none waits (none is being applied either).
    pub fn is_empty(&self) -> bool {
        self.waiting.lock().is_empty() && self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Applies what it can; what still fails waits for the next round.
    pub async fn run(&self, balances: &Balances) {
        let batch = {
            let mut waiting = self.waiting.lock();
            self.in_flight.store(waiting.len(), Ordering::SeqCst);
            std::mem::take(&mut *waiting)
        };
        let mut failed = Vec::new();
        for change in batch {
            let applied = match &change {
                Waiting::Settle { tenant, request_id, cost, lease } => {
                    let hold_id = lease.map(|(tag, _)| balances.leases.hold_id(tag.0));
                    let resynced = balances.resync(*tenant, request_id, *cost, hold_id.as_deref()).await;
                    // Only now is the cost out of the lease's hold; the unused part is free.
                    if let (Ok(()), Some((tag, hold))) = (&resynced, lease) {
                        balances.leases.settled(*tenant, *tag, *hold, *cost);
                    }
                    resynced
                }
                Waiting::Credit { tenant, credit_id, amount } => {
                    balances.credit(*tenant, credit_id, *amount).await.map(drop)
                }
            };
            match applied {
                Ok(()) => tracing::info!(change = ?change, "balance change resynced after a Redis failure"),
                Err(_) => failed.push(change),
            }
        }
        let mut waiting = self.waiting.lock();
        waiting.extend(failed);
        self.in_flight.store(0, Ordering::SeqCst);
        metrics::gauge!("xjp_settle_resyncs_waiting").set(waiting.len() as f64);
    }
}
