//! Releases holds abandoned by a gateway that died: an expired hold whose request has a
//! ledger row is settled with the row's cost; one without is released.

use crate::gateway::Gateway;
use std::sync::Weak;
use std::time::Duration;

/// One pass over every tenant with expired holds.
pub async fn sweep_once(gw: &Gateway) -> Result<u64, super::BalanceError> {
    let expired = gw.balances.expired_holds().await?;
    let mut done = 0;
    for (tenant, request_ids) in expired {
        let recorded: Vec<(String, i64)> = sqlx::query_as(
            "SELECT request_id, cost_nano FROM billing_transactions WHERE tenant_id = $1 AND request_id = ANY($2)",
        )
        .bind(tenant)
        .bind(&request_ids)
        .fetch_all(&gw.db)
        .await
        .map_err(|e| super::BalanceError::Database(e.to_string()))?;
        for (rid, cost) in &recorded {
            gw.balances.settle(tenant, rid, *cost, if *cost > 0 { "settled" } else { "released" }, true).await?;
        }
        let orphans: Vec<String> = request_ids.into_iter().filter(|r| !recorded.iter().any(|(x, _)| x == r)).collect();
        done += recorded.len() as u64 + gw.balances.release_expired(tenant, &orphans).await?;
    }
    if done > 0 {
        metrics::counter!("xjp_holds_swept_total").increment(done);
        tracing::info!(holds = done, "swept expired holds");
    }
    Ok(done)
}

/// Sweeps every `interval` while the gateway lives.
pub fn spawn(gw: Weak<Gateway>, interval: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(gw) = gw.upgrade() else { return };
            if let Err(e) = sweep_once(&gw).await {
                tracing::debug!(error = %e, "hold sweep skipped");
            }
        }
    });
}
