//! What a finished request tells the billing phases (settle and record).

use super::authenticate::Caller;
use super::route::Routed;
use crate::billing::reserve::Reserved;
use crate::plugins::bindings::{Cost, PluginError, Usage};
use crate::plugins::{ApiFormat, PluginCallError};
use std::time::{Duration, SystemTime};

/// How a request that got a hold ended.
#[derive(Debug)]
pub struct Outcome {
    pub request_id: String,
    pub client_request_id: Option<String>,
    pub caller: Caller,
    pub routed: Routed,
    pub format: ApiFormat,
    pub model_requested: String,
    pub started_at: SystemTime,
    pub reserved: Reserved,
    /// HTTP status of the upstream response (0 when no response arrived).
    pub upstream_status: u16,
    pub stream: bool,
    /// The usage the provider reported (from the body, the stream, or a drained stream).
    pub usage: Option<Usage>,
    /// The plugin's price of `usage`, when it priced it together with the extraction
    /// (whole responses); settle uses it when it bills `usage` as reported.
    pub cost: Option<Result<Cost, PluginError>>,
    /// The response reached its proper end (for streams: the provider's end marker).
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
