//! Phase 4, reserve: the plugin estimates an upper bound of usage and prices it, the host
//! holds that amount atomically in Redis, then the plugin's budget policy runs.

use super::balance::Reservation;
use crate::api::GatewayError;
use crate::gateway::Gateway;
use crate::plugins::ApiFormat;
use crate::plugins::bindings::{BudgetRequest, Decision, DenyReason, Usage};
use crate::proxy::authenticate::Caller;
use crate::proxy::route::Routed;

/// An amount held for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub amount_nano: i64,
}

/// The reservation's result: the estimate (kept for billing an interrupted stream) and the
/// hold (`None` when Redis is down and the gateway is configured to fail open).
#[derive(Debug, Clone)]
pub struct Reserved {
    pub estimate: Usage,
    pub hold: Option<Hold>,
}

/// Estimates, prices and holds; refuses with 402 when the balance does not cover it.
pub async fn reserve(
    gw: &Gateway,
    caller: Caller,
    routed: &Routed,
    format: ApiFormat,
    body: &[u8],
    request_id: &str,
    streaming: bool,
) -> Result<Reserved, GatewayError> {
    let plugin = &routed.plugin;
    let estimate = plugin.estimate(format, body, routed.route.limits).map_err(|e| match e {
        crate::plugins::PluginCallError::Plugin(crate::plugins::bindings::PluginError::InvalidRequest(m)) => {
            GatewayError::InvalidRequest(m)
        }
        other => GatewayError::Plugin(other),
    })?;
    let amount = plugin.price(&estimate, &routed.price)?.total.max(0);
    let settings = gw.settings.load();
    let reservation = match gw.balances.reserve(caller.tenant_id, request_id, amount).await {
        Ok(r) => r,
        Err(e) if settings.config.billing.redis_failure == crate::config::FailurePolicy::Open => {
            metrics::counter!("xjp_balance_fail_open_total").increment(1);
            tracing::warn!(error = %e, "balance store unavailable; failing open as configured");
            return Ok(Reserved { estimate, hold: None });
        }
        Err(e) => {
            tracing::error!(error = %e, "balance store unavailable; failing closed");
            return Err(GatewayError::Unavailable("balance store unavailable; try again shortly".into()));
        }
    };
    let available_before = match reservation {
        Reservation::Reserved { available_before } => available_before,
        Reservation::Insufficient { available } => return Err(insufficient(available, amount)),
        Reservation::InProgress | Reservation::AlreadyDone => return Err(GatewayError::DuplicateRequest),
    };
    let budget = BudgetRequest {
        available_nano_usd: available_before,
        estimated_cost_nano_usd: amount,
        model: routed.route.name.clone(),
        streaming,
    };
    let decision = plugin.check(&budget);
    if let Ok(Decision::Allow) = decision {
        return Ok(Reserved { estimate, hold: Some(Hold { amount_nano: amount }) });
    }
    // Denied (or the policy failed): give the hold back before refusing.
    if let Err(e) = gw.balances.settle(caller.tenant_id, request_id, 0, "released", false).await {
        tracing::warn!(error = %e, "could not release a denied hold; the sweeper will");
    }
    Err(match decision {
        Ok(Decision::Deny(DenyReason::InsufficientBalance)) => insufficient(available_before, amount),
        Ok(Decision::Deny(DenyReason::RequestTooExpensive(m) | DenyReason::Policy(m))) => GatewayError::BudgetDenied(m),
        Ok(Decision::Allow) => unreachable!("handled above"),
        Err(e) => GatewayError::Plugin(e),
    })
}

fn insufficient(available: i64, estimate: i64) -> GatewayError {
    GatewayError::InsufficientBalance {
        available_nano: available,
        estimate_nano: estimate,
        available_usd: xjp_money::nano_to_usd(available),
        estimate_usd: xjp_money::nano_to_usd(estimate),
    }
}
