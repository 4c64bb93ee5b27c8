//! `xjp-gateway plugin new`: the crate it writes builds, outside this workspace, into a
//! component the gateway loads and prices with, and passes its own golden test and the
//! conformance suite. The SDK is used by path, as a published crate would be used (its own
//! manifest, its own WIT), from a directory no workspace file reaches.

use crate::common;

use std::path::Path;
use std::process::Command;
use xjp_gateway::plugins::bindings::{ApiFormat, PriceEntry, TokenRates};
use xjp_gateway::plugins::cache::ComponentCache;
use xjp_gateway::plugins::convert::usage_json;
use xjp_gateway::plugins::{Plugin, PluginEngine, RuntimeLimits};

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
}
