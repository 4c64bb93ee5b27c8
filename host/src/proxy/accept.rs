//! Phase 1, accept: request id and the size- and time-limited request body (the admin
//! endpoints read theirs the same way).

use crate::api::GatewayError;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::HeaderMap;

/// The longest client-supplied request id we adopt.
const MAX_CLIENT_ID: usize = 128;

/// The request id: the client's `Idempotency-Key` or `X-Request-Id` when it is a sane
/// token, else a new UUID v7.
pub fn request_id(headers: &HeaderMap) -> String {
    client_request_id(headers).unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The id the client supplied, if any.
pub fn client_request_id(headers: &HeaderMap) -> Option<String> {
    ["idempotency-key", "x-request-id"]
        .iter()
        .filter_map(|h| headers.get(*h)?.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty() && v.len() <= MAX_CLIENT_ID && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

/// The longest model name the gateway accepts (it reaches the ledger).
const MAX_MODEL: usize = 256;

/// A model name fit to route and to record: 1 to 256 bytes, no control characters.
pub fn valid_model(model: String) -> Result<String, GatewayError> {
    if model.is_empty() || model.len() > MAX_MODEL {
        return Err(GatewayError::InvalidRequest(format!("`model` must be 1 to {MAX_MODEL} bytes")));
    }
    if model.chars().any(char::is_control) {
        return Err(GatewayError::InvalidRequest("`model` must not contain control characters".into()));
    }
    Ok(model)
}

/// Reads the whole request body within `[server] body_read_timeout_secs` (`secs`; 408
/// after it), refusing more than `limit` bytes (413).
pub async fn read_body_within<B>(headers: &HeaderMap, body: B, limit: usize, secs: u64) -> Result<Bytes, GatewayError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    tokio::time::timeout(std::time::Duration::from_secs(secs), read_body(headers, body, limit))
        .await
        .map_err(|_| GatewayError::BodyReadTimeout { secs })?
}

/// Reads the whole request body, refusing more than `limit` bytes.
async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, GatewayError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = headers.get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Err(e) => Err(GatewayError::InvalidRequest(format!("could not read request body: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_that_reach_a_row_are_bounded() {
        assert_eq!(valid_model("gpt-4o".into()).unwrap(), "gpt-4o");
        assert_eq!(valid_model("é".repeat(128)).unwrap().len(), 256);
        for bad in [String::new(), "a".repeat(257), "gpt\0x".into(), "gpt\u{0}".into(), "a\nb".into(), "\u{7f}".into()]
        {
            assert!(matches!(valid_model(bad.clone()), Err(GatewayError::InvalidRequest(_))), "{bad:?}");
        }
    }
}
