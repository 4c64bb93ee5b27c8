//! Nothing leaks either way: only the request headers and query parameters on a provider's
//! allow-list reach it, only the response headers on its list reach the client, a client
//! key never reaches a provider in any spelling, and usage still comes back and is billed.

use crate::common;

use common::harness::{Options, PROVIDER_KEY, TestGateway};
use common::http::{Reply, send};
use common::money::wait_rows;
use common::scenarios::{fixture, mock, pair_for};
use std::time::Duration;
use xjp_mock_upstream::{RecordedRequest, Scenario};

/// Provider-account, field-selection and client-description headers a client may try.
pub(crate) fn noisy_headers() -> Vec<(&'static str, String)> {
    let big = "v".repeat(3 * 1024);
    let beta_junk = (0..150).map(|i| format!("junk-{i}")).collect::<Vec<_>>().join(", ");
    vec![
        ("content-type", "application/json".into()),
        ("openai-organization", "org-tenant".into()),
        ("openai-project", "proj_tenant".into()),
        ("openai-beta", "assistants=v2".into()),
        ("x-goog-user-project", "tenant-project".into()),
        ("x-goog-fieldmask", format!("candidates.content,{big}")),
        ("x-goog-api-client", "genai-js/1.0".into()),
        ("x-http-method-override", "GET".into()),
        ("anthropic-version", "2023-06-01".into()),
        ("anthropic-beta", format!("context-1m-2025-08-07, {beta_junk}, interleaved-thinking-2025-05-14")),
        ("anthropic-dangerous-direct-browser-access", "true".into()),
        ("x-stainless-os", "Linux".into()),
        ("user-agent", "tenant-app/1.0".into()),
        ("x-forwarded-for", "203.0.113.9".into()),
        ("x-custom-big", big),
    ]
}

/// Header names the gateway itself sends upstream (hyper adds `host` and `content-length`).
const GATEWAY_SET: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "accept-encoding",
    "x-request-id",
    "authorization",
    "x-api-key",
    "x-goog-api-key",
];

