//! One client connection: the HTTP/1.1 and h2 limits of `[server]`, what it has in flight
//! (for its idle timeout), and its part in graceful shutdown.
//!
//! Until its first request head has arrived, a connection lives at most the header-read
//! timeout (or the idle timeout when shorter): its protocol is told from its first bytes
//! (`protocol.rs`) and, when those are an unfinished h2 preface, by hyper-util's `auto`
//! reading them without a timer, so a client that sends nothing, or an h2 preface byte by
//! byte, is bounded here.

use super::protocol::{self, Protocol};
use super::router::{self, Listener};
use crate::api::Body;
use crate::config::ServerConfig;
use crate::gateway::Gateway;
use bytes::Bytes;
use futures_util::future::Either;
use hyper::body::{Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

/// After an idle connection is told to close, how long it may take before it is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A connection to serve: it holds one of its listener's `max_connections` permits.
pub(super) struct Connection {
    pub gw: Arc<Gateway>,
    pub role: Listener,
    pub permit: OwnedSemaphorePermit,
    pub stopped: watch::Receiver<bool>,
}

/// HTTP/1.1 connections, served by hyper itself: its `max_header_size` bounds a request head
/// exactly, where `max_buf_size` (all hyper-util's `auto` offers) lets through a head that one
/// read brought in whole past it.
fn http1(server: &ServerConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(server.header_read_timeout_secs))
        .max_buf_size(server.max_header_bytes.max(8192))
        .max_header_size(server.max_header_bytes);
    builder
}

/// The connection builder for h2, and for a client whose first bytes did not tell (then
/// hyper-util's `auto` reads them itself).
fn builder(server: &ServerConfig, protocol: Protocol) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(server.header_read_timeout_secs))
        .max_buf_size(server.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(server.http2_max_concurrent_streams)
        .max_header_list_size(server.http2_max_header_list_bytes);
    if protocol == Protocol::Http2 { builder.http2_only() } else { builder }
}

impl Connection {
    /// Serves the connection until the client leaves, it stays idle past the idle timeout,
    /// or the server shuts down (then in-flight requests finish first).
    pub async fn serve(self, stream: TcpStream) {
        let Connection { gw, role, permit, mut stopped } = self;
        let server = gw.settings.load().config.server.clone();
        let idle_timeout = Duration::from_secs(server.idle_timeout_secs);
        let first_head_timeout = Duration::from_secs(server.header_read_timeout_secs).min(idle_timeout);
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |req| {
                let in_flight = InFlight::start(&activity);
                let gw = gw.clone();
                async move {
                    let resp = router::dispatch(gw, req, role).await?;
                    Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked { body, _in_flight: in_flight }))
                }
            })
        };
        let _active = Active::count(role);
        // The protocol from the first bytes, within the first-head timeout (a client that
        // sends nothing is dropped here).
        let protocol = tokio::select! {
            found = protocol::peek(&stream) => match found {
                Ok(Protocol::Closed) | Err(_) => return,
                Ok(p) => p,
            },
            () = tokio::time::sleep(first_head_timeout) => {
                metrics::counter!("xjp_connections_idle_closed_total", "reason" => "no_request_head").increment(1);
                return;
            }
            _ = stopped.wait_for(|s| *s) => return,
        };
        let auto;
        let conn = match protocol {
            Protocol::Http1 => Either::Left(http1(&server).serve_connection(TokioIo::new(stream), service)),
            _ => {
                auto = builder(&server, protocol);
                Either::Right(auto.serve_connection(TokioIo::new(stream), service))
            }
        };
        tokio::pin!(conn);
        // Both kinds of connection, the same call.
        macro_rules! either {
            ($c:ident => $e:expr) => {
                match conn.as_mut().as_pin_mut() {
                    Either::Left($c) => $e,
                    Either::Right($c) => $e,
                }
            };
        }
        // Set once the connection was asked to close: it must be gone by then.
        let mut closing: Option<Instant> = None;
        loop {
            let idle_check = activity.deadline(first_head_timeout, idle_timeout);
            tokio::select! {
                result = std::future::poll_fn(|cx| either!(c => c.poll(cx).map_err(|e| e.to_string()))) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = stopped.wait_for(|s| *s), if closing.is_none() => {
                    either!(c => c.graceful_shutdown());
                    // In-flight requests finish within the server's grace period.
                    closing = Some(Instant::now() + Duration::from_secs(24 * 3600));
                }
                () = tokio::time::sleep_until(idle_check), if closing.is_none() => {
                    if activity.is_idle() && activity.deadline(first_head_timeout, idle_timeout) <= Instant::now() {
                        let why = if activity.seen_request() { "idle" } else { "no_request_head" };
                        metrics::counter!("xjp_connections_idle_closed_total", "reason" => why).increment(1);
                        either!(c => c.graceful_shutdown());
                        closing = Some(Instant::now() + CLOSE_WAIT);
                    }
                }
                () = tokio::time::sleep_until(closing.unwrap_or_else(Instant::now)), if closing.is_some() => break,
            }
        }
        drop(permit);
    }
}

/// A connection counted in `xjp_connections_active` from its accept until it ends.
struct Active(metrics::Gauge);

impl Active {
    fn count(role: Listener) -> Self {
        let gauge = metrics::gauge!("xjp_connections_active", "listener" => role.as_str());
        gauge.increment(1.0);
        Active(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What a connection has in flight: requests whose response has not been sent (or dropped).
struct Activity {
    in_flight: AtomicUsize,
    /// Set when the first request head has arrived (its handler started).
    seen_request: AtomicBool,
    /// When the last request ended (or the connection opened); read only when idle.
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            seen_request: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    fn seen_request(&self) -> bool {
        self.seen_request.load(Ordering::SeqCst)
    }

    /// When the connection, if still idle, is to be closed: `first_head` after it opened
    /// while no request head has arrived, else `idle` after its last request ended.
    fn deadline(&self, first_head: Duration, idle: Duration) -> Instant {
        self.idle_since() + if self.seen_request() { idle } else { first_head }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock()
    }
}

/// One request in flight on its connection, from the head to the end of its response body.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        activity.seen_request.store(true, Ordering::SeqCst);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The time first, so that a connection seen idle always has a fresh `idle_since`.
        *self.0.idle_since.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
