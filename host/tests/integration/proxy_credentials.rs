//! No client credential ever reaches the provider; the provider's own credential does.

use crate::common;

use common::harness::{PROVIDER_KEY, TestGateway};
use common::http::send;
use common::scenarios::mock;

#[tokio::test]
async fn client_credentials_are_stripped_and_provider_credentials_added() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let key = gw.key.clone();
    let bearer = format!("Bearer {key}");
    let noisy = |auth: (&'static str, String)| {
        vec![
            auth,
            ("proxy-authorization", "Basic c2VjcmV0".to_string()),
            ("cookie", "session=secret-cookie".to_string()),
            ("x-goog-api-key", key.clone()),
            ("content-type", "application/json".to_string()),
            ("x-custom-trace", "dropped".to_string()),
        ]
    };
    let calls = [
        ("/v1/chat/completions", noisy(("authorization", bearer.clone())), r#"{"model":"gpt-4o-mini","messages":[]}"#),
        (
            "/v1/messages",
            noisy(("x-api-key", key.clone())),
            r#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}"#,
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent?key=XJP_query_secret",
            noisy(("authorization", bearer.clone())),
            r#"{"contents":[]}"#,
        ),
        ("/v1/chat/completions", noisy(("authorization", bearer.clone())), r#"{"model":"or-sonnet","messages":[]}"#),
    ];
    for (path, headers, body) in &calls {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = send("POST", &format!("{}{path}", gw.url), &headers, body.to_string()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let received = mock.take_requests();
    assert_eq!(received.len(), 4);
    for req in &received {
        let everything = format!("{:?} {:?} {:?}", req.headers, req.query, String::from_utf8_lossy(&req.body));
        assert!(!everything.contains(&key), "client key leaked to the provider: {everything}");
        assert!(!everything.contains("XJP_"), "a gateway key leaked: {everything}");
        assert!(!everything.contains("secret-cookie") && !everything.contains("c2VjcmV0"), "{everything}");
        assert_eq!(req.header("x-custom-trace"), None, "headers off the allow-list do not pass");
        assert!(req.header("x-request-id").is_some());
    }
    assert_eq!(received[0].header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
    assert_eq!(received[1].header("x-api-key"), Some(PROVIDER_KEY));
    assert_eq!(received[1].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(received[2].header("x-goog-api-key"), Some(PROVIDER_KEY));
    assert_eq!(received[2].header("authorization"), None);
    assert_eq!(received[2].query, None);
    assert_eq!(received[3].header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
}
