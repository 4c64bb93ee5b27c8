//! Telling HTTP/1.1 from h2 (prior knowledge) on a new connection by peeking at its first
//! bytes, so hyper reads them from the socket itself.
//!
//! hyper-util's `auto` otherwise reads up to 24 bytes first and replays them to hyper, whose
//! next read then finds fewer than its 8 KiB free and doubles the connection's read buffer to
//! 16 KiB for the life of the connection (a heap profile of `cargo xtask bench e2e --phases
//! many`; the peak RSS of 1,000 streams fell by ~4 MiB without it). HTTP/1.1 is then served by hyper's own builder (exact head limit), h2 by
//! `auto` restricted to it; only a client whose first bytes are still a proper prefix of the
//! h2 preface leaves the choice to `auto`, as before: such a connection's head is bounded by
//! `max_buf_size` only (less than twice `[server] max_header_bytes`), as every connection's was.

use tokio::net::TcpStream;

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
    /// The bytes so far begin the h2 preface but do not complete it.
    Undecided,
    /// The client closed the connection before sending anything.
    Closed,
}

/// Waits for the connection's first bytes and tells its protocol without consuming them.
pub(super) async fn peek(stream: &TcpStream) -> std::io::Result<Protocol> {
    let mut first = [0u8; H2_PREFACE.len()];
    let n = stream.peek(&mut first).await?;
    Ok(classify(&first[..n]))
}

fn classify(first: &[u8]) -> Protocol {
    if first.is_empty() {
        Protocol::Closed
    } else if !H2_PREFACE.starts_with(first) {
        Protocol::Http1
    } else if first.len() == H2_PREFACE.len() {
        Protocol::Http2
    } else {
        Protocol::Undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn first_bytes_tell_the_protocol() {
        assert_eq!(classify(b""), Protocol::Closed);
        assert_eq!(classify(b"POST /v1/chat/completions HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(classify(b"PUT"), Protocol::Http1);
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(classify(b"G"), Protocol::Http1);
        assert_eq!(classify(b"P"), Protocol::Undecided);
        assert_eq!(classify(&H2_PREFACE[..23]), Protocol::Undecided);
        assert_eq!(classify(H2_PREFACE), Protocol::Http2);
    }

    #[tokio::test]
    async fn peeking_leaves_the_bytes_for_hyper() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(H2_PREFACE).await.unwrap();
        assert_eq!(peek(&server).await.unwrap(), Protocol::Http2);
        let mut read = [0u8; 24];
        server.readable().await.unwrap();
        assert_eq!(server.try_read(&mut read).unwrap(), 24);
        assert_eq!(&read, H2_PREFACE);
        drop(client);
        assert_eq!(peek(&server).await.unwrap(), Protocol::Closed);
    }
}
