//! Phase 5, upstream: a pooled client, the provider's credential in, timeouts, no
//! redirects. The upstream URL comes only from config. Only what the provider's allow-lists
//! name crosses (`config::forwarding`): client headers and query parameters on the way in,
//! provider headers on the way back; a client credential never does, in any spelling.

use super::authenticate::query_pairs;
use crate::api::GatewayError;
use crate::config::AuthStyle;
use crate::config::forwarding::{AllowList, Values};
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

    /// Sends a request; resolves when the response headers arrive (first-byte timeout), with
    /// only the headers on the provider's `forward_response_headers` list left.
    pub async fn send(
        &self,
        provider: &Provider,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, GatewayError> {
        let client = self.client(provider.connect_timeout);
        match tokio::time::timeout(provider.first_byte_timeout, client.request(req)).await {
            Err(_) => Err(GatewayError::UpstreamTimeout("no response headers within the first-byte timeout")),
            Ok(Ok(mut resp)) => {
                let upstream = std::mem::take(resp.headers_mut());
                *resp.headers_mut() =
                    allowed_headers(&provider.forwarding.response_headers, &upstream, provider, "response headers");
                Ok(resp)
            }
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

/// Builds the upstream request: config URL + path (and the query [`forwarded_query`]
/// made), the client headers on the provider's allow-list, the provider's default headers,
/// content type, identity encoding, our request id and the provider's credential.
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
    *headers = allowed_headers(&provider.forwarding.request_headers, client_headers, provider, "client headers");
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

/// The client's query cut to the provider's `forward_query` list. Names and values are
/// compared percent-decoded (`+` as a space), exactly as authentication reads `key`, so no
/// spelling of a name slips past; the first admitted value of a name is kept, later ones
/// are dropped; the kept pairs are re-encoded canonically.
pub fn forwarded_query(provider: &Provider, query: Option<&str>) -> Option<String> {
    let (mut kept, mut dropped): (Vec<(String, String)>, Vec<String>) = Default::default();
    for (name, value) in query_pairs(query?) {
        let admitted = provider.forwarding.query.get(&name).is_some_and(|values| values.admits(&value));
        if admitted && !kept.iter().any(|(n, _)| *n == name) {
            kept.push((name, value));
        } else {
            dropped.push(name);
        }
    }
    not_forwarded(provider, "client query parameters", &dropped);
    let pairs: Vec<String> = kept.iter().map(|(n, v)| format!("{}={}", encode(n), encode(v))).collect();
    (!pairs.is_empty()).then(|| pairs.join("&"))
}

/// The headers of `from` that `list` admits. A name restricted to values is read as a
/// comma-separated list: its admitted items, each once, become one header.
fn allowed_headers(list: &AllowList, from: &HeaderMap, provider: &Provider, what: &str) -> HeaderMap {
    let (mut kept, mut dropped) = (HeaderMap::new(), Vec::new());
    // The dropped names are only for a debug line: not collected unless it is on.
    let note = tracing::enabled!(tracing::Level::DEBUG);
    for name in from.keys() {
        let values = from.get_all(name);
        match list.get(name.as_str()) {
            None if note => dropped.push(name.to_string()),
            None => {}
            Some(Values::Any) => {
                for v in values {
                    kept.append(name.clone(), v.clone());
                }
            }
            Some(only) => {
                let mut items: Vec<&str> = Vec::new();
                let mut refused = false;
                for value in values {
                    let Ok(text) = value.to_str() else {
                        refused = true;
                        continue;
                    };
                    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                        if !only.admits(item) {
                            refused = true;
                        } else if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                }
                if refused && note {
                    dropped.push(format!("{name} (some values)"));
                }
                if !items.is_empty()
                    && let Ok(v) = HeaderValue::try_from(items.join(","))
                {
                    kept.insert(name.clone(), v);
                }
            }
        }
    }
    not_forwarded(provider, what, &dropped);
    kept
}

/// Logs (debug) what was dropped, by name (each cut to 64 characters), never a value.
fn not_forwarded(provider: &Provider, what: &str, names: &[String]) {
    if !names.is_empty() {
        let names: Vec<String> = names.iter().map(|n| n.chars().take(64).collect()).collect();
        tracing::debug!(provider = %provider.name, ?names, "{what} not on the allow-list, dropped");
    }
}

/// Percent-encodes everything but the unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Hop-by-hop and framing headers, never copied to the client (the response lists cannot
/// hold them either; this is the second guard where responses are built).
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
    use crate::config::forwarding::Forwarding;
    use crate::plugins::ApiFormat;

    fn provider(api: ApiFormat, headers: &[&str], query: &[&str]) -> Provider {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (forwarding, errors) = Forwarding::new(api, Some(&own(headers)), Some(&own(query)), None);
        assert!(errors.is_empty(), "{errors:?}");
        Provider {
            name: "p".into(),
            base_url: "http://upstream".into(),
            api,
            credential_env: None,
            credential: None,
            auth: AuthStyle::None,
            plugin: "p".into(),
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            between_chunks_timeout: Duration::from_secs(1),
            default_headers: Default::default(),
            gemini_path_prefix: "/v1beta".into(),
            output_limit_field: "max_completion_tokens".into(),
            forwarding,
        }
    }

    #[test]
    fn query_names_are_compared_decoded_and_reencoded() {
        let p = provider(ApiFormat::GeminiGenerate, &[], &["alt=sse", "x~y", "n"]);
        let q = |s| forwarded_query(&p, Some(s));
        assert_eq!(q("alt=sse&key=XJP_1").as_deref(), Some("alt=sse"));
        assert_eq!(q("k%65y=XJP_1&%6Bey=XJP_2&%00=1&KEY=x&$key=y"), None);
        assert_eq!(q("alt=json&alt=sse&alt=sse&%61lt=sse").as_deref(), Some("alt=sse"));
        assert_eq!(q("alt=%73se").as_deref(), Some("alt=sse"));
        assert_eq!(q("fields=candidates&%24fields=x&alt=proto"), None);
        assert_eq!(q("x%7Ey=a%26b%3Dc+d&n").as_deref(), Some("x~y=a%26b%3Dc%20d&n="));
        assert_eq!(forwarded_query(&p, None), None);
    }

    #[test]
    fn headers_pass_by_name_and_listed_value() {
        let p = provider(ApiFormat::AnthropicMessages, &["anthropic-beta=a", "anthropic-beta=b", "x-open"], &[]);
        let mut h = HeaderMap::new();
        h.append("anthropic-beta", HeaderValue::from_static("c, a"));
        h.append("anthropic-beta", HeaderValue::from_static("a,b, 1m"));
        h.append("x-open", HeaderValue::from_static("1"));
        h.append("x-open", HeaderValue::from_static("2"));
        h.append("openai-organization", HeaderValue::from_static("org"));
        h.append("authorization", HeaderValue::from_static("Bearer XJP_x"));
        let kept = allowed_headers(&p.forwarding.request_headers, &h, &p, "test");
        assert_eq!(kept.get("anthropic-beta").unwrap(), "a,b");
        assert_eq!(kept.get_all("x-open").iter().count(), 2);
        assert_eq!(kept.len(), 3);
        let mut h = HeaderMap::new();
        h.insert("anthropic-beta", HeaderValue::from_static("context-1m-2025-08-07"));
        assert!(allowed_headers(&p.forwarding.request_headers, &h, &p, "test").is_empty());
    }
}
