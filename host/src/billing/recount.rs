//! Debits a rebuild by another gateway could not count (ADR 0002, "Flushed Redis"): a
//! rebuild reads Postgres and subtracts only its own gateway's unrecorded debits, so a Redis
//! flush loses the debits other gateways applied whose rows were still on their way to
//! Postgres. Each gateway hears from its ledger when such rows commit (`ledger::recount`)
//! and applies them now if the account's rebuild missed them (`lua/recount.lua`: rebuilt by
//! another gateway, from a snapshot that did not see the commit, after they were settled).

use super::balance::{BalanceError, Balances};
use crate::ledger::recount::Committed;
use redis::Script;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

/// `recount.lua` with its preludes (the snapshot check it shares with `load.lua`, the rebuild mark).
pub const RECOUNT_LUA: &str =
    concat!(include_str!("lua/snapshot.lua"), include_str!("lua/mark.lua"), include_str!("lua/recount.lua"));
static RECOUNT: LazyLock<Script> = LazyLock::new(|| Script::new(RECOUNT_LUA));

/// Checks running at once (each a script call, pipelined on the one connection).
const AT_ONCE: usize = 1024;

/// Pauses before each try of a check Redis did not answer (a resent debit is not applied
/// twice: `recount.lua`'s marker).
const TRIES: [Duration; 4] =
    [Duration::ZERO, Duration::from_millis(50), Duration::from_millis(200), Duration::from_millis(800)];

/// What `recount.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recounted {
    /// Nothing was missed.
    Counted,
    /// This much (nano-USD) was missed by the rebuild and is debited now.
    Debited(i64),
    /// The rebuild may have seen part of it: the account is marked for another.
    Marked,
    /// The account is not loaded: the load that completes next must see the commit, so it
    /// counts the rows.
    NextLoad,
}

/// Checks each commit until the ledger closes its queue (it has stopped) and every check
/// has ended.
pub(super) async fn run(billing: Weak<super::Billing>, mut commits: mpsc::Receiver<Committed>) {
    let (running, slots) = (TaskTracker::new(), Arc::new(Semaphore::new(AT_ONCE)));
    while let Some(committed) = commits.recv().await {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let billing = billing.clone();
        running.spawn(async move {
            if let Some(billing) = billing.upgrade() {
                check(&billing.balances, &committed).await;
            }
            drop(slot);
        });
    }
    running.close();
    running.wait().await;
}

/// Tries a check on [`TRIES`]' schedule. Given up on, the account may overstate its
/// balance by these debits until its next rebuild.
async fn check(balances: &Balances, committed: &Committed) {
    for (n, pause) in TRIES.iter().enumerate() {
        tokio::time::sleep(*pause).await;
        let last = n == TRIES.len() - 1;
        match balances.recount(committed).await {
            Ok(_) => return,
            Err(e) if last => {
                metrics::counter!("xjp_balance_recount_failures_total").increment(1);
                tracing::error!(tenant = %committed.tenant, error = %e, "cannot check committed debits against the account's rebuild");
            }
            Err(_) => {}
        }
    }
}

impl Balances {
    /// Applies the committed debits the account's current rebuild did not count, once however
    /// often it is sent.
    pub async fn recount(&self, committed: &Committed) -> Result<Recounted, BalanceError> {
        let replica = self.leases.replica();
        let mut invocation = RECOUNT.key(self.keys.tenant(committed.tenant).account);
        invocation.key(self.keys.recount(committed.tenant, replica, &committed.xid));
        invocation.arg(replica.to_string()).arg(&committed.xid).arg(u8::from(committed.all_new));
        for debit in &committed.debits {
            invocation.arg(debit.epoch.as_deref().unwrap_or("")).arg(debit.cost);
        }
        let mut conn = self.conn().await?;
        let answer: i64 = invocation.invoke_async(&mut conn).await?;
        let recounted = match answer {
            0 => Recounted::Counted,
            -1 => Recounted::Marked,
            -2 => Recounted::NextLoad,
            debited => Recounted::Debited(debited),
        };
        if matches!(recounted, Recounted::Debited(_) | Recounted::Marked) {
            metrics::counter!("xjp_balance_recounts_total").increment(1);
            tracing::warn!(
                tenant = %committed.tenant,
                ?recounted,
                "debits committed after another gateway rebuilt the account without them"
            );
        }
        Ok(recounted)
    }
}
