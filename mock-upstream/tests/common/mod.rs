//! A minimal hyper client for the mock's tests: sends one request, keeps every body frame with
//! its arrival time.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A test fixture file of this crate.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The bytes of a test fixture file.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// An HTTP/1.1 connection to the mock.
pub struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Self { sender, addr }
    }

    /// Sends a request on this connection and returns the response head.
    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response<Incoming> {
        let mut request = Request::builder().method(method).uri(path).header("host", self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        self.sender.ready().await.unwrap();
        self.sender.send_request(request).await.unwrap()
    }
}

/// A response read to its end (or its error).
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body frames with their arrival time.
    pub frames: Vec<(Instant, Bytes)>,
    /// The body error, when the body did not end cleanly.
    pub error: Option<hyper::Error>,
    /// When the response head arrived.
    pub head_at: Instant,
}

impl Reply {
    /// The whole body received.
    pub fn body(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body()).unwrap()
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Frames grouped into bursts: frames arriving less than `gap` after the previous one
    /// join its burst. Returns each burst's first arrival and bytes.
    pub fn bursts(&self, gap: Duration) -> Vec<(Instant, Vec<u8>)> {
        let mut bursts: Vec<(Instant, Vec<u8>)> = Vec::new();
        let mut last: Option<Instant> = None;
        for (at, bytes) in &self.frames {
            match (last, bursts.last_mut()) {
                (Some(prev), Some(burst)) if at.duration_since(prev) < gap => burst.1.extend_from_slice(bytes),
                _ => bursts.push((*at, bytes.to_vec())),
            }
            last = Some(*at);
        }
        bursts
    }
}

/// Reads a response body frame by frame.
pub async fn read(response: Response<Incoming>) -> Reply {
    let head_at = Instant::now();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    let mut error = None;
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    frames.push((Instant::now(), data));
                }
            }
            Some(Err(e)) => {
                error = Some(e);
                break;
            }
            None => break,
        }
    }
    Reply { status, headers, frames, error, head_at }
}

/// Opens a connection, sends one request, reads the whole response.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut client = Client::connect(addr).await;
    read(client.send(method, path, headers, body).await).await
}

/// POSTs a JSON body.
pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(addr, "POST", path, &[("content-type", "application/json")], body).await
}
