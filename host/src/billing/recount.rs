//! Debits a rebuild by another gateway could not count (ADR 0002, "Flushed Redis"): a
//! rebuild reads Postgres and subtracts only its own gateway's unrecorded debits, so a Redis
//! flush loses the debits other gateways applied whose rows were still on their way to
//! Postgres. Each gateway hears from its ledger when such rows commit (`ledger::recount`)
//! and applies them now if the account's rebuild missed them (`lua/recount.lua`: rebuilt by
//! another gateway, from a snapshot that did not see the commit, after they were settled).

use super::balance::{BalanceError, Balances};
use crate::ledger::recount::Committed;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::mpsc;

static RECOUNT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/recount.lua")));

/// Commits checked at once (their scripts pipelined on the one connection).
const AT_ONCE: usize = 256;

/// Checks each commit until the ledger closes its queue (it has stopped), what has queued up
/// at once. A check Redis does not answer is retried a few times, then left to the next
/// rebuild.
pub(super) async fn run(billing: std::sync::Weak<super::Billing>, mut commits: mpsc::Receiver<Committed>) {
    let mut batch = Vec::with_capacity(AT_ONCE);
    while commits.recv_many(&mut batch, AT_ONCE).await > 0 {
        let Some(billing) = billing.upgrade() else { return };
        futures_util::future::join_all(batch.drain(..).map(|c| check(&billing.balances, c))).await;
    }
}

async fn check(balances: &Balances, committed: Committed) {
    let mut delay = Duration::from_millis(50);
    for attempt in 0..4 {
        match balances.recount(&committed).await {
            Ok(_) => return,
            Err(e) if attempt == 3 => {
                metrics::counter!("xjp_balance_recount_failures_total").increment(1);
                tracing::error!(tenant = %committed.tenant, error = %e, "cannot check committed debits against the account's rebuild");
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
}

impl Balances {
    /// Applies the committed debits the account's current rebuild did not count; returns
    /// what was debited (-1: marked for a rebuild instead, when the rebuild may have seen
    /// some of the rows through an earlier commit).
    pub async fn recount(&self, committed: &Committed) -> Result<i64, BalanceError> {
        let k = self.keys.tenant(committed.tenant);
        let mut invocation = RECOUNT.key(&k.account);
        invocation.arg(self.leases.replica().to_string()).arg(&committed.xid).arg(u8::from(committed.all_new));
        for debit in &committed.debits {
            invocation.arg(debit.epoch.as_deref().unwrap_or("")).arg(debit.cost);
        }
        let mut conn = self.conn().await?;
        let debited: i64 = invocation.invoke_async(&mut conn).await?;
        if debited != 0 {
            metrics::counter!("xjp_balance_recounts_total").increment(1);
            tracing::warn!(
                tenant = %committed.tenant,
                debited_nano = debited,
                "debits committed after another gateway rebuilt the account without them: applied now"
            );
        }
        Ok(debited)
    }
}
