//! Error cases per endpoint: status and the client's error shape (OpenAI, Anthropic, Gemini).

use crate::common;

use common::harness::TestGateway;
use common::http::{Reply, send};
use common::scenarios::{fixture, mock};
use std::time::Duration;
use xjp_mock_upstream::Scenario;

#[derive(Clone, Copy, Debug)]
enum Api {
    OpenAi,
    Anthropic,
    Gemini,
}

const ALL: [Api; 3] = [Api::OpenAi, Api::Anthropic, Api::Gemini];

impl Api {
    fn url(self, base: &str, model: &str, stream: bool) -> String {
        match self {
            Api::OpenAi => format!("{base}/v1/chat/completions"),
            Api::Anthropic => format!("{base}/v1/messages"),
            Api::Gemini if stream => format!("{base}/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            Api::Gemini => format!("{base}/v1beta/models/{model}:generateContent"),
        }
    }

    fn body(self, model: &str, stream: bool) -> String {
        match self {
            Api::Gemini => r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#.to_string(),
            _ => format!(
                r#"{{"model":"{model}","max_tokens":50,"stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
        }
    }

    fn model(self) -> &'static str {
        match self {
            Api::OpenAi => "gpt-4o-mini",
            Api::Anthropic => "claude-sonnet-4-5",
            Api::Gemini => "gemini-2.5-flash",
        }
    }

    fn upstream_model(self) -> &'static str {
        match self {
            Api::OpenAi => "gpt-4o-mini-2024-07-18",
            Api::Anthropic => "claude-sonnet-4-5-20250929",
            Api::Gemini => "gemini-2.5-flash",
        }
    }

    fn auth(self, key: &str) -> (&'static str, String) {
        match self {
            Api::OpenAi => ("authorization", format!("Bearer {key}")),
            Api::Anthropic => ("x-api-key", key.to_string()),
            Api::Gemini => ("x-goog-api-key", key.to_string()),
        }
    }

    async fn call(self, base: &str, key: Option<&str>, model: &str, stream: bool, body: Option<String>) -> Reply {
        let auth = key.map(|k| self.auth(k));
        let mut headers = vec![("content-type", "application/json".to_string())];
        headers.extend(auth);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        send("POST", &self.url(base, model, stream), &headers, body.unwrap_or_else(|| self.body(model, stream))).await
    }

    /// Asserts the documented error shape of this API and returns the message.
    fn assert_shape(self, r: &Reply, status: u16) -> String {
        assert_eq!(r.status, status, "{self:?}: {}", r.text());
        let v = r.json();
        match self {
            Api::OpenAi => {
                assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "{v}");
                v["error"]["message"].as_str().unwrap().to_string()
            }
            Api::Anthropic => {
                assert_eq!(v["type"], "error", "{v}");
                assert!(v["error"]["type"].is_string() && v["error"]["message"].is_string(), "{v}");
                v["error"]["message"].as_str().unwrap().to_string()
            }
            Api::Gemini => {
                assert_eq!(v["error"]["code"], status, "{v}");
                assert!(v["error"]["status"].is_string() && v["error"]["message"].is_string(), "{v}");
                v["error"]["message"].as_str().unwrap().to_string()
            }
        }
    }
}

#[tokio::test]
async fn auth_errors() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    for api in ALL {
        for stream in [false, true] {
            let r = api.call(&gw.url, None, api.model(), stream, None).await;
            assert!(api.assert_shape(&r, 401).contains("missing API key"));
            let r = api.call(&gw.url, Some("XJP_not-a-real-key"), api.model(), stream, None).await;
            assert!(api.assert_shape(&r, 401).contains("invalid API key"));
            let r = api.call(&gw.url, Some("sk-something-else"), api.model(), stream, None).await;
            api.assert_shape(&r, 401);
        }
    }
    assert!(mock.requests().is_empty(), "nothing reached the provider");
}

