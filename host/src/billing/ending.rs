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

/// How a request ended. Every request whose body was read and named a valid model ends in
/// exactly one (its `RequestCtx` is made then). Earlier refusals leave no row by design: an
/// unauthenticated request, a tenant over its concurrency cap (429), a body too large, late
/// or malformed, and the ledger-backlog 503 hold nothing and have no model to record, and a
/// row per such refusal would let a flood of them write to the ledger.
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
        let class = error.class();
        (!matches!(class, ErrorClass::Client | ErrorClass::Auth)).then(|| Refusal::new(error))
    }

    /// The refusal as it would be recorded (whether or not [`Refusal::of`] records it).
    pub fn new(error: &GatewayError) -> Refusal {
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
        Refusal { status, class: error.class(), http_status: error.status().as_u16(), message: error.to_string() }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::bill::{Caller, Hold, Reserved};
    use crate::plugins::ApiFormat;

    fn bill(reserved: Option<Usage>) -> Bill {
        Bill {
            request_id: "r".into(),
            client_request_id: None,
            caller: Caller { key_id: uuid::Uuid::nil(), tenant_id: uuid::Uuid::nil() },
            format: ApiFormat::OpenaiChat,
            model_requested: "m".into(),
            stream: false,
            started_at: std::time::SystemTime::now(),
            routed: None,
            reserved: reserved.map(|estimate| Reserved { estimate, hold: Some(Hold { amount_nano: 1, lease: None }) }),
        }
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage { input_uncached_tokens: input, output_tokens: output, ..zero_usage() }
    }

    fn verdict(bill: &Bill, ending: Ending, policy: UnknownUsage) -> Verdict {
        let config = BillingConfig { unreadable_usage: policy, interrupted_usage: policy, ..BillingConfig::default() };
        Verdict::of(bill, ending, &config)
    }

    #[test]
    fn each_ending_has_its_status_and_flags() {
        let b = bill(Some(usage(1_000, 500)));
        let hold = UnknownUsage::Hold;
        let refusal =
            Refusal { status: "routing_error", class: ErrorClass::Routing, http_status: 404, message: "x".into() };
        let cases = [
            (Ending::Refused(refusal), "routing_error", (false, false), (0, 0)),
            (
                Ending::UpstreamFailed { status: 500, usage: None, error: "e".into() },
                "upstream_error",
                (false, false),
                (0, 0),
            ),
            (
                Ending::Answered { status: 200, usage: Some(usage(7, 3)), cost: None, client_gone: false },
                "ok",
                (false, false),
                (7, 3),
            ),
            (
                Ending::Answered { status: 200, usage: Some(usage(7, 3)), cost: None, client_gone: true },
                "client_disconnected",
                (false, false),
                (7, 3),
            ),
            (
                Ending::Answered { status: 200, usage: None, cost: None, client_gone: false },
                "no_usage",
                (true, true),
                (1_000, 500),
            ),
            (
                Ending::Interrupted { status: 200, usage: None, output_text_bytes: 40, error: None },
                "interrupted",
                (true, false),
                (1_000, 500),
            ),
            (Ending::Lost, "interrupted", (true, true), (1_000, 500)),
        ];
        for (ending, status, flags, tokens) in cases {
            let label = format!("{ending:?}");
            let v = verdict(&b, ending, hold);
            assert_eq!(v.status, status, "{label}");
            assert_eq!((v.estimated, v.needs_review), flags, "{label}");
            assert_eq!((v.usage.input_uncached_tokens, v.usage.output_tokens), tokens, "{label}: billed usage");
        }
    }

    #[test]
    fn the_estimate_policy_counts_what_was_seen() {
        let b = bill(Some(usage(1_000, 500)));
        let ending = Ending::Interrupted { status: 200, usage: None, output_text_bytes: 40, error: None };
        let v = verdict(&b, ending, UnknownUsage::Estimate);
        // The prompt bound (1,000 bytes) / 4, the streamed text (40 bytes) / 4.
        assert_eq!((v.usage.input_uncached_tokens, v.usage.output_tokens), (250, 10));
        // `Lost` bills the hold whatever the policy.
        let v = verdict(&b, Ending::Lost, UnknownUsage::Estimate);
        assert_eq!((v.usage.input_uncached_tokens, v.usage.output_tokens), (1_000, 500));
    }
}
