//! Paths, scenario selection, provider-shaped 404s, Gemini framing, heads, keep-alive.

mod common;

use common::{Client, fixture, fixture_bytes, post, read, request};
use xjp_mock_upstream::{MockConfig, MockUpstream, OPENROUTER_MODELS_KEY, RecordedStream, Scenario, WILDCARD_MODEL};

async fn mock() -> MockUpstream {
    MockUpstream::start(MockConfig::default()).await.unwrap()
}

fn gemini_scenario() -> Scenario {
    Scenario::json(200, r#"{"candidates":[]}"#)
        .with_stream_file(fixture("gemini_stream.sse"))
        .unwrap()
        .with_stream_file(fixture("gemini_stream.json"))
        .unwrap()
}

#[tokio::test]
async fn unknown_models_get_a_404_in_the_provider_shape() {
    let mock = mock().await;
    let openai = post(mock.addr(), "/v1/chat/completions", r#"{"model":"gpt-x","stream":true}"#).await;
    assert_eq!(openai.status, 404);
    assert_eq!(openai.header("content-type"), Some("application/json"));
    assert_eq!(openai.json()["error"]["code"], "model_not_found");
    assert!(openai.json()["error"]["message"].as_str().unwrap().contains("gpt-x"));

    let anthropic = post(mock.addr(), "/v1/messages", r#"{"model":"claude-x"}"#).await;
    assert_eq!(anthropic.status, 404);
    assert_eq!(anthropic.json()["type"], "error");
    assert_eq!(anthropic.json()["error"]["type"], "not_found_error");
    assert!(anthropic.json()["error"]["message"].as_str().unwrap().contains("claude-x"));

    let openrouter = post(mock.addr(), "/api/v1/chat/completions", r#"{"model":"a/b"}"#).await;
    assert_eq!((openrouter.status, openrouter.json()["error"]["code"].as_u64()), (404, Some(404)));
    assert!(openrouter.json()["error"]["message"].as_str().unwrap().contains("a/b"));

    let gemini = post(mock.addr(), "/v1beta/models/gemini-x:generateContent", "{}").await;
    assert_eq!(gemini.status, 404);
    assert_eq!(gemini.json()["error"]["status"], "NOT_FOUND");
    assert!(gemini.json()["error"]["message"].as_str().unwrap().contains("models/gemini-x"));

    let vertex_path = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-y:streamGenerateContent";
    let vertex = post(mock.addr(), vertex_path, "{}").await;
    assert_eq!(vertex.status, 404);
    let array = vertex.json();
    assert_eq!(array[0]["error"]["code"], 404, "Vertex array streams wrap errors in an array");
    assert!(array[0]["error"]["message"].as_str().unwrap().contains("gemini-y"));
}

#[tokio::test]
async fn unknown_paths_and_methods_and_bad_bodies() {
    let mock = mock().await;
    let unknown = post(mock.addr(), "/v2/complete", "{}").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"]["message"].as_str().unwrap().contains("/v2/complete"));
    let wrong_method = request(mock.addr(), "GET", "/v1/chat/completions", &[], "").await;
    assert_eq!(wrong_method.status, 405);
    let not_json = post(mock.addr(), "/v1/messages", "model=x").await;
    assert_eq!((not_json.status, not_json.json()["error"]["type"].as_str()), (400, Some("invalid_request_error")));
    let no_model = post(mock.addr(), "/v1/chat/completions", r#"{"messages":[]}"#).await;
    assert_eq!(no_model.status, 400);
}

#[tokio::test]
async fn models_are_selected_by_body_with_wildcard_fallback() {
    let mock = mock().await;
    mock.set_scenario("a", Scenario::json(200, r#"{"which":"a"}"#));
    mock.set_scenario(WILDCARD_MODEL, Scenario::json(429, r#"{"which":"*"}"#));
    let a = post(mock.addr(), "/v1/chat/completions", r#"{"model":"a"}"#).await;
    assert_eq!((a.status, a.json()["which"].as_str()), (200, Some("a")));
    let other = post(mock.addr(), "/v1/messages", r#"{"model":"zzz"}"#).await;
    assert_eq!((other.status, other.json()["which"].as_str()), (429, Some("*")));
    mock.set_scenario("a", Scenario::json(201, r#"{"which":"a2"}"#));
    let replaced = post(mock.addr(), "/api/v1/chat/completions", r#"{"model":"a"}"#).await;
    assert_eq!((replaced.status, replaced.json()["which"].as_str()), (201, Some("a2")));
    assert!(mock.remove_scenario(WILDCARD_MODEL));
    assert_eq!(post(mock.addr(), "/v1/messages", r#"{"model":"zzz"}"#).await.status, 404);
}

#[tokio::test]
async fn stream_flag_decides_between_body_and_stream() {
    let mock = mock().await;
    let body = fixture_bytes("chat.json");
    let scenario = Scenario::json(200, body.clone()).with_stream_file(fixture("openai_stream.sse")).unwrap();
    mock.set_scenario("m", scenario);
    let plain = post(mock.addr(), "/v1/chat/completions", r#"{"model":"m","stream":false}"#).await;
    assert_eq!(plain.body(), body);
    assert_eq!(plain.header("content-type"), Some("application/json"));
    assert_eq!(plain.header("content-length"), Some(body.len().to_string().as_str()));
    let streamed = post(mock.addr(), "/v1/chat/completions", r#"{"model":"m","stream":true}"#).await;
    assert_eq!(streamed.body(), fixture_bytes("openai_stream.sse"));
    // An error body answers stream requests too, as providers do.
    mock.set_scenario("e", Scenario::json(429, r#"{"error":{}}"#));
    let error = post(mock.addr(), "/v1/chat/completions", r#"{"model":"e","stream":true}"#).await;
    assert_eq!((error.status, error.body()), (429, br#"{"error":{}}"#.to_vec()));
}

#[tokio::test]
async fn gemini_selects_by_path_and_frames_by_alt() {
    let mock = mock().await;
    mock.set_scenario("gemini-2.5-flash", gemini_scenario());
    mock.set_scenario("gemini-other", Scenario::json(200, r#"{"other":true}"#));
    let base = "/v1beta/models/gemini-2.5-flash";

    let sse = post(mock.addr(), &format!("{base}:streamGenerateContent?alt=sse"), "{}").await;
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse.body(), fixture_bytes("gemini_stream.sse"));

    let array = post(mock.addr(), &format!("{base}:streamGenerateContent"), "{}").await;
    assert_eq!(array.header("content-type"), Some("application/json"));
    assert_eq!(array.body(), fixture_bytes("gemini_stream.json"));
    assert_eq!(RecordedStream::new(array.body()).chunks().len(), 3);

    let plain = post(mock.addr(), &format!("{base}:generateContent?alt=sse"), "{}").await;
    assert_eq!(plain.body(), br#"{"candidates":[]}"#.to_vec());

    let other = post(mock.addr(), "/v1beta/models/gemini-other:generateContent", r#"{"model":"x"}"#).await;
    assert_eq!(other.json()["other"], true);

    let vertex =
        "/v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent";
    let vertex_array = post(mock.addr(), vertex, "{}").await;
    assert_eq!(vertex_array.body(), fixture_bytes("gemini_stream.json"));
    let vertex_sse = post(mock.addr(), &format!("{vertex}?alt=sse"), "{}").await;
    assert_eq!(vertex_sse.body(), fixture_bytes("gemini_stream.sse"));
}

#[tokio::test]
async fn gemini_with_one_framing_serves_it_for_both_requests() {
    let mock = mock().await;
    mock.set_scenario("g", Scenario::default().with_stream_file(fixture("gemini_stream.json")).unwrap());
    let sse_requested = post(mock.addr(), "/v1beta/models/g:streamGenerateContent?alt=sse", "{}").await;
    assert_eq!(sse_requested.header("content-type"), Some("application/json"));
    assert_eq!(sse_requested.body(), fixture_bytes("gemini_stream.json"));
}

#[tokio::test]
async fn scenario_status_headers_and_content_type_are_served() {
    let mock = mock().await;
    let scenario = Scenario::json(529, "<html>overloaded</html>")
        .with_header("content-type", "text/html")
        .with_header("retry-after", "3")
        .with_header("x-multi", "1")
        .with_header("x-multi", "2");
    mock.set_scenario("m", scenario);
    let reply = post(mock.addr(), "/v1/messages", r#"{"model":"m"}"#).await;
    assert_eq!(reply.status, 529);
    assert_eq!(reply.header("content-type"), Some("text/html"));
    assert_eq!(reply.headers.get_all("content-type").iter().count(), 1);
    assert_eq!(reply.header("retry-after"), Some("3"));
    assert_eq!(reply.headers.get_all("x-multi").iter().count(), 2);

    mock.set_scenario("bad", Scenario::json(42, "{}"));
    let broken = post(mock.addr(), "/v1/messages", r#"{"model":"bad"}"#).await;
    assert_eq!((broken.status, broken.json()["error"]["type"].as_str()), (500, Some("api_error")));
}

#[tokio::test]
async fn models_lists_are_generated_or_served_from_a_scenario() {
    let mock = mock().await;
    mock.set_scenario("b-model", Scenario::json(200, "{}"));
    mock.set_scenario("a-model", Scenario::json(200, "{}"));
    mock.set_scenario(WILDCARD_MODEL, Scenario::json(200, "{}"));
    let openai = request(mock.addr(), "GET", "/v1/models", &[], "").await;
    let ids: Vec<_> = openai.json()["data"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, ["a-model", "b-model"]);
    assert_eq!(openai.json()["object"], "list");
    let prices = r#"{"data":[{"id":"openai/gpt-4o-mini","pricing":{"prompt":"0.00000015"}}]}"#;
    mock.set_scenario(OPENROUTER_MODELS_KEY, Scenario::json(200, prices));
    let openrouter = request(mock.addr(), "GET", "/api/v1/models", &[], "").await;
    assert_eq!(openrouter.body(), prices.as_bytes());
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let mock = mock().await;
    mock.set_scenario("m", Scenario::json(200, "{}").with_stream_file(fixture("openai_stream.sse")).unwrap());
    let mut client = Client::connect(mock.addr()).await;
    for stream in [true, false, true] {
        let body = format!(r#"{{"model":"m","stream":{stream}}}"#);
        let reply = read(client.send("POST", "/v1/chat/completions", &[], &body).await).await;
        assert!(reply.error.is_none());
        let expected = if stream { fixture_bytes("openai_stream.sse") } else { b"{}".to_vec() };
        assert_eq!(reply.body(), expected);
    }
    assert_eq!(mock.requests().len(), 3);
}
