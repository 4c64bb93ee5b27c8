//! One error type for the request path, classified by who failed, and the one place that
//! maps it to an HTTP status and to the OpenAI, Anthropic or Gemini error shape.

use super::body::{Body, json_response};
use crate::plugins::{ApiFormat, PluginCallError};
use hyper::StatusCode;
use serde_json::{Value, json};

/// Who failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Client,
    Auth,
    Routing,
    Balance,
    Upstream,
    Plugin,
    /// A limit the gateway sets on a caller (per-tenant concurrency, key lookups).
    Limit,
    Unavailable,
    Internal,
}

impl ErrorClass {
    /// Stable label for metrics and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Client => "client",
            ErrorClass::Auth => "auth",
            ErrorClass::Routing => "routing",
            ErrorClass::Balance => "balance",
            ErrorClass::Upstream => "upstream",
            ErrorClass::Plugin => "plugin",
            ErrorClass::Limit => "limit",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Internal => "internal",
        }
    }
}

/// Everything that can stop a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body not received within {secs} s")]
    BodyReadTimeout { secs: u64 },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("missing API key: send `Authorization: Bearer XJP_...`, `x-api-key` or `x-goog-api-key`")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("API key has been revoked")]
    RevokedKey,
    #[error("tenant is suspended")]
    TenantSuspended,
    #[error("admin token required")]
    AdminForbidden,
    #[error("model `{0}` does not exist or is not available")]
    UnknownModel(String),
    #[error("model `{model}` is not served on this endpoint (it speaks {format})")]
    WrongEndpoint { model: String, format: ApiFormat },
    #[error("model `{0}` has no price configured; refusing to serve it unbilled")]
    Unpriced(String),
    #[error("insufficient balance: available {available_usd} USD, this request may cost up to {estimate_usd} USD")]
    InsufficientBalance { available_nano: i64, estimate_nano: i64, available_usd: String, estimate_usd: String },
    #[error("request denied by billing policy: {0}")]
    BudgetDenied(String),
    #[error("a request with this Idempotency-Key / X-Request-Id is in progress or already done")]
    DuplicateRequest,
    /// The tenant already has its cap of requests and streams running (`[limits]`).
    #[error("too many concurrent requests for this tenant (limit {limit}); retry when one finishes")]
    TenantBusy { limit: usize },
    /// Too many keys that are in no cache are being verified (`[auth] unknown_key_lookups_per_sec`).
    #[error("too many API key verifications right now; retry shortly")]
    KeyLookupsLimited,
    /// The provider answered with an error status; its body is passed on when it already
    /// has the client's error shape, and the headers its allow-list admits (`retry-after`).
    #[error("upstream returned {status}")]
    UpstreamStatus { status: StatusCode, body: bytes::Bytes, headers: Box<hyper::HeaderMap> },
    #[error("upstream unreachable: {0}")]
    UpstreamConnect(String),
    #[error("upstream timed out ({0})")]
    UpstreamTimeout(&'static str),
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(String),
    #[error("billing plugin failed: {0}")]
    Plugin(#[from] PluginCallError),
    #[error("billing plugin `{0}` is not loaded")]
    PluginMissing(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The billing ledger is behind (`[billing] spool_max_rows` / `spool_max_bytes`): new
    /// requests are shed until it catches up.
    #[error("service unavailable: the billing ledger is catching up; retry shortly")]
    LedgerBacklog,
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// Who failed.
    pub fn class(&self) -> ErrorClass {
        use GatewayError::*;
        match self {
            MalformedJson(_)
            | BodyTooLarge { .. }
            | BodyReadTimeout { .. }
            | InvalidRequest(_)
            | NotFound { .. }
            | DuplicateRequest => ErrorClass::Client,
            TenantBusy { .. } | KeyLookupsLimited => ErrorClass::Limit,
            MissingKey | InvalidKey | RevokedKey | TenantSuspended | AdminForbidden => ErrorClass::Auth,
            UnknownModel(_) | WrongEndpoint { .. } | Unpriced(_) => ErrorClass::Routing,
            InsufficientBalance { .. } | BudgetDenied(_) => ErrorClass::Balance,
            UpstreamStatus { .. } | UpstreamConnect(_) | UpstreamTimeout(_) | UpstreamProtocol(_) => {
                ErrorClass::Upstream
            }
            Plugin(_) | PluginMissing(_) => ErrorClass::Plugin,
            Unavailable(_) | LedgerBacklog => ErrorClass::Unavailable,
            Internal(_) => ErrorClass::Internal,
        }
    }

    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            MalformedJson(_) | InvalidRequest(_) | WrongEndpoint { .. } | Unpriced(_) => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyReadTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            TenantBusy { .. } | KeyLookupsLimited => StatusCode::TOO_MANY_REQUESTS,
            DuplicateRequest => StatusCode::CONFLICT,
            NotFound { .. } | UnknownModel(_) => StatusCode::NOT_FOUND,
            MissingKey | InvalidKey | RevokedKey => StatusCode::UNAUTHORIZED,
            AdminForbidden | TenantSuspended | BudgetDenied(_) => StatusCode::FORBIDDEN,
            InsufficientBalance { .. } => StatusCode::PAYMENT_REQUIRED,
            // The provider refused the operator's credentials or account: the client's key is
            // fine, the gateway is not (see `upstream_error_body`).
            UpstreamStatus { status, .. } if operator_refused(*status) => StatusCode::BAD_GATEWAY,
            UpstreamStatus { status, .. } => *status,
            UpstreamConnect(_) | UpstreamProtocol(_) => StatusCode::BAD_GATEWAY,
            UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            // No free plugin instance (the pool is exhausted): busy, not broken.
            Plugin(PluginCallError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Plugin(_) | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PluginMissing(_) | Unavailable(_) | LedgerBacklog => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Extra fields for the error object (balance and estimate on 402).
    fn details(&self) -> Option<Value> {
        match self {
            GatewayError::InsufficientBalance { available_nano, estimate_nano, available_usd, estimate_usd } => {
                Some(json!({
                    "available_usd": available_usd,
                    "available_nano_usd": available_nano,
                    "estimated_cost_usd": estimate_usd,
                    "estimated_cost_nano_usd": estimate_nano,
                }))
            }
            _ => None,
        }
    }

    /// The response in the client's API format. A refusal the client may retry soon (a
    /// limit, a busy plugin pool) says when, with `retry-after`.
    pub fn to_response(&self, format: ApiFormat) -> hyper::Response<Body> {
        let status = self.status();
        let GatewayError::UpstreamStatus { status: upstream, body, headers } = self else {
            let mut resp = json_response(status, &error_body(format, status, &self.to_string(), self.details()));
            if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
                resp.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
            }
            return resp;
        };
        let mut resp = json_response(status, &upstream_error_body(format, *upstream, body));
        for (name, value) in headers.iter().filter(|(name, _)| *name != hyper::header::CONTENT_TYPE) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
        resp
    }
}

/// The longest provider message passed on (characters).
const MAX_UPSTREAM_MESSAGE: usize = 2_000;

/// The provider's error rebuilt in the client's shape from what the client may see: the
/// message (account identifiers scrubbed) and, when they are plain tokens, OpenAI's `type`,
/// `code` and `param`, Anthropic's `type`, Gemini's `status`. Everything else — request
/// and organisation ids, Gemini's `details` (project numbers, quota metrics, console
/// links), OpenRouter's `user_id` and `metadata` — stays behind.
///
/// 401, 402 and 403 from the provider are about the operator's account (its key, credits,
/// project): the client gets 502 and a fixed message; the provider's goes to the log.
fn upstream_error_body(format: ApiFormat, status: StatusCode, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    // Vertex answers errors as a one-element array.
    let v = match v {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    let err = &v["error"];
    if operator_refused(status) {
        let said = err["message"].as_str().or_else(|| err.as_str()).unwrap_or_default();
        tracing::warn!(%status, provider_message = %said, "the provider refused the gateway's account");
        let message = format!("the provider refused the gateway's credentials or account (it answered {status})");
        return error_body(format, StatusCode::BAD_GATEWAY, &message, None);
    }
    let message = err["message"]
        .as_str()
        .or_else(|| err.as_str())
        .or_else(|| v["message"].as_str())
        .map(scrub_identifiers)
        .map(|m| m.chars().take(MAX_UPSTREAM_MESSAGE).collect::<String>())
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| format!("upstream returned {status}"));
    let token = |field: &Value| field.as_str().filter(|t| is_token(t)).map(str::to_string);
    let mut out = error_body(format, status, &message, None);
    let e = &mut out["error"];
    match format {
        ApiFormat::OpenaiChat => {
            if let Some(t) = token(&err["type"]) {
                e["type"] = json!(t);
            }
            if let Some(c) = token(&err["code"]) {
                e["code"] = json!(c);
            }
            if let Some(p) = token(&err["param"]) {
                e["param"] = json!(p);
            }
        }
        ApiFormat::AnthropicMessages => {
            if let Some(t) = token(&err["type"]) {
                e["type"] = json!(t);
            }
        }
        ApiFormat::GeminiGenerate => {
            if let Some(s) = token(&err["status"]) {
                e["status"] = json!(s);
            }
        }
    }
    out
}

/// A provider status about the operator's credentials, credits or project.
fn operator_refused(status: StatusCode) -> bool {
    (401..=403).contains(&status.as_u16())
}

/// A short identifier-like string (`rate_limit_error`, `messages[0].content`).
fn is_token(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
}

/// Account identifiers providers put in error messages: organisation, project and user
/// ids, request ids, API keys (masked or not), Google project numbers, UUIDs.
static IDENTIFIERS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?x)
        \b(?:org|proj|req|user|sess)[-_][A-Za-z0-9]{4,}
        | \bsk-[A-Za-z0-9_*\-]{3,}
        | \bAIza[0-9A-Za-z_\-]{8,}
        | \bproject_number:\s*\d+
        | \bprojects/[A-Za-z0-9_\-]+
        | \b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b
        | \b[0-9a-fA-F]{32,}\b",
    )
    .expect("valid pattern")
});

