//! `cargo xtask build-plugins`: plugin crates -> wasm32-wasip2 components.

use crate::{cargo, root, run};
use std::process::Command;

/// Provider plugins deployed to target/plugins as `<name>.wasm`.
pub const PROVIDERS: &[&str] = &["openai", "anthropic", "gemini", "openrouter", "perplexity", "xai"];

/// Broken plugins for fault-isolation tests: (output name, crate, features).
const TEST_PLUGINS: &[(&str, &str, &str)] = &[
    ("trap", "misbehave", "trap"),
    ("spin", "misbehave", "spin"),
    ("hog", "misbehave", "hog"),
    ("error-usage", "misbehave", "error-usage"),
    ("price-down", "misbehave", "price-down"),
    ("slow-large", "misbehave", "slow-large"),
    ("hog-large", "misbehave", "hog-large"),
    ("wrong-world", "wrong-world", ""),
];

const TARGET: &str = "wasm32-wasip2";

fn ensure_target() -> anyhow::Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET) => Ok(()),
        Ok(_) => run(Command::new("rustup").args(["target", "add", TARGET])),
        Err(_) => {
            eprintln!("rustup not found; assuming the {TARGET} target is installed");
            Ok(())
        }
    }
}

/// Builds one crate (each separately, so features never unify across plugins) and
/// copies the component to `dest`.
fn build(krate: &str, features: &str, dest: &std::path::Path) -> anyhow::Result<()> {
    let package = format!("xjp-plugin-{krate}");
    let mut cmd = cargo();
    cmd.args(["build", "--quiet", "--package", &package, "--target", TARGET, "--profile", "plugin"]);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    run(&mut cmd)?;
    let built = root().join("target").join(TARGET).join("plugin").join(format!("{}.wasm", package.replace('-', "_")));
    std::fs::create_dir_all(dest.parent().expect("dest has a parent"))?;
    // Write then rename, so a running gateway watching the directory never sees half a file.
    let tmp = dest.with_extension("wasm.tmp");
    std::fs::copy(&built, &tmp).map_err(|e| anyhow::anyhow!("copy {}: {e}", built.display()))?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

/// Builds every provider plugin into `out` as `<name>.wasm` (the image's plugin directory
/// and target/plugins are made by this one function).
pub fn build_providers(out: &std::path::Path) -> anyhow::Result<()> {
    ensure_target()?;
    for p in PROVIDERS {
        build(p, "", &out.join(format!("{p}.wasm")))?;
    }
    Ok(())
}

/// Builds every provider plugin into target/plugins and the test plugins into target/test-plugins.
pub fn build_all() -> anyhow::Result<()> {
    let out = root().join("target/plugins");
    build_providers(&out)?;
    let test_out = root().join("target/test-plugins");
    for (name, krate, features) in TEST_PLUGINS {
        build(krate, features, &test_out.join(format!("{name}.wasm")))?;
    }
    eprintln!("plugins built: {} (test plugins: {})", out.display(), test_out.display());
    Ok(())
}
