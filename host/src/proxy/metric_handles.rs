//! Metrics through handles kept by label values: `counter!` and `histogram!` build the labels
//! (allocating an owned one) and hash and lock the recorder's registry on every call; a kept
//! handle is one atomic update. The proxy's per-request metrics use them, and so do the
//! spend counters of the access line (`ops::access`).

use metrics::{Counter, Histogram};
use parking_lot::RwLock;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// At most this many label sets per metric are kept (labels are bounded: endpoints, status
/// codes, configured providers and models); past it a handle is looked up each time, as
/// `counter!` does.
const MAX_KEPT: usize = 4096;

/// Handles of one metric (or a group of them, `V`) by their label values `K`.
pub struct KeptHandles<K, V> {
    kept: RwLock<HashMap<K, V>>,
}

impl<K, V> Default for KeptHandles<K, V> {
    fn default() -> Self {
        KeptHandles { kept: RwLock::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V> KeptHandles<K, V> {
    /// Runs `update` on the handle kept under `key`; the first time, `make` makes it and it
    /// is kept under `owned()`.
    pub fn with<Q>(&self, key: &Q, owned: impl FnOnce() -> K, make: impl FnOnce() -> V, update: impl FnOnce(&V))
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Some(handle) = self.kept.read().get(key) {
            return update(handle);
        }
        let mut kept = self.kept.write();
        if kept.len() >= MAX_KEPT {
            drop(kept);
            return update(&make());
        }
        update(kept.entry(owned()).or_insert_with(make));
    }

    /// How many label sets are kept.
    pub fn len(&self) -> usize {
        self.kept.read().len()
    }

    /// Whether none is kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Handles of `xjp_requests_total`, `xjp_request_duration_seconds` and
/// `xjp_upstream_headers_seconds`.
#[derive(Default)]
pub(super) struct RequestMetrics {
    requests: KeptHandles<(&'static str, u16), Counter>,
    durations: KeptHandles<&'static str, Histogram>,
    upstream_headers: KeptHandles<String, Histogram>,
}

impl RequestMetrics {
    /// One request answered with `status` on `endpoint` after `secs`.
    pub(super) fn answered(&self, endpoint: &'static str, status: u16, secs: f64) {
        let key = (endpoint, status);
        let count = || metrics::counter!("xjp_requests_total", "endpoint" => endpoint, "status" => status.to_string());
        self.requests.with(&key, || key, count, |c| c.increment(1));
        let duration = || metrics::histogram!("xjp_request_duration_seconds", "endpoint" => endpoint);
        self.durations.with(endpoint, || endpoint, duration, |h| h.record(secs));
    }

    /// `provider` sent its response head after `secs`.
    pub(super) fn upstream_headers(&self, provider: &str, secs: f64) {
        let histogram = || metrics::histogram!("xjp_upstream_headers_seconds", "provider" => provider.to_string());
        self.upstream_headers.with(provider, || provider.to_string(), histogram, |h| h.record(secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_handles_count_into_the_same_series() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let m = RequestMetrics::default();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..3 {
                m.answered("messages", 418, 0.01);
            }
            m.upstream_headers("kept-handles-test", 0.02);
            m.upstream_headers("kept-handles-test", 0.02);
        });
        let text = handle.render();
        let line = text.lines().find(|l| l.starts_with(r#"xjp_requests_total{endpoint="messages",status="418"}"#));
        assert_eq!(line.and_then(|l| l.rsplit(' ').next()), Some("3"), "{text}");
        let count =
            text.lines().find(|l| l.starts_with(r#"xjp_upstream_headers_seconds_count{provider="kept-handles-test"}"#));
        assert_eq!(count.and_then(|l| l.rsplit(' ').next()), Some("2"), "{text}");
        assert_eq!(m.requests.len(), 1);
    }
}
