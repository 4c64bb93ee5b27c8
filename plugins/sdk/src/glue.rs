//! Adapts a [`Provider`] to the generated `Guest` traits (used by `export_provider!`).

use crate::bindings::exports::xjp::billing::{budget, describe, pricing, types, usage_extract};
use crate::{Provider, StreamParse};
use std::cell::RefCell;

/// Implemented by the glue type that `export_provider!` declares.
pub trait Exports: 'static {
    /// The provider being exported.
    type P: Provider;
}

impl<G: Exports> describe::Guest for G {
    fn describe() -> types::PluginInfo {
        G::P::info()
    }
}

impl<G: Exports> usage_extract::Guest for G {
    type StreamParser = StreamGlue<<G::P as Provider>::Stream, G>;

    fn extract_response(
        format: types::ApiFormat,
        status: u16,
        body: Vec<u8>,
    ) -> Result<Option<types::Usage>, types::PluginError> {
        G::P::extract_response(format, status, &body)
    }

    fn estimate(
        format: types::ApiFormat,
        request: Vec<u8>,
        limits: usage_extract::ModelLimits,
    ) -> Result<types::Usage, types::PluginError> {
        G::P::estimate(format, &request, limits)
    }
}

impl<G: Exports> pricing::Guest for G {
    fn price(usage: types::Usage, price: pricing::PriceEntry) -> Result<pricing::Cost, types::PluginError> {
        G::P::price(&usage, &price)
    }

    fn price_response(
        format: types::ApiFormat,
        status: u16,
        body: Vec<u8>,
        price: pricing::PriceEntry,
    ) -> Result<Option<pricing::PricedUsage>, types::PluginError> {
        crate::price_response::<G::P>(format, status, &body, &price)
    }
}

impl<G: Exports> budget::Guest for G {
    fn check(request: budget::BudgetRequest) -> budget::Decision {
        G::P::check(&request)
    }
}

/// The exported `stream-parser` resource: a provider stream behind a `RefCell`.
pub struct StreamGlue<S, G> {
    inner: RefCell<S>,
    _glue: std::marker::PhantomData<fn() -> G>,
}

impl<S: StreamParse, G: Exports<P: Provider<Stream = S>>> usage_extract::GuestStreamParser for StreamGlue<S, G> {
    fn new(format: types::ApiFormat) -> Self {
        StreamGlue { inner: RefCell::new(G::P::new_stream(format)), _glue: std::marker::PhantomData }
    }

    fn push(&self, chunk: Vec<u8>) -> Result<(), types::PluginError> {
        self.inner.borrow_mut().push(&chunk)
    }

    fn finish(&self) -> Result<usage_extract::StreamOutcome, types::PluginError> {
        self.inner.borrow_mut().finish()
    }
}
