//! `xjp-gateway plugin new NAME`: writes a ready plugin crate for an OpenAI-format provider.
//!
//! The crate depends on `xjp-plugin-sdk` by version (a commented `path =` shows how to use a
//! checkout instead), implements `Provider` with the SDK's `openai_chat` reader, has golden
//! cases and a test that runs them, a README, and a `.cargo/config.toml` with the wasm
//! rustflags. `cargo build --target wasm32-wasip2 --release` builds the component. With
//! `--member` it writes a workspace member instead: workspace dependencies, cases under the
//! workspace's `fixtures/NAME`, no `.cargo/`, and a README that builds and tests it from the
//! workspace.

use std::path::{Path, PathBuf};

/// Arguments of `plugin new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name (what `describe` answers and the file is called): lowercase
    /// letters, digits and `-`, starting with a letter.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to write the crate (default: `./NAME`). Must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Depend on the SDK at this path (a checkout's `plugins/sdk`) as well as by version.
    #[arg(long, value_name = "PATH")]
    pub sdk_path: Option<PathBuf>,
    /// Write a member of the xjp-gateway workspace (`plugins/NAME`): dependencies from
    /// `[workspace.dependencies]`, cases under the workspace's `fixtures/NAME`.
    #[arg(long)]
    pub member: bool,
}

/// The SDK version this gateway was built with (the workspace version they share).
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

const CARGO_TOML: &str = include_str!("plugin_template/Cargo.toml.tmpl");
const CARGO_MEMBER_TOML: &str = include_str!("plugin_template/Cargo.member.toml.tmpl");
const CARGO_CONFIG: &str = include_str!("plugin_template/cargo-config.toml.tmpl");
const LIB_RS: &str = include_str!("plugin_template/lib.rs.tmpl");
const GOLDEN_RS: &str = include_str!("plugin_template/golden.rs.tmpl");
const README: &str = include_str!("plugin_template/README.md.tmpl");
/// A workspace member's README: built and tested from the workspace, no `.cargo/` of its own.
const README_MEMBER: &str = include_str!("plugin_template/README.member.md.tmpl");
/// The golden cases: (file name, contents).
const FIXTURES: &[(&str, &str)] = &[
    ("chat_basic.json", include_str!("plugin_template/fixtures/chat_basic.json")),
    ("chat_basic.request.json", include_str!("plugin_template/fixtures/chat_basic.request.json")),
    ("chat_basic.case.json", include_str!("plugin_template/fixtures/chat_basic.case.json")),
    ("stream_usage.sse", include_str!("plugin_template/fixtures/stream_usage.sse")),
    ("stream_usage.request.json", include_str!("plugin_template/fixtures/stream_usage.request.json")),
    ("stream_usage.case.json", include_str!("plugin_template/fixtures/stream_usage.case.json")),
    ("error_429.json", include_str!("plugin_template/fixtures/error_429.json")),
    ("error_429.case.json", include_str!("plugin_template/fixtures/error_429.case.json")),
];

/// Checks a plugin name: 1 to 64 of `a-z`, `0-9`, `-`, starting with a letter, no `--`
/// and no trailing `-` (so the crate and type names derived from it are valid).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.contains("--")
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("plugin name `{name}` must be 1 to 64 of a-z, 0-9 and single `-`, starting with a letter"))
    }
}

