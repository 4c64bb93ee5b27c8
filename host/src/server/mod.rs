//! The hyper server: accept loop, HTTP/1.1 keep-alive and h2c, graceful shutdown.

pub mod router;

use crate::gateway::Gateway;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
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

/// Binds and serves until stopped.
pub async fn start(gw: Arc<Gateway>, addr: SocketAddr, grace: Duration) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let handle = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let gw = gw.clone();
                    let service = hyper::service::service_fn(move |req| router::dispatch(gw.clone(), req));
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
        drop(listener);
        tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
            tracing::warn!(?grace, "grace period over with connections still open");
        }
        gw.shutdown(grace).await;
    });
    Ok(RunningServer { addr, stop, handle })
}
