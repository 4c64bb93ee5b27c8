//! The module dependency order of the README's architecture section, checked against the
//! `crate::` paths in host/src: every module imports only modules below it, never one at
//! its own level or above (so there are no import circles between modules).

use std::collections::BTreeSet;
use std::path::Path;

/// Top to bottom. A module may use the modules of the rows below its own.
const LAYERS: &[&[&str]] = &[
    &["main", "cli"],
    &["server"],
    &["admin"],
    &["reports", "ops"],
    &["gateway"],
    &["proxy"],
    &["billing"],
    &["ledger"],
    &["catalog", "prices"],
    &["config", "db", "api"],
    &["plugins"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// The first path segment of every `crate::…` path in `text` (`crate::{a, b::c}` gives a, b).
fn crate_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item_start) = (0usize, true);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top module of `file` under `src` (`billing` for billing/settle.rs).
fn top_module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
}

/// `#[macro_export]` macros (used as `crate::name!`) and the top module defining each.
fn exported_macros(src: &Path, files: &[std::path::PathBuf]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("#[macro_export]") {
            let Some(rest) = text[at..].split_once("macro_rules!").map(|(_, r)| r.trim_start()) else { continue };
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            out.insert(name, top_module(src, file));
        }
    }
    out
}

#[test]
fn modules_depend_only_downwards() {
    let src = super::common::root().join("host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let macros = exported_macros(&src, &files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = top_module(&src, file);
        if top == "lib" {
            continue;
        }
        let own = layer(&top).unwrap_or_else(|| panic!("module `{top}` is not in the architecture's LAYERS"));
        for used in crate_modules(&std::fs::read_to_string(file).unwrap()) {
            // `crate::name!` is an exported macro: it belongs to the module that defines it.
            let used = macros.get(&used).cloned().unwrap_or(used);
            let Some(theirs) = layer(&used) else { continue };
            if used != top && theirs <= own {
                wrong.push(format!("{} uses crate::{used} (same level or above)", relative.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the architecture's order:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_reads_grouped_and_nested_paths() {
    let found =
        crate_modules("use crate::{admin, ops};\nuse crate::api::{Body, error::x};\nlet x = crate::proxy::handle();");
    assert_eq!(found, ["admin", "api", "ops", "proxy"].into_iter().map(String::from).collect());
    let found = crate_modules("use crate::{billing::{Bill, Caller}, ledger};");
    assert_eq!(found, ["billing", "ledger"].into_iter().map(String::from).collect());
}

#[test]
fn an_exported_macro_counts_as_its_defining_module() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("ops")).unwrap();
    let file = src.join("ops/access.rs");
    std::fs::write(&file, "#[macro_export]\nmacro_rules! access_line { () => {} }\n").unwrap();
    let macros = exported_macros(src, &[file]);
    assert_eq!(macros.get("access_line").map(String::as_str), Some("ops"));
    assert!(crate_modules("crate::access_line!(&r);").contains("access_line"));
}

#[test]
fn every_module_has_a_level() {
    let src = super::common::root().join("host/src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_string();
        assert!(name == "lib" || layer(&name).is_some(), "add `{name}` to LAYERS (and to the README)");
    }
}
