//! The rows a previous run of this gateway left in its spool: once each is in Postgres, those
//! this run recorded have their debit made to count once in Redis
//! (`Balances::settle_left_behind`). Without this, a run that died between spooling a row and
//! settling it, and stayed down longer than the hold TTL, had its holds released by the
//! sweeper (no row in Postgres yet) and its replayed rows never debited; and a debit it did
//! settle was lost by any rebuild while the row was only in its spool. Either way Redis stayed
//! above Postgres until the account's next rebuild. Rows already in Postgres before this run
//! (a spool segment not yet deleted) are left alone.

use super::Balances;
use crate::ledger::{Ledger, LeftBehind};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// Allowed skew between this host's clock and Postgres's (rows are told apart by
/// `recorded_at`): a row recorded this much before the run started still counts as this
/// run's (a rebuild too many at worst).
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Rows of one tenant per lookup and per script call (a spool of millions at restart is
/// reconciled in statements and scripts of bounded size).
const CHUNK: usize = 1_000;

/// Left-behind rows not reconciled yet.
#[derive(Debug)]
pub struct LeftBehindRows {
    waiting: Mutex<Vec<LeftBehind>>,
    /// Rows recorded before this are not this run's.
    since: SystemTime,
}

impl LeftBehindRows {
    /// The rows `ledger` found in its spool at start.
    pub fn of(ledger: &Ledger) -> LeftBehindRows {
        let rows = ledger.take_left_behind();
        if !rows.is_empty() {
            tracing::info!(rows = rows.len(), "rows left in the spool by a previous run: reconciling once recorded");
        }
        let since = ledger.started_at().checked_sub(CLOCK_SKEW).unwrap_or(SystemTime::UNIX_EPOCH);
        LeftBehindRows { waiting: Mutex::new(rows), since }
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.lock().is_empty()
    }

    /// Reconciles the rows that are in Postgres now, by tenant; those still in the spool,
    /// and tenants Postgres or Redis failed for, wait for the next run.
    pub async fn run(&self, balances: &Balances, ledger: &Ledger) {
        let recorded = {
            let mut waiting = self.waiting.lock();
            if waiting.is_empty() {
                return;
            }
            let (wait, ready): (Vec<LeftBehind>, Vec<LeftBehind>) =
                std::mem::take(&mut *waiting).into_iter().partition(|r| ledger.waits(r.tenant, &r.request_id));
            *waiting = wait;
            ready
        };
        let mut by_tenant: BTreeMap<Uuid, Vec<(String, i64)>> = BTreeMap::new();
        for r in recorded {
            by_tenant.entry(r.tenant).or_default().push((r.request_id, r.cost_nano));
        }
        for (tenant, rows) in by_tenant {
            for chunk in rows.chunks(CHUNK) {
                self.reconcile(balances, ledger, tenant, chunk).await;
            }
        }
    }

    /// Reconciles recorded rows of one tenant; on failure they wait for the next run.
    async fn reconcile(&self, balances: &Balances, ledger: &Ledger, tenant: Uuid, rows: &[(String, i64)]) {
        let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
        let settled = match ledger.recorded_since(tenant, &ids, self.since).await {
            Ok(ours) => {
                let ours: std::collections::HashSet<String> = ours.into_iter().collect();
                let ours: Vec<(String, i64)> = rows.iter().filter(|(id, _)| ours.contains(id)).cloned().collect();
                balances.settle_left_behind(tenant, &ours).await
            }
            Err(e) => Err(super::BalanceError::Database(e.to_string())),
        };
        match settled {
            Ok((settled, marked)) => {
                metrics::counter!("xjp_left_behind_rows_total").increment(rows.len() as u64);
                if settled > 0 || marked {
                    tracing::info!(%tenant, rows = rows.len(), holds_settled = settled, rebuild = marked, "rows left by a previous run reconciled in Redis");
                }
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "cannot reconcile rows left by a previous run yet");
                let again = rows.iter().map(|(request_id, cost_nano)| LeftBehind {
                    tenant,
                    request_id: request_id.clone(),
                    cost_nano: *cost_nano,
                });
                self.waiting.lock().extend(again);
            }
        }
    }
}
