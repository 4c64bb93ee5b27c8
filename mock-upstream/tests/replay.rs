//! Stream replay over real TCP: byte-exact, chunk timing, mid-stream cut, stall, zero delay, h2c.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, fixture, fixture_bytes, post, read};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xjp_mock_upstream::{MockConfig, MockUpstream, RecordedStream, Scenario};

const STREAM_REQUEST: &str = r#"{"model":"m","stream":true,"messages":[]}"#;

async fn mock_with(scenario: Scenario) -> MockUpstream {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_scenario("m", scenario);
    mock
}

fn chunks_of(name: &str) -> Vec<Vec<u8>> {
    RecordedStream::new(fixture_bytes(name)).chunks().iter().map(|c| c.to_vec()).collect()
}

#[tokio::test]
async fn streams_replay_byte_for_byte() {
    for name in ["openai_stream.sse", "openrouter_crlf.sse"] {
        let mock = mock_with(Scenario::default().with_stream_file(fixture(name)).unwrap()).await;
        let reply = post(mock.addr(), "/v1/chat/completions", STREAM_REQUEST).await;
        assert!(reply.error.is_none(), "{name}: {:?}", reply.error);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("text/event-stream"));
        assert_eq!(reply.header("content-length"), None, "{name}: a stream must not have a length");
        assert_eq!(reply.body(), fixture_bytes(name), "{name}");
    }
}

#[tokio::test]
async fn each_chunk_is_its_own_frame_at_event_boundaries() {
    let scenario = Scenario::default()
        .with_stream_file(fixture("openrouter_crlf.sse"))
        .unwrap()
        .with_chunk_interval(Duration::from_millis(40));
    let mock = mock_with(scenario).await;
    let reply = post(mock.addr(), "/api/v1/chat/completions", STREAM_REQUEST).await;
    let bursts: Vec<Vec<u8>> = reply.bursts(Duration::from_millis(20)).into_iter().map(|(_, b)| b).collect();
    let expected = chunks_of("openrouter_crlf.sse");
    assert_eq!(expected.len(), 6);
    assert_eq!(bursts, expected);
    assert!(bursts.iter().all(|b| b.ends_with(b"\r\n\r\n")));
}

#[tokio::test]
async fn chunks_arrive_at_the_configured_interval() {
    let interval = Duration::from_millis(100);
    let scenario = Scenario::default()
        .with_stream_file(fixture("openai_stream.sse"))
        .unwrap()
        .with_first_byte_delay(Duration::from_millis(150))
        .with_chunk_interval(interval);
    let mock = mock_with(scenario).await;
    let mut client = Client::connect(mock.addr()).await;
    let sent = Instant::now();
    let response = client.send("POST", "/v1/chat/completions", &[], STREAM_REQUEST).await;
    let reply = read(response).await;
    let head_delay = reply.head_at.duration_since(sent);
    assert!(head_delay >= Duration::from_millis(140), "head after {head_delay:?}");
    let bursts = reply.bursts(Duration::from_millis(50));
    assert_eq!(bursts.len(), 6, "one burst per event");
    for pair in bursts.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0);
        assert!(gap >= Duration::from_millis(80) && gap <= Duration::from_millis(400), "gap {gap:?}");
    }
    assert_eq!(reply.body(), fixture_bytes("openai_stream.sse"));
}

#[tokio::test]
async fn cut_mid_stream_is_an_incomplete_body_at_the_client() {
    let scenario = Scenario::default()
        .with_stream_file(fixture("openai_stream.sse"))
        .unwrap()
        .with_chunk_interval(Duration::from_millis(10))
        .cut_after(2);
    let mock = mock_with(scenario).await;
    let started = Instant::now();
    let reply = post(mock.addr(), "/v1/chat/completions", STREAM_REQUEST).await;
    // The connection itself fails right after the flush, well before the body's own fallback.
    assert!(started.elapsed() < Duration::from_millis(150), "cut took {:?}", started.elapsed());
    assert_eq!(reply.status, 200);
    let error = reply.error.as_ref().expect("the body must fail");
    let eof = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
    assert!(eof, "expected an unexpected EOF in the chunked body, got {error:?}");
    assert_eq!(reply.body(), chunks_of("openai_stream.sse")[..2].concat());
}

#[tokio::test]
async fn cut_after_every_chunk_still_omits_the_terminating_chunk() {
    let bytes = fixture_bytes("openai_stream.sse");
    let mock = mock_with(Scenario::stream(bytes.clone()).cut_after(100)).await;
    let mut tcp = TcpStream::connect(mock.addr()).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        STREAM_REQUEST.len(),
        STREAM_REQUEST
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n\r\n"), "the last event arrives, then the connection closes: {text}");
    assert!(!text.ends_with("0\r\n\r\n"), "no terminating chunk");
}

#[tokio::test]
async fn stall_keeps_the_connection_open_without_data_until_shutdown() {
    let scenario = Scenario::default().with_stream_file(fixture("openai_stream.sse")).unwrap().stall_after(1);
    let mock = mock_with(scenario).await;
    let mut client = Client::connect(mock.addr()).await;
    let response = client.send("POST", "/v1/chat/completions", &[], STREAM_REQUEST).await;
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first.to_vec(), chunks_of("openai_stream.sse")[0]);
    let waited = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
    assert!(waited.is_err(), "no frame and no end while stalled");
    let started = Instant::now();
    tokio::join!(mock.shutdown(), async {
        let after = tokio::time::timeout(Duration::from_secs(3), body.frame()).await.expect("shutdown ends the stall");
        assert!(matches!(after, Some(Err(_))), "a stalled body ends in an error, not a clean end");
    });
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn zero_delay_mode_ignores_delays() {
    let scenario = Scenario::default()
        .with_stream_file(fixture("openai_stream.sse"))
        .unwrap()
        .with_first_byte_delay(Duration::from_secs(1))
        .with_chunk_interval(Duration::from_millis(500));
    let config = MockConfig { zero_delay: true, scenarios: vec![("m".into(), scenario)], ..MockConfig::default() };
    let mock = MockUpstream::start(config).await.unwrap();
    let started = Instant::now();
    let reply = post(mock.addr(), "/v1/chat/completions", STREAM_REQUEST).await;
    assert!(started.elapsed() < Duration::from_millis(400), "took {:?}", started.elapsed());
    assert_eq!(reply.body(), fixture_bytes("openai_stream.sse"));
}

#[tokio::test]
async fn h2c_streams_replay_byte_for_byte() {
    let scenario = Scenario::default()
        .with_stream_file(fixture("openai_stream.sse"))
        .unwrap()
        .with_chunk_interval(Duration::from_millis(5));
    let mock = mock_with(scenario).await;
    let tcp = TcpStream::connect(mock.addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::post(format!("{}/v1/chat/completions", mock.base_url()))
        .body(http_body_util::Full::new(Bytes::from_static(STREAM_REQUEST.as_bytes())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.to_vec(), fixture_bytes("openai_stream.sse"));
}
