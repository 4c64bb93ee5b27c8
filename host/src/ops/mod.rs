//! Operations endpoints: health, readiness, Prometheus metrics, the public model list; the
//! log subscriber, access lines and spend counters, and the OpenTelemetry export.

pub mod access;
pub mod access_line;
pub mod log_writer;
pub mod otel;
pub mod telemetry;

use crate::api::respond::{ok, respond};
use crate::api::{ApiResult, Body, full, json_response};
use crate::gateway::Gateway;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use std::sync::OnceLock;
use std::time::Duration;

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once).
pub fn install_metrics() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let buckets =
            [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .expect("valid buckets")
            .install_recorder()
            .expect("one recorder per process")
    })
}

/// `GET /metrics`
pub fn metrics() -> Response<Body> {
    let mut resp = Response::new(full(install_metrics().render()));
    resp.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}

/// `GET /healthz`: the process is up.
pub fn healthz() -> Response<Body> {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

/// `GET /readyz`: ready only when Postgres, Redis and every configured plugin are.
pub async fn readyz(gw: &Gateway) -> Response<Body> {
    let limit = Duration::from_secs(2);
    let postgres = tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(&gw.db)).await.is_ok_and(|r| r.is_ok());
    // The balance store's own connection: the one requests use, not a new one per probe.
    let redis = tokio::time::timeout(limit, gw.billing.balances.ping()).await.unwrap_or(false);
    let set = gw.plugins.current();
    let settings = gw.settings.load();
    let missing: Vec<&str> =
        settings.routes.providers.values().map(|p| p.plugin.as_str()).filter(|p| set.get(p).is_none()).collect();
    let ready = postgres && redis && missing.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, &json!({ "ready": ready, "postgres": postgres, "redis": redis, "missing_plugins": missing }))
}

/// `GET /v1/models`: configured public models in the OpenAI list format (needs a key).
pub async fn models(gw: &Gateway, req: &Request<hyper::body::Incoming>) -> Response<Body> {
    respond(list_models(gw, req).await)
}

async fn list_models(gw: &Gateway, req: &Request<hyper::body::Incoming>) -> ApiResult {
    gw.proxy.authenticate(req.headers(), req.uri().query()).await?;
    let settings = gw.settings.load();
    let data: Vec<_> = settings
        .routes
        .public_names
        .iter()
        .filter_map(|name| settings.routes.route(name))
        .map(|r| json!({ "id": r.name, "object": "model", "created": 0, "owned_by": r.provider.name }))
        .collect();
    ok(&json!({ "object": "list", "data": data }))
}
