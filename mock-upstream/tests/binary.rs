//! The `xjp-mock-upstream` binary and the repository's demo scenario file.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{fixture_bytes, post};
use xjp_mock_upstream::load_scenario_file;

/// Kills the child when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_a_scenario_file_and_prints_its_address() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("openai")).unwrap();
    std::fs::write(dir.path().join("openai/s.sse"), fixture_bytes("openai_stream.sse")).unwrap();
    std::fs::write(dir.path().join("openai/b.json"), fixture_bytes("chat.json")).unwrap();
    let file = dir.path().join("mock.json");
    let scenarios = r#"{"scenarios":[{"model":"gpt-4o-mini","response":"openai/b.json","stream":"openai/s.sse","chunk_interval_ms":500}]}"#;
    std::fs::write(&file, scenarios).unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_xjp-mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--zero-delay", "--scenarios"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let addr: SocketAddr = line.trim().strip_prefix("listening on http://").expect(&line).parse().unwrap();

    let started = std::time::Instant::now();
    let streamed = post(addr, "/v1/chat/completions", r#"{"model":"gpt-4o-mini","stream":true}"#).await;
    assert_eq!(streamed.body(), fixture_bytes("openai_stream.sse"));
    assert!(started.elapsed() < std::time::Duration::from_millis(400), "--zero-delay ignored");
    let plain = post(addr, "/v1/chat/completions", r#"{"model":"gpt-4o-mini"}"#).await;
    assert_eq!(plain.body(), fixture_bytes("chat.json"));
}

#[tokio::test]
async fn binary_rejects_an_invalid_scenario_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mock.json");
    std::fs::write(&file, r#"{"scenarios":[{"model":"m","response":"missing.json"}]}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xjp-mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--scenarios"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.json"));
}

/// The demo scenario file loads, and every provider has a body and a stream.
#[test]
fn repository_demo_scenarios_load() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/mock-scenarios.json");
    let scenarios = load_scenario_file(&path).unwrap();
    assert!(scenarios.len() >= 4, "one model per provider");
    for (model, scenario) in &scenarios {
        assert!(scenario.body.is_some(), "{model} has no body");
        assert!(scenario.sse_stream.is_some() || scenario.array_stream.is_some(), "{model} has no stream");
    }
}
