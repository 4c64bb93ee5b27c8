//! The process's `tracing` subscriber: log lines (text or JSON, `[log]`), the spend counters
//! fed by access lines (`ops::access`), and OpenTelemetry export when `[otel] enabled`.
//! Each has its own filter: the log filter (`[log] filter`, `RUST_LOG` overrides it) never
//! hides an access line from the counters or a span from the trace export. Under `serve`,
//! lines are written in batches by a thread of their own (`ops::log_writer`), so a request
//! never waits on a write to stderr; logging blocks rather than drops when the buffer is full.

use super::access::{SpendLayer, spend_filter};
use super::access_line::{AccessLineLayer, is_access};
use super::log_writer::LogWriterGuard;
use crate::config::{LogConfig, LogFormat, OtelConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

/// Keeps the trace exporter and the log writer alive; [`shutdown`](Self::shutdown) exports
/// what is buffered and writes the last lines.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    writer: Option<LogWriterGuard>,
}

impl Telemetry {
    /// Flushes and stops the trace export (a no-op when it is off), then the log writer.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch thread calls back into this runtime: wait off its worker threads.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
        drop(self.writer);
    }
}

/// The log filter: `RUST_LOG` when set, else `configured`.
fn log_filter(configured: &str) -> Result<EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).map_err(|e| format!("RUST_LOG `{v}`: {e}")),
        _ => EnvFilter::try_new(configured).map_err(|e| format!("log.filter `{configured}`: {e}")),
    }
}

/// The log layers, writing to `writer`: the formatter, and for the access line (one per
/// request) its own writer (`ops::access_line`), under the same filter.
fn log_layers<W>(log: &LogConfig, writer: W) -> Result<[Boxed; 2], String>
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    let (others, access) = (filter_fn(|m| !is_access(m)), filter_fn(is_access));
    let filter = log_filter(&log.filter)?.and(others);
    // Colour codes only for a terminal: a log file or collector gets plain lines (and the
    // codes cost ~1 µs a line to write).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer.clone());
    let formatter = match log.format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        // One object per line: timestamp, level, target, the event's fields at the top level
        // (`message`, `request_id`, …) and the span it happened in.
        LogFormat::Json => layer.json().flatten_event(true).with_span_list(false).with_filter(filter).boxed(),
    };
    let access = AccessLineLayer::new(log.format, writer).with_filter(log_filter(&log.filter)?.and(access));
    Ok([formatter, access.boxed()])
}

/// Installs the subscriber for `serve` (call inside the tokio runtime: the trace exporter
/// runs on it). Fails when a filter does not parse or the exporter cannot be built, or when
/// a subscriber is already installed.
pub fn init(log: &LogConfig, otel: &OtelConfig) -> Result<Telemetry, String> {
    let (writer, guard) = super::log_writer::spawn(std::io::stderr());
    let mut layers: Vec<Boxed> = log_layers(log, writer)?.into();
    layers.push(SpendLayer::default().with_filter(spend_filter()).boxed());
    let mut telemetry = Telemetry { provider: None, writer: Some(guard) };
    if otel.enabled {
        let provider = super::otel::provider(otel)?;
        // The phase spans (authenticate, route, reserve, upstream) are debug: they cost
        // nothing unless a layer wants them, and only the trace export does. The export also
        // gets the gateway's debug events (e.g. each refusal), as span events.
        let spans = Targets::new().with_target("xjp_gateway", tracing::Level::DEBUG);
        layers.push(super::otel::layer(&provider).with_filter(spans).boxed());
        telemetry.provider = Some(provider);
    }
    tracing_subscriber::registry().with(layers).try_init().map_err(|e| format!("log setup: {e}"))?;
    Ok(telemetry)
}

/// The subscriber for the other commands: text lines at `warn` (or `RUST_LOG`) to stderr.
pub fn init_plain() {
    let log = LogConfig { format: LogFormat::Text, filter: "warn".into() };
    if let Ok(layers) = log_layers(&log, std::io::stderr) {
        let _ = tracing_subscriber::registry().with(Vec::from(layers)).try_init();
    }
}
