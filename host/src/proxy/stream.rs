//! Phase 6, respond (streaming): every upstream chunk goes to the client as soon as it
//! arrives, and a copy goes to the plugin's stream parser. Nothing is buffered beyond one
//! SSE event (and only when the usage chunk must be withheld). If the client leaves, the
//! upstream is still read in the background (bounded in time and in number of drains)
//! so that the provider's usage is known.

use super::outcome::Outcome;
use super::sse_events::{RawEvents, is_usage_only_chunk};
use super::upstream::forwardable_response_header;
use crate::api::Body;
use crate::api::error::error_body;
use crate::gateway::Gateway;
use crate::plugins::{ApiFormat, PluginStream};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::{Frame, Incoming};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

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
}

const DRAIN_LIMIT: &str = "client disconnected and the drain limit was reached";

type Tx = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

/// Starts relaying an upstream streaming response; returns the client response at once.
/// `outcome` is completed (usage filled in) and handed to billing when the relay ends.
pub fn relay(gw: &Arc<Gateway>, upstream: Response<Incoming>, mut done: Outcome, opts: RelayOptions) -> Response<Body> {
    let (parts, upstream_body) = upstream.into_parts();
    let (tx, rx) = mpsc::channel(8);
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if forwardable_response_header(name) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    let started = Instant::now();
    let gw2 = gw.clone();
    gw.tasks.spawn(async move {
        metrics::gauge!("xjp_active_streams").increment(1.0);
        let parser = PluginStream::open(done.routed.plugin.clone(), opts.format);
        let mut relay =
            Relay { tx: Some(tx), parser: parser.map_err(|e| done.plugin_error = Some(e)).ok(), drain: None };
        let end = relay.run(upstream_body, &opts, &mut done).await;
        if let Some(mut parser) = relay.parser.take() {
            match parser.finish() {
                Ok(o) => {
                    done.usage = o.usage;
                    done.complete = o.complete && end.is_none();
                    done.output_text_bytes = o.output_text_bytes;
                    if let Some(e) = o.error {
                        done.upstream_error.get_or_insert(format!("in-band error: {}", e.message));
                    }
                }
                Err(e) => done.plugin_error = Some(e),
            }
        }
        if let Some(reason) = end {
            done.upstream_error.get_or_insert(reason.clone());
            relay.send_error(&opts, &reason).await;
        }
        done.latency += started.elapsed();
        drop(relay);
        metrics::gauge!("xjp_active_streams").decrement(1.0);
        crate::billing::settle::complete(&gw2, done);
    });
    resp
}

struct Relay {
    tx: Option<Tx>,
    parser: Option<PluginStream>,
    /// Held while draining after the client left.
    drain: Option<(OwnedSemaphorePermit, Instant)>,
}

impl Relay {
    /// Pumps the upstream; returns why it stopped early, or `None` at a clean end.
    async fn run(&mut self, mut upstream: Incoming, opts: &RelayOptions, done: &mut Outcome) -> Option<String> {
        let mut events = (opts.hide_usage_chunk && opts.sse).then(RawEvents::new);
        loop {
            let wait = match &self.drain {
                Some((_, deadline)) => deadline.saturating_duration_since(Instant::now()).min(opts.between_chunks),
                None => opts.between_chunks,
            };
            let frame = match tokio::time::timeout(wait, upstream.frame()).await {
                Err(_) if self.drain.is_some() => {
                    return Some("drain time limit reached after client disconnect".into());
                }
                Err(_) => return Some("upstream stream stalled (between-chunk timeout)".into()),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Some(format!("upstream stream interrupted: {e}")),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            if let Some(parser) = self.parser.as_mut()
                && let Err(e) = parser.push(&data)
            {
                done.plugin_error = Some(e);
                self.parser = None;
            }
            if self.tx.is_none() {
                continue;
            }
            match events.as_mut() {
                Some(ev) => {
                    for event in ev.push(&data) {
                        if !is_usage_only_chunk(&event) && self.forward(event, opts, done).await.is_none() {
                            return Some(DRAIN_LIMIT.into());
                        }
                    }
                }
                None => {
                    if self.forward(data, opts, done).await.is_none() {
                        return Some(DRAIN_LIMIT.into());
                    }
                }
            }
        }
        if let Some(rest) = events.as_mut().map(RawEvents::finish).filter(|r| !r.is_empty())
            && self.forward(rest, opts, done).await.is_none()
        {
            return Some(DRAIN_LIMIT.into());
        }
        None
    }

    /// Sends to the client; on failure the client is gone and a bounded drain starts.
    /// `None` means stop reading (no drain slot left).
    async fn forward(&mut self, data: Bytes, opts: &RelayOptions, done: &mut Outcome) -> Option<()> {
        let Some(tx) = &self.tx else { return Some(()) };
        if tx.send(Ok(Frame::data(data))).await.is_ok() {
            return Some(());
        }
        self.tx = None;
        done.client_disconnected = true;
        metrics::counter!("xjp_client_disconnects_total").increment(1);
        match opts.drains.clone().try_acquire_owned() {
            Ok(permit) => {
                self.drain = Some((permit, Instant::now() + opts.drain_timeout));
                Some(())
            }
            Err(_) => {
                // Too many drains already: stop reading; billing estimates from what was seen.
                tracing::warn!(request_id = %done.request_id, "drain limit reached; not reading the rest of the stream");
                None
            }
        }
    }

    /// Tells a still-connected client that the stream broke, in its format.
    async fn send_error(&mut self, opts: &RelayOptions, reason: &str) {
        let Some(tx) = self.tx.take() else { return };
        if !opts.sse {
            // A JSON-array stream cannot carry an error mid-element: abort the body.
            let _ = tx.send(Err(std::io::Error::other(reason.to_string()))).await;
            return;
        }
        let status = hyper::StatusCode::BAD_GATEWAY;
        let body = error_body(opts.format, status, reason, None);
        let event = match opts.format {
            ApiFormat::AnthropicMessages => format!("event: error\ndata: {body}\n\n"),
            _ => format!("data: {body}\n\n"),
        };
        let _ = tx.send(Ok(Frame::data(Bytes::from(event)))).await;
    }
}
