//! The HTTP/2 limits of `[server]` over h2c (prior knowledge): streams beyond
//! `http2_max_concurrent_streams` on one connection are refused (`REFUSED_STREAM`) while the
//! allowed ones are served, and a header list over `http2_max_header_list_bytes` gets 431
//! without reaching the provider while smaller ones on the same connection are served.

use crate::common;

use bytes::Bytes;
use common::harness::{Options, TestGateway};
use common::money::CHAT;
use common::raw_h2::{DATA, END_STREAM, HEADERS, REFUSED_STREAM, RST_STREAM, RawH2};
use common::scenarios::mock;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Reads frames until every stream of `streams` has ended (or 10 s pass): the body each got.
async fn bodies(conn: &mut RawH2, streams: &[u32]) -> BTreeMap<u32, String> {
    let mut got: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut open: BTreeSet<u32> = streams.iter().copied().collect();
    while !open.is_empty() {
        let Some(frame) = conn.next_frame(Duration::from_secs(10)).await else { break };
        if !open.contains(&frame.stream) {
            continue;
        }
        assert_ne!(frame.kind, RST_STREAM, "an allowed stream was reset: {frame:?}");
        if frame.kind == DATA {
            got.entry(frame.stream).or_default().extend_from_slice(&frame.payload);
        }
        if [DATA, HEADERS].contains(&frame.kind) && frame.flags & END_STREAM != 0 {
            open.remove(&frame.stream);
        }
    }
    assert!(open.is_empty(), "streams {open:?} never ended");
    got.into_iter().map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned())).collect()
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_while_the_allowed_ones_are_served() {
    let mock = mock().await;
    let options = Options { server_toml: "http2_max_concurrent_streams = 4".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let mut conn = RawH2::connect(gw.url.trim_start_matches("http://")).await;
    let auth = format!("Bearer {}", gw.key);
    let head = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    // Ten heads at once, bodies held back: the first four are open when the rest arrive.
    let streams: Vec<u32> = (0..10).map(|i| 2 * i + 1).collect();
    for s in &streams {
        conn.headers(*s, &head, false).await;
    }
    let mut refused = BTreeSet::new();
    while refused.len() < 6 {
        let Some(frame) = conn.next_frame(Duration::from_secs(5)).await else { break };
        assert!(frame.kind != RST_STREAM || frame.error_code() == Some(REFUSED_STREAM), "{frame:?}");
        if frame.kind == RST_STREAM {
            refused.insert(frame.stream);
        }
    }
    assert_eq!(refused, streams[4..].iter().copied().collect::<BTreeSet<_>>(), "the six beyond the limit are refused");

    // The four allowed ones get their bodies and are answered.
    for s in &streams[..4] {
        conn.data(*s, CHAT.as_bytes(), true).await;
    }
    let answers = bodies(&mut conn, &streams[..4]).await;
    assert_eq!(answers.len(), 4);
    assert!(answers.values().all(|b| b.contains(r#""usage""#)), "{answers:?}");
    assert_eq!(mock.requests().len(), 4, "refused streams never reach the provider");
    // With them done, a new stream on the same connection is served.
    conn.headers(21, &head, false).await;
    conn.data(21, CHAT.as_bytes(), true).await;
    assert!(bodies(&mut conn, &[21]).await[&21].contains(r#""usage""#));
}

#[tokio::test]
async fn a_header_list_over_the_limit_gets_431_and_reaches_no_provider() {
    let mock = mock().await;
    let options = Options { server_toml: "http2_max_header_list_bytes = 4096".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let tcp = tokio::net::TcpStream::connect(gw.url.trim_start_matches("http://")).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let url = format!("{}/v1/chat/completions", gw.url);
    let auth = format!("Bearer {}", gw.key);
    // 8 KiB is well under the 64 KiB default: only the configured 4 KiB refuses it.
    for (extra, expected) in [(8 << 10, 431), (2 << 10, 200), (8 << 10, 431)] {
        let req = hyper::Request::post(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .header("x-extra", "e".repeat(extra))
            .body(Full::new(Bytes::from(CHAT.clone())))
            .unwrap();
        sender.ready().await.expect("the connection is still usable");
        let resp = sender.send_request(req).await.expect("answered");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        assert_eq!(status, expected, "a {extra}-byte header: {}", String::from_utf8_lossy(&body));
        if expected == 200 {
            assert!(String::from_utf8_lossy(&body).contains(r#""usage""#));
        }
    }
    assert_eq!(mock.requests().len(), 1, "only the request within the limit reached the provider");
}
