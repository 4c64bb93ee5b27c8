//! Phases 3 to 6 of one request, in a task of its own: route, reserve, the upstream call
//! and the response. The task does not die with the client connection, so what the
//! provider bills is billed; once the client has left, the provider is still read within
//! the drain bounds (a drain slot, the drain time limit), like a stream's.

use super::context::RequestCtx;
use super::stream::{DRAIN_LIMIT, DRAIN_TIMEOUT, RelayOptions, SHUTTING_DOWN};
use super::{Endpoint, Proxy, respond, route, stream, upstream};
use crate::api::output_cap::CapRule;
use crate::api::request::ClientRequest;
use crate::api::{Body, GatewayError};
use crate::billing::{Ending, Routed};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{HeaderMap, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Where the client's answer goes (dropped by the connection when the client leaves).
pub type Reply = oneshot::Sender<Result<Response<Body>, GatewayError>>;

/// A request that passed accept and authenticate.
#[derive(Debug)]
pub struct Accepted {
    pub parts: Parts,
    pub client: ClientRequest,
    pub endpoint: Endpoint,
}

/// What the upstream call came to.
enum Answer {
    /// A whole answer (or an error) for the client, and how the request ended.
    Whole(Result<Response<Body>, GatewayError>, Ending),
    /// A streaming answer to relay.
    Stream(Response<Incoming>),
    /// The client left and the provider's answer could not be waited for.
    Abandoned(&'static str),
}

/// The upstream request: path (and query) and body, and how to relay a stream.
struct Prepared {
    path: String,
    body: Bytes,
    hide_usage_chunk: bool,
    sse: bool,
}

/// Runs route, reserve, upstream and respond; answers on `reply`; ends `ctx` once.
pub async fn run(proxy: Arc<Proxy>, mut ctx: RequestCtx, req: Accepted, mut reply: Reply) {
    let settings = proxy.settings.load_full();
    let format = req.endpoint.format();
    let routed = {
        let model = &ctx.bill().model_requested;
        let _span = tracing::debug_span!("route", model = %model).entered();
        route::resolve(&settings.routes, &proxy.prices.load(), &proxy.plugins.current(), format, model)
    };
    match routed {
        Ok(routed) => ctx.bill_mut().routed = Some(routed),
        Err(e) => return drop(reply.send(Err(ctx.refuse(e)))),
    }
    let routed = ctx.routed().expect("routed above").clone();
    let prepared = match prepare(req.client, &req.endpoint, &req.parts, &routed) {
        Ok(p) => p,
        Err(e) => return drop(reply.send(Err(ctx.refuse(e)))),
    };
    // The estimate reads the body the provider will get: its output limit is the hold's.
    let billing = ctx.billing().clone();
    let reserve = billing.reserve(ctx.bill_mut(), &prepared.body);
    if let Err(e) = reserve.instrument(tracing::debug_span!("reserve")).await {
        return drop(reply.send(Err(ctx.refuse(e))));
    }
    let streaming = ctx.bill().stream;
    let drain_timeout = Duration::from_secs(settings.config.streaming.drain_timeout_secs);
    let work = exchange(&proxy, &routed, &req.parts.headers, &ctx.bill().request_id, &prepared, streaming);
    match bounded(work, &mut reply, &proxy.drains, drain_timeout, &proxy.cancel).await {
        Answer::Whole(resp, ending) => {
            let client_gone = reply.send(resp).is_err();
            ctx.finish(if client_gone { ending.client_left() } else { ending });
        }
        Answer::Stream(resp) => {
            let opts = RelayOptions {
                format,
                between_chunks: routed.route.provider.between_chunks_timeout,
                hide_usage_chunk: prepared.hide_usage_chunk,
                sse: prepared.sse,
                drain_timeout,
                drains: proxy.drains.clone(),
                deadline: ctx.started() + Duration::from_secs(settings.config.streaming.max_duration_secs),
                write_timeout: Duration::from_secs(settings.config.streaming.client_write_timeout_secs),
                cancel: proxy.cancel.clone(),
            };
            let _ = reply.send(Ok(stream::relay(&proxy.tasks, resp, ctx, opts)));
        }
        Answer::Abandoned(reason) => {
            ctx.finish(Ending::Interrupted { status: 0, usage: None, output_text_bytes: 0, error: Some(reason.into()) })
        }
    }
}

/// Waits for `work`; if the client leaves first, keeps waiting only within a drain slot
/// and the drain time limit; a shutdown past its grace period ends the wait.
async fn bounded(
    work: impl Future<Output = Answer>,
    reply: &mut Reply,
    drains: &Arc<Semaphore>,
    limit: Duration,
    cancel: &CancellationToken,
) -> Answer {
    tokio::pin!(work);
    tokio::select! {
        biased;
        answer = &mut work => return answer,
        () = cancel.cancelled() => return Answer::Abandoned(SHUTTING_DOWN),
        () = reply.closed() => {}
    }
    metrics::counter!("xjp_client_disconnects_total").increment(1);
    let Ok(_slot) = drains.clone().try_acquire_owned() else { return Answer::Abandoned(DRAIN_LIMIT) };
    tokio::select! {
        answer = tokio::time::timeout(limit, work) => answer.unwrap_or(Answer::Abandoned(DRAIN_TIMEOUT)),
        () = cancel.cancelled() => Answer::Abandoned(SHUTTING_DOWN),
    }
}

/// The upstream path (and the query the provider's allow-list admits) and body for the
/// client's request: the upstream model, the output limit capped (see `api::output_cap`),
/// OpenAI streams asked for their usage.
fn prepare(
    mut client: ClientRequest,
    endpoint: &Endpoint,
    parts: &Parts,
    routed: &Routed,
) -> Result<Prepared, GatewayError> {
    let route = &routed.route;
    let rule =
        CapRule { format: endpoint.format(), openai_field: &route.provider.output_limit_field, limits: route.limits };
    client.cap_output(&rule)?;
    let query = upstream::forwarded_query(&route.provider, parts.uri.query());
    let mut prepared = Prepared { path: String::new(), body: Bytes::new(), hide_usage_chunk: false, sse: true };
    match endpoint {
        Endpoint::OpenAiChat => {
            client.set_model(&route.upstream_model);
            if client.stream() {
                prepared.hide_usage_chunk = !client.ensure_include_usage();
            }
            prepared.path = "/v1/chat/completions".into();
        }
        Endpoint::AnthropicMessages => {
            client.set_model(&route.upstream_model);
            prepared.path = "/v1/messages".into();
        }
        Endpoint::Gemini { stream, .. } => {
            let action = if *stream { "streamGenerateContent" } else { "generateContent" };
            prepared.sse = query.as_deref().is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
            let (prefix, model) = (&route.provider.gemini_path_prefix, &route.upstream_model);
            prepared.path = format!("{prefix}/models/{model}:{action}");
        }
    }
    if let Some(q) = query {
        prepared.path = format!("{}?{q}", prepared.path);
    }
    prepared.body = client.into_body(Bytes::new());
    Ok(prepared)
}

/// Phases 5 and 6: the upstream call and, for a whole answer, its usage priced.
async fn exchange(
    proxy: &Proxy,
    routed: &Routed,
    headers: &HeaderMap,
    request_id: &str,
    prepared: &Prepared,
    streaming: bool,
) -> Answer {
    let provider = &routed.route.provider;
    let format = provider.api;
    let failed = |e: GatewayError, status: u16, usage| {
        let error = e.to_string();
        Answer::Whole(Err(e), Ending::UpstreamFailed { status, usage, error })
    };
    let req = match upstream::build_request(provider, &prepared.path, headers, request_id, prepared.body.clone()) {
        Ok(r) => r,
        Err(e) => return failed(e, 0, None),
    };
    let started = Instant::now();
    let resp = match proxy.upstream.send(provider, req).instrument(tracing::debug_span!("upstream")).await {
        Ok(r) => r,
        Err(e) => return failed(e, 0, None),
    };
    proxy.metrics.upstream_headers(&provider.name, started.elapsed().as_secs_f64());
    let status = resp.status();
    if respond::is_error_status(status) {
        let (head, body) = resp.into_parts();
        let body = respond::read_all(body, provider.between_chunks_timeout).await.unwrap_or_default();
        let usage = routed.plugin.extract_response_async(format, status.as_u16(), &body).await.unwrap_or(None);
        let e = if status.is_redirection() {
            GatewayError::UpstreamProtocol(format!(
                "provider `{}` redirected; redirects are not followed",
                provider.name
            ))
        } else {
            GatewayError::UpstreamStatus { status, body, headers: Box::new(head.headers) }
        };
        return failed(e, status.as_u16(), usage);
    }
    if streaming {
        return Answer::Stream(resp);
    }
    let status = status.as_u16();
    let (head, body) = resp.into_parts();
    let body = match respond::read_all(body, provider.between_chunks_timeout).await {
        Ok(b) => b,
        Err(e) => {
            let error = Some(e.to_string());
            return Answer::Whole(Err(e), Ending::Interrupted { status, usage: None, output_text_bytes: 0, error });
        }
    };
    // An unreadable body counts as output text, byte for byte, under the estimate policy.
    let seen = body.len() as u64;
    let (resp, priced) = respond::respond(head, body, &routed.plugin, format, &routed.price).await;
    let ending = match priced {
        Ok(Some(p)) => Ending::Answered { status, usage: Some(p.usage), cost: Some(p.cost), client_gone: false },
        Ok(None) => Ending::Answered { status, usage: None, cost: None, client_gone: false },
        Err(e) => Ending::PluginFailed { status, usage: None, output_text_bytes: seen, error: e },
    };
    Answer::Whole(Ok(resp), ending)
}