fn header_names(req: &RecordedRequest) -> Vec<&str> {
    let mut names: Vec<&str> = req.headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Every request the mock saw carries only gateway headers and `extra`, and no key.
pub(crate) fn assert_clean(received: &[RecordedRequest], key: &str, extra: &[&str]) {
    for req in received {
        let names = header_names(req);
        for name in &names {
            assert!(GATEWAY_SET.contains(name) || extra.contains(name), "`{name}` reached the provider: {names:?}");
        }
        let everything = format!("{:?} {:?}", req.headers, req.query);
        for leak in [key, "XJP_", "org-tenant", "proj_tenant", "tenant-project", "candidates", "vvvv", "junk-"] {
            assert!(!everything.contains(leak), "`{leak}` reached the provider ({names:?}, query {:?})", req.query);
        }
    }
}

/// The tenant's rows, once there are `n`: (request id, status, cost).
async fn rows(gw: &TestGateway, n: i64) -> Vec<(String, String, i64)> {
    wait_rows(&gw.gw.db, gw.tenant, n, Duration::from_secs(15)).await;
    sqlx::query_as("SELECT request_id, status, cost_nano FROM billing_transactions WHERE tenant_id = $1")
        .bind(gw.tenant)
        .fetch_all(&gw.gw.db)
        .await
        .unwrap()
}

fn assert_billed(rows: &[(String, String, i64)], n: usize) {
    assert_eq!(rows.len(), n, "{rows:?}");
    for (id, status, cost) in rows {
        assert!(status == "ok" && *cost > 0, "{id} not billed its usage: {status} {cost}");
    }
}

pub(crate) async fn call(
    base: &str,
    path_and_query: &str,
    id: &str,
    auth: Option<(&str, String)>,
    body: &str,
) -> Reply {
    let mut headers = noisy_headers();
    headers.push(("x-request-id", id.to_string()));
    headers.extend(auth);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = send("POST", &format!("{base}{path_and_query}"), &headers, body.to_string()).await;
    assert_eq!(r.status, 200, "{path_and_query}: {}", r.text());
    r
}

#[tokio::test]
async fn only_allowed_headers_reach_openai_and_anthropic() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let bearer = Some(("authorization", format!("Bearer {}", gw.key)));
    let chat = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let r = call(&gw.url, "/v1/chat/completions?trace=1&k%65y=XJP_x", "oa-1", bearer.clone(), chat).await;
    assert_eq!(r.body, std::fs::read(fixture("openai/chat_basic.json")).unwrap(), "usage comes back unchanged");
    let openai = mock.take_requests();
    assert_clean(&openai, &gw.key, &[]);
    assert_eq!(openai[0].query, None, "OpenAI takes no query parameters");
    assert_eq!(openai[0].header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));

    let messages = r#"{"model":"claude-sonnet-4-5","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
    let api_key = Some(("x-api-key", gw.key.clone()));
    call(&gw.url, "/v1/messages", "an-1", api_key.clone(), messages).await;
    let streamed = messages.replace(r#""max_tokens":50"#, r#""max_tokens":50,"stream":true"#);
    let r = call(&gw.url, "/v1/messages", "an-2", api_key, &streamed).await;
    assert_eq!(r.body, std::fs::read(fixture("anthropic/messages_stream.sse")).unwrap());
    let anthropic = mock.take_requests();
    assert_clean(&anthropic, &gw.key, &["anthropic-version", "anthropic-beta"]);
    for req in &anthropic {
        assert_eq!(req.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14"), "only the allowed beta");
        assert_eq!(req.header_all("anthropic-version").collect::<Vec<_>>(), ["2023-06-01"]);
        assert_eq!(req.header("x-api-key"), Some(PROVIDER_KEY));
    }
    assert_billed(&rows(&gw, 3).await, 3);
}

#[tokio::test]
async fn gemini_gets_alt_sse_only_and_never_a_key_however_spelled() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let key = gw.key.clone();
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
    let base = "/v1beta/models/gemini-2.5-flash";
    let select = "fields=candidates&%24fields=candidates&$fields=candidates&prettyPrint=false&%00=1&alt=proto";
    let header_key = Some(("x-goog-api-key", key.clone()));
    // The key in an encoded name authenticates, and still never reaches the provider.
    let r = call(&gw.url, &format!("{base}:generateContent?k%65y={key}&{select}"), "g-1", None, body).await;
    assert_eq!(r.body, std::fs::read(fixture("gemini/generate_basic.json")).unwrap());
    call(&gw.url, &format!("{base}:generateContent?%6Bey={key}&key={key}"), "g-2", None, body).await;
    let dup = format!("{base}:streamGenerateContent?alt=json&alt=sse&%61lt=sse&alt=sse&{select}");
    let r = call(&gw.url, &dup, "g-3", header_key.clone(), body).await;
    assert_eq!(r.body, std::fs::read(fixture("gemini/stream_thinking.sse")).unwrap(), "one alt=sse: an SSE stream");
    let r = call(&gw.url, &format!("{base}:streamGenerateContent?{select}&$alt=sse"), "g-4", header_key, body).await;
    assert_eq!(r.body, std::fs::read(fixture("gemini/stream_thinking.json")).unwrap(), "no alt: a JSON array");
    let sent = mock.take_requests();
    assert_eq!(sent.len(), 4);
    assert_clean(&sent, &key, &[]);
    let queries: Vec<Option<&str>> = sent.iter().map(|r| r.query.as_deref()).collect();
    assert_eq!(queries, [None, None, Some("alt=sse"), None]);
    assert!(sent.iter().all(|r| r.header("x-goog-api-key") == Some(PROVIDER_KEY)));
    assert_billed(&rows(&gw, 4).await, 4);
}

