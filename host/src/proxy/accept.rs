//! Phase 1, accept: request id and the size- and time-limited request body (the admin
//! endpoints read theirs the same way).

use crate::api::GatewayError;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::HeaderMap;

/// The longest client-supplied request id we adopt.
const MAX_CLIENT_ID: usize = 128;

/// The request id: the client's own id when it sent a valid one, else a new UUID v7.
pub fn request_id(client_id: &Result<Option<String>, GatewayError>) -> String {
    match client_id {
        Ok(Some(id)) => id.clone(),
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// The id the client supplied (`Idempotency-Key`, else `X-Request-Id`), if any. An id the
/// gateway cannot keep exactly as sent (empty, over 128 bytes, not visible ASCII, or the
/// header repeated with different values) is refused with 400 rather than replaced: a
/// silently replaced id would leave the client's retries without their idempotency.
pub fn client_request_id(headers: &HeaderMap) -> Result<Option<String>, GatewayError> {
    for name in ["idempotency-key", "x-request-id"] {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        let invalid =
            || GatewayError::InvalidRequest(format!("`{name}` must be 1 to {MAX_CLIENT_ID} visible ASCII characters"));
        let id = first.to_str().map_err(|_| invalid())?.trim();
        if id.is_empty() || id.len() > MAX_CLIENT_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid());
        }
        if values.any(|other| other.to_str().ok().map(str::trim) != Some(id)) {
            return Err(GatewayError::InvalidRequest(format!("`{name}` is sent more than once with different values")));
        }
        return Ok(Some(id.to_string()));
    }
    Ok(None)
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

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, hyper::header::HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    #[test]
    fn a_client_id_is_kept_as_sent_or_refused() {
        let ok = |pairs| client_request_id(&headers(pairs)).unwrap();
        assert_eq!(ok(&[]), None);
        assert_eq!(ok(&[("x-request-id", b" abc-1 ")]), Some("abc-1".into()));
        assert_eq!(ok(&[("idempotency-key", b"k1"), ("x-request-id", b"r1")]), Some("k1".into()));
        assert_eq!(ok(&[("idempotency-key", b"k1"), ("idempotency-key", b"k1")]), Some("k1".into()));
        let long = "a".repeat(129);
        let bad: [&[(&'static str, &[u8])]; 6] = [
            &[("x-request-id", b"")],
            &[("x-request-id", b"two words")],
            &[("idempotency-key", long.as_bytes())],
            &[("idempotency-key", b"caf\xc3\xa9")],
            &[("idempotency-key", b"a\tb")],
            &[("idempotency-key", b"k1"), ("idempotency-key", b"k2")],
        ];
        for pairs in bad {
            let got = client_request_id(&headers(pairs));
            assert!(matches!(got, Err(GatewayError::InvalidRequest(_))), "{pairs:?}: {got:?}");
        }
        assert_eq!(request_id(&Ok(Some("mine".into()))), "mine");
        assert_eq!(request_id(&Err(GatewayError::InvalidRequest(String::new()))).len(), 36);
    }

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