/// `message` with every account identifier replaced by `[redacted]`.
pub fn scrub_identifiers(message: &str) -> String {
    IDENTIFIERS.replace_all(message, "[redacted]").into_owned()
}

/// An error body in a format's documented shape.
pub fn error_body(format: ApiFormat, status: StatusCode, message: &str, details: Option<Value>) -> Value {
    let mut v = match format {
        ApiFormat::OpenaiChat => json!({ "error": {
            "message": message,
            "type": openai_type(status),
            "param": null,
            "code": openai_code(status),
        }}),
        ApiFormat::AnthropicMessages => json!({ "type": "error", "error": {
            "type": anthropic_type(status),
            "message": message,
        }}),
        ApiFormat::GeminiGenerate => json!({ "error": {
            "code": status.as_u16(),
            "message": message,
            "status": gemini_status(status),
        }}),
    };
    if let (Some(Value::Object(extra)), Some(Value::Object(err))) = (details, v.get_mut("error")) {
        err.extend(extra);
    }
    v
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "invalid_request_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn openai_code(status: StatusCode) -> Value {
    match status.as_u16() {
        401 => json!("invalid_api_key"),
        402 => json!("insufficient_quota"),
        404 => json!("model_not_found"),
        413 => json!("request_too_large"),
        _ => Value::Null,
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

fn gemini_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 | 403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_per_format() {
        let e = GatewayError::UnknownModel("nope".into());
        let o = error_body(ApiFormat::OpenaiChat, e.status(), &e.to_string(), None);
        assert_eq!(o["error"]["code"], "model_not_found");
        let a = error_body(ApiFormat::AnthropicMessages, e.status(), &e.to_string(), None);
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "not_found_error");
        let g = error_body(ApiFormat::GeminiGenerate, e.status(), &e.to_string(), None);
        assert_eq!(g["error"]["status"], "NOT_FOUND");
        assert_eq!(g["error"]["code"], 404);
    }

    fn upstream(status: StatusCode, body: &'static [u8], format: ApiFormat) -> Value {
        upstream_error_body(format, status, body)
    }

    #[test]
    fn upstream_errors_are_rebuilt_without_account_identifiers() {
        let openai = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-AbCdEf123456 on tokens per min (TPM): Limit 30000. Request id req_0123456789abcdef","type":"tokens","param":null,"code":"rate_limit_exceeded"},"organization":"org-AbCdEf123456"}"#;
        let v = upstream(StatusCode::TOO_MANY_REQUESTS, openai, ApiFormat::OpenaiChat);
        let text = v.to_string();
        assert!(!text.contains("org-AbCdEf") && !text.contains("req_0123"), "{text}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Rate limit reached for gpt-4o in organization [redacted]")
        );
        assert_eq!(v["error"]["type"], "tokens");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v.as_object().unwrap().len(), 1, "only `error`: {v}");
        assert_eq!(v["error"].as_object().unwrap().len(), 4);

        let key = br#"{"error":{"message":"Incorrect API key provided: sk-proj-****abcd. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key","param":null}}"#;
        let v = upstream(StatusCode::UNAUTHORIZED, key, ApiFormat::OpenaiChat);
        assert!(!v.to_string().contains("abcd"), "{v}");

        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
        let v = upstream(StatusCode::SERVICE_UNAVAILABLE, anthropic, ApiFormat::AnthropicMessages);
        assert_eq!(v, json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}));

        let gemini = br#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Generate Content API requests per minute' of service 'generativelanguage.googleapis.com' for consumer 'project_number:123456789012'.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","metadata":{"consumer":"projects/123456789012"}}]}}"#;
        let v = upstream(StatusCode::TOO_MANY_REQUESTS, gemini, ApiFormat::GeminiGenerate);
        assert!(!v.to_string().contains("123456789012"), "{v}");
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["code"], 429);
        assert!(v["error"].get("details").is_none());

        let openrouter = br#"{"error":{"message":"Provider returned error","code":429,"metadata":{"raw":"x","provider_name":"Anthropic"}},"user_id":"user_2abcDEF345"}"#;
        let v = upstream(StatusCode::TOO_MANY_REQUESTS, openrouter, ApiFormat::OpenaiChat);
        assert_eq!(v["error"]["message"], "Provider returned error");
        assert_eq!(v["error"]["code"], Value::Null, "a numeric code is not OpenAI's shape");
        assert!(!v.to_string().contains("user_") && !v.to_string().contains("metadata"));

        let vertex = br#"[{"error":{"code":400,"message":"Unable to submit request because it has an empty text parameter.","status":"INVALID_ARGUMENT"}}]"#;
        let v = upstream(StatusCode::BAD_REQUEST, vertex, ApiFormat::GeminiGenerate);
        assert_eq!(v["error"]["message"], "Unable to submit request because it has an empty text parameter.");
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");

        let html = upstream(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", ApiFormat::AnthropicMessages);
        assert_eq!(html["error"]["message"], "upstream returned 502 Bad Gateway");
        assert_eq!(html["error"]["type"], "api_error");
    }

    #[test]
    fn the_operators_account_troubles_are_a_502_without_details() {
        let credits = br#"{"error":{"message":"This request requires more credits, or fewer max_tokens. You requested up to 16384 tokens, but can only afford 3641.","code":402},"user_id":"user_2wQ9kLmX3pT7vR1cN5yZ8aHbEfD"}"#;
        for status in [401, 402, 403] {
            let e = GatewayError::UpstreamStatus {
                status: StatusCode::from_u16(status).unwrap(),
                body: bytes::Bytes::from_static(credits),
                headers: Box::default(),
            };
            assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
            let v = upstream(StatusCode::from_u16(status).unwrap(), credits, ApiFormat::OpenaiChat);
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.starts_with("the provider refused the gateway's credentials or account"), "{v}");
            assert!(!v.to_string().contains("3641") && !v.to_string().contains("user_"), "{v}");
            assert_eq!(v["error"]["type"], "api_error");
        }
    }

    #[test]
    fn upstream_error_keeps_allowed_headers() {
        let body = bytes::Bytes::from_static(br#"{"error":{"message":"rate limited","type":"rate_limit_error"}}"#);
        let mut headers = hyper::HeaderMap::new();
        headers.insert("retry-after", hyper::header::HeaderValue::from_static("7"));
        let e =
            GatewayError::UpstreamStatus { status: StatusCode::TOO_MANY_REQUESTS, body, headers: Box::new(headers) };
        let resp = e.to_response(ApiFormat::AnthropicMessages);
        assert_eq!(resp.headers()["retry-after"], "7");
        assert_eq!(resp.headers()["content-type"], "application/json");
    }

    #[test]
    fn limits_and_a_busy_pool_are_retryable() {
        for e in [
            GatewayError::TenantBusy { limit: 4 },
            GatewayError::KeyLookupsLimited,
            GatewayError::Plugin(PluginCallError::Unavailable("pool exhausted".into())),
            GatewayError::LedgerBacklog,
        ] {
            let resp = e.to_response(ApiFormat::GeminiGenerate);
            assert!(matches!(resp.status().as_u16(), 429 | 503), "{e}");
            assert_eq!(resp.headers()["retry-after"], "1");
        }
        assert_eq!(GatewayError::Plugin(PluginCallError::Trap("x".into())).status(), 500);
        assert_eq!(GatewayError::BodyReadTimeout { secs: 1 }.status(), 408);
    }
}
