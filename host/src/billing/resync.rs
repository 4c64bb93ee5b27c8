//! Settlements that failed while Redis was unreachable (fail-open requests, or a settle
//! that ran out of retries). Their rows are recorded and their debits registered as
//! unrecorded; once Redis answers, each request's hold is dropped and its tenant's account
//! is rebuilt from Postgres, so the live balance catches up with the ledger. Kept in memory:
//! after a restart a stale account is only fixed by its next rebuild (README, Money).

use super::Balances;
use parking_lot::Mutex;
use uuid::Uuid;

/// Failed settlements waiting for Redis.
#[derive(Debug, Default)]
pub struct Resyncs {
    waiting: Mutex<Vec<(Uuid, String, i64)>>,
}

impl Resyncs {
    /// A settlement of `cost` for `request_id` could not be applied.
    pub fn push(&self, tenant: Uuid, request_id: &str, cost: i64) {
        metrics::counter!("xjp_settle_resyncs_total").increment(1);
        let mut waiting = self.waiting.lock();
        waiting.push((tenant, request_id.to_string(), cost));
        metrics::gauge!("xjp_settle_resyncs_waiting").set(waiting.len() as f64);
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.lock().is_empty()
    }

    /// Applies what it can; what still fails waits for the next round.
    pub async fn run(&self, balances: &Balances) {
        let batch = std::mem::take(&mut *self.waiting.lock());
        let mut failed = Vec::new();
        for (tenant, request_id, cost) in batch {
            match balances.resync(tenant, &request_id, cost).await {
                Ok(()) => tracing::info!(%tenant, request_id, "failed settlement resynced; the account is rebuilt"),
                Err(_) => failed.push((tenant, request_id, cost)),
            }
        }
        let mut waiting = self.waiting.lock();
        waiting.extend(failed);
        metrics::gauge!("xjp_settle_resyncs_waiting").set(waiting.len() as f64);
    }
}
