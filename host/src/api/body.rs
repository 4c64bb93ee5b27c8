//! The response body type and small constructors.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

/// Every response body: a whole buffer or a stream of frames.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A JSON response with a status.
pub fn json_response(status: hyper::StatusCode, value: &serde_json::Value) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}
