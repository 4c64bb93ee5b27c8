//! The ways a request can end, and how each is billed (the verdict): which usage, which
//! status, whether the row is an estimate or needs an operator's review.

use super::bill::Bill;
use crate::api::{ErrorClass, GatewayError};
use crate::config::{BillingConfig, UnknownUsage};
use crate::plugins::PluginCallError;
use crate::plugins::bindings::{Cost, PluginError, Usage};
use crate::plugins::convert::{prompt_tokens, zero_usage};

/// Bytes of generated text per token assumed when an answer broke before its usage.
const BYTES_PER_TOKEN: u64 = 4;

/// How a request ended. Every request that got past authentication ends in exactly one.
#[derive(Debug)]
pub enum Ending {
    /// Refused before the upstream call; no money moved.
    Refused(Refusal),
    /// The provider answered with an error status, or no answer came (`status` 0). Billed
    /// only for usage the provider reported in its error.
    UpstreamFailed { status: u16, usage: Option<Usage>, error: String },
    /// The whole answer arrived: a body, or a stream to the provider's end marker.
    /// `cost` is the plugin's price of `usage` when it priced it with the extraction.
    Answered { status: u16, usage: Option<Usage>, cost: Option<Result<Cost, PluginError>>, client_gone: bool },
    /// The answer broke off (cut, stalled, or abandoned after the client left): billed as
    /// an estimate from what was seen.
    Interrupted { status: u16, usage: Option<Usage>, output_text_bytes: u64, error: Option<String> },
    /// The plugin could not read the answer: an estimate, flagged for review.
    PluginFailed { status: u16, usage: Option<Usage>, output_text_bytes: u64, error: PluginCallError },
    /// The request's task ended without saying how (a panic, a dropped future): the hold's
    /// estimate, flagged for review.
    Lost,
}

impl Ending {
    /// The same ending for a client that left before the answer reached it.
    pub fn client_left(self) -> Ending {
        match self {
            Ending::Answered { status, usage, cost, .. } => Ending::Answered { status, usage, cost, client_gone: true },
            other => other,
        }
    }
}

/// A refusal as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: &'static str,
    pub class: ErrorClass,
    pub http_status: u16,
    pub message: String,
}

impl Refusal {
    /// The refusal to record for `error`, or `None` when the client or its key was at
    /// fault (malformed, duplicate, unauthenticated requests leave no row), or when the
    /// ledger's backlog shed the request (a row would grow the backlog that shed it).
    pub fn of(error: &GatewayError) -> Option<Refusal> {
        if matches!(error, GatewayError::LedgerBacklog) {
            return None;
        }
        let status = match error {
            GatewayError::InsufficientBalance { .. } => "insufficient_balance",
            GatewayError::BudgetDenied(_) => "budget_denied",
            GatewayError::UnknownModel(_) | GatewayError::WrongEndpoint { .. } | GatewayError::Unpriced(_) => {
                "routing_error"
            }
            GatewayError::Unavailable(_) => "unavailable",
            GatewayError::Plugin(_) | GatewayError::PluginMissing(_) => "plugin_error",
            _ => "rejected",
        };
        let class = error.class();
        (!matches!(class, ErrorClass::Client | ErrorClass::Auth)).then(|| Refusal {
            status,
            class,
            http_status: error.status().as_u16(),
            message: error.to_string(),
        })
    }
}

/// How an ended request is billed.
#[derive(Debug)]
pub struct Verdict {
    pub usage: Usage,
    pub status: &'static str,
    pub http_status: u16,
    pub estimated: bool,
    pub needs_review: bool,
    pub error: Option<(String, String)>,
    /// The plugin's price of `usage`, when the extraction priced exactly this usage.
    pub cost: Option<Result<Cost, PluginError>>,
}

/// Usage for an answer whose real usage is unknown or partial: what the provider did
/// report, the prompt bounded from the request, the output from the text that streamed.
fn estimated_usage(bill: &Bill, usage: Option<Usage>, output_text_bytes: u64) -> Usage {
    let mut u = usage.unwrap_or_else(zero_usage);
    if prompt_tokens(&u) == 0 {
        let bound = bill.reserved.as_ref().map_or(0, |r| r.estimate.input_uncached_tokens);
        u.input_uncached_tokens = bound.div_ceil(BYTES_PER_TOKEN).max(1);
    }
    u.output_tokens = u.output_tokens.max(output_text_bytes.div_ceil(BYTES_PER_TOKEN));
    u
}

/// Usage for an answer whose real usage is unknown, by the operator's policy: the hold's
/// upper bound (keeping what the provider did report about the model and its own cost), or
/// the estimate from what was seen.
fn unknown_usage(bill: &Bill, usage: Option<Usage>, output_text_bytes: u64, policy: UnknownUsage) -> Usage {
    match (policy, &bill.reserved) {
        (UnknownUsage::Hold, Some(reserved)) => {
            let mut held = reserved.estimate.clone();
            if let Some(reported) = usage {
                held.served_model = reported.served_model;
                held.provider_cost_nano_usd = reported.provider_cost_nano_usd;
            }
            held
        }
        _ => estimated_usage(bill, usage, output_text_bytes),
    }
}

impl Verdict {
    /// The verdict on an ended request, under the operator's policies for unknown usage.
    pub fn of(bill: &Bill, ending: Ending, policy: &BillingConfig) -> Verdict {
        let v = |usage, status, http_status, estimated, needs_review, error| Verdict {
            usage,
            status,
            http_status,
            estimated,
            needs_review,
            error,
            cost: None,
        };
        let upstream = |e: Option<String>| e.map(|m| ("upstream".to_string(), m));
        match ending {
            Ending::Refused(r) => {
                v(zero_usage(), r.status, r.http_status, false, false, Some((r.class.as_str().into(), r.message)))
            }
            Ending::UpstreamFailed { status, usage, error } => {
                v(usage.unwrap_or_else(zero_usage), "upstream_error", status, false, false, upstream(Some(error)))
            }
            Ending::Answered { status, usage: Some(usage), cost, client_gone } => Verdict {
                cost,
                ..v(usage, if client_gone { "client_disconnected" } else { "ok" }, status, false, false, None)
            },
            // A whole 2xx answer without readable usage reached the client: never free.
            Ending::Answered { status, usage: None, .. } => {
                let usage = unknown_usage(bill, None, 0, policy.unreadable_usage);
                v(usage, "no_usage", status, true, true, None)
            }
            Ending::Interrupted { status, usage, output_text_bytes, error } => {
                let usage = unknown_usage(bill, usage, output_text_bytes, policy.interrupted_usage);
                v(usage, "interrupted", status, true, false, upstream(error))
            }
            Ending::PluginFailed { status, usage, output_text_bytes, error } => {
                let e = Some((error.class().to_string(), error.to_string()));
                let usage = unknown_usage(bill, usage, output_text_bytes, policy.unreadable_usage);
                v(usage, "plugin_error", status, true, true, e)
            }
            Ending::Lost => {
                let e = Some(("internal".into(), "the request ended without an outcome (its task stopped)".into()));
                v(unknown_usage(bill, None, 0, UnknownUsage::Hold), "interrupted", 0, true, true, e)
            }
        }
    }
}