/// Upstream response headers a client must not see.
const PROVIDER_ONLY: &[(&str, &str)] = &[
    ("openai-organization", "org-operator"),
    ("openai-project", "proj_operator"),
    ("openai-processing-ms", "12"),
    ("openai-version", "2020-10-01"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-reset-tokens", "6ms"),
    ("anthropic-ratelimit-tokens-remaining", "400000"),
    ("anthropic-organization-id", "operator-org-uuid"),
    ("request-id", "req_operator"),
    ("x-request-id", "upstream-request-id"),
    ("cf-ray", "8f00-SJC"),
    ("cf-cache-status", "DYNAMIC"),
    ("set-cookie", "__cf_bm=operator; path=/"),
    ("server", "cloudflare"),
    ("via", "1.1 google"),
    ("x-envoy-upstream-service-time", "40"),
];

pub(crate) fn noisy(scenario: Scenario) -> Scenario {
    PROVIDER_ONLY.iter().fold(scenario, |s, (n, v)| s.with_header(*n, *v))
}

pub(crate) fn assert_no_provider_headers(r: &Reply, what: &str) {
    for (name, _) in PROVIDER_ONLY.iter().filter(|(n, _)| *n != "x-request-id") {
        assert!(r.headers.get(*name).is_none(), "{what}: `{name}` reached the client: {:?}", r.headers);
    }
    let id = r.headers.get("x-request-id").map(|v| v.to_str().unwrap());
    assert!(id.is_some_and(|id| id != "upstream-request-id"), "{what}: the gateway's own request id, got {id:?}");
}

#[tokio::test]
async fn provider_headers_do_not_reach_the_client() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let calls = [
        ("gpt-4o-mini-2024-07-18", "/v1/chat/completions", r#"{"model":"gpt-4o-mini","messages":[]}"#),
        ("claude-sonnet-4-5-20250929", "/v1/messages", r#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}"#),
        ("anthropic/claude-sonnet-4.5", "/v1/chat/completions", r#"{"model":"or-sonnet","messages":[]}"#),
    ];
    let auth = format!("Bearer {}", gw.key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    for (upstream_model, path, body) in calls {
        mock.set_scenario(upstream_model, noisy(pair_for(upstream_model).with_header("retry-after", "0")));
        for stream in [false, true] {
            let body = if stream { body.replacen('{', r#"{"stream":true,"#, 1) } else { body.to_string() };
            let r = send("POST", &format!("{}{path}", gw.url), &headers, body).await;
            assert_eq!(r.status, 200, "{upstream_model}: {}", r.text());
            let what = format!("{upstream_model} stream={stream}");
            assert_no_provider_headers(&r, &what);
            let expected = if stream { "text/event-stream" } else { "application/json" };
            assert!(r.headers["content-type"].to_str().unwrap().starts_with(expected), "{what}");
            assert_eq!(r.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("0"), "{what}");
        }
    }
    // An error: the client backs off by the provider's retry-after, and sees nothing else of it.
    let limited = Scenario::json(429, std::fs::read(fixture("openai/error_429.json")).unwrap());
    mock.set_scenario("gpt-4o-mini-2024-07-18", noisy(limited).with_header("retry-after", "7"));
    let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    let r = send("POST", &format!("{}/v1/chat/completions", gw.url), &headers, body).await;
    assert_eq!(r.status, 429);
    assert_no_provider_headers(&r, "429");
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn a_provider_list_replaces_the_default() {
    let mock = mock().await;
    let extra = format!(
        r#"
[providers.custom]
base_url = "{}"
api = "openai-chat"
credential_env = "MOCK_PROVIDER_KEY"
auth = "bearer"
plugin = "openai"
forward_headers = ["x-trace", "openai-beta=assistants=v2"]
forward_query = ["trace"]
forward_response_headers = ["content-type", "x-ratelimit-remaining-requests"]

[[models]]
name = "custom-mini"
provider = "custom"
upstream_model = "gpt-4o-mini-2024-07-18"
price = {{ input = "0.15", output = "0.60" }}
"#,
        mock.base_url()
    );
    let gw = TestGateway::start_with(&mock.base_url(), Options { extra_toml: extra, ..Options::default() }).await;
    let upstream = pair_for("gpt-4o-mini-2024-07-18");
    mock.set_scenario("gpt-4o-mini-2024-07-18", noisy(upstream));
    let auth = format!("Bearer {}", gw.key);
    let headers = [
        ("authorization", auth.as_str()),
        ("x-trace", "t-1"),
        ("openai-beta", "assistants=v2, realtime=v1"),
        ("openai-organization", "org-tenant"),
    ];
    let mut replies = Vec::new();
    for model in ["custom-mini", "gpt-4o-mini"] {
        let body = format!(r#"{{"model":"{model}","messages":[]}}"#);
        let r =
            send("POST", &format!("{}/v1/chat/completions?trace=on&key=XJP_x&fields=x", gw.url), &headers, body).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        replies.push(r);
    }
    let sent = mock.take_requests();
    assert_eq!(sent[0].header("x-trace"), Some("t-1"));
    assert_eq!(sent[0].header("openai-beta"), Some("assistants=v2"));
    assert_eq!(sent[0].query.as_deref(), Some("trace=on"));
    assert_clean(&sent[..1], &gw.key, &["x-trace", "openai-beta"]);
    assert_clean(&sent[1..], &gw.key, &[]);
    assert_eq!(sent[1].query, None, "the default list is unchanged for the other providers");
    assert_eq!(replies[0].headers["x-ratelimit-remaining-requests"], "9999");
    assert!(replies[0].headers.get("openai-organization").is_none() && replies[0].headers.get("cf-ray").is_none());
    assert_no_provider_headers(&replies[1], "default list");
    assert_billed(&rows(&gw, 2).await, 2);
}

#[test]
fn config_refuses_bad_or_dangerous_names() {
    let config = r#"
[providers.p]
base_url = "http://127.0.0.1:9"
api = "anthropic-messages"
auth = "none"
plugin = "anthropic"
forward_headers = ["Anthropic-Beta", "x trace", "x-api-key", "cookie", "x-goog-fieldmask", "ok", "ok=1"]
forward_query = ["key", "$key", "fields", "a&b"]
forward_response_headers = ["set-cookie", "content-length", "x-ratelimit-limit=1"]
"#;
    let e = xjp_gateway::config::parse(config, std::path::Path::new("/etc/xjp/gateway.toml")).unwrap_err().to_string();
    for bad in [
        "providers.p.forward_headers: `Anthropic-Beta`: not a lowercase header name",
        "providers.p.forward_headers: `x trace`",
        "providers.p.forward_headers: `x-api-key`: `x-api-key` is never forwarded (a credential)",
        "providers.p.forward_headers: `cookie`",
        "providers.p.forward_headers: `x-goog-fieldmask`",
        "providers.p.forward_headers: `ok=1`: `ok` is listed both with and without values",
        "providers.p.forward_query: `key`: `key` is never forwarded (a credential)",
        "providers.p.forward_query: `$key`",
        "providers.p.forward_query: `fields`",
        "providers.p.forward_query: `a&b`",
        "providers.p.forward_response_headers: `set-cookie`",
        "providers.p.forward_response_headers: `content-length`",
        "providers.p.forward_response_headers: `x-ratelimit-limit=1`: takes header names only",
    ] {
        assert!(e.contains(bad), "missing `{bad}` in:\n{e}");
    }
    let good = config.replace("forward_headers = [", "forward_headers = [\"anthropic-beta=context-1m-2025-08-07\"]\n#");
    let good = good.replace("forward_query = [", "forward_query = [\"alt=sse\"]\n#");
    let good = good.replace("forward_response_headers = [", "forward_response_headers = [\"retry-after\"]\n#");
    xjp_gateway::config::parse(&good, std::path::Path::new("/etc/xjp/gateway.toml")).expect("valid lists pass");
}
