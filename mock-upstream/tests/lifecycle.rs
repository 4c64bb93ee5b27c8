//! Start, address, shutdown and drop.

mod common;

use std::time::{Duration, Instant};

use common::post;
use tokio::net::TcpStream;
use xjp_mock_upstream::{MockConfig, MockError, MockUpstream, Scenario};

#[tokio::test]
async fn base_url_names_the_bound_loopback_port() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    assert!(mock.addr().ip().is_loopback());
    assert_ne!(mock.addr().port(), 0);
    assert_eq!(mock.base_url(), format!("http://127.0.0.1:{}", mock.addr().port()));
}

#[tokio::test]
async fn a_taken_address_is_a_bind_error() {
    let first = MockUpstream::start(MockConfig::default()).await.unwrap();
    let config = MockConfig { addr: Some(first.addr()), ..MockConfig::default() };
    assert!(matches!(MockUpstream::start(config).await, Err(MockError::Bind { .. })));
}

#[tokio::test]
async fn shutdown_stops_listening_and_waits_for_delayed_responses_to_end() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_scenario("slow", Scenario::json(200, "{}").with_first_byte_delay(Duration::from_secs(30)));
    let addr = mock.addr();
    let pending = tokio::spawn(async move { post(addr, "/v1/chat/completions", r#"{"model":"slow"}"#).await.status });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    mock.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown took {:?}", started.elapsed());
    assert_eq!(pending.await.unwrap(), 503);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn drop_stops_the_server() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let addr = mock.addr();
    assert_eq!(post(addr, "/v1/messages", r#"{"model":"x"}"#).await.status, 404);
    drop(mock);
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "still accepting after drop");
}