/// `my-provider` -> `MyProvider`.
pub fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The files of the crate for `name`, as (path relative to the crate, contents). With
/// `member`, fixture paths start with `../../fixtures/NAME/`.
pub fn render(name: &str, sdk_path: Option<&Path>, member: bool) -> Result<Vec<(PathBuf, String)>, String> {
    check_name(name)?;
    let krate = format!("xjp-plugin-{name}");
    let lib = krate.replace('-', "_");
    let fixtures_rel = if member { format!("../../fixtures/{name}") } else { "fixtures".to_string() };
    let sdk_path = match sdk_path {
        Some(p) => {
            let text = p.to_str().ok_or_else(|| format!("SDK path {} is not UTF-8", p.display()))?;
            format!(", path = {}", toml_string(text))
        }
        None => String::new(),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &krate)
            .replace("{{lib}}", &lib)
            .replace("{{Type}}", &type_name(name))
            .replace("{{env}}", &name.replace('-', "_").to_ascii_uppercase())
            .replace("{{sdk_version}}", SDK_VERSION)
            .replace("{{sdk_path}}", &sdk_path)
            .replace("{{fixtures_rel}}", &fixtures_rel)
    };
    let mut files = vec![
        (PathBuf::from("Cargo.toml"), fill(if member { CARGO_MEMBER_TOML } else { CARGO_TOML })),
        (PathBuf::from("src/lib.rs"), fill(LIB_RS)),
        (PathBuf::from("tests/golden.rs"), fill(GOLDEN_RS)),
        (PathBuf::from("README.md"), fill(if member { README_MEMBER } else { README })),
    ];
    if !member {
        // A member builds with the workspace's own `.cargo/config.toml`.
        files.push((PathBuf::from(".cargo/config.toml"), CARGO_CONFIG.to_string()));
        files.push((PathBuf::from(".gitignore"), "/target\n".to_string()));
    }
    for (file, contents) in FIXTURES {
        files.push((Path::new(&fixtures_rel).join(file), contents.to_string()));
    }
    Ok(files)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes the crate into `dir`, which must not exist or be empty (fixtures of a member
/// may not overwrite existing files either). Returns the files written.
pub fn write(dir: &Path, name: &str, sdk_path: Option<&Path>, member: bool) -> Result<Vec<PathBuf>, String> {
    if dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    let files = render(name, sdk_path, member)?;
    let mut written = Vec::with_capacity(files.len());
    for (rel, contents) in files {
        let path = dir.join(&rel);
        if path.exists() {
            return Err(format!("{} exists; not overwriting it", path.display()));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, contents).map_err(|e| format!("write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Runs `plugin new`; exit code 0 when the crate was written.
pub fn run(args: &NewArgs) -> i32 {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    match write(&dir, &args.name, args.sdk_path.as_deref(), args.member) {
        Ok(files) => {
            for f in &files {
                println!("wrote {}", f.display());
            }
            let lib = format!("xjp_plugin_{}", args.name.replace('-', "_"));
            if args.member {
                println!(
                    "\nadd \"{}\" to the workspace members and `{}` to PROVIDERS in xtask/src/plugins.rs, then\n  cargo test -p xjp-plugin-{} && cargo xtask build-plugins",
                    dir.display(),
                    args.name,
                    args.name
                );
            } else {
                println!(
                    "\nnext:\n  cd {}\n  cargo test\n  cargo build --target wasm32-wasip2 --release\n  xjp-gateway plugin check --plugin target/wasm32-wasip2/release/{lib}.wasm --cases fixtures",
                    dir.display()
                );
            }
            0
        }
        Err(e) => {
            eprintln!("xjp-gateway: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_types_and_refusals() {
        assert_eq!(type_name("perplexity"), "Perplexity");
        assert_eq!(type_name("my-provider-2"), "MyProvider2");
        for bad in ["", "9a", "A", "a_b", "a--b", "a-", "-a", "a b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        check_name("x-ai").unwrap();
    }

    #[test]
    fn renders_every_placeholder() {
        for member in [false, true] {
            let files = render("acme-ai", Some(Path::new("/src/xjp \"gw\"/plugins/sdk")), member).unwrap();
            for (path, contents) in &files {
                assert!(!contents.contains("{{"), "{} keeps a placeholder", path.display());
            }
            let cargo = &files.iter().find(|(p, _)| p == Path::new("Cargo.toml")).unwrap().1;
            assert!(cargo.contains("name = \"xjp-plugin-acme-ai\""));
            if member {
                assert!(cargo.contains("xjp-plugin-sdk.workspace = true"));
                assert!(files.iter().any(|(p, _)| p.starts_with("../../fixtures/acme-ai")));
            } else {
                assert!(cargo.contains(r#"path = "/src/xjp \"gw\"/plugins/sdk""#), "{cargo}");
                assert!(files.iter().any(|(p, _)| p == Path::new(".cargo/config.toml")));
            }
            // Each README describes the files its crate has.
            let readme = &files.iter().find(|(p, _)| p == Path::new("README.md")).unwrap().1;
            assert_eq!(readme.contains("`.cargo/config.toml` turns on"), !member, "{readme}");
            assert_eq!(readme.contains("cargo xtask build-plugins"), member, "{readme}");
            assert!(readme.contains("plugin check --plugin"), "{readme}");
            let lib = &files.iter().find(|(p, _)| p == Path::new("src/lib.rs")).unwrap().1;
            assert!(lib.contains("pub struct AcmeAi;") && lib.contains("descriptor!(\"acme-ai\""));
        }
    }

    #[test]
    fn refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        assert!(write(dir.path(), "acme", None, false).unwrap_err().contains("not empty"));
        let fresh = dir.path().join("acme");
        let files = write(&fresh, "acme", None, false).unwrap();
        assert!(files.len() >= 10);
    }
}
