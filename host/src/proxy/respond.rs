//! Phase 6, respond (non-streaming): read the whole upstream body under the
//! between-chunk timeout, extract and price its usage with the plugin in one call, pass
//! the body on unchanged.

use super::upstream::forwardable_response_header;
use crate::api::{Body, GatewayError, full};
use crate::plugins::bindings::{PriceEntry, PricedUsage};
use crate::plugins::{ApiFormat, Plugin, PluginCallError};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// Largest upstream body the gateway buffers for a non-streaming response.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Reads a whole upstream body, each frame within `between_chunks`.
pub async fn read_all(mut body: Incoming, between_chunks: Duration) -> Result<Bytes, GatewayError> {
    let mut out = BytesMut::new();
    loop {
        match tokio::time::timeout(between_chunks, body.frame()).await {
            Err(_) => return Err(GatewayError::UpstreamTimeout("upstream body stalled")),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(GatewayError::UpstreamProtocol(format!("upstream body interrupted: {e}"))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > MAX_RESPONSE_BYTES {
                        return Err(GatewayError::UpstreamProtocol("upstream body too large".into()));
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

/// The client response for a buffered upstream body, and the usage in it priced at `price`
/// (on the blocking pool when the body is large: `[plugins] offload_threshold_bytes`).
pub async fn respond(
    upstream: hyper::http::response::Parts,
    body: Bytes,
    plugin: &Arc<Plugin>,
    format: ApiFormat,
    price: &PriceEntry,
) -> (Response<Body>, Result<Option<PricedUsage>, PluginCallError>) {
    let usage = plugin.price_response_async(format, upstream.status.as_u16(), &body, price).await;
    let mut resp = Response::new(full(body));
    *resp.status_mut() = upstream.status;
    for (name, value) in &upstream.headers {
        if forwardable_response_header(name) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    (resp, usage)
}

/// Whether an upstream status is an error the client should see as one.
pub fn is_error_status(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error() || status.is_redirection()
}
