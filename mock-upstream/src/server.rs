//! The mock server: a hyper 1.x listener (HTTP/1.1 keep-alive and h2c), its handle, shutdown.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::cut::{CutSwitch, CuttableIo};
use crate::error::MockError;
use crate::handle::{Shared, handle};
use crate::record::{RecordedRequest, Recorder};
use crate::scenario::{Scenario, ScenarioTable};
use crate::shutdown::{self, ShutdownSignal, ShutdownTrigger};

/// How long [`MockUpstream::shutdown`] lets open connections finish before closing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a mock starts.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// Where to listen; `127.0.0.1:0` (a free port) when `None`.
    pub addr: Option<SocketAddr>,
    /// Ignore every first-byte delay and chunk interval (benchmarks).
    pub zero_delay: bool,
    /// Scenarios registered before the first request, by model id.
    pub scenarios: Vec<(String, Scenario)>,
}

/// A running mock provider; it stops on [`MockUpstream::shutdown`] or when dropped.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    trigger: ShutdownTrigger,
    task: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Binds and starts serving; the scenarios of `config` are registered first.
    pub async fn start(config: MockConfig) -> Result<Self, MockError> {
        let addr = config.addr.unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = TcpListener::bind(addr).await.map_err(|source| MockError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(MockError::LocalAddr)?;
        let (trigger, signal) = shutdown::channel();
        let shared = Arc::new(Shared {
            scenarios: ScenarioTable::default(),
            recorder: Recorder::default(),
            zero_delay: config.zero_delay,
            shutdown: signal,
        });
        for (model, scenario) in config.scenarios {
            shared.scenarios.set(model, scenario);
        }
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(%addr, "mock upstream listening");
        Ok(Self { addr, shared, trigger, task: Some(task) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds or replaces the scenario for `model` (`"*"` for the fallback, or one of the
    /// models-list keys); later requests use it.
    pub fn set_scenario(&self, model: impl Into<String>, scenario: Scenario) {
        self.shared.scenarios.set(model.into(), scenario);
    }

    /// Removes the scenario for `model`; `true` when there was one.
    pub fn remove_scenario(&self, model: &str) -> bool {
        self.shared.scenarios.remove(model).is_some()
    }

    /// A copy of every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.all()
    }

    /// Every request received so far, emptying the record.
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.take()
    }

    /// Stops accepting, ends stalled and delayed responses, lets connections close (at most
    /// a few seconds), then returns.
    pub async fn shutdown(mut self) {
        self.trigger.trigger();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "mock upstream task failed");
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.trigger.trigger();
        if let Some(task) = self.task.take() {
            // Aborting the accept loop drops its connection set, which aborts every connection.
            task.abort();
        }
    }
}

/// Accepts connections until shutdown, then drains them.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let mut shutdown = shared.shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    connections.spawn(serve_connection(builder.clone(), tcp, Arc::clone(&shared)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!(open = connections.len(), "closing connections still open after the grace period");
    }
}

/// Serves one connection until it closes or the mock shuts down.
async fn serve_connection(builder: Builder<TokioExecutor>, tcp: TcpStream, shared: Arc<Shared>) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let mut shutdown: ShutdownSignal = shared.shutdown.clone();
    let cut = Arc::new(CutSwitch::default());
    let io = TokioIo::new(CuttableIo::new(tcp, Arc::clone(&cut)));
    let service = service_fn(move |request| handle(Arc::clone(&shared), Arc::clone(&cut), request));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.wait() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
