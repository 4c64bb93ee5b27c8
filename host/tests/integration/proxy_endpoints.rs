//! Every endpoint, non-streaming and streaming, through the real gateway to the mock
//! upstream: bodies pass through, usage is visible to the client, the request reaching the
//! provider carries the upstream model id.

use crate::common;

use common::harness::TestGateway;
use common::http::{post, send};
use common::scenarios::{fixture, mock};

fn sse_data(text: &str) -> Vec<serde_json::Value> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn openai_non_stream_passes_the_body_through() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let r = post(
        &format!("{}/v1/chat/completions", gw.url),
        &gw.key,
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, std::fs::read(fixture("openai/chat_basic.json")).unwrap(), "body byte for byte");
    assert!(r.headers.get("x-request-id").is_some());
    let sent = mock.take_requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].body_json().unwrap()["model"], "gpt-4o-mini-2024-07-18");
}

#[tokio::test]
async fn openai_stream_hides_the_usage_chunk_unless_asked() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let r = post(&url, &gw.key, r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = sse_data(&r.text());
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| !e["choices"].as_array().unwrap().is_empty()), "usage-only chunk withheld");
    assert!(r.text().trim_end().ends_with("data: [DONE]"));
    // The gateway asked the provider for usage on the client's behalf.
    let sent = mock.take_requests();
    assert_eq!(sent[0].body_json().unwrap()["stream_options"]["include_usage"], true);

    let r = post(
        &url,
        &gw.key,
        r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
    )
    .await;
    let usage: Vec<_> = sse_data(&r.text()).into_iter().filter(|e| e["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1, "a client that asked sees the usage chunk");
    assert_eq!(usage[0]["usage"]["completion_tokens"], 41);
    assert_eq!(r.body, std::fs::read(fixture("openai/stream_usage.sse")).unwrap(), "stream byte for byte");
}

#[tokio::test]
async fn anthropic_both_ways_with_x_api_key() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let url = format!("{}/v1/messages", gw.url);
    let headers =
        [("x-api-key", gw.key.as_str()), ("anthropic-version", "2023-06-01"), ("content-type", "application/json")];
    let r = send("POST", &url, &headers, r#"{"model":"claude-latest","max_tokens":100,"messages":[]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["usage"]["output_tokens"], 103);
    let r =
        send("POST", &url, &headers, r#"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[]}"#)
            .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(fixture("anthropic/messages_stream.sse")).unwrap());
    let sent = mock.take_requests();
    assert!(
        sent.iter()
            .all(|s| s.path == "/v1/messages" && s.body_json().unwrap()["model"] == "claude-sonnet-4-5-20250929")
    );
}

#[tokio::test]
async fn gemini_generate_sse_and_array_streams() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let headers = [("x-goog-api-key", gw.key.as_str()), ("content-type", "application/json")];
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
    let r = send("POST", &format!("{}/v1beta/models/gemini-2.5-flash:generateContent", gw.url), &headers, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, std::fs::read(fixture("gemini/generate_basic.json")).unwrap());
    let r = send(
        "POST",
        &format!("{}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", gw.url),
        &headers,
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(fixture("gemini/stream_thinking.sse")).unwrap());
    let r = send(
        "POST",
        &format!("{}/v1beta/models/gemini-2.5-flash:streamGenerateContent?key={}", gw.url, gw.key),
        &[],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, std::fs::read(fixture("gemini/stream_thinking.json")).unwrap());
    let sent = mock.take_requests();
    assert_eq!(sent[0].path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent[1].query.as_deref(), Some("alt=sse"));
    assert_eq!(sent[2].query, None, "the key query parameter never reaches the provider");
}

#[tokio::test]
async fn openrouter_stream_keeps_comments_and_cost() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let r = post(
        &format!("{}/v1/chat/completions", gw.url),
        &gw.key,
        r#"{"model":"or-sonnet","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(fixture("openrouter/stream_cost.sse")).unwrap());
    assert_eq!(mock.take_requests()[0].path, "/api/v1/chat/completions");
}

#[tokio::test]
async fn models_list_in_openai_format() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let r =
        send("GET", &format!("{}/v1/models", gw.url), &[("authorization", &format!("Bearer {}", gw.key))], "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&"gpt-4o-mini") && ids.contains(&"claude-sonnet-4-5") && ids.contains(&"gemini-2.5-flash"),
        "{ids:?}"
    );
    let r = send("GET", &format!("{}/v1/models", gw.url), &[], "").await;
    assert_eq!(r.status, 401);
}
