//! Phase 6, respond (streaming): every upstream chunk goes to the client as soon as it
//! arrives, and a copy goes to the plugin's stream parser. Nothing is buffered beyond one
//! SSE event (and only when the usage chunk must be withheld) or one JSON-array element
//! (Gemini without `alt=sse`, so that a cut stream can end with an error element). If the client leaves, the
//! upstream is still read in the background (bounded in time and in number of drains)
//! so that the provider's usage is known.

use super::array_elements::ArrayElements;
use super::context::RequestCtx;
use super::sse_events::{RawEvents, is_usage_only_chunk};
use super::upstream::forwardable_response_header;
use crate::api::Body;
use crate::api::error::error_body;
use crate::billing::Ending;
use crate::plugins::bindings::Usage;
use crate::plugins::{ApiFormat, PluginCallError, PluginStream};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::{Frame, Incoming};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::task::TaskTracker;

/// How a relay should behave.
pub struct RelayOptions {
    pub format: ApiFormat,
    pub between_chunks: Duration,
    /// The gateway asked for the usage chunk on the client's behalf: withhold it.
    pub hide_usage_chunk: bool,
    /// The upstream sends SSE (false for Gemini JSON-array streams).
    pub sse: bool,
    pub drain_timeout: Duration,
    pub drains: Arc<Semaphore>,
    /// The stream ends here whatever happens (`[streaming] max_duration_secs`).
    pub deadline: Instant,
    /// A client that takes no chunk within this is treated as gone.
    pub write_timeout: Duration,
    /// Cancelled when the gateway's shutdown grace period is over.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Why a relay or an exchange stopped reading after the client left.
pub const DRAIN_LIMIT: &str = "client disconnected and the drain limit was reached";
/// Why a drain stopped.
pub const DRAIN_TIMEOUT: &str = "drain time limit reached after client disconnect";
/// Why a stream that ran too long stopped.
const STREAM_DEADLINE: &str = "stream time limit reached";
/// Why a request still running when the shutdown grace period ended stopped.
pub const SHUTTING_DOWN: &str = "the gateway is shutting down";

/// A chunk for the client, or the error that cuts its stream.
type Chunk = Result<Bytes, std::io::Error>;
type Tx = mpsc::Sender<Chunk>;

/// What the relay saw, beyond what the stream parser reports.
#[derive(Debug, Default)]
struct Seen {
    plugin_error: Option<PluginCallError>,
    client_gone: bool,
}

/// Starts relaying an upstream streaming response; returns the client response at once.
/// The relay runs in `tasks` and ends `ctx` with the stream's usage when it stops.
pub fn relay(tasks: &TaskTracker, upstream: Response<Incoming>, ctx: RequestCtx, opts: RelayOptions) -> Response<Body> {
    let (parts, upstream_body) = upstream.into_parts();
    // The channel carries the chunks, not `Frame`s (which may be trailers, a header map): a
    // smaller first block per stream, ~2 KiB (1,000 streams: 149 -> 146 MiB peak RSS).
    let (tx, rx) = mpsc::channel(8);
    let chunks =
        tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), |c: Chunk| c.map(Frame::data));
    let body = StreamBody::new(chunks).boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if forwardable_response_header(name) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    let status = parts.status.as_u16();
    tasks.spawn(async move {
        metrics::gauge!("xjp_active_streams").increment(1.0);
        let mut seen = Seen::default();
        let plugin = ctx.routed().map(|r| r.plugin.clone()).expect("a relayed request is routed");
        let parser = PluginStream::open(plugin, opts.format).map_err(|e| seen.plugin_error = Some(e)).ok();
        let array = (!opts.sse).then(ArrayElements::new);
        let mut relay = Relay { tx: Some(tx), parser, drain: None, request_id: ctx.bill().request_id.clone(), array };
        let end = relay.run(upstream_body, &opts, &mut seen).await;
        let (mut usage, mut complete, mut output_text_bytes, mut error) = (None::<Usage>, false, 0, None);
        if let Some(mut parser) = relay.parser.take() {
            match parser.finish() {
                Ok(o) => {
                    (usage, output_text_bytes) = (o.usage, o.output_text_bytes);
                    complete = o.complete && end.is_none();
                    if let Some(e) = o.error {
                        error.get_or_insert(format!("in-band error: {}", e.message));
                    }
                }
                Err(e) => seen.plugin_error = Some(e),
            }
        }
        if let Some(reason) = end {
            error.get_or_insert(reason.clone());
            relay.send_error(&opts, &reason).await;
        }
        drop(relay);
        metrics::gauge!("xjp_active_streams").decrement(1.0);
        let ending = match seen.plugin_error {
            Some(e) => Ending::PluginFailed { status, usage, output_text_bytes, error: e },
            None if error.is_some() || (seen.client_gone && !complete) => {
                Ending::Interrupted { status, usage, output_text_bytes, error }
            }
            None => Ending::Answered { status, usage, cost: None, client_gone: seen.client_gone },
        };
        ctx.finish(ending);
    });
    resp
}

