//! Phase 4, reserve: the plugin estimates an upper bound of usage and prices it, the host
//! holds that amount atomically in Redis, then the plugin's budget policy runs.

use super::Billing;
use super::balance::Reservation;
use super::bill::{Bill, Hold, IdOrigin, Reserved};
use crate::api::GatewayError;
use crate::config::FailurePolicy;
use crate::plugins::bindings::{BudgetRequest, Decision, DenyReason};
use std::time::Duration;

/// How long the reserve waits for the ledger to say whether a client's request id has a row.
const ID_LOOKUP_LIMIT: Duration = Duration::from_secs(1);

/// Estimates, prices and holds for the routed `bill`; refuses with 402 when the balance
/// does not cover it. On success the hold is in `bill.reserved`.
pub async fn reserve(
    billing: &Billing,
    bill: &mut Bill,
    body: &[u8],
    policy: FailurePolicy,
) -> Result<(), GatewayError> {
    let routed = bill.routed.as_ref().ok_or_else(|| GatewayError::Internal("reserve before route".into()))?;
    let plugin = &routed.plugin;
    let estimate = plugin.estimate_async(bill.format, body, routed.route.limits).await.map_err(|e| match e {
        crate::plugins::PluginCallError::Plugin(crate::plugins::bindings::PluginError::InvalidRequest(m)) => {
            GatewayError::InvalidRequest(m)
        }
        other => GatewayError::Plugin(other),
    })?;
    let amount = plugin.price(&estimate, &routed.price)?.total.max(0);
    let tenant = bill.caller.tenant_id;
    // A client's own id is refused once it has a row, even after its Redis state expired
    // (7 days); gateway-made ids are new by construction and skip this lookup. The lookup
    // runs beside the hold (one wait, not two); a hold taken for a reused id is given back.
    // When the ledger cannot answer, a client's id is refused (503): admitting it could
    // debit an id whose row exists, and the duplicate row would be dropped with its money.
    let reused = async {
        if bill.id_origin() == IdOrigin::Gateway {
            return Ok(false);
        }
        match tokio::time::timeout(ID_LOOKUP_LIMIT, billing.ledger.has_row(tenant, &bill.request_id)).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {ID_LOOKUP_LIMIT:?}")),
        }
    };
    let (reused, reservation) =
        tokio::join!(reused, billing.balances.reserve(tenant, &bill.request_id, bill.id_origin(), amount));
    if reused != Ok(false) {
        if let Ok(Reservation::Reserved { .. }) = reservation {
            // A reused id stays marked; one that could not be checked stays usable.
            let label = if reused.is_ok() { "released" } else { "cancelled" };
            give_back(billing, bill, label).await;
        }
        return Err(match reused {
            Ok(_) => GatewayError::DuplicateRequest,
            Err(e) => {
                metrics::counter!("xjp_request_id_check_failures_total").increment(1);
                tracing::warn!(error = %e, "cannot check the ledger for a reused request id; refusing the id");
                GatewayError::Unavailable(
                    "cannot check this request id against the billing ledger; retry shortly, or send the request without an id".into(),
                )
            }
        });
    }
    let reservation = match reservation {
        Ok(r) => r,
        Err(e) if policy == FailurePolicy::Open => {
            metrics::counter!("xjp_balance_fail_open_total").increment(1);
            tracing::warn!(error = %e, "balance store unavailable; failing open as configured");
            bill.reserved = Some(Reserved { estimate, hold: None });
            return Ok(());
        }
        Err(e) => {
            tracing::error!(error = %e, "balance store unavailable; failing closed");
            return Err(GatewayError::Unavailable("balance store unavailable; try again shortly".into()));
        }
    };
    let (available_before, lease) = match reservation {
        Reservation::Reserved { available_before, lease } => (available_before, lease),
        Reservation::Insufficient { available } => return Err(insufficient(available, amount)),
        Reservation::InProgress | Reservation::AlreadyDone => return Err(GatewayError::DuplicateRequest),
    };
    let budget = BudgetRequest {
        available_nano_usd: available_before,
        estimated_cost_nano_usd: amount,
        model: routed.route.name.clone(),
        streaming: bill.stream,
    };
    let decision = plugin.check(&budget);
    if let Ok(Decision::Allow) = decision {
        bill.reserved = Some(Reserved { estimate, hold: Some(Hold { amount_nano: amount, lease }) });
        return Ok(());
    }
    // Denied (or the policy failed): give the hold back before refusing; the id stays usable.
    match lease {
        Some(lease) => billing.balances.leases.settled(tenant, lease, amount, 0),
        None => give_back(billing, bill, "cancelled").await,
    }
    Err(match decision {
        Ok(Decision::Deny(DenyReason::InsufficientBalance)) => insufficient(available_before, amount),
        Ok(Decision::Deny(DenyReason::RequestTooExpensive(m) | DenyReason::Policy(m))) => GatewayError::BudgetDenied(m),
        Ok(Decision::Allow) => unreachable!("handled above"),
        Err(e) => GatewayError::Plugin(e),
    })
}

/// Gives a hold taken for a request that is refused back at once.
async fn give_back(billing: &Billing, bill: &Bill, label: &str) {
    let (tenant, request_id) = (bill.caller.tenant_id, &bill.request_id);
    if let Err(e) = billing.balances.settle(tenant, request_id, bill.id_origin(), 0, label, false).await {
        tracing::warn!(error = %e, "could not release a refused request's hold; the sweeper will");
    }
}

fn insufficient(available: i64, estimate: i64) -> GatewayError {
    GatewayError::InsufficientBalance {
        available_nano: available,
        estimate_nano: estimate,
        available_usd: xjp_money::nano_to_usd(available),
        estimate_usd: xjp_money::nano_to_usd(estimate),
    }
}
