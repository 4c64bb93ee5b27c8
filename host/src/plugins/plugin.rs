//! A loaded plugin: its compiled component, its description and a pool of ready instances.
//!
//! A call checks out a ready instance (or instantiates one), runs under the epoch
//! deadline and memory cap, and goes back to the pool only if it succeeded: a store that
//! trapped, timed out or hit the memory cap is dropped, never reused.

use super::bindings::{
    ApiFormat, BillingPlugin, BillingPluginPre, BudgetRequest, Cost, Decision, ModelLimits, PluginInfo, PriceEntry,
    PricedUsage, Usage,
};
use super::cache::{ComponentCache, content_hash};
use super::engine::{PluginEngine, StoreState};
use super::error::{LoadError, PluginCallError};
use parking_lot::Mutex;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::{Component, Linker};

/// A ready instance: its store and its typed exports.
pub(crate) struct Ready {
    pub(crate) store: Store<StoreState>,
    pub(crate) exports: BillingPlugin,
}

/// A plugin that compiled, instantiated and passed its self-test.
pub struct Plugin {
    engine: Arc<PluginEngine>,
    pre: BillingPluginPre<StoreState>,
    info: PluginInfo,
    hash: String,
    idle: Mutex<Vec<Ready>>,
    /// `xjp_plugin_call_seconds{plugin}`, registered once per plugin.
    call_seconds: metrics::Histogram,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("info", &self.info).field("hash", &self.hash).finish()
    }
}

