//! A bare HTTP/2 client (h2c, prior knowledge) that writes its frames itself, for tests that
//! do what a well-behaved client library never would: open more streams than the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` before reading its settings. Header blocks it sends
//! are HPACK literals (never indexed, no Huffman); it does not decode the server's.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// `RST_STREAM` error code: the server did not process the stream (RFC 9113, 7).
pub const REFUSED_STREAM: u32 = 0x7;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame received.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a `RST_STREAM` or `GOAWAY` frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        Some(u32::from_be_bytes(self.payload.get(at..at + 4)?.try_into().ok()?))
    }
}

/// An h2c connection.
pub struct RawH2 {
    tcp: TcpStream,
    read: Vec<u8>,
}

impl RawH2 {
    /// Connects and sends the preface and empty settings (the defaults).
    pub async fn connect(addr: &str) -> RawH2 {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut conn = RawH2 { tcp, read: Vec::new() };
        conn.tcp.write_all(PREFACE).await.unwrap();
        conn.write_frame(SETTINGS, 0, 0, &[]).await;
        conn
    }

    /// A request head on `stream` (odd, increasing): `headers` in order, pseudo-headers first.
    pub async fn headers(&mut self, stream: u32, headers: &[(&str, &str)], end_stream: bool) {
        let mut block = Vec::new();
        for (name, value) in headers {
            // Literal header field without indexing, new name (RFC 7541, 6.2.2).
            block.push(0x00);
            hpack_string(name.as_bytes(), &mut block);
            hpack_string(value.as_bytes(), &mut block);
        }
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.write_frame(HEADERS, flags, stream, &block).await;
    }

    /// A body frame on `stream`.
    pub async fn data(&mut self, stream: u32, body: &[u8], end_stream: bool) {
        self.write_frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, body).await;
    }

    async fn write_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap();
        assert!(len < 1 << 14, "one frame of the default maximum size");
        let mut frame = len.to_be_bytes()[1..].to_vec();
        frame.extend_from_slice(&[kind, flags]);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.tcp.write_all(&frame).await.unwrap();
    }

    /// The next frame other than SETTINGS and PING (acknowledged on the way); `None` when the
    /// connection closes or nothing comes within `within`.
    pub async fn next_frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.read.len() >= 9 {
                let len = u32::from_be_bytes([0, self.read[0], self.read[1], self.read[2]]) as usize;
                if self.read.len() >= 9 + len {
                    let head: Vec<u8> = self.read.drain(..9).collect();
                    let payload: Vec<u8> = self.read.drain(..len).collect();
                    let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
                    let frame = Frame { kind: head[3], flags: head[4], stream, payload };
                    match frame.kind {
                        SETTINGS if frame.flags & ACK == 0 => self.write_frame(SETTINGS, ACK, 0, &[]).await,
                        SETTINGS => {}
                        PING if frame.flags & ACK == 0 => self.write_frame(PING, ACK, 0, &frame.payload).await,
                        PING => {}
                        _ => return Some(frame),
                    }
                    continue;
                }
            }
            let mut buf = [0u8; 16 << 10];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.read.extend_from_slice(&buf[..n]),
                _ => return None,
            }
        }
    }
}

/// An HPACK string literal without Huffman coding.
fn hpack_string(s: &[u8], out: &mut Vec<u8>) {
    hpack_int(s.len(), 7, 0x00, out);
    out.extend_from_slice(s);
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541, 5.1), `flags` in the first byte's
/// high bits.
fn hpack_int(mut value: usize, n: u32, flags: u8, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}
