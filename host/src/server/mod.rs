//! The hyper server: accept loops (the public listener and the optional admin listener),
//! HTTP/1.1 keep-alive and h2c, the connection limits of `[server]`, graceful shutdown.
//!
//! What a connection may hold: its request head must arrive within the header-read timeout
//! (its first one counted from the connection's start, whatever it sends; an HTTP/1.1
//! connection waiting for its next request too), a connection with nothing in
//! flight is closed after the idle timeout, heads and h2 header lists are bounded, h2
//! streams per connection are capped, and at most `max_connections` are served at once per
//! listener — the next ones wait in the listen backlog until one closes, while the open ones
//! keep being served. A failing `accept` (out of file descriptors) pauses the loop with an
//! exponential back-off instead of spinning.

mod connection;
mod protocol;
pub mod router;

use crate::config::ServerConfig;
use crate::gateway::Gateway;
use connection::Connection;
pub use router::Listener;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// The first pause after a failed `accept`; it doubles up to `accept_backoff_max_ms`.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The admin listener (`[server] admin_listen`), when configured.
    pub admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests and streams finish (within the grace
    /// period), and returns when everything is done.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }

    /// Waits until the server stops (after a signal or [`shutdown`](Self::shutdown)).
    pub async fn wait(self) {
        let _ = self.handle.await;
    }

    /// A handle that triggers shutdown (e.g. from a signal handler).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Binds `addr` (and `[server] admin_listen` when set) and serves until stopped.
pub async fn start(gw: Arc<Gateway>, addr: SocketAddr, grace: Duration) -> std::io::Result<RunningServer> {
    let server = gw.settings.load().config.server.clone();
    let public = TcpListener::bind(addr).await?;
    let addr = public.local_addr()?;
    let admin = match server.admin_listen.as_deref().map(str::parse::<SocketAddr>) {
        Some(Ok(admin_addr)) => Some(TcpListener::bind(admin_addr).await?),
        Some(Err(e)) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
        None => None,
    };
    let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
    let (stop, stopped) = watch::channel(false);
    let connections = TaskTracker::new();
    let mut loops = Vec::new();
    let public_role = if admin.is_some() { Listener::Public } else { Listener::All };
    loops.push(tokio::spawn(accept_loop(public, public_role, gw.clone(), &server, stopped.clone(), &connections)));
    if let Some(admin) = admin {
        loops.push(tokio::spawn(accept_loop(
            admin,
            Listener::Admin,
            gw.clone(),
            &server,
            stopped.clone(),
            &connections,
        )));
    }
    let handle = tokio::spawn(async move {
        for l in loops {
            let _ = l.await;
        }
        tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        connections.close();
        if tokio::time::timeout(grace, connections.wait()).await.is_err() {
            tracing::warn!(?grace, "grace period over with connections still open");
        }
        gw.shutdown(grace).await;
    });
    Ok(RunningServer { addr, admin_addr, stop, handle })
}

/// Accepts connections while a permit (one of `max_connections`) is free; ends at stop.
fn accept_loop(
    listener: TcpListener,
    role: Listener,
    gw: Arc<Gateway>,
    server: &ServerConfig,
    mut stopped: watch::Receiver<bool>,
    connections: &TaskTracker,
) -> impl Future<Output = ()> + Send + 'static {
    let permits = Arc::new(Semaphore::new(server.max_connections));
    let backoff_max = Duration::from_millis(server.accept_backoff_max_ms).max(ACCEPT_BACKOFF_MIN);
    let connections = connections.clone();
    async move {
        let mut backoff = Duration::ZERO;
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = stopped.wait_for(|s| *s) => break,
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped.wait_for(|s| *s) => break,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => {
                    backoff = Duration::ZERO;
                    stream
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, backoff_max);
                    metrics::counter!("xjp_accept_errors_total", "listener" => role.as_str()).increment(1);
                    tracing::warn!(error = %e, listener = role.as_str(), pause_ms = backoff.as_millis() as u64, "accept failed; pausing");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => continue,
                        _ = stopped.wait_for(|s| *s) => break,
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = Connection { gw: gw.clone(), role, permit, stopped: stopped.clone() };
            connections.spawn(conn.serve(stream));
        }
    }
}
