//! `xjp-gateway plugin check --cases DIR`, run as the binary an author runs: every provider
//! plugin passes over its own fixtures; a wrong expectation and an estimate that does not
//! bound its case fail, with a FAIL row and exit code 1; and each contract check (error
//! bodies, monotonic pricing, time on a large body, memory) fails alone on a plugin that
//! reads its cases right but breaks that one contract.

use crate::common;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The suite's call deadline here: tests run side by side on two cores, so a plugin that
/// reads 8 MB in ~50 ms alone may wait for a core past the gateway's 100 ms default.
const TEST_DEADLINE_MS: &str = "2000";

/// Runs the suite with `--json`; (exit code, report).
fn suite(plugin: &Path, cases: &Path) -> (i32, Value) {
    suite_with_deadline(plugin, cases, TEST_DEADLINE_MS)
}

fn suite_with_deadline(plugin: &Path, cases: &Path, deadline_ms: &str) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_xjp-gateway"))
        .args(["plugin", "check", "--json", "--seed", "7", "--splits", "6", "--call-timeout-ms", deadline_ms])
        .arg("--plugin")
        .arg(plugin)
        .arg("--cases")
        .arg(cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), report)
}

fn failures(report: &Value) -> Vec<&Value> {
    report["checks"].as_array().unwrap().iter().filter(|r| r["ok"] == false).collect()
}

#[test]
fn every_provider_plugin_passes_over_its_fixtures() {
    for provider in ["openai", "openrouter", "anthropic", "gemini", "perplexity", "xai"] {
        let (code, report) = suite(&common::plugin_file(provider), &common::fixtures(provider));
        assert_eq!(failures(&report), Vec::<&Value>::new(), "{provider}");
        assert_eq!(code, 0, "{provider}");
        let checks: Vec<&str> =
            report["checks"].as_array().unwrap().iter().map(|r| r["check"].as_str().unwrap()).collect();
        for kind in ["case", "split", "estimate", "error-body", "pricing", "price-response", "large-body"] {
            assert!(checks.contains(&kind), "{provider}: no {kind} check");
        }
    }
}

/// Copies `names` of the openai fixtures into a temporary directory.
fn openai_cases(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(common::fixtures("openai").join(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn edit_case(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut case: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut case);
    std::fs::write(path, serde_json::to_vec_pretty(&case).unwrap()).unwrap();
}

#[test]
fn a_wrong_expectation_fails_and_exits_non_zero() {
    let dir = openai_cases(&["chat_basic.json", "chat_basic.case.json", "stream_usage.sse", "stream_usage.case.json"]);
    edit_case(&dir.path().join("stream_usage.case.json"), |c| c["expect"]["usage"]["output_tokens"] = 40.into());
    let (code, report) = suite(&common::plugin_file("openai"), dir.path());
    assert_eq!(code, 1);
    let failed = failures(&report);
    let subjects: Vec<(&str, &str)> =
        failed.iter().map(|r| (r["check"].as_str().unwrap(), r["subject"].as_str().unwrap())).collect();
    assert_eq!(subjects, [("case", "stream_usage"), ("split", "stream_usage")], "{failed:?}");
    assert!(failed[0]["detail"].as_str().unwrap().contains("\"output_tokens\":41"), "{failed:?}");
    assert_eq!(report["failed"], 2);

    // The table an author reads: a FAIL row and the totals.
    let out = Command::new(env!("CARGO_BIN_EXE_xjp-gateway"))
        .args(["plugin", "check", "--call-timeout-ms", TEST_DEADLINE_MS, "--plugin"])
        .arg(common::plugin_file("openai"))
        .arg("--cases")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("case") && l.contains("stream_usage") && l.contains("FAIL")),
        "{table}"
    );
    assert!(table.contains("passed, 2 failed"), "{table}");
}

#[test]
fn an_estimate_that_does_not_bound_its_case_fails() {
    let dir = openai_cases(&["chat_basic.json", "chat_basic.case.json"]);
    // The recorded answer has 187 completion tokens; a request allowing 100 cannot have made it.
    let request = r#"{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
    std::fs::write(dir.path().join("chat_basic.request.json"), request).unwrap();
    edit_case(&dir.path().join("chat_basic.case.json"), |c| c["request"] = "chat_basic.request.json".into());
    let (code, report) = suite(&common::plugin_file("openai"), dir.path());
    assert_eq!(code, 1);
    let failed = failures(&report);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["check"], "estimate");
    let detail = failed[0]["detail"].as_str().unwrap();
    assert!(detail.contains("output tokens 100 < 187") && detail.contains("prompt tokens"), "{detail}");
}

