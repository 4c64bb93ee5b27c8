//! The load generator of `cargo xtask bench e2e`: keep-alive HTTP/1.1 connections (hyper's
//! connection-level client, TCP_NODELAY) on one current-thread runtime; closed loops at a
//! fixed concurrency, a fixed low rate, and sequential streams timed to their first byte.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Where requests go: the mock directly or a gateway, and what they carry.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
    /// `Authorization` header value (none for the mock).
    pub auth: Option<String>,
    /// The gateway's process (CPU time), none for the mock.
    pub pid: Option<u32>,
    /// Each request carries an id of its own (`Idempotency-Key`), as a client that retries
    /// safely sends: the gateway checks it against the ledger beside the reserve.
    pub client_ids: bool,
}

/// Request ids sent so far (`Target::client_ids`): unique within the run's fresh tenant.
static SENT_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const PATH: &str = "/v1/chat/completions";

/// One keep-alive connection to a target.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: String,
    target: Target,
}

impl Conn {
    pub async fn open(t: &Target) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(t.addr).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { send, host: t.addr.to_string(), target: t.clone() })
    }

    async fn head(&mut self, body: &Bytes) -> anyhow::Result<Response<Incoming>> {
        let mut req = Request::post(PATH).header("host", &self.host).header("content-type", "application/json");
        if let Some(a) = &self.target.auth {
            req = req.header("authorization", a);
        }
        if self.target.client_ids {
            let n = SENT_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            req = req.header("idempotency-key", format!("bench-{n}"));
        }
        self.send.ready().await?;
        let resp = self.send.send_request(req.body(Full::new(body.clone()))?).await?;
        anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
        Ok(resp)
    }

    /// One whole request: its latency (until the last byte of the answer).
    pub async fn once(&mut self, body: &Bytes) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let resp = self.head(body).await?;
        resp.into_body().collect().await?;
        Ok(start.elapsed())
    }

    /// One streamed request: (headers, first body byte, last byte) after the send.
    pub async fn stream(&mut self, body: &Bytes) -> anyhow::Result<[Duration; 3]> {
        let start = Instant::now();
        let mut body_in = self.head(body).await?.into_body();
        let headers = start.elapsed();
        let mut first = None;
        while let Some(frame) = body_in.frame().await {
            if frame?.data_ref().is_some_and(|d| !d.is_empty()) && first.is_none() {
                first = Some(start.elapsed());
            }
        }
        let total = start.elapsed();
        Ok([headers, first.unwrap_or(total), total])
    }
}

/// Latencies (µs) of the successful requests of a run, its errors and its length.
#[derive(Debug, Default, Clone)]
pub struct Sample {
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub elapsed: Duration,
    /// Fixed rate only: (ms since the run started, µs) of requests slower than 1 ms, to
    /// tell periodic stalls (background jobs, cache expiry) from random ones.
    pub slow: Vec<(u64, u32)>,
}

impl Sample {
    pub fn merge(&mut self, other: Sample) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.slow.extend(other.slow);
        self.elapsed += other.elapsed;
    }

    pub fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// `conns` connections, each sending the next request when the last answered, for `secs`
/// (after a few untimed warm-up requests per connection).
pub async fn closed_loop(t: &Target, body: &Bytes, conns: usize, secs: f64) -> anyhow::Result<Sample> {
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut c = Conn::open(t).await?;
        for _ in 0..3 {
            c.once(body).await?;
        }
        opened.push(c);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = opened
        .into_iter()
        .map(|mut c| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut s = Sample::default();
                while Instant::now() < deadline {
                    match c.once(&body).await {
                        Ok(d) => s.latencies_us.push(us(d)),
                        Err(_) => {
                            s.errors += 1;
                            match Conn::open(&c.target.clone()).await {
                                Ok(fresh) => c = fresh,
                                Err(_) => break,
                            }
                        }
                    }
                }
                s
            })
        })
        .collect();
    let mut all = Sample::default();
    for task in tasks {
        all.merge(task.await?);
    }
    all.elapsed = start.elapsed();
    Ok(all)
}

/// One connection sending `rps` requests a second on a fixed schedule for `secs` (a late
/// request is sent at once; latencies count from the send).
pub async fn fixed_rate(t: &Target, body: &Bytes, rps: f64, secs: f64) -> anyhow::Result<Sample> {
    let mut c = Conn::open(t).await?;
    for _ in 0..3 {
        c.once(body).await?;
    }
    let every = Duration::from_secs_f64(1.0 / rps.max(0.1));
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut next = start;
    let mut s = Sample::default();
    while next < deadline {
        tokio::time::sleep_until(next).await;
        match c.once(body).await {
            Ok(d) if d > Duration::from_millis(1) => {
                s.slow.push((u64::try_from((next - start).as_millis()).unwrap_or(0), us(d)));
                s.latencies_us.push(us(d));
            }
            Ok(d) => s.latencies_us.push(us(d)),
            Err(_) => s.errors += 1,
        }
        next += every;
    }
    s.elapsed = start.elapsed();
    Ok(s)
}

/// Headers, first-byte and total times (µs) of sequential streamed requests.
#[derive(Debug, Default, Clone)]
pub struct StreamTimes {
    pub headers_us: Vec<u32>,
    pub first_byte_us: Vec<u32>,
    pub total_us: Vec<u32>,
    pub errors: u64,
}

/// `n` streamed requests on one connection, one at a time.
pub async fn streams(t: &Target, body: &Bytes, n: usize, into: &mut StreamTimes) -> anyhow::Result<()> {
    let mut c = Conn::open(t).await?;
    for _ in 0..n {
        match c.stream(body).await {
            Ok([h, f, total]) => {
                into.headers_us.push(us(h));
                into.first_byte_us.push(us(f));
                into.total_us.push(us(total));
            }
            Err(_) => into.errors += 1,
        }
    }
    Ok(())
}
