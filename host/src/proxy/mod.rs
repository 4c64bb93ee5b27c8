//! The proxy request path, one module per phase, in order: [`accept`], [`authenticate`],
//! then in a task of its own ([`exchange`]): [`route`], reserve (`billing`), [`upstream`],
//! [`respond`] / [`stream`]; the [`context`] hands the request to billing (settle, record)
//! exactly once whichever way it ends. [`Proxy`] owns what these phases use.

pub mod accept;
pub mod array_elements;
pub mod authenticate;
pub mod context;
pub mod endpoint;
pub mod exchange;
pub mod fairness;
pub mod metric_handles;
mod presented_key;
pub mod respond;
pub mod route;
pub mod sse_events;
pub mod stream;
mod token_bucket;
pub mod upstream;

pub use endpoint::Endpoint;

use crate::api::request::ClientRequest;
use crate::api::{Body, ErrorClass, GatewayError};
use crate::billing::{Bill, Billing, Caller};
use crate::catalog::Prices;
use crate::config::LiveSettings;
use crate::plugins::PluginRegistry;
use authenticate::KeyCache;
use context::RequestCtx;
use fairness::TenantSlots;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use metric_handles::RequestMetrics;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use upstream::UpstreamClient;

/// What the proxy phases use: settings, prices, plugins and billing below them, and their
/// own key cache, upstream client, drain slots and tasks.
pub struct Proxy {
    settings: LiveSettings,
    prices: Arc<Prices>,
    plugins: Arc<PluginRegistry>,
    billing: Arc<Billing>,
    db: PgPool,
    keys: Arc<KeyCache>,
    upstream: Arc<UpstreamClient>,
    /// Background reads of answers whose client left (bounded).
    drains: Arc<Semaphore>,
    /// What each tenant has running (`[limits]`).
    tenants: Arc<TenantSlots>,
    /// Request tasks, stream relays and drains (waited for at shutdown).
    tasks: TaskTracker,
    /// Cancelled when the shutdown grace period is over: what still runs ends and is billed.
    cancel: CancellationToken,
    /// Per-request metric handles.
    metrics: RequestMetrics,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Proxy")
    }
}

/// What the proxy is built from.
pub struct Parts {
    pub settings: LiveSettings,
    pub prices: Arc<Prices>,
    pub plugins: Arc<PluginRegistry>,
    pub billing: Arc<Billing>,
    pub db: PgPool,
    pub upstream: Arc<UpstreamClient>,
}

impl Proxy {
    /// A proxy over `parts`, with the key cache and drain limit of the current settings.
    pub fn new(parts: Parts) -> Arc<Proxy> {
        let config = &parts.settings.load().config;
        let keys = Arc::new(KeyCache::new(&config.auth));
        let drains = Arc::new(Semaphore::new(config.streaming.max_drains));
        let Parts { settings, prices, plugins, billing, db, upstream } = parts;
        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        let tenants = Arc::new(TenantSlots::default());
        let metrics = RequestMetrics::default();
        Arc::new(Proxy {
            settings,
            prices,
            plugins,
            billing,
            db,
            keys,
            upstream,
            drains,
            tenants,
            tasks,
            cancel,
            metrics,
        })
    }

    /// Phase 2 for any endpoint that takes an API key.
    pub async fn authenticate(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Caller, GatewayError> {
        self.keys.authenticate(&self.db, authenticate::presented_key(headers, query)).await
    }

    /// Forgets cached key lookups and `key_id`'s outage grace (after an admin revoked it
    /// on this instance).
    pub async fn forget_key(&self, key_id: uuid::Uuid) {
        self.keys.forget(key_id).await;
    }

    /// Waits (up to `grace`) for request tasks, stream relays and drains to finish; what
    /// still runs then is cancelled, ends as interrupted and is billed.
    pub async fn shutdown(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return;
        }
        tracing::warn!(running = self.tasks.len(), "grace period over; ending the requests still running");
        self.cancel.cancel();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await.is_err() {
            tracing::error!(running = self.tasks.len(), "requests did not end after cancellation");
        }
    }
}