#[test]
fn a_plugin_that_hogs_memory_fails_the_contract_checks() {
    // `hog` allocates without bound on a body with the word `misbehave` and reads no usage
    // otherwise: its case fails at the memory cap, and so do the large bodies (no usage);
    // the suite says so instead of crashing.
    let dir = openai_cases(&["chat_basic.json", "chat_basic.case.json"]);
    let body = std::fs::read_to_string(dir.path().join("chat_basic.json")).unwrap();
    std::fs::write(dir.path().join("chat_basic.json"), body.replace("Here is", "misbehave: here is")).unwrap();
    let (code, report) = suite(&common::test_plugin_file("hog"), dir.path());
    assert_eq!(code, 1);
    let failed = failures(&report);
    assert!(failed.iter().any(|r| r["check"] == "case"), "{failed:?}");
    assert!(failed.iter().any(|r| r["check"] == "large-body"), "{failed:?}");
    assert!(
        failed.iter().any(|r| r["detail"].as_str().unwrap().contains("memory cap")),
        "no memory-cap failure: {failed:?}"
    );
}

/// A whole response and a stream, both read right by every `misbehave` contract plugin.
const CONTRACT_CASES: &[&str] =
    &["chat_basic.json", "chat_basic.case.json", "stream_usage.sse", "stream_usage.case.json"];

/// Checks the report of a plugin that breaks one contract: it exits 1, every kind of check
/// ran, every other kind passed, and `check` failed; its failed rows.
fn only_failing<'a>(code: i32, report: &'a Value, check: &str) -> Vec<&'a Value> {
    assert_eq!(code, 1, "{report}");
    let rows = report["checks"].as_array().unwrap();
    for kind in ["case", "split", "estimate", "error-body", "pricing", "price-response", "large-body"] {
        assert!(rows.iter().any(|r| r["check"] == kind), "no {kind} check: {report}");
    }
    let failed = failures(report);
    let others: Vec<&&Value> = failed.iter().filter(|r| r["check"] != check).collect();
    assert!(others.is_empty(), "checks other than {check} failed: {others:?}");
    assert!(!failed.is_empty(), "{check} did not fail: {report}");
    failed
}

#[test]
fn usage_for_an_error_status_fails_the_error_body_check() {
    let dir = openai_cases(CONTRACT_CASES);
    let (code, report) = suite(&common::test_plugin_file("error-usage"), dir.path());
    let failed = only_failing(code, &report, "error-body");
    for r in &failed {
        assert!(r["detail"].as_str().unwrap().starts_with("an error body gave usage: in 0"), "{r}");
    }
    // Every error status fails (400, 401, 429, 500, the HTML 502, the empty 503); the error
    // inside a 200 is read by the SDK's reader and still gives no usage.
    let mut statuses: Vec<&str> =
        failed.iter().map(|r| r["subject"].as_str().unwrap().split(' ').nth(1).unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["400", "401", "429", "500", "502", "503"], "{failed:?}");
}

#[test]
fn pricing_that_falls_with_more_tokens_fails_the_pricing_check() {
    let dir = openai_cases(CONTRACT_CASES);
    let (code, report) = suite(&common::test_plugin_file("price-down"), dir.path());
    let failed = only_failing(code, &report, "pricing");
    // Output beyond 100k tokens is free: a million more output (or reasoning) tokens on a
    // case that has output costs less; zero usage has no output cost to lose.
    let subjects: Vec<&str> = failed.iter().map(|r| r["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["chat_basic", "stream_usage"], "{failed:?}");
    for r in &failed {
        let detail = r["detail"].as_str().unwrap();
        assert!(detail.starts_with("output +1000000: total "), "{detail}");
    }
}

/// `plugin` fails exactly the two large-body rows (whole and stream), each for `why`.
fn fails_only_on_large_bodies(plugin: &str, deadline_ms: &str, why: &str) {
    let dir = openai_cases(CONTRACT_CASES);
    let (code, report) = suite_with_deadline(&common::test_plugin_file(plugin), dir.path(), deadline_ms);
    let failed = only_failing(code, &report, "large-body");
    let subjects: Vec<&str> = failed.iter().map(|r| r["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["openai-chat whole", "openai-chat stream"], "{failed:?}");
    for r in &failed {
        assert!(r["detail"].as_str().unwrap().contains(why), "{r}");
    }
}

#[test]
fn a_plugin_too_slow_for_a_large_body_fails_the_large_body_check() {
    // The cases are a few KB, read in well under a second even on a loaded machine; the
    // 8 MB bodies spin until the deadline on each of the three tries.
    fails_only_on_large_bodies("slow-large", "1000", "time budget");
}

#[test]
fn a_plugin_that_hoards_memory_on_a_large_body_fails_the_large_body_check() {
    fails_only_on_large_bodies("hog-large", TEST_DEADLINE_MS, "memory cap");
}
