//! Recording: method, path, query, headers and body of every request, in order.

mod common;

use common::request;
use xjp_mock_upstream::{MockConfig, MockUpstream, Scenario};

#[tokio::test]
async fn every_request_is_recorded_with_headers_query_and_body() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_scenario("gemini-2.5-flash", Scenario::json(200, "{}"));
    let body = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
    let headers = [("x-goog-api-key", "provider-key"), ("content-type", "application/json"), ("cookie", "a=1")];
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=client-key";
    request(mock.addr(), "POST", path, &headers, body).await;
    request(mock.addr(), "POST", "/nowhere?x=1", &[("authorization", "Bearer XJP_abc")], "ping").await;

    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    assert_eq!(first.query.as_deref(), Some("alt=sse&key=client-key"));
    assert_eq!(first.query_param("key"), Some("client-key"));
    assert_eq!(first.header("X-Goog-Api-Key"), Some("provider-key"));
    assert_eq!(first.header("cookie"), Some("a=1"));
    assert!(first.headers.contains(&("content-type".to_owned(), "application/json".to_owned())));
    assert_eq!(first.body.as_ref(), body.as_bytes());
    assert_eq!(first.body_json().unwrap()["contents"][0]["parts"][0]["text"], "hi");
    assert_eq!(seen[1].path, "/nowhere");
    assert_eq!(seen[1].header("authorization"), Some("Bearer XJP_abc"));
    assert_eq!(seen[1].header("x-api-key"), None);

    let taken = mock.take_requests();
    assert_eq!(taken, seen);
    assert!(mock.requests().is_empty());
    request(mock.addr(), "GET", "/v1/models", &[], "").await;
    assert_eq!(mock.take_requests().len(), 1);
}
