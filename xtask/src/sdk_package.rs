//! `cargo xtask check-sdk-package`: the plugin SDK and the crates it depends on can be
//! published to crates.io as they are, in [`PUBLISHED`] order.
//!
//! Offline, without publishing anything:
//!
//! 1. `cargo metadata`: each crate has the metadata crates.io shows (description, license,
//!    repository, readme), is not `publish = false`, and every path dependency it needs
//!    (normal and build) also has a version and is published before it; a path-only
//!    dev-dependency is allowed (cargo drops it when packaging).
//! 2. `cargo package --list`: what each `.crate` would hold includes its manifest, README and
//!    library, and the SDK's the WIT package (`wit/billing.wit`), so a plugin built from the
//!    published SDK is bound to exactly the contract the gateway checks.
//! 3. `cargo package --no-verify` of the four together (cargo resolves their dependencies on
//!    each other locally): the `.crate` files are written to target/package.

use crate::{cargo, root};
use serde_json::Value;

/// The published crates, each after the ones it depends on.
pub const PUBLISHED: &[&str] = &["xjp-money", "xjp-usage-shape", "xjp-json-scan", "xjp-plugin-sdk"];

/// Files each `.crate` must hold, beyond `Cargo.toml`, `README.md` and `src/lib.rs`.
fn extra_files(krate: &str) -> &'static [&'static str] {
    match krate {
        "xjp-plugin-sdk" => &["wit/billing.wit"],
        _ => &[],
    }
}

/// Runs cargo with `args` in the workspace; its stdout, or an error with its stderr.
fn cargo_output(args: &[&str]) -> anyhow::Result<String> {
    let out = cargo().args(args).current_dir(root()).output()?;
    anyhow::ensure!(
        out.status.success(),
        "cargo {} failed with {}:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The metadata problems of the published crates (empty when there are none).
pub fn metadata_problems(metadata: &Value) -> Vec<String> {
    let packages = metadata["packages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut problems = Vec::new();
    for (position, name) in PUBLISHED.iter().enumerate() {
        let Some(package) = packages.iter().find(|p| p["name"] == *name) else {
            problems.push(format!("{name}: not a workspace member"));
            continue;
        };
        // `publish = false` is an empty list of registries.
        if package["publish"].as_array().is_some_and(Vec::is_empty) {
            problems.push(format!("{name}: publish = false"));
        }
        for field in ["description", "license", "repository", "readme"] {
            if package[field].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{name}: no `{field}`"));
            }
        }
        for dep in package["dependencies"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let dep_name = dep["name"].as_str().unwrap_or("?");
            if dep["kind"] == "dev" || dep["path"].is_null() {
                continue;
            }
            if dep["req"] == "*" {
                problems.push(format!("{name}: path dependency {dep_name} has no version (crates.io refuses it)"));
            }
            match PUBLISHED.iter().position(|p| *p == dep_name) {
                Some(at) if at < position => {}
                Some(_) => problems.push(format!("{name}: depends on {dep_name}, which is published after it")),
                None => problems.push(format!("{name}: depends on {dep_name}, which is not published")),
            }
        }
    }
    problems
}

/// The files of `krate`'s `.crate` that are missing from `listing` (`cargo package --list`).
pub fn missing_files(krate: &str, listing: &str) -> Vec<String> {
    let files: Vec<&str> = listing.lines().map(str::trim).collect();
    ["Cargo.toml", "README.md", "src/lib.rs"]
        .iter()
        .chain(extra_files(krate))
        .filter(|f| !files.contains(f))
        .map(|f| format!("{krate}: {f} is not packaged"))
        .collect()
}

/// Runs the three checks.
pub fn check() -> anyhow::Result<()> {
    let metadata: Value =
        serde_json::from_str(&cargo_output(&["metadata", "--offline", "--no-deps", "--format-version", "1"])?)?;
    let mut problems = metadata_problems(&metadata);
    for krate in PUBLISHED {
        let listing = cargo_output(&["package", "--offline", "--allow-dirty", "--list", "-p", krate])?;
        problems.extend(missing_files(krate, &listing));
    }
    anyhow::ensure!(problems.is_empty(), "the SDK cannot be published as it is:\n  {}", problems.join("\n  "));
    let mut args = vec!["package", "--offline", "--allow-dirty", "--no-verify"];
    for krate in PUBLISHED {
        args.extend(["-p", krate]);
    }
    cargo_output(&args)?;
    eprintln!("SDK packages ready in target/package: {} (publish in this order)", PUBLISHED.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn package(name: &str, deps: Value) -> Value {
        json!({"name": name, "publish": null, "description": "d", "license": "Apache-2.0",
            "repository": "https://example.com", "readme": "README.md", "dependencies": deps})
    }

    #[test]
    fn path_dependencies_need_a_version_and_an_earlier_place() {
        let path = |name: &str, req: &str, kind: Value| json!({"name": name, "req": req, "kind": kind, "path": "/x"});
        let good = json!({"packages": [
            package("xjp-money", json!([])),
            package("xjp-usage-shape", json!([path("xjp-money", "^0.1.0", Value::Null)])),
            package("xjp-json-scan", json!([path("xjp-plugin-sdk", "*", json!("dev"))])),
            package("xjp-plugin-sdk", json!([path("xjp-json-scan", "^0.1.0", Value::Null),
                {"name": "serde", "req": "^1", "kind": null, "path": null}])),
        ]});
        assert_eq!(metadata_problems(&good), Vec::<String>::new());

        let mut bad = good.clone();
        bad["packages"][1]["dependencies"][0]["req"] = json!("*");
        bad["packages"][0]["dependencies"] = json!([path("xjp-usage-shape", "^0.1.0", json!("build"))]);
        bad["packages"][3]["publish"] = json!([]);
        bad["packages"][2]["readme"] = Value::Null;
        let problems = metadata_problems(&bad);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("published after it"), "{problems:?}");
        assert!(problems[1].contains("has no version"), "{problems:?}");
        assert!(problems[2].contains("no `readme`"), "{problems:?}");
        assert!(problems[3].contains("publish = false"), "{problems:?}");
    }

    #[test]
    fn the_sdk_must_carry_its_wit() {
        let listing = "Cargo.toml\nCargo.toml.orig\nREADME.md\nsrc/lib.rs\n";
        assert_eq!(missing_files("xjp-money", listing), Vec::<String>::new());
        assert_eq!(missing_files("xjp-plugin-sdk", listing), ["xjp-plugin-sdk: wit/billing.wit is not packaged"]);
    }
}
