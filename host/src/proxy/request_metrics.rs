//! The proxy's per-request metrics through handles kept by label values: `counter!` and
//! `histogram!` build the labels (allocating an owned one) and hash and lock the recorder's
//! registry on every call; a kept handle is one atomic update.

use metrics::{Counter, Histogram};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::Hash;

/// At most this many label sets per metric are kept (labels are bounded: endpoints, status
/// codes, configured providers); past it a handle is looked up each time, as before.
const MAX_KEPT: usize = 4096;

/// Handles of `xjp_requests_total`, `xjp_request_duration_seconds` and
/// `xjp_upstream_headers_seconds`.
#[derive(Default)]
pub(super) struct RequestMetrics {
    requests: RwLock<HashMap<(&'static str, u16), Counter>>,
    durations: RwLock<HashMap<&'static str, Histogram>>,
    upstream_headers: RwLock<HashMap<String, Histogram>>,
}

/// The handle kept under `key` in `map`, made by `make` the first time.
fn kept<K, Q, V>(map: &RwLock<HashMap<K, V>>, key: &Q, owned: impl FnOnce() -> K, make: impl FnOnce() -> V) -> V
where
    K: Eq + Hash + std::borrow::Borrow<Q>,
    Q: Eq + Hash + ?Sized,
    V: Clone,
{
    if let Some(handle) = map.read().get(key) {
        return handle.clone();
    }
    let handle = make();
    let mut map = map.write();
    if map.len() < MAX_KEPT {
        map.entry(owned()).or_insert_with(|| handle.clone());
    }
    handle
}

impl RequestMetrics {
    /// One request answered with `status` on `endpoint` after `secs`.
    pub(super) fn answered(&self, endpoint: &'static str, status: u16, secs: f64) {
        let key = (endpoint, status);
        kept(
            &self.requests,
            &key,
            || key,
            || metrics::counter!("xjp_requests_total", "endpoint" => endpoint, "status" => status.to_string()),
        )
        .increment(1);
        kept(
            &self.durations,
            endpoint,
            || endpoint,
            || metrics::histogram!("xjp_request_duration_seconds", "endpoint" => endpoint),
        )
        .record(secs);
    }

    /// `provider` sent its response head after `secs`.
    pub(super) fn upstream_headers(&self, provider: &str, secs: f64) {
        kept(
            &self.upstream_headers,
            provider,
            || provider.to_string(),
            || metrics::histogram!("xjp_upstream_headers_seconds", "provider" => provider.to_string()),
        )
        .record(secs);
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
        assert_eq!(m.requests.read().len(), 1);
    }
}
