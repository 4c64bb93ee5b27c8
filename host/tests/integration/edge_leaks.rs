//! Nothing leaks either way, with the real binary: a client key in a percent-encoded `key`
//! query parameter authenticates and never reaches the mock upstream, and no provider
//! account header (organisation, project, rate limits, cookies) reaches the client, on whole
//! answers, streams and errors. The finer cases run in-process in `proxy_allowlist`.

use crate::common;
use crate::proxy_allowlist::{assert_clean, assert_no_provider_headers, call, noisy};

use common::harness::Options;
use common::http::send;
use common::process::GatewayProcess;
use common::scenarios::{fixture, mock, pair_for};
use xjp_mock_upstream::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_key_parameter_never_reaches_the_provider() {
    let mock = mock().await;
    let (db, owner) = common::harness::owner(&mock.base_url()).await;
    let process = GatewayProcess::start(&mock.base_url(), &db.url, &Options::default()).await;
    let key = &owner.key;
    let generate = "/v1beta/models/gemini-2.5-flash:generateContent";
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
    let spellings = [format!("k%65y={key}"), format!("%6Bey={key}&prettyPrint=false"), format!("%6b%65%79={key}")];
    for (i, query) in spellings.iter().enumerate() {
        // The key in the query is the only credential: it authenticates.
        let r = call(&process.url, &format!("{generate}?{query}"), &format!("g-{i}"), None, body).await;
        assert_eq!(r.body, std::fs::read(fixture("gemini/generate_basic.json")).unwrap());
    }
    let sent = mock.take_requests();
    assert_eq!(sent.len(), spellings.len());
    assert_clean(&sent, key, &[]);
    assert!(sent.iter().all(|r| r.query.is_none()), "{:?}", sent.iter().map(|r| &r.query).collect::<Vec<_>>());
    process.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_provider_account_header_reaches_the_client() {
    let mock = mock().await;
    let (db, owner) = common::harness::owner(&mock.base_url()).await;
    let process = GatewayProcess::start(&mock.base_url(), &db.url, &Options::default()).await;
    let auth = format!("Bearer {}", owner.key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let calls = [
        ("gpt-4o-mini-2024-07-18", "/v1/chat/completions", r#"{"model":"gpt-4o-mini","messages":[]}"#),
        ("claude-sonnet-4-5-20250929", "/v1/messages", r#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}"#),
    ];
    for (upstream_model, path, body) in calls {
        mock.set_scenario(upstream_model, noisy(pair_for(upstream_model)));
        for stream in [false, true] {
            let body = if stream { body.replacen('{', r#"{"stream":true,"#, 1) } else { body.to_string() };
            let r = send("POST", &format!("{}{path}", process.url), &headers, body).await;
            assert_eq!(r.status, 200, "{upstream_model}: {}", r.text());
            assert_no_provider_headers(&r, &format!("{upstream_model} stream={stream}"));
        }
    }
    let limited = Scenario::json(429, std::fs::read(fixture("openai/error_429.json")).unwrap());
    mock.set_scenario("gpt-4o-mini-2024-07-18", noisy(limited));
    let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    let r = send("POST", &format!("{}/v1/chat/completions", process.url), &headers, body).await;
    assert_eq!(r.status, 429);
    assert_no_provider_headers(&r, "429");
    // The provider's message reaches the client without its organisation id.
    assert!(r.text().contains("Rate limit reached") && !r.text().contains("org-3fVq"), "{}", r.text());
    process.stop().await;
}
