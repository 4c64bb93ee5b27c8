//! `xjp-gateway plugin new`: the crate it writes builds, outside this workspace, into a
//! component the gateway loads and prices with, and passes its own golden test and the
//! conformance suite; dropped into a running gateway's plugin directory, it shows in
//! `GET /internal/plugins` and bills a request routed to it. The SDK is used by path, as a
//! published crate would be used (its own manifest, its own WIT), from a directory no
//! workspace file reaches.

use crate::common;

use common::harness::{ADMIN_TOKEN, Options, TestGateway};
use common::http::send;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use xjp_gateway::plugins::bindings::{ApiFormat, PriceEntry, TokenRates};
use xjp_gateway::plugins::cache::ComponentCache;
use xjp_gateway::plugins::convert::usage_json;
use xjp_gateway::plugins::{Plugin, PluginEngine, RuntimeLimits};
use xjp_mock_upstream::{MockConfig, MockUpstream, Scenario};

fn gateway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xjp-gateway"))
}

/// `cargo ARGS` in `dir`, with a target directory that stays warm between runs.
fn cargo(dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", common::root().join("target/template-plugin"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?} in {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_template_builds_outside_the_workspace_and_loads_in_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(!tmp.path().starts_with(common::root()), "the crate must live outside the workspace");
    let crate_dir = tmp.path().join("acme");
    let out = gateway()
        .args(["plugin", "new", "acme", "--dir"])
        .arg(&crate_dir)
        .arg("--sdk-path")
        .arg(common::root().join("plugins/sdk"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["Cargo.toml", "src/lib.rs", "tests/golden.rs", "README.md", ".cargo/config.toml"] {
        assert!(crate_dir.join(file).is_file(), "{file} missing");
    }
    // Writing over it again is refused.
    let again = gateway().args(["plugin", "new", "acme", "--dir"]).arg(&crate_dir).output().unwrap();
    assert_eq!(again.status.code(), Some(1));

    // The workspace's lock file pins the versions this machine already has, so the build
    // needs no network; a new author's first build resolves them from crates.io.
    std::fs::copy(common::root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    cargo(&crate_dir, &["build", "--offline", "--quiet", "--target", "wasm32-wasip2", "--release"]);
    cargo(&crate_dir, &["test", "--offline", "--quiet"]);

    let wasm = common::root().join("target/template-plugin/wasm32-wasip2/release/xjp_plugin_acme.wasm");
    let bytes = std::fs::read(&wasm).unwrap();
    let engine = PluginEngine::new(RuntimeLimits::default()).unwrap();
    let plugin = Plugin::load(&engine, &ComponentCache::new(None), &bytes).unwrap();
    assert_eq!(plugin.info().name, "acme");
    assert!(plugin.supports(ApiFormat::OpenaiChat));

    // $1 / $4 per million, cache reads $0.25.
    let price = PriceEntry {
        rates: TokenRates {
            input: 1_000_000_000_000,
            output: 4_000_000_000_000,
            cache_read: 250_000_000_000,
            cache_write_5m: 0,
            cache_write_1h: 0,
            reasoning: None,
        },
        long_context: None,
        fees: vec![],
    };
    let body = std::fs::read(crate_dir.join("fixtures/chat_basic.json")).unwrap();
    let priced = plugin.price_response(ApiFormat::OpenaiChat, 200, &body, &price).unwrap().unwrap();
    let usage = usage_json(&priced.usage);
    assert_eq!((usage["input_uncached_tokens"].as_u64(), usage["cache_read_tokens"].as_u64()), (Some(8), Some(16)));
    assert_eq!(usage["provider_cost_usd"], "0.000052");
    // 8 x $1e-6 + 16 x $0.25e-6 + 8 x $4e-6 = $0.000044
    assert_eq!(priced.cost.unwrap().total, 44_000);

    let check = gateway()
        .args(["plugin", "check", "--seed", "3", "--call-timeout-ms", "2000", "--plugin"])
        .arg(&wasm)
        .arg("--cases")
        .arg(crate_dir.join("fixtures"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{table}");
    assert!(table.contains(" 0 failed"), "{table}");

    tokio::runtime::Runtime::new().unwrap().block_on(deploy(&wasm, &crate_dir));
}

/// A route to the `acme` plugin on the mock, priced as above.
fn acme_route(mock_base: &str) -> String {
    format!(
        r#"
[providers.acme]
base_url = "{mock_base}"
api = "openai-chat"
credential_env = "MOCK_PROVIDER_KEY"
auth = "bearer"
plugin = "acme"

[[models]]
name = "acme-chat"
provider = "acme"
upstream_model = "acme-model-1"
price = {{ input = "1", output = "4", cache_read = "0.25" }}
"#
    )
}

async fn chat(gw: &TestGateway, request: &Value, id: &str) -> common::http::Reply {
    let auth = format!("Bearer {}", gw.key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("x-request-id", id)];
    send("POST", &format!("{}/v1/chat/completions", gw.url), &headers, request.to_string()).await
}

/// The `acme` entry of `GET /internal/plugins`, if any.
async fn acme_status(gw: &TestGateway) -> Option<Value> {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = send("GET", &format!("{}/internal/plugins", gw.url), &[("authorization", auth.as_str())], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["plugins"].as_array().unwrap().iter().find(|p| p["key"] == "acme").cloned()
}

/// Drops the built component into a running gateway's plugin directory the way the guide
/// says (a temporary name, then a rename), watched as `serve` watches it; the route that
/// answered "not loaded" then bills the template's recorded answer.
async fn deploy(wasm: &Path, crate_dir: &Path) {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_scenario("acme-model-1", Scenario::from_fixture(crate_dir.join("fixtures/chat_basic.json")).unwrap());
    let plugins = tempfile::tempdir().unwrap();
    let options = Options {
        plugin_dir: Some(plugins.path().to_path_buf()),
        extra_toml: acme_route(&mock.base_url()),
        ..Options::default()
    };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let _watcher = xjp_gateway::plugins::watch::watch(gw.gw.plugins.clone()).unwrap();
    let mut request: Value =
        serde_json::from_slice(&std::fs::read(crate_dir.join("fixtures/chat_basic.request.json")).unwrap()).unwrap();
    request["model"] = "acme-chat".into();

    assert_eq!(acme_status(&gw).await, None);
    let r = chat(&gw, &request, "acme-before").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("`acme` is not loaded"), "{}", r.text());

    std::fs::copy(wasm, plugins.path().join(".acme.wasm.tmp")).unwrap();
    std::fs::rename(plugins.path().join(".acme.wasm.tmp"), plugins.path().join("acme.wasm")).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = acme_status(&gw).await.filter(|s| !s["loaded"].is_null()) {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "acme not loaded: {:?}", acme_status(&gw).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["loaded"]["name"], "acme", "{status}");
    assert_eq!(status["last_error"], Value::Null, "{status}");

    let r = chat(&gw, &request, "acme-after").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut billed: Option<(String, i64, i64, i64, i64, Option<i64>)> = None;
    common::until("a ledger row for the acme request", Duration::from_secs(10), async || {
        billed = sqlx::query_as(
            "SELECT status, input_uncached_tokens, cache_read_tokens, output_tokens, cost_nano, provider_cost_nano \
             FROM billing_transactions WHERE client_request_id = 'acme-after'",
        )
        .fetch_optional(&gw.gw.db)
        .await
        .unwrap();
        billed.is_some()
    })
    .await;
    let billed = billed.expect("found above");
    // The same figures as the in-process call: $0.000044 at the route's price, the
    // provider's own $0.000052 beside it.
    assert_eq!(billed, ("ok".to_string(), 8, 16, 8, 44_000, Some(52_000)));
}
