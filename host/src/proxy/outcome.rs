//! What a finished request tells the billing phases (settle and record).

use super::authenticate::Caller;
use super::route::Routed;
use crate::plugins::PluginCallError;
use crate::plugins::bindings::{Cost, Usage};
use std::time::Duration;

/// How a request that reached routing ended.
#[derive(Debug)]
pub struct Outcome {
    pub request_id: String,
    pub caller: Caller,
    pub routed: Routed,
    /// HTTP status of the upstream response (0 when no response arrived).
    pub upstream_status: u16,
    pub stream: bool,
    /// The usage the provider reported (from the body, the stream, or a drained stream).
    pub usage: Option<Usage>,
    /// For streams: the stream reached its proper end.
    pub complete: bool,
    /// For streams: the client left before the end.
    pub client_disconnected: bool,
    /// Why the upstream part failed, if it did.
    pub upstream_error: Option<String>,
    pub plugin_error: Option<PluginCallError>,
    /// Generated text bytes seen, for estimating an interrupted stream.
    pub output_text_bytes: u64,
    pub latency: Duration,
}

impl Outcome {
    /// Prices the reported usage with the route's price (through the plugin).
    pub fn cost(&self) -> Option<Result<Cost, PluginCallError>> {
        self.usage.as_ref().map(|u| self.routed.plugin.price(u, &self.routed.price))
    }
}

/// Hands a finished request to the billing phases. Never blocks the response.
pub fn complete(outcome: Outcome) {
    let cost = outcome.cost();
    let total = cost.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.total);
    tracing::info!(
        request_id = %outcome.request_id,
        tenant = %outcome.caller.tenant_id,
        model = %outcome.routed.route.name,
        status = outcome.upstream_status,
        stream = outcome.stream,
        complete = outcome.complete,
        client_disconnected = outcome.client_disconnected,
        usage = ?outcome.usage.as_ref().map(crate::plugins::convert::usage_json),
        cost_nano_usd = ?total,
        upstream_error = ?outcome.upstream_error,
        plugin_error = ?outcome.plugin_error,
        "request finished"
    );
}
