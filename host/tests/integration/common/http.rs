//! A minimal HTTP client for tests (hyper), with per-frame arrival times for streams.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

/// A response read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    /// Each body frame with its arrival time since the request was sent.
    pub frames: Vec<(Duration, Bytes)>,
    /// The body ended with an error (connection cut mid-body).
    pub body_error: Option<String>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request and reads the whole response, frame by frame.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).unwrap();
    let started = Instant::now();
    let resp = client.request(req).await.expect("request sent");
    let (parts, mut body) = resp.into_parts();
    let mut frames = Vec::new();
    let mut all = Vec::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    all.extend_from_slice(&data);
                    frames.push((started.elapsed(), data));
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    Reply { status: parts.status.as_u16(), headers: parts.headers, body: Bytes::from(all), frames, body_error }
}

/// `POST` JSON with a bearer key.
pub async fn post(url: &str, key: &str, body: &str) -> Reply {
    let auth = format!("Bearer {key}");
    send("POST", url, &[("authorization", &auth), ("content-type", "application/json")], body.to_string()).await
}

/// Like [`send`], but a connection failure or cut body is `None` instead of a panic.
pub async fn try_send(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Option<u16> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::new(body.into())).unwrap()).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

/// A counter or gauge of a gateway's `/metrics`: the first line starting with `line_start`
/// (the name and its labels), 0 when absent.
pub async fn metric(base: &str, line_start: &str) -> f64 {
    let text = send("GET", &format!("{base}/metrics"), &[], "").await.text();
    text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit_once(' ')?.1.parse().ok()).unwrap_or(0.0)
}