/// Handles one proxied request end to end; errors come back in the endpoint's format.
pub async fn handle(proxy: Arc<Proxy>, req: Request<Incoming>, endpoint: Endpoint) -> Response<Body> {
    let started = Instant::now();
    let format = endpoint.format();
    let label = endpoint.label();
    let (parts, body) = req.into_parts();
    let client_id = accept::client_request_id(&parts.headers);
    let request_id = accept::request_id(&client_id);
    let span = tracing::info_span!("request", request_id = %request_id, endpoint = label);
    let ids = Ids { request_id: &request_id, client_id };
    let counted = proxy.clone();
    let result = accept_and_run(proxy, parts, body, endpoint, ids, started, span.clone()).instrument(span).await;
    let mut resp = result.unwrap_or_else(|e| {
        metrics::counter!("xjp_errors_total", "class" => e.class().as_str()).increment(1);
        if e.class() == ErrorClass::Internal {
            tracing::error!(request_id = %request_id, error = %e, "request failed");
        } else {
            tracing::debug!(request_id = %request_id, error = %e, "request refused");
        }
        e.to_response(format)
    });
    if let Ok(v) = hyper::header::HeaderValue::try_from(request_id.as_str()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    counted.metrics.answered(label, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

/// The request's id, and the id the client sent (refused if invalid, after authentication).
struct Ids<'a> {
    request_id: &'a str,
    client_id: Result<Option<String>, GatewayError>,
}

/// Accept and authenticate on the connection; the rest in a request task that outlives it.
async fn accept_and_run(
    proxy: Arc<Proxy>,
    parts: hyper::http::request::Parts,
    body: Incoming,
    endpoint: Endpoint,
    ids: Ids<'_>,
    started: Instant,
    span: tracing::Span,
) -> Result<Response<Body>, GatewayError> {
    let started_at = SystemTime::now();
    let caller =
        proxy.authenticate(&parts.headers, parts.uri.query()).instrument(tracing::debug_span!("authenticate")).await?;
    let client_request_id = ids.client_id?;
    let (limit, secs, cap) = {
        let config = &proxy.settings.load().config;
        let server = &config.server;
        (server.body_limit_bytes, server.body_read_timeout_secs, config.limits.tenant_cap(&caller.tenant_id))
    };
    // Held until the request ends (a stream's relay and drain included).
    let slot = proxy.tenants.take(caller.tenant_id, cap)?;
    let raw = accept::read_body_within(&parts.headers, body, limit, secs).await?;
    let client = ClientRequest::parse(&raw)?;
    let (model, stream) = match &endpoint {
        Endpoint::Gemini { model, stream } => (model.clone(), *stream),
        _ => {
            (client.model().ok_or_else(|| GatewayError::InvalidRequest("`model` is required".into()))?, client.stream())
        }
    };
    let model = accept::valid_model(model)?;
    let bill = Bill {
        request_id: ids.request_id.to_string(),
        client_request_id,
        caller,
        format: endpoint.format(),
        model_requested: model,
        stream,
        started_at,
        routed: None,
        reserved: None,
    };
    let ctx = RequestCtx::new(proxy.billing.clone(), bill, started).holding(slot);
    let (reply, answer) = tokio::sync::oneshot::channel();
    let accepted = exchange::Accepted { parts, client, endpoint };
    // Boxed: the request's future is several KB, and every wrapper and the task cell would
    // otherwise move it by value (memmove: 7.0 -> 5.7 % of the samples at c=64).
    proxy.tasks.spawn(Box::pin(exchange::run(proxy.clone(), ctx, accepted, reply)).instrument(span));
    answer.await.unwrap_or_else(|_| Err(GatewayError::Internal("the request task stopped without an answer".into())))
}
