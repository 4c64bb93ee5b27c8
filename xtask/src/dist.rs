//! `cargo xtask dist`: everything the container image holds, built from source into one
//! directory laid out as the image lays it out. The Dockerfile's build stage runs this
//! command and its runtime stages only copy from the result (`cargo xtask check-dockerfile`
//! runs the same command on the host and checks that every copied path exists).
//!
//! ```text
//! <out>/bin/xjp-gateway, bin/xjp-mock-upstream
//! <out>/lib/xjp/plugins/<provider>.wasm          plugins.dir
//! <out>/etc/xjp/gateway.toml                      the image's config: the real providers
//! <out>/etc/xjp/demo.toml                         the compose demo: every provider is the mock
//! <out>/etc/xjp/prices.toml
//! <out>/share/xjp/fixtures/                       the mock upstream's recorded answers
//! <out>/var/lib/xjp/                              server.state_dir (empty; the one writable path)
//! ```

use crate::demo::{Layout, Mock, gateway_config};
use crate::{cargo, root, run};
use std::path::Path;

/// Where the image puts things (the configs name these paths).
pub const IMAGE_PLUGINS: &str = "/usr/lib/xjp/plugins";
pub const IMAGE_STATE: &str = "/var/lib/xjp";
/// The mock upstream's address inside the compose network.
pub const COMPOSE_MOCK: &str = "http://mock:9100";

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Builds the binaries with cargo `profile` (`release` in the image) and lays out `out`.
pub fn dist(profile: &str, out: &Path) -> anyhow::Result<()> {
    let out = if out.is_absolute() { out.to_path_buf() } else { root().join(out) };
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    crate::plugins::build_providers(&out.join("lib/xjp/plugins"))?;
    run(cargo().args(["build", "--locked", "--profile", profile, "-p", "xjp-gateway", "-p", "xjp-mock-upstream"]))?;
    let built = root().join("target").join(if profile == "dev" { "debug" } else { profile });
    std::fs::create_dir_all(out.join("bin"))?;
    for bin in ["xjp-gateway", "xjp-mock-upstream"] {
        std::fs::copy(built.join(bin), out.join("bin").join(bin))?;
    }
    let etc = out.join("etc/xjp");
    std::fs::create_dir_all(&etc)?;
    std::fs::copy(root().join("config/prices.toml"), etc.join("prices.toml"))?;
    let layout = |listen| Layout {
        listen,
        plugins_dir: IMAGE_PLUGINS,
        prices_dir: None,
        state_dir: Some(IMAGE_STATE),
        json_logs: true,
    };
    std::fs::write(etc.join("gateway.toml"), gateway_config(&layout("0.0.0.0:8080"), Mock::Nowhere)?)?;
    std::fs::write(etc.join("demo.toml"), gateway_config(&layout("0.0.0.0:8080"), Mock::All(COMPOSE_MOCK))?)?;
    copy_dir(&root().join("fixtures"), &out.join("share/xjp/fixtures"))?;
    std::fs::create_dir_all(out.join("var/lib/xjp"))?;
    // The configs must load as the gateway reads them (paths that exist only in the image
    // are warnings here).
    for config in ["gateway.toml", "demo.toml"] {
        run(std::process::Command::new(out.join("bin/xjp-gateway")).args(["config", "check"]).arg(etc.join(config)))?;
    }
    eprintln!("dist: {}", out.display());
    Ok(())
}