struct Relay {
    tx: Option<Tx>,
    parser: Option<PluginStream>,
    /// Held while draining after the client left.
    drain: Option<(OwnedSemaphorePermit, Instant)>,
    request_id: String,
    /// Element framing of a JSON-array stream (`None` for SSE).
    array: Option<ArrayElements>,
}

/// Why a JSON-array stream that ended without its closing `]` stopped.
const ARRAY_UNFINISHED: &str = "upstream stream interrupted: the JSON array ended unfinished";

impl Relay {
    /// Pumps the upstream; returns why it stopped early, or `None` at a clean end.
    async fn run(&mut self, mut upstream: Incoming, opts: &RelayOptions, seen: &mut Seen) -> Option<String> {
        let mut events = (opts.hide_usage_chunk && opts.sse).then(RawEvents::new);
        loop {
            let now = Instant::now();
            if now >= opts.deadline {
                return Some(STREAM_DEADLINE.into());
            }
            let wait = match &self.drain {
                Some((_, deadline)) => deadline.saturating_duration_since(now).min(opts.between_chunks),
                None => opts.between_chunks,
            };
            let wait = wait.min(opts.deadline - now);
            let next = tokio::select! {
                next = tokio::time::timeout(wait, upstream.frame()) => next,
                () = opts.cancel.cancelled() => return Some(SHUTTING_DOWN.into()),
            };
            let frame = match next {
                Err(_) if Instant::now() >= opts.deadline => return Some(STREAM_DEADLINE.into()),
                Err(_) if self.drain.is_some() => {
                    return Some(DRAIN_TIMEOUT.into());
                }
                Err(_) => return Some("upstream stream stalled (between-chunk timeout)".into()),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Some(format!("upstream stream interrupted: {e}")),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            if let Some(parser) = self.parser.as_mut()
                && let Err(e) = parser.push_async(&data).await
            {
                seen.plugin_error = Some(e);
                self.parser = None;
            }
            if self.tx.is_none() {
                continue;
            }
            match events.as_mut() {
                Some(ev) => {
                    for event in ev.push(&data) {
                        if !is_usage_only_chunk(&event) && self.forward(event, opts, seen).await.is_none() {
                            return Some(DRAIN_LIMIT.into());
                        }
                    }
                }
                None => {
                    let data = match self.array.as_mut() {
                        Some(array) => array.push(&data),
                        None => data,
                    };
                    if !data.is_empty() && self.forward(data, opts, seen).await.is_none() {
                        return Some(DRAIN_LIMIT.into());
                    }
                }
            }
        }
        if let Some(array) = self.array.as_mut() {
            if array.open() {
                // A clean end inside the array is a cut: `send_error` closes it.
                return Some(ARRAY_UNFINISHED.into());
            }
            let rest = array.finish();
            if !rest.is_empty() && self.forward(rest, opts, seen).await.is_none() {
                return Some(DRAIN_LIMIT.into());
            }
        }
        if let Some(rest) = events.as_mut().map(RawEvents::finish).filter(|r| !r.is_empty())
            && self.forward(rest, opts, seen).await.is_none()
        {
            return Some(DRAIN_LIMIT.into());
        }
        None
    }

    /// Sends to the client; on failure the client is gone and a bounded drain starts.
    /// `None` means stop reading (no drain slot left).
    async fn forward(&mut self, data: Bytes, opts: &RelayOptions, seen: &mut Seen) -> Option<()> {
        let Some(tx) = &self.tx else { return Some(()) };
        // A client that does not read (a stalled reader) counts as gone after the write timeout.
        if let Ok(Ok(())) = tokio::time::timeout(opts.write_timeout, tx.send(Ok(data))).await {
            return Some(());
        }
        self.tx = None;
        seen.client_gone = true;
        metrics::counter!("xjp_client_disconnects_total").increment(1);
        match opts.drains.clone().try_acquire_owned() {
            Ok(permit) => {
                self.drain = Some((permit, Instant::now() + opts.drain_timeout));
                Some(())
            }
            Err(_) => {
                // Too many drains already: stop reading; billing estimates from what was seen.
                tracing::warn!(request_id = %self.request_id, "drain limit reached; not reading the rest of the stream");
                None
            }
        }
    }

    /// Tells a still-connected client that the stream broke, in its format.
    async fn send_error(&mut self, opts: &RelayOptions, reason: &str) {
        let Some(tx) = self.tx.take() else { return };
        let status = hyper::StatusCode::BAD_GATEWAY;
        let body = error_body(opts.format, status, reason, None);
        if !opts.sse {
            // A JSON-array stream ends with an error element after its last whole one and
            // its closing `]`, as Vertex ends one; a body that is not an open array is cut.
            let end = self.array.as_mut().and_then(|a| a.close_with(&body.to_string()));
            let frame = match end {
                Some(bytes) => Ok(bytes),
                None => Err(std::io::Error::other(reason.to_string())),
            };
            let _ = tokio::time::timeout(opts.write_timeout, tx.send(frame)).await;
            return;
        }
        let event = match opts.format {
            ApiFormat::AnthropicMessages => format!("event: error\ndata: {body}\n\n"),
            _ => format!("data: {body}\n\n"),
        };
        let _ = tokio::time::timeout(opts.write_timeout, tx.send(Ok(Bytes::from(event)))).await;
    }
}
