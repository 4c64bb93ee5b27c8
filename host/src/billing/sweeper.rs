//! Releases holds abandoned by a gateway that died: an expired hold whose request has a
//! ledger row is settled with the row's cost; one without is released. An expired lease
//! (`lease.rs`) is dropped and its account marked for a rebuild from Postgres.

use super::lease::Leases;
use super::{BalanceError, Balances, IdOrigin};
use crate::ledger::Ledger;

/// One pass over every tenant with expired holds.
pub async fn sweep_once(balances: &Balances, ledger: &Ledger) -> Result<u64, BalanceError> {
    let expired = balances.expired_holds().await?;
    let mut done = 0;
    for (tenant, mut request_ids) in expired {
        for lease in request_ids.extract_if(.., |id| Leases::is_lease(id)) {
            if balances.drop_lease(tenant, &lease).await? {
                metrics::counter!("xjp_leases_swept_total").increment(1);
                tracing::warn!(%tenant, lease, "expired balance lease dropped; the account is rebuilt from Postgres");
                balances.load(tenant).await?;
            }
        }
        let recorded =
            ledger.recorded_costs(tenant, &request_ids).await.map_err(|e| BalanceError::Database(e.to_string()))?;
        for (rid, cost) in &recorded {
            // Who made the id is not known here: its state is kept as long as a client's.
            let label = if *cost > 0 { "settled" } else { "released" };
            balances.settle(tenant, rid, IdOrigin::Client, *cost, label, true).await?;
        }
        let orphans: Vec<String> = request_ids.into_iter().filter(|r| !recorded.iter().any(|(x, _)| x == r)).collect();
        done += recorded.len() as u64 + balances.release_expired(tenant, &orphans).await?;
    }
    if done > 0 {
        metrics::counter!("xjp_holds_swept_total").increment(done);
        tracing::info!(holds = done, "swept expired holds");
    }
    Ok(done)
}
