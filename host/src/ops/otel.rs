//! OpenTelemetry trace export over OTLP/HTTP (protobuf), off unless `[otel] enabled`.
//!
//! The gateway's `tracing` spans (`request`, `authenticate`, `route`, `reserve`, `upstream`)
//! become OpenTelemetry spans through `tracing-opentelemetry`, batched and posted to the
//! collector by the SDK's batch processor. The HTTP requests go through a hyper-rustls client
//! of our own ([`OtlpClient`]) driven on the gateway's tokio runtime, so `http://` and
//! `https://` collectors both work without linking a second HTTP or TLS stack.

use crate::config::OtelConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::time::Duration;

/// The largest collector answer read (the OTLP success body is a few bytes).
const MAX_ANSWER: usize = 1 << 20;

/// POSTs export batches with hyper on the runtime that built it (the SDK calls it from its
/// own batch thread, outside any runtime).
#[derive(Debug, Clone)]
pub struct OtlpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl OtlpClient {
    /// A client on the current tokio runtime (panics outside one).
    pub fn new(timeout: Duration) -> OtlpClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
            Ok(b) => b.https_or_http().enable_http1().enable_http2().wrap_connector(http),
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http),
        };
        OtlpClient {
            client: Client::builder(TokioExecutor::new()).build(https),
            runtime: tokio::runtime::Handle::current(),
            timeout,
        }
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self.client.request(hyper::Request::from_parts(parts, Full::new(body))).await?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let this = self.clone();
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move { tokio::time::timeout(timeout, this.send(request)).await });
        match task.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(format!("OTLP export timed out after {timeout:?}").into()),
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// The tracer provider exporting to `[otel] endpoint` (call inside the tokio runtime).
pub fn provider(config: &OtelConfig) -> Result<SdkTracerProvider, String> {
    let timeout = Duration::from_millis(config.timeout_ms);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpClient::new(timeout))
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(config.endpoint.clone())
        .with_timeout(timeout)
        .build()
        .map_err(|e| format!("otel: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(config.service_name.clone()).build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_sampler(sampler).with_resource(resource).build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`'s tracer.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("xjp-gateway"))
}
