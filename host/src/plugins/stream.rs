//! A plugin stream parser leased from the pool for the life of one response stream.

use super::bindings::{ApiFormat, StreamOutcome};
use super::error::PluginCallError;
use super::plugin::{Plugin, Ready, classify, offload};
use std::sync::Arc;
use wasmtime::component::ResourceAny;

/// A `stream-parser` resource and the instance that owns it.
///
/// Each `push`/`finish` runs under the per-call time budget. If a call fails, the
/// instance is dropped and every later call returns the same error. Dropping the stream
/// early (client gone) frees the resource and returns the instance to the pool.
pub struct PluginStream {
    plugin: Arc<Plugin>,
    lease: Option<(Ready, ResourceAny)>,
    failed: Option<PluginCallError>,
}

impl PluginStream {
    /// Opens a parser for `format` on a pooled instance.
    pub fn open(plugin: Arc<Plugin>, format: ApiFormat) -> Result<Self, PluginCallError> {
        let mut ready = plugin.checkout()?;
        ready.store.set_epoch_deadline(plugin.engine().call_deadline_ticks());
        let created =
            ready.exports.xjp_billing_usage_extract().stream_parser().call_constructor(&mut ready.store, format);
        match created {
            Ok(handle) => Ok(PluginStream { plugin, lease: Some((ready, handle)), failed: None }),
            Err(e) => Err(classify(plugin.engine(), &ready.store, e)),
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), PluginCallError> {
        self.run(|ready, handle| {
            let parser = ready.exports.xjp_billing_usage_extract().stream_parser();
            parser.call_push(&mut ready.store, handle, chunk)
        })?
        .map_err(PluginCallError::Plugin)
    }

    /// [`push`](Self::push), on tokio's blocking pool when the chunk is larger than the
    /// engine's `offload_bytes`, so a long call does not hold an async worker.
    pub async fn push_async(&mut self, chunk: &bytes::Bytes) -> Result<(), PluginCallError> {
        if !self.plugin.offloads(chunk.len()) {
            return self.push(chunk);
        }
        let gone = PluginCallError::Unavailable("stream parser lost in a blocking call".into());
        let placeholder = PluginStream { plugin: self.plugin.clone(), lease: None, failed: Some(gone) };
        let mut parser = std::mem::replace(self, placeholder);
        let chunk = chunk.clone();
        let (parser, result) = offload(move || {
            let result = parser.push(&chunk);
            Ok((parser, result))
        })
        .await?;
        *self = parser;
        result
    }

    /// Ends the stream and returns what it reported; the instance goes back to the pool.
    pub fn finish(&mut self) -> Result<StreamOutcome, PluginCallError> {
        let outcome = self.run(|ready, handle| {
            let parser = ready.exports.xjp_billing_usage_extract().stream_parser();
            parser.call_finish(&mut ready.store, handle)
        })?;
        self.release();
        outcome.map_err(PluginCallError::Plugin)
    }

    fn run<R>(&mut self, f: impl FnOnce(&mut Ready, ResourceAny) -> wasmtime::Result<R>) -> Result<R, PluginCallError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some((ready, handle)) = self.lease.as_mut() else {
            return Err(PluginCallError::Unavailable("stream already finished".into()));
        };
        ready.store.set_epoch_deadline(self.plugin.engine().call_deadline_ticks());
        let handle = *handle;
        match f(ready, handle) {
            Ok(r) => Ok(r),
            Err(e) => {
                let err = classify(self.plugin.engine(), &ready.store, e);
                self.lease = None; // the failed instance is dropped, never reused
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }

    /// Drops the resource and returns a healthy instance to the pool.
    fn release(&mut self) {
        if let Some((mut ready, handle)) = self.lease.take() {
            ready.store.set_epoch_deadline(self.plugin.engine().call_deadline_ticks());
            if handle.resource_drop(&mut ready.store).is_ok() {
                self.plugin.checkin(ready);
            }
        }
    }
}

impl Drop for PluginStream {
    fn drop(&mut self) {
        self.release();
    }
}
