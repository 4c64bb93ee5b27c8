//! Method + path -> handler. The only place that knows the URL space.

use crate::api::{Body, GatewayError};
use crate::gateway::Gateway;
use crate::plugins::ApiFormat;
use crate::proxy::{self, Endpoint};
use crate::{admin, ops};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;

/// Which part of the URL space a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Everything (no `admin_listen`).
    All,
    /// The proxy, the tenant self-service reads, `/healthz` and `/readyz`.
    Public,
    /// `/metrics`, `/internal/*`, `/admin/*`, `/healthz` and `/readyz`.
    Admin,
}

impl Listener {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::All | Listener::Public => "public",
            Listener::Admin => "admin",
        }
    }

    /// Whether this listener serves `path` (others get 404, in the client's format).
    pub fn serves(self, path: &str) -> bool {
        let ops = path == "/metrics" || path.starts_with("/internal/") || path.starts_with("/admin/");
        match self {
            Listener::All => true,
            Listener::Public => !ops,
            Listener::Admin => ops || path == "/healthz" || path == "/readyz",
        }
    }
}

/// Routes one request arriving on `listener`.
pub async fn dispatch(
    gw: Arc<Gateway>,
    req: Request<Incoming>,
    listener: Listener,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let sent_body = req.version() == hyper::Version::HTTP_11 && sends_body(req.headers());
    if !listener.serves(&path) {
        return Ok(not_found(&method, &path));
    }
    let mut resp = match (&method, path.as_str()) {
        (&Method::POST, "/v1/chat/completions") => proxy::handle(gw.proxy.clone(), req, Endpoint::OpenAiChat).await,
        (&Method::POST, "/v1/messages") => proxy::handle(gw.proxy.clone(), req, Endpoint::AnthropicMessages).await,
        (&Method::POST, p) if gemini_endpoint(p).is_some() => {
            let endpoint = gemini_endpoint(p).expect("checked");
            proxy::handle(gw.proxy.clone(), req, endpoint).await
        }
        (&Method::GET, "/v1/models") => ops::models(&gw, &req).await,
        (&Method::GET, p) if p.starts_with("/v1/billing/") => crate::reports::self_service::dispatch(&gw, &req).await,
        (&Method::GET, "/healthz") => ops::healthz(),
        (&Method::GET, "/readyz") => ops::readyz(&gw).await,
        (&Method::GET, "/metrics") => ops::metrics(),
        (&Method::GET, "/internal/openapi.json") => crate::reports::openapi(),
        (_, p) if p.starts_with("/internal/") || p.starts_with("/admin/") => admin::dispatch(&gw, req).await,
        _ => not_found(&method, &path),
    };
    // An HTTP/1.1 refusal may come before the body was read (401, 403, 404, 413): hyper
    // then closes the connection after the answer unless the rest of the body had already
    // arrived, and a client that was not told reuses it and its next request fails. Which
    // it was is not known here, so every error answer to a request that sent a body ends
    // its connection, and says so (`connection: close`).
    let status = resp.status();
    if sent_body && (status.is_client_error() || status.is_server_error()) {
        resp.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    }
    Ok(resp)
}

/// Whether a request comes with a body (a non-zero length, or chunked).
fn sends_body(headers: &hyper::HeaderMap) -> bool {
    headers.contains_key(hyper::header::TRANSFER_ENCODING)
        || headers.get(hyper::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
}

/// `/v1beta/models/{model}:generateContent` or `:streamGenerateContent` (also `/v1/models/...`).
fn gemini_endpoint(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, action) = rest.rsplit_once(':')?;
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/')).then(|| Endpoint::Gemini { model: model.to_string(), stream })
}

/// 404 in the format the path suggests.
fn not_found(method: &Method, path: &str) -> Response<Body> {
    let format = if path.starts_with("/v1beta") {
        ApiFormat::GeminiGenerate
    } else if path.starts_with("/v1/messages") {
        ApiFormat::AnthropicMessages
    } else {
        ApiFormat::OpenaiChat
    };
    GatewayError::NotFound { method: method.to_string(), path: path.to_string() }.to_response(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_paths_only_on_the_admin_listener_when_there_is_one() {
        for path in ["/metrics", "/internal/plugins", "/admin/tenants", "/internal/billing/quote"] {
            assert!(Listener::All.serves(path) && Listener::Admin.serves(path) && !Listener::Public.serves(path));
        }
        for path in ["/v1/chat/completions", "/v1/billing/balance", "/v1beta/models/m:generateContent"] {
            assert!(Listener::All.serves(path) && Listener::Public.serves(path) && !Listener::Admin.serves(path));
        }
        for path in ["/healthz", "/readyz"] {
            assert!(Listener::Public.serves(path) && Listener::Admin.serves(path));
        }
    }

    #[test]
    fn gemini_paths() {
        assert_eq!(
            gemini_endpoint("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            Some(Endpoint::Gemini { model: "gemini-2.5-flash".into(), stream: true })
        );
        assert_eq!(gemini_endpoint("/v1beta/models/x:countTokens"), None);
        assert_eq!(gemini_endpoint("/v1beta/models/:generateContent"), None);
    }
}
