//! The default budget policy: a request may spend what the available balance covers.

use crate::{BudgetRequest, Decision, DenyReason};

/// Allows when the available balance covers the estimated cost.
pub fn default_check(request: &BudgetRequest) -> Decision {
    if request.estimated_cost_nano_usd < 0 {
        return Decision::Deny(DenyReason::Policy("negative estimate".into()));
    }
    if request.available_nano_usd >= request.estimated_cost_nano_usd {
        Decision::Allow
    } else {
        Decision::Deny(DenyReason::InsufficientBalance)
    }
}
