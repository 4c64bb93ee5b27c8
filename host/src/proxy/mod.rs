//! The proxy request path, one module per phase, in order: [`accept`], [`authenticate`],
//! [`route`], (reserve: the money issue), [`upstream`], [`respond`] / [`stream`],
//! and [`outcome`] (settle and record hand-off).

pub mod accept;
pub mod authenticate;
pub mod outcome;
pub mod respond;
pub mod route;
pub mod sse_events;
pub mod stream;
pub mod upstream;

use crate::api::request::ClientRequest;
use crate::api::{Body, GatewayError};
use crate::gateway::Gateway;
use crate::plugins::ApiFormat;
use hyper::body::Incoming;
use hyper::{Request, Response};
use outcome::Outcome;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Which client API a request came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    OpenAiChat,
    /// `POST /v1/messages`
    AnthropicMessages,
    /// `POST /v1beta/models/{model}:generateContent` or `:streamGenerateContent`
    Gemini { model: String, stream: bool },
}

impl Endpoint {
    /// The API format of the endpoint (and of its errors).
    pub fn format(&self) -> ApiFormat {
        match self {
            Endpoint::OpenAiChat => ApiFormat::OpenaiChat,
            Endpoint::AnthropicMessages => ApiFormat::AnthropicMessages,
            Endpoint::Gemini { .. } => ApiFormat::GeminiGenerate,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Endpoint::OpenAiChat => "chat_completions",
            Endpoint::AnthropicMessages => "messages",
            Endpoint::Gemini { .. } => "generate_content",
        }
    }
}

/// Handles one proxied request end to end; errors come back in the endpoint's format.
pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>, endpoint: Endpoint) -> Response<Body> {
    let started = Instant::now();
    let format = endpoint.format();
    let (parts, body) = req.into_parts();
    let request_id = accept::request_id(&parts.headers);
    let span = tracing::info_span!("request", request_id = %request_id, endpoint = endpoint.label());
    let result = proxy(&gw, &parts, body, &endpoint, &request_id, started).instrument(span).await;
    let mut resp = result.unwrap_or_else(|e| {
        metrics::counter!("xjp_errors_total", "class" => e.class().as_str()).increment(1);
        if e.class() == crate::api::ErrorClass::Internal {
            tracing::error!(request_id = %request_id, error = %e, "request failed");
        } else {
            tracing::debug!(request_id = %request_id, error = %e, "request refused");
        }
        e.to_response(format)
    });
    if let Ok(v) = hyper::header::HeaderValue::try_from(request_id.as_str()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16().to_string();
    metrics::counter!("xjp_requests_total", "endpoint" => endpoint.label(), "status" => status).increment(1);
    metrics::histogram!("xjp_request_duration_seconds", "endpoint" => endpoint.label())
        .record(started.elapsed().as_secs_f64());
    resp
}

/// What the error path needs to record a refused request.
struct Refusal<'a> {
    caller: authenticate::Caller,
    model: &'a str,
    routed: Option<&'a route::Routed>,
}

