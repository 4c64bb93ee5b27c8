//! The answers of the admin, billing and ops endpoints: one error type, mapped in one place
//! to a status and the OpenAI error object `{"error":{"message","type","param","code"}}`
//! (the shape `error_body(ApiFormat::OpenaiChat, …)` gives), and the JSON success answer.

use super::body::{Body, json_response};
use super::error::{GatewayError, error_body};
use crate::plugins::ApiFormat;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

/// Why an admin, billing or ops request gets no answer but an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or names something it may not.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: what the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request contradicts what is already recorded.
    #[error("{0}")]
    Conflict(String),
    /// 422: understood, but the billing plugin could not process it; `detail` says how.
    #[error("{message}")]
    Unprocessable { message: String, detail: Value },
    /// 503: a query failed. The error is logged, never shown.
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
    /// Anything the request path can refuse with (auth, body limits, …), as it maps it.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// A handler's outcome.
pub type ApiResult = Result<Response<Body>, ApiError>;

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Gateway(e) => e.status(),
        }
    }

    /// The response: the status and the OpenAI error object.
    pub fn to_response(&self) -> Response<Body> {
        let details = match self {
            ApiError::Gateway(e) => return e.to_response(ApiFormat::OpenaiChat),
            ApiError::Database(e) => {
                tracing::error!(error = %e, "admin or billing query failed");
                None
            }
            ApiError::Unprocessable { detail, .. } => Some(json!({ "detail": detail })),
            _ => None,
        };
        let status = self.status();
        json_response(status, &error_body(ApiFormat::OpenaiChat, status, &self.to_string(), details))
    }
}

/// `200 OK` with a JSON body.
pub fn ok(value: &Value) -> ApiResult {
    reply(StatusCode::OK, value)
}

/// A success status with a JSON body.
pub fn reply(status: StatusCode, value: &Value) -> ApiResult {
    Ok(json_response(status, value))
}

/// The response of a handler's outcome.
pub fn respond(outcome: ApiResult) -> Response<Body> {
    outcome.unwrap_or_else(|e| e.to_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(resp: Response<Body>) -> (StatusCode, Value) {
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn one_shape_for_every_error() {
        let errors = [
            ApiError::BadRequest("`limit` must be an integer".into()),
            ApiError::NotFound("no such tenant".into()),
            ApiError::Conflict("used".into()),
            ApiError::Unprocessable { message: "bad body".into(), detail: json!({ "kind": "parse" }) },
            ApiError::Database(sqlx::Error::PoolTimedOut),
            GatewayError::AdminForbidden.into(),
        ];
        for e in errors {
            let (status, v) = body(e.to_response()).await;
            assert_eq!(status, e.status());
            let err = v["error"].as_object().unwrap_or_else(|| panic!("{v}"));
            for field in ["message", "type", "param", "code"] {
                assert!(err.contains_key(field), "{field} missing: {v}");
            }
        }
    }

    #[tokio::test]
    async fn database_errors_do_not_leak() {
        let (status, v) = body(ApiError::Database(sqlx::Error::PoolTimedOut).to_response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["error"]["message"], "database unavailable");
    }

    #[tokio::test]
    async fn a_plugin_failure_keeps_its_detail() {
        let e = ApiError::Unprocessable { message: "m".into(), detail: json!({ "kind": "trap" }) };
        let (status, v) = body(e.to_response()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["detail"]["kind"], "trap");
    }
}
