//! HTTP/1.1 over a bare TCP socket, for requests no well-behaved client library builds
//! (control characters in header values, bytes a URI may not hold): the request goes out
//! byte for byte and the answer is read until the server closes.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer read off the socket.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    /// De-chunked when the answer was chunked.
    pub body: Vec<u8>,
}

impl RawReply {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The bytes of one request (`connection: close`, so the server closes after answering).
pub fn request(method: &str, target: &[u8], host: &str, headers: &[(String, Vec<u8>)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(format!(" HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n").as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Sends `request` to `addr` (`host:port`) and reads the answer until the server closes
/// (or `within` passes). A server that refuses mid-write may still have answered: the
/// answer is read whatever the write did.
pub async fn exchange(addr: &str, request: &[u8], within: Duration) -> Result<RawReply, String> {
    let talk = async {
        let mut socket = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let written = socket.write_all(request).await;
        let mut received = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        let read_error = loop {
            match socket.read(&mut chunk).await {
                Ok(0) => break None,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) => break Some(e),
            }
        };
        if received.is_empty() {
            return Err(format!("no answer (write: {written:?}, read: {read_error:?})"));
        }
        parse(&received)
    };
    tokio::time::timeout(within, talk).await.map_err(|_| format!("no answer within {within:?}"))?
}

fn parse(bytes: &[u8]) -> Result<RawReply, String> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of the response head")?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &bytes[end + 4..];
    let mut reply = RawReply { status, headers, body: Vec::new() };
    reply.body = if reply.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)
    } else {
        let length = reply.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(rest.len());
        rest[..length.min(rest.len())].to_vec()
    };
    Ok(reply)
}

/// The data of a chunked body (as much of it as arrived).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else { break };
        rest = &rest[line_end + 2..];
        if size == 0 || rest.len() < size {
            out.extend_from_slice(&rest[..size.min(rest.len())]);
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_and_chunked_answers() {
        let r = parse(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"{}"[..]));
        let r =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").unwrap();
        assert!(r.body.is_empty());
    }
}
