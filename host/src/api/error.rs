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
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// Who failed.
    pub fn class(&self) -> ErrorClass {
        use GatewayError::*;
        match self {
            MalformedJson(_) | BodyTooLarge { .. } | InvalidRequest(_) | NotFound { .. } | DuplicateRequest => {
                ErrorClass::Client
            }
            MissingKey | InvalidKey | RevokedKey | TenantSuspended | AdminForbidden => ErrorClass::Auth,
            UnknownModel(_) | WrongEndpoint { .. } | Unpriced(_) => ErrorClass::Routing,
            InsufficientBalance { .. } | BudgetDenied(_) => ErrorClass::Balance,
            UpstreamStatus { .. } | UpstreamConnect(_) | UpstreamTimeout(_) | UpstreamProtocol(_) => {
                ErrorClass::Upstream
            }
            Plugin(_) | PluginMissing(_) => ErrorClass::Plugin,
            Unavailable(_) => ErrorClass::Unavailable,
            Internal(_) => ErrorClass::Internal,
        }
    }

    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            MalformedJson(_) | InvalidRequest(_) | WrongEndpoint { .. } | Unpriced(_) => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            DuplicateRequest => StatusCode::CONFLICT,
            NotFound { .. } | UnknownModel(_) => StatusCode::NOT_FOUND,
            MissingKey | InvalidKey | RevokedKey => StatusCode::UNAUTHORIZED,
            AdminForbidden | TenantSuspended | BudgetDenied(_) => StatusCode::FORBIDDEN,
            InsufficientBalance { .. } => StatusCode::PAYMENT_REQUIRED,
            UpstreamStatus { status, .. } => *status,
            UpstreamConnect(_) | UpstreamProtocol(_) => StatusCode::BAD_GATEWAY,
            UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Plugin(_) | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PluginMissing(_) | Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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

    /// The response in the client's API format.
    pub fn to_response(&self, format: ApiFormat) -> hyper::Response<Body> {
        let status = self.status();
        let GatewayError::UpstreamStatus { body, headers, .. } = self else {
            return json_response(status, &error_body(format, status, &self.to_string(), self.details()));
        };
        let passed = pass_through(format, body);
        let mut resp =
            json_response(status, &passed.unwrap_or_else(|| error_body(format, status, &self.to_string(), None)));
        for (name, value) in headers.iter().filter(|(name, _)| *name != hyper::header::CONTENT_TYPE) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
        resp
    }
}

/// Keeps the provider's own error body when it already has the client's shape.
fn pass_through(format: ApiFormat, body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let ok = match format {
        ApiFormat::AnthropicMessages => {
            v.get("type").and_then(Value::as_str) == Some("error") && v["error"].is_object()
        }
        ApiFormat::OpenaiChat | ApiFormat::GeminiGenerate => v.get("error").is_some_and(Value::is_object),
    };
    ok.then_some(v)
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

    #[test]
    fn upstream_error_passes_through_only_in_shape() {
        let body = bytes::Bytes::from_static(br#"{"error":{"message":"rate limited","type":"rate_limit_error"}}"#);
        let mut headers = hyper::HeaderMap::new();
        headers.insert("retry-after", hyper::header::HeaderValue::from_static("7"));
        let e =
            GatewayError::UpstreamStatus { status: StatusCode::TOO_MANY_REQUESTS, body, headers: Box::new(headers) };
        assert!(
            pass_through(
                ApiFormat::OpenaiChat,
                match &e {
                    GatewayError::UpstreamStatus { body, .. } => body,
                    _ => unreachable!(),
                }
            )
            .is_some()
        );
        assert!(pass_through(ApiFormat::AnthropicMessages, b"<html>bad gateway</html>").is_none());
        let resp = e.to_response(ApiFormat::AnthropicMessages);
        assert_eq!(resp.headers()["retry-after"], "7");
        assert_eq!(resp.headers()["content-type"], "application/json");
    }
}