#[tokio::test]
async fn revoked_key_stops_working_within_the_cache_ttl() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let (row, key) = xjp_gateway::db::keys::create(&gw.gw.db, gw.tenant, Some("to revoke")).await.unwrap();
    assert_eq!(Api::OpenAi.call(&gw.url, Some(&key), "gpt-4o-mini", false, None).await.status, 200);
    // Revoked directly in Postgres (as another gateway replica would): the 200 ms cache expires.
    xjp_gateway::db::keys::revoke(&gw.gw.db, row.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for api in ALL {
        let r = api.call(&gw.url, Some(&key), api.model(), false, None).await;
        assert!(api.assert_shape(&r, 401).contains("revoked"));
    }
}

#[tokio::test]
async fn routing_and_body_errors() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let key = Some(gw.key.as_str());
    for api in ALL {
        for stream in [false, true] {
            let r = api.call(&gw.url, key, "no-such-model", stream, None).await;
            assert!(api.assert_shape(&r, 404).contains("no-such-model"));
            let r = api.call(&gw.url, key, api.model(), stream, Some("{not json".into())).await;
            assert!(api.assert_shape(&r, 400).contains("not valid JSON"));
            let big = format!(
                r#"{{"model":"{}","messages":[{{"role":"user","content":"{}"}}]}}"#,
                api.model(),
                "x".repeat(70_000)
            );
            let r = api.call(&gw.url, key, api.model(), stream, Some(big)).await;
            api.assert_shape(&r, 413);
        }
    }
    let r = Api::OpenAi.call(&gw.url, key, "unpriced", false, None).await;
    assert!(Api::OpenAi.assert_shape(&r, 400).contains("no price"));
    let r = Api::OpenAi.call(&gw.url, key, "claude-sonnet-4-5", false, None).await;
    assert!(Api::OpenAi.assert_shape(&r, 400).contains("not served on this endpoint"));
    let r = Api::OpenAi.call(&gw.url, key, "", false, Some(r#"{"messages":[]}"#.into())).await;
    assert!(Api::OpenAi.assert_shape(&r, 400).contains("`model` is required"));
    assert!(mock.requests().is_empty(), "nothing reached the provider");
}

#[tokio::test]
async fn upstream_errors_reach_the_client_in_its_format() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let key = Some(gw.key.as_str());
    let errors = [
        (Api::OpenAi, "openai/error_429.json", 429),
        (Api::Anthropic, "anthropic/error_overloaded.json", 529),
        (Api::Gemini, "gemini/error_quota.json", 429),
    ];
    for (api, file, status) in errors {
        mock.set_scenario(api.upstream_model(), Scenario::json(status, std::fs::read(fixture(file)).unwrap()));
        for stream in [false, true] {
            let r = api.call(&gw.url, key, api.model(), stream, None).await;
            api.assert_shape(&r, status);
            // Rebuilt from the provider's message, without its account identifiers.
            let sent: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture(file)).unwrap()).unwrap();
            let message = sent["error"]["message"].as_str().unwrap();
            let scrubbed = xjp_gateway::api::error::scrub_identifiers(message);
            assert_eq!(r.json()["error"]["message"], scrubbed.as_str());
            let text = r.text();
            for leak in ["org-3fVq", "req_011", "\"details\"", "quotaId"] {
                assert!(!text.contains(leak), "{leak} reached the client: {text}");
            }
        }
        // A non-JSON error page is wrapped into the client's shape.
        mock.set_scenario(api.upstream_model(), Scenario::json(502, "<html>Bad Gateway</html>"));
        let r = api.call(&gw.url, key, api.model(), false, None).await;
        api.assert_shape(&r, 502);
        mock.set_scenario(api.upstream_model(), Scenario::json(500, r#"{"unexpected":true}"#));
        let r = api.call(&gw.url, key, api.model(), false, None).await;
        api.assert_shape(&r, 500);
    }
}