async fn proxy(
    gw: &Arc<Gateway>,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    endpoint: &Endpoint,
    request_id: &str,
    started: Instant,
) -> Result<Response<Body>, GatewayError> {
    let started_at = std::time::SystemTime::now();
    let format = endpoint.format();
    let caller = gw
        .keys
        .authenticate(&gw.db, authenticate::presented_key(&parts.headers, parts.uri.query()))
        .instrument(tracing::info_span!("authenticate"))
        .await?;
    let settings = gw.settings.load_full();
    let raw = accept::read_body(&parts.headers, body, settings.config.server.body_limit_bytes).await?;
    let mut client = ClientRequest::parse(&raw)?;
    let (model, streaming) = match endpoint {
        Endpoint::Gemini { model, stream } => (model.clone(), *stream),
        _ => {
            (client.model().ok_or_else(|| GatewayError::InvalidRequest("`model` is required".into()))?, client.stream())
        }
    };
    let client_request_id = accept::client_request_id(&parts.headers);
    let refuse = |e: GatewayError, r: Refusal<'_>| {
        let rejection = crate::billing::settle::Rejection {
            caller: r.caller,
            client_request_id: client_request_id.clone(),
            format,
            model: r.model,
            routed: r.routed,
            started_at,
        };
        crate::billing::settle::record_rejection(gw, rejection, &e);
        e
    };
    let plugins = gw.plugins.current();
    let routed = {
        let _span = tracing::info_span!("route", model = %model).entered();
        route::resolve(&settings.routes, &gw.catalog.load(), &plugins, format, &model)
    }
    .map_err(|e| refuse(e, Refusal { caller, model: &model, routed: None }))?;
    let reserved = crate::billing::reserve::reserve(gw, caller, &routed, format, &raw, request_id, streaming)
        .instrument(tracing::info_span!("reserve"))
        .await
        .map_err(|e| match e {
            GatewayError::DuplicateRequest | GatewayError::InvalidRequest(_) => e,
            e => refuse(e, Refusal { caller, model: &model, routed: Some(&routed) }),
        })?;
    let provider = routed.route.provider.clone();
    let upstream_model = routed.route.upstream_model.clone();
    let mut hide_usage_chunk = false;
    let mut sse = true;
    let (path, upstream_body) = match endpoint {
        Endpoint::OpenAiChat => {
            client.set_model(&upstream_model);
            if streaming {
                hide_usage_chunk = !client.ensure_include_usage();
            }
            ("/v1/chat/completions".to_string(), client.into_body(raw))
        }
        Endpoint::AnthropicMessages => {
            client.set_model(&upstream_model);
            ("/v1/messages".to_string(), client.into_body(raw))
        }
        Endpoint::Gemini { stream, .. } => {
            let action = if *stream { "streamGenerateContent" } else { "generateContent" };
            let query = upstream::forwardable_query(parts.uri.query());
            sse = query.as_deref().is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
            let mut path = format!("{}/models/{}:{action}", provider.gemini_path_prefix, upstream_model);
            if let Some(q) = query {
                path = format!("{path}?{q}");
            }
            (path, raw)
        }
    };
    let mut done = Outcome {
        request_id: request_id.to_string(),
        client_request_id,
        caller,
        routed,
        format,
        model_requested: model,
        started_at,
        reserved,
        upstream_status: 0,
        stream: streaming,
        usage: None,
        cost: None,
        complete: false,
        client_disconnected: false,
        upstream_error: None,
        plugin_error: None,
        output_text_bytes: 0,
        latency: std::time::Duration::ZERO,
    };
    let req = match upstream::build_request(&provider, &path, &parts.headers, request_id, upstream_body) {
        Ok(r) => r,
        Err(e) => return Err(fail(gw, done, e, started)),
    };
    let upstream_started = Instant::now();
    let resp = match gw.upstream.send(&provider, req).instrument(tracing::info_span!("upstream")).await {
        Ok(r) => r,
        Err(e) => return Err(fail(gw, done, e, started)),
    };
    metrics::histogram!("xjp_upstream_headers_seconds", "provider" => provider.name.clone())
        .record(upstream_started.elapsed().as_secs_f64());
    done.upstream_status = resp.status().as_u16();
    let status = resp.status();
    if respond::is_error_status(status) {
        let body = respond::read_all(resp.into_body(), provider.between_chunks_timeout).await.unwrap_or_default();
        done.usage = done.routed.plugin.extract_response(format, status.as_u16(), &body).unwrap_or(None);
        let e = if status.is_redirection() {
            GatewayError::UpstreamProtocol(format!(
                "provider `{}` redirected; redirects are not followed",
                provider.name
            ))
        } else {
            GatewayError::UpstreamStatus { status, body }
        };
        return Err(fail(gw, done, e, started));
    }
    if streaming {
        let opts = stream::RelayOptions {
            format,
            between_chunks: provider.between_chunks_timeout,
            hide_usage_chunk,
            sse,
            drain_timeout: std::time::Duration::from_secs(settings.config.streaming.drain_timeout_secs),
            drains: gw.drains.clone(),
        };
        done.latency = started.elapsed();
        return Ok(stream::relay(gw, resp, done, opts));
    }
    let (head, body) = resp.into_parts();
    let body = match respond::read_all(body, provider.between_chunks_timeout).await {
        Ok(b) => b,
        Err(e) => return Err(fail(gw, done, e, started)),
    };
    let (resp, priced) = respond::respond(head, body, &done.routed.plugin, format, &done.routed.price);
    match priced {
        Ok(Some(p)) => (done.usage, done.cost) = (Some(p.usage), Some(p.cost)),
        Ok(None) => {}
        Err(e) => done.plugin_error = Some(e),
    }
    done.complete = true;
    done.latency = started.elapsed();
    crate::billing::settle::complete(gw, done);
    Ok(resp)
}

/// The upstream part failed after the hold: settle (usually releasing it) and return the error.
fn fail(gw: &Arc<Gateway>, mut done: Outcome, e: GatewayError, started: Instant) -> GatewayError {
    done.upstream_error = Some(e.to_string());
    done.latency = started.elapsed();
    crate::billing::settle::complete(gw, done);
    e
}
