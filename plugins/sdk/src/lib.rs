//! Guest SDK for xjp-gateway billing plugins.
//!
//! A provider plugin implements [`Provider`] (and a [`StreamParse`] type for streams)
//! with plain Rust, states its name and formats once with [`descriptor!`], then calls
//! [`export_provider!`]. The SDK owns the WIT bindings, SSE and JSON-array stream
//! framing, exact integer pricing and the default budget check, so a plugin is mostly
//! its own JSON parsing. Everything here also compiles
//! natively, which is how plugin logic is unit-tested and benchmarked.

pub mod budget;
mod descriptor;
pub use descriptor::{Descriptor, check_format};
/// Exact decimal text <-> nano-USD (re-exported from `xjp-money`).
pub use xjp_money as decimal;
pub mod estimate;
pub mod framing;
pub mod json;
pub mod json_array;
pub mod openai_chat;
pub mod pricing;
pub mod sse;
// Also in this crate's own unit tests, so `cargo test -p xjp-plugin-sdk` needs no feature.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod usage_json;

/// Generated bindings for the `xjp:billing/billing-plugin` world.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "billing-plugin",
        // The WIT package ships inside this crate (`wit/`), so a published SDK carries its
        // contract; the workspace root's `wit` is a link to it.
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "xjp_plugin_sdk::bindings",
        additional_derives: [PartialEq, Eq, Clone],
    });
}

pub use bindings::exports::xjp::billing::budget::{BudgetRequest, Decision, DenyReason};
pub use bindings::exports::xjp::billing::pricing::{
    Cost, FeeRate, LongContextTier, PriceEntry, PricedUsage, TokenRates,
};
pub use bindings::exports::xjp::billing::types::{ApiFormat, Fee, PluginError, PluginInfo, Usage};
pub use bindings::exports::xjp::billing::usage_extract::{ModelLimits, StreamError, StreamOutcome};

/// Result type of plugin operations.
pub type PluginResult<T> = Result<T, PluginError>;

/// A provider's billing logic, in plain Rust.
pub trait Provider: 'static {
    /// Name, version and the API formats this plugin reads:
    /// `xjp_plugin_sdk::descriptor!(name, formats)`.
    const DESCRIPTOR: Descriptor;

    /// The stream parser type for this provider.
    type Stream: StreamParse;

    /// What the `describe` export answers: [`Self::DESCRIPTOR`].
    fn info() -> PluginInfo {
        Self::DESCRIPTOR.info()
    }

    /// Usage from a complete response body. An error body yields `Ok(None)`.
    fn extract_response(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>>;

    /// An upper bound of usage for a request body.
    fn estimate(format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage>;

    /// A fresh stream parser. Unsupported formats report their error on first use.
    fn new_stream(format: ApiFormat) -> Self::Stream;

    /// Prices usage. The default is the SDK's exact pricing.
    fn price(usage: &Usage, price: &PriceEntry) -> PluginResult<Cost> {
        pricing::price(usage, price)
    }

    /// Budget policy. The default allows exactly what the balance covers.
    fn check(request: &BudgetRequest) -> Decision {
        budget::default_check(request)
    }
}

/// An incremental stream parser.
pub trait StreamParse: 'static {
    /// Feeds the next bytes; boundaries may fall anywhere, even inside a UTF-8 character.
    fn push(&mut self, chunk: &[u8]) -> PluginResult<()>;
    /// Ends the input and reports what the stream said.
    fn finish(&mut self) -> PluginResult<StreamOutcome>;
}

/// What the `price-response` export answers: [`Provider::extract_response`], then
/// [`Provider::price`] of the usage it found.
pub fn price_response<P: Provider>(
    format: ApiFormat,
    status: u16,
    body: &[u8],
    price: &PriceEntry,
) -> PluginResult<Option<PricedUsage>> {
    Ok(P::extract_response(format, status, body)?.map(|usage| {
        let cost = P::price(&usage, price);
        PricedUsage { usage, cost }
    }))
}

/// Usage with every bucket zero and nothing else set (the gateway's zero, `xjp-usage-shape`).
pub fn empty_usage() -> Usage {
    xjp_usage_shape::zero_usage!(Usage)
}

/// All prompt-side tokens of a usage record (saturating).
pub fn prompt_tokens(u: &Usage) -> u64 {
    xjp_usage_shape::prompt_tokens!(u)
}

#[doc(hidden)]
pub mod glue;

/// Exports a [`Provider`] implementation as the plugin's component exports.
///
/// ```ignore
/// struct OpenAi;
/// impl xjp_plugin_sdk::Provider for OpenAi { /* ... */ }
/// xjp_plugin_sdk::export_provider!(OpenAi);
/// ```
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __XjpGlue;
            impl $crate::glue::Exports for __XjpGlue {
                type P = $provider;
            }
    $crate::bindings::export_bindings!(__XjpGlue with_types_in $crate::bindings);
        };
    };
}
