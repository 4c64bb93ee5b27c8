//! Phase 5, upstream: a pooled client, the provider's credential in, every client
//! credential out, timeouts, no redirects. The upstream URL comes only from config.

use crate::api::GatewayError;
use crate::config::AuthStyle;
use crate::config::routes::Provider;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Client headers never forwarded: credentials, hop-by-hop headers, and what we recompute.
const STRIPPED: &[&str] = &[
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "proxy-authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "accept-encoding",
    "x-request-id",
    "idempotency-key",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Pooled HTTP(S) clients, one per connect timeout.
pub struct UpstreamClient {
    clients: Mutex<HashMap<Duration, Client<Https, Full<Bytes>>>>,
}

impl Default for UpstreamClient {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamClient {
    /// No connections yet.
    pub fn new() -> Self {
        UpstreamClient { clients: Mutex::new(HashMap::new()) }
    }

    fn client(&self, connect_timeout: Duration) -> Client<Https, Full<Bytes>> {
        self.clients
            .lock()
            .entry(connect_timeout)
            .or_insert_with(|| {
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_connect_timeout(Some(connect_timeout));
                http.set_nodelay(true);
                let builder = hyper_rustls::HttpsConnectorBuilder::new();
                let https = match builder.with_native_roots() {
                    Ok(b) => b.https_or_http().enable_http1().enable_http2().wrap_connector(http),
                    Err(e) => {
                        tracing::warn!(error = %e, "no native root certificates; using the bundled web PKI roots");
                        hyper_rustls::HttpsConnectorBuilder::new()
                            .with_webpki_roots()
                            .https_or_http()
                            .enable_http1()
                            .enable_http2()
                            .wrap_connector(http)
                    }
                };
                Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(https)
            })
            .clone()
    }

    /// `GET url` and the whole body (for price lists); errors as text.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<Bytes, String> {
        use http_body_util::BodyExt;
        let req = Request::get(url).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let fetch = async {
            let resp = self.client(Duration::from_secs(10)).request(req).await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            resp.into_body().collect().await.map(|b| b.to_bytes()).map_err(|e| e.to_string())
        };
        tokio::time::timeout(timeout, fetch).await.map_err(|_| "timed out".to_string())?
    }

    /// Sends a request; resolves when the response headers arrive (first-byte timeout).
    pub async fn send(
        &self,
        provider: &Provider,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, GatewayError> {
        let client = self.client(provider.connect_timeout);
        match tokio::time::timeout(provider.first_byte_timeout, client.request(req)).await {
            Err(_) => Err(GatewayError::UpstreamTimeout("no response headers within the first-byte timeout")),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if e.is_connect() => {
                let text = format!("{e:?}");
                if text.contains("TimedOut") || text.contains("timed out") {
                    Err(GatewayError::UpstreamTimeout("connect timeout"))
                } else {
                    Err(GatewayError::UpstreamConnect(format!("cannot connect to provider `{}`", provider.name)))
                }
            }
            Ok(Err(e)) => Err(GatewayError::UpstreamProtocol(format!("provider `{}`: {e}", provider.name))),
        }
    }
}

/// Builds the upstream request: config URL + path, filtered client headers, the
/// provider's credential, default headers, our request id.
pub fn build_request(
    provider: &Provider,
    path_and_query: &str,
    client_headers: &HeaderMap,
    request_id: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, GatewayError> {
    let uri = format!("{}{}", provider.base_url, path_and_query);
    let mut req = Request::builder()
        .method(hyper::Method::POST)
        .uri(&uri)
        .body(Full::new(body))
        .map_err(|e| GatewayError::Internal(format!("bad upstream URL {uri}: {e}")))?;
    let headers = req.headers_mut();
    for (name, value) in client_headers {
        if !STRIPPED.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in &provider.default_headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            headers.entry(n).or_insert(v);
        }
    }
    headers.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(hyper::header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    if let Ok(v) = HeaderValue::try_from(request_id) {
        headers.insert("x-request-id", v);
    }
    if let Some(secret) = &provider.credential {
        let (name, value) = match provider.auth {
            AuthStyle::Bearer => ("authorization", format!("Bearer {}", secret.expose())),
            AuthStyle::XApiKey => ("x-api-key", secret.expose().to_string()),
            AuthStyle::XGoogApiKey => ("x-goog-api-key", secret.expose().to_string()),
            AuthStyle::None => return Ok(req),
        };
        let mut value = HeaderValue::try_from(value)
            .map_err(|_| GatewayError::Internal("provider credential is not a valid header value".into()))?;
        value.set_sensitive(true);
        req.headers_mut().insert(name, value);
    }
    Ok(req)
}

/// Drops credential query parameters (`key`) from a client query string.
pub fn forwardable_query(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next().is_some_and(|k| !k.eq_ignore_ascii_case("key")))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Response headers worth passing to the client (content type, provider request ids, rate limits).
pub fn forwardable_response_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    !matches!(
        n,
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "set-cookie"
            | "content-encoding"
            | "upgrade"
            | "trailer"
            | "te"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_query_parameter_is_dropped() {
        assert_eq!(forwardable_query(Some("alt=sse&key=XJP_1")).as_deref(), Some("alt=sse"));
        assert_eq!(forwardable_query(Some("KEY=x")), None);
        assert_eq!(forwardable_query(None), None);
    }
}