#[tokio::test]
async fn unreachable_upstream_is_a_502() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let r = Api::OpenAi.call(&gw.url, Some(&gw.key), "unreachable", false, None).await;
    assert!(Api::OpenAi.assert_shape(&r, 502).contains("cannot connect"));
    let r = Api::OpenAi.call(&gw.url, Some(&gw.key), "unreachable", true, None).await;
    Api::OpenAi.assert_shape(&r, 502);
}

#[tokio::test]
async fn slow_first_byte_is_a_504() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    for api in ALL {
        let slow = common::scenarios::pair_for(api.upstream_model()).with_first_byte_delay(Duration::from_secs(5));
        mock.set_scenario(api.upstream_model(), slow);
        let r = api.call(&gw.url, Some(&gw.key), api.model(), false, None).await;
        api.assert_shape(&r, 504);
    }
}

#[tokio::test]
async fn stream_cut_mid_way_ends_with_an_in_band_error() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    for api in ALL {
        mock.set_scenario(api.upstream_model(), common::scenarios::pair_for(api.upstream_model()).cut_after(2));
        let r = api.call(&gw.url, Some(&gw.key), api.model(), true, None).await;
        assert_eq!(r.status, 200, "{api:?}: the stream had started");
        let text = r.text();
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().rposition(|l| l.starts_with("data: ")).unwrap();
        let data: serde_json::Value = serde_json::from_str(&lines[at]["data: ".len()..]).unwrap();
        match api {
            Api::Anthropic => {
                assert_eq!(lines[at - 1], "event: error");
                assert_eq!(data["type"], "error");
            }
            _ => assert!(data["error"]["message"].as_str().unwrap().contains("interrupted"), "{data}"),
        }
    }
}

#[tokio::test]
async fn stalled_stream_times_out_in_band() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    mock.set_scenario("gpt-4o-mini-2024-07-18", common::scenarios::pair_for("gpt-4o-mini-2024-07-18").stall_after(2));
    let r = Api::OpenAi.call(&gw.url, Some(&gw.key), "gpt-4o-mini", true, None).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("stalled"), "{}", r.text());
}

#[tokio::test]
async fn unknown_paths_are_404_in_the_path_format() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let r = send("GET", &format!("{}/v1/nope", gw.url), &[], "").await;
    Api::OpenAi.assert_shape(&r, 404);
    let r = send("POST", &format!("{}/v1beta/models/x:countTokens", gw.url), &[], "").await;
    Api::Gemini.assert_shape(&r, 404);
}

#[tokio::test]
async fn a_gemini_array_stream_cut_mid_way_ends_with_an_error_element() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let url = format!("{}/v1beta/models/gemini-2.5-flash:streamGenerateContent", gw.url);
    let headers = [("x-goog-api-key", gw.key.as_str()), ("content-type", "application/json")];
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;

    // The upstream ends cleanly in the middle of an element (as Vertex's recorded cut does):
    // the whole elements, then an error element in Gemini's shape, then the closing `]`.
    let cut = common::scenarios::fixture("gemini/vertex_stream_cut.json");
    mock.set_scenario(
        "gemini-2.5-flash",
        xjp_mock_upstream::Scenario::from_fixture(&cut).unwrap().with_stream_file(&cut).unwrap(),
    );
    let r = send("POST", &url, &headers, body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body_error, None, "the body ends properly");
    let expected = std::fs::read(common::scenarios::fixture("gemini/vertex_stream_cut_closed.json")).unwrap();
    assert_eq!(r.text(), String::from_utf8(expected).unwrap());

    // The connection drops after two chunks: still a valid array ending with an error element.
    mock.set_scenario(
        "gemini-2.5-flash",
        common::scenarios::pair_for("gemini-2.5-flash")
            .with_stream_file(common::scenarios::fixture("gemini/stream_thinking.json"))
            .unwrap()
            .cut_after(2),
    );
    let r = send("POST", &url, &headers, body).await;
    assert_eq!(r.status, 200);
    let items: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    let last = items.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["error"]["status"], "INTERNAL", "{last}");
    assert!(last["error"]["message"].as_str().unwrap().contains("interrupted"), "{last}");
}
