//! What a commit tells billing: the debits whose rows just reached Postgres, with the Redis
//! account epoch each was applied under, and the transaction that committed them. A balance
//! rebuilt by another gateway from a snapshot that missed that transaction does not count
//! those debits; billing (`billing::recount`) applies them then.

use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Commits queued for billing; beyond, a commit is dropped (counted, logged): billing takes
/// them as they come and runs up to 1 024 checks at once, so this is reached only when
/// Redis stalls them all, or when billing never started its jobs.
const QUEUE: usize = 65_536;

/// A debit applied in Redis whose row is not in Postgres yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debit {
    /// nano-USD.
    pub cost: i64,
    /// The account's epoch (`load.lua`) the settlement answered with, when it had one.
    pub epoch: Option<Arc<str>>,
}

/// One tenant's debits committed by one Postgres transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub tenant: Uuid,
    /// The committing transaction (`pg_current_xact_id()`, decimal).
    pub xid: String,
    /// The debits that carried an epoch.
    pub debits: Vec<Debit>,
    /// Every row of the transaction was new: none of these debits was recorded earlier, by a
    /// transaction the rebuild may have seen.
    pub all_new: bool,
}

/// The inserter's end of the queue.
#[derive(Debug, Clone)]
pub(super) struct CommitSender(mpsc::Sender<Committed>);

/// A queue of commits: the sender for the inserter, the receiver for billing.
pub(super) fn queue() -> (CommitSender, mpsc::Receiver<Committed>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (CommitSender(tx), rx)
}

impl CommitSender {
    /// Passes a commit on without waiting (the inserter holds the tenants' locks).
    pub(super) fn send(&self, committed: Committed) {
        if let Err(mpsc::error::TrySendError::Full(c)) = self.0.try_send(committed) {
            metrics::counter!("xjp_ledger_recounts_dropped_total").increment(1);
            tracing::warn!(tenant = %c.tenant, "recount queue full; a rebuilt balance may miss these debits until the next rebuild");
        }
    }
}
