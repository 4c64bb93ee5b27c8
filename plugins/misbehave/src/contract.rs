//! Plugins that read OpenAI responses correctly but break one of the contract checks of
//! `xjp-gateway plugin check`, one feature each, so the suite is seen failing on them:
//!
//! - `error-usage`: an error status gives zeros instead of no usage (the `error-body` check);
//! - `price-down`: output beyond [`BULK_OUTPUT_TOKENS`] is priced at zero, a bulk tier typed
//!   wrong, so more tokens cost less (the `pricing` check);
//! - `slow-large`: a body (or a stream) over [`LARGE_ABOVE_BYTES`] spins until the call
//!   deadline, and `hog-large` allocates on it without bound (the `large-body` check).
//!
//! Everything else is the SDK's OpenAI reader, so a run shows only the broken check failing.

use xjp_plugin_sdk::openai_chat::{self as chat, ChatStream, OpenAiDialect};
use xjp_plugin_sdk::{
    ApiFormat, Cost, Descriptor, ModelLimits, PluginResult, PriceEntry, Provider, StreamOutcome, StreamParse, Usage,
    empty_usage, pricing,
};

/// Output tokens above which `price-down` prices output (and reasoning) at zero.
pub const BULK_OUTPUT_TOKENS: u64 = 100_000;

/// Body size above which `slow-large` spins and `hog-large` hoards.
pub const LARGE_ABOVE_BYTES: usize = 1 << 20;

const NAME: &str = if cfg!(feature = "error-usage") {
    "misbehave-error-usage"
} else if cfg!(feature = "price-down") {
    "misbehave-price-down"
} else if cfg!(feature = "slow-large") {
    "misbehave-slow-large"
} else {
    "misbehave-hog-large"
};

/// An OpenAI-format provider with one contract broken (which one: the crate's feature).
pub struct BreaksContract;

/// The SDK's OpenAI stream parser, counting the bytes it was given (for `slow-large`).
pub struct CountingStream {
    inner: ChatStream<OpenAiDialect>,
    seen: usize,
}

/// What `slow-large` and `hog-large` do once they have seen `bytes` of one body.
fn on_size(bytes: usize) {
    if bytes <= LARGE_ABOVE_BYTES {
        return;
    }
    if cfg!(feature = "slow-large") {
        crate::spin();
    }
    if cfg!(feature = "hog-large") {
        crate::hoard();
    }
}

impl StreamParse for CountingStream {
    fn push(&mut self, chunk: &[u8]) -> PluginResult<()> {
        self.seen = self.seen.saturating_add(chunk.len());
        on_size(self.seen);
        self.inner.push(chunk)
    }

    fn finish(&mut self) -> PluginResult<StreamOutcome> {
        self.inner.finish()
    }
}

/// `price` with every output and reasoning rate set to zero (both tiers).
fn without_output_rates(price: &PriceEntry) -> PriceEntry {
    let mut free = price.clone();
    for rates in std::iter::once(&mut free.rates).chain(free.long_context.as_mut().map(|t| &mut t.rates)) {
        rates.output = 0;
        rates.reasoning = rates.reasoning.map(|_| 0);
    }
    free
}

impl Provider for BreaksContract {
    const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!(NAME, chat::FORMATS);

    type Stream = CountingStream;

    fn extract_response(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        if cfg!(feature = "error-usage") && status >= 400 {
            return Ok(Some(empty_usage()));
        }
        on_size(body.len());
        chat::extract_response::<OpenAiDialect>(format, status, body)
    }

    fn estimate(format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        chat::estimate(format, request, &limits)
    }

    fn new_stream(format: ApiFormat) -> CountingStream {
        CountingStream { inner: ChatStream::new(format), seen: 0 }
    }

    fn price(usage: &Usage, price: &PriceEntry) -> PluginResult<Cost> {
        if cfg!(feature = "price-down") && usage.output_tokens > BULK_OUTPUT_TOKENS {
            return pricing::price(usage, &without_output_rates(price));
        }
        pricing::price(usage, price)
    }
}