impl Plugin {
    /// Compiles (or loads from `cache`), links with no host capabilities, instantiates
    /// and self-tests a plugin.
    pub fn load(engine: &Arc<PluginEngine>, cache: &ComponentCache, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let hash = content_hash(bytes);
        let component = cache.load(engine, &hash, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        Self::from_component(engine, component, hash)
    }

    fn from_component(
        engine: &Arc<PluginEngine>,
        component: Component,
        hash: String,
    ) -> Result<Arc<Plugin>, LoadError> {
        let mut linker: Linker<StoreState> = Linker::new(engine.engine());
        // No capabilities: every import (WASI included) is a function that traps.
        linker.define_unknown_imports_as_traps(&component).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = BillingPluginPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let mut plugin = Plugin {
            engine: engine.clone(),
            pre,
            info: PluginInfo { name: String::new(), version: String::new(), formats: Vec::new() },
            hash,
            idle: Mutex::new(Vec::new()),
            call_seconds: metrics::Histogram::noop(),
        };
        plugin.info = plugin.describe().map_err(|e| LoadError::SelfTest(format!("describe: {e}")))?;
        plugin.call_seconds = metrics::histogram!("xjp_plugin_call_seconds", "plugin" => plugin.info.name.clone());
        let plugin = Arc::new(plugin);
        plugin.self_test().map_err(LoadError::SelfTest)?;
        Ok(plugin)
    }

    /// Calls every export once on benign input: it must answer, not trap.
    fn self_test(self: &Arc<Self>) -> Result<(), String> {
        if self.info.name.trim().is_empty() {
            return Err("describe returned an empty name".into());
        }
        if self.info.formats.is_empty() {
            return Err("describe lists no API formats".into());
        }
        let format = self.info.formats[0];
        self.extract_response(format, 500, br#"{"error":{"message":"self-test"}}"#)
            .or_else(ignore_plugin_error)
            .map_err(|e| format!("extract-response: {e}"))?;
        let limits = ModelLimits { default_max_output_tokens: 16, max_output_tokens: 16 };
        let usage = self
            .estimate(format, br#"{"model":"self-test","max_tokens":16}"#, limits)
            .map_err(|e| format!("estimate: {e}"))?;
        let mut zero = super::convert::zero_price();
        // A fee the estimate reports (a per-request fee of the provider) is priced at zero
        // too: the self-test asks whether the plugin answers, not whether a price lists it.
        zero.fees = usage
            .fees
            .iter()
            .map(|f| super::bindings::FeeRate { name: f.name.clone(), atto_usd_per_unit: 0 })
            .collect();
        self.price(&usage, &zero).map_err(|e| format!("price: {e}"))?;
        self.price_response(format, 500, br#"{"error":{"message":"self-test"}}"#, &zero)
            .or_else(ignore_plugin_error)
            .map_err(|e| format!("price-response: {e}"))?;
        // A stream parser opened and finished on one instance (what `PluginStream` does per stream).
        self.call(|s, e| {
            let parser = e.xjp_billing_usage_extract().stream_parser();
            let handle = parser.call_constructor(&mut *s, format)?;
            let outcome = parser.call_finish(&mut *s, handle)?;
            handle.resource_drop(&mut *s)?;
            Ok(outcome)
        })
        .map_err(|e| format!("stream: {e}"))?
        .map_err(|e| format!("stream finish: {}", PluginCallError::Plugin(e)))?;
        Ok(())
    }

    /// Name, version and formats, as the plugin described itself at load.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// SHA-256 of the plugin file.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether the plugin reads `format`.
    pub fn supports(&self, format: ApiFormat) -> bool {
        self.info.formats.contains(&format)
    }

    /// The engine this plugin runs on.
    pub(crate) fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// A ready instance from the pool, or a new one.
    pub(crate) fn checkout(&self) -> Result<Ready, PluginCallError> {
        if let Some(ready) = self.idle.lock().pop() {
            return Ok(ready);
        }
        let mut store = Store::new(self.engine.engine(), StoreState::new(self.engine.limits().memory_bytes));
        store.limiter(|s| s);
        store.set_epoch_deadline(self.engine.call_deadline_ticks());
        let exports = self.pre.instantiate(&mut store).map_err(|e| {
            metrics::counter!("xjp_plugin_instance_unavailable_total").increment(1);
            PluginCallError::Unavailable(format!(
                "no free plugin instance ({} at most; streams hold one each), retry shortly: {e:#}",
                self.engine.limits().max_instances
            ))
        })?;
        Ok(Ready { store, exports })
    }

    /// Returns a healthy instance to the pool (dropped if the pool is full).
    pub(crate) fn checkin(&self, ready: Ready) {
        let mut idle = self.idle.lock();
        if idle.len() < self.engine.limits().idle_per_plugin {
            idle.push(ready);
        }
    }

    /// Runs one call on a pooled instance under the time budget; a failed instance is dropped.
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>, &BillingPlugin) -> wasmtime::Result<R>,
    ) -> Result<R, PluginCallError> {
        let started = std::time::Instant::now();
        let mut ready = self.checkout()?;
        ready.store.set_epoch_deadline(self.engine.call_deadline_ticks());
        let result = f(&mut ready.store, &ready.exports);
        self.call_seconds.record(started.elapsed().as_secs_f64());
        match result {
            Ok(r) => {
                self.checkin(ready);
                Ok(r)
            }
            Err(e) => Err(classify(&self.engine, &ready.store, e)),
        }
    }

    /// `describe` export.
    pub fn describe(&self) -> Result<PluginInfo, PluginCallError> {
        self.call(|s, e| e.xjp_billing_describe().call_describe(s))
    }

    /// Usage from a complete response body (`None` for an error body or no usage).
    pub fn extract_response(
        &self,
        format: ApiFormat,
        status: u16,
        body: &[u8],
    ) -> Result<Option<Usage>, PluginCallError> {
        self.call(|s, e| e.xjp_billing_usage_extract().call_extract_response(s, format, status, body))?
            .map_err(PluginCallError::Plugin)
    }

    /// Upper-bound usage for a request body.
    pub fn estimate(&self, format: ApiFormat, request: &[u8], limits: ModelLimits) -> Result<Usage, PluginCallError> {
        self.call(|s, e| e.xjp_billing_usage_extract().call_estimate(s, format, request, limits))?
            .map_err(PluginCallError::Plugin)
    }

    /// Prices usage with the host's price entry.
    pub fn price(&self, usage: &Usage, price: &PriceEntry) -> Result<Cost, PluginCallError> {
        self.call(|s, e| e.xjp_billing_pricing().call_price(s, usage, price))?.map_err(PluginCallError::Plugin)
    }

    /// Usage from a complete response body and its cost at `price`, in one call (what
    /// [`Plugin::extract_response`] then [`Plugin::price`] give, without the second crossing).
    pub fn price_response(
        &self,
        format: ApiFormat,
        status: u16,
        body: &[u8],
        price: &PriceEntry,
    ) -> Result<Option<PricedUsage>, PluginCallError> {
        self.call(|s, e| e.xjp_billing_pricing().call_price_response(s, format, status, body, price))?
            .map_err(PluginCallError::Plugin)
    }

    /// Budget decision.
    pub fn check(&self, request: &BudgetRequest) -> Result<Decision, PluginCallError> {
        self.call(|s, e| e.xjp_billing_budget().call_check(s, request))
    }

    /// Whether a call on `len` input bytes runs on the blocking pool (`offload_bytes`).
    pub fn offloads(&self, len: usize) -> bool {
        len > self.engine.limits().offload_bytes
    }

    /// [`Plugin::price_response`], on the blocking pool when the body is large, so a long
    /// call does not hold an async worker.
    pub async fn price_response_async(
        self: &Arc<Self>,
        format: ApiFormat,
        status: u16,
        body: &[u8],
        price: &PriceEntry,
    ) -> Result<Option<PricedUsage>, PluginCallError> {
        if !self.offloads(body.len()) {
            return self.price_response(format, status, body, price);
        }
        let (body, price) = (body.to_vec(), price.clone());
        self.blocking(move |p| p.price_response(format, status, &body, &price)).await
    }

    /// [`Plugin::extract_response`], on the blocking pool when the body is large.
    pub async fn extract_response_async(
        self: &Arc<Self>,
        format: ApiFormat,
        status: u16,
        body: &[u8],
    ) -> Result<Option<Usage>, PluginCallError> {
        if !self.offloads(body.len()) {
            return self.extract_response(format, status, body);
        }
        let body = body.to_vec();
        self.blocking(move |p| p.extract_response(format, status, &body)).await
    }

    /// [`Plugin::estimate`], on the blocking pool when the request is large.
    pub async fn estimate_async(
        self: &Arc<Self>,
        format: ApiFormat,
        request: &[u8],
        limits: ModelLimits,
    ) -> Result<Usage, PluginCallError> {
        if !self.offloads(request.len()) {
            return self.estimate(format, request, limits);
        }
        let request = request.to_vec();
        self.blocking(move |p| p.estimate(format, &request, limits)).await
    }

    /// Runs `f` on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Plugin) -> Result<T, PluginCallError> + Send + 'static,
    ) -> Result<T, PluginCallError> {
        let plugin = self.clone();
        offload(move || f(&plugin)).await
    }
}

/// Runs a plugin call on tokio's blocking pool (`xjp_plugin_offloaded_calls_total`); a
/// panic there is raised here.
pub(crate) async fn offload<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PluginCallError> + Send + 'static,
) -> Result<T, PluginCallError> {
    metrics::counter!("xjp_plugin_offloaded_calls_total").increment(1);
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(PluginCallError::Unavailable("the runtime is shutting down".into())),
    }
}

fn ignore_plugin_error<T: Default>(e: PluginCallError) -> Result<T, PluginCallError> {
    match e {
        PluginCallError::Plugin(_) => Ok(T::default()),
        other => Err(other),
    }
}

/// Classifies a failed call by which limit (if any) stopped it.
pub(crate) fn classify(engine: &PluginEngine, store: &Store<StoreState>, e: wasmtime::Error) -> PluginCallError {
    if store.data().memory_cap_hit {
        return PluginCallError::OutOfMemory(engine.limits().memory_bytes);
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginCallError::Timeout(engine.limits().call_timeout_ms),
        // The root cause names the trap or the denied import; the wasm backtrace is noise here.
        _ => PluginCallError::Trap(e.chain().last().map(ToString::to_string).unwrap_or_else(|| e.to_string())),
    }
}
