//! `cargo xtask check-dockerfile`: keeps the Dockerfile and compose.yaml correct on a machine
//! without a container engine. It parses the Dockerfile, runs every `RUN` of its build stage
//! on the host with the same command line (ARG and ENV values as the environment, the stage's
//! `WORKDIR` as the workspace root), and then checks what the image would be made of: every
//! `COPY --from=build` source exists in what those commands produced, every context `COPY`
//! source exists and is not excluded by .dockerignore, the runtime stages run nothing and
//! end as a non-root user, the Rust image matches the workspace's `rust-version`, and the
//! compose file names real stages, services and config files.

use crate::root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One instruction: its keyword (upper case) and the rest of its (joined) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
    pub line: usize,
}

/// A `FROM` and what follows it.
#[derive(Debug, Clone, Default)]
pub struct Stage {
    pub image: String,
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM` (name, default).
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
}

/// Logical lines: comments dropped, `\` continuations joined.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        if !entry.1.is_empty() && !body.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(body);
        if !continues {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// Parses the instructions this project uses (any keyword is accepted and kept).
pub fn parse(text: &str) -> anyhow::Result<Dockerfile> {
    let mut file = Dockerfile::default();
    for (line, text) in logical_lines(text) {
        let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let (keyword, args) = (keyword.to_ascii_uppercase(), args.trim().to_string());
        match keyword.as_str() {
            "FROM" => {
                let words: Vec<&str> = args.split_whitespace().filter(|w| !w.starts_with("--")).collect();
                let (image, name) = match words.as_slice() {
                    [image] => (*image, None),
                    [image, as_, name] if as_.eq_ignore_ascii_case("as") => (*image, Some(name.to_string())),
                    _ => anyhow::bail!("Dockerfile line {line}: cannot read `FROM {args}`"),
                };
                file.stages.push(Stage { image: image.to_string(), name, instructions: Vec::new() });
            }
            "ARG" if file.stages.is_empty() => {
                let (name, default) = match args.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(unquote(d))),
                    None => (args.clone(), None),
                };
                file.global_args.push((name, default));
            }
            _ => {
                let stage = file
                    .stages
                    .last_mut()
                    .ok_or_else(|| anyhow::anyhow!("Dockerfile line {line}: {keyword} before any FROM"))?;
                stage.instructions.push(Instruction { keyword, args, line });
            }
        }
    }
    anyhow::ensure!(!file.stages.is_empty(), "the Dockerfile has no FROM");
    Ok(file)
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s).to_string()
}

/// A `COPY`'s flags, sources and destination (shell form; JSON form too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub from: Option<String>,
    pub sources: Vec<String>,
    pub dest: String,
}

fn words(args: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(args) {
        Ok(list) if args.trim_start().starts_with('[') => list,
        _ => args.split_whitespace().map(unquote).collect(),
    }
}

/// Reads a `COPY` instruction's arguments.
pub fn copy_of(args: &str) -> anyhow::Result<Copy> {
    let mut from = None;
    let mut rest = args.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        let (word, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        if let Some(stage) = word.strip_prefix("from=") {
            from = Some(stage.to_string());
        }
        rest = tail.trim_start();
    }
    let mut parts = words(rest);
    anyhow::ensure!(parts.len() >= 2, "COPY {args}: needs a source and a destination");
    let dest = parts.pop().expect("two or more");
    Ok(Copy { from, sources: parts, dest })
}

/// The RUN command (shell form as written; exec form joined with spaces).
fn run_command(args: &str) -> String {
    let mut rest = args.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        rest = flag.split_once(char::is_whitespace).map(|(_, t)| t.trim_start()).unwrap_or("");
    }
    if rest.starts_with('[') { words(rest).join(" ") } else { rest.to_string() }
}

/// .dockerignore patterns (comments and blanks dropped; `!` exceptions are not used here).
fn dockerignore() -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(root().join(".dockerignore"))
        .map_err(|e| anyhow::anyhow!(".dockerignore: {e} (the build context must leave target/ and .git out)"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string())
        .collect())
}

/// Whether `path` (relative to the context) is excluded by a pattern (a path prefix, or a
/// `*` glob within one name).
fn ignored(patterns: &[String], path: &str) -> bool {
    let glob = |pattern: &str, name: &str| match pattern.split_once('*') {
        Some((pre, post)) => name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post),
        None => pattern == name,
    };
    patterns.iter().any(|p| {
        let (pp, np): (Vec<&str>, Vec<&str>) = (p.split('/').collect(), path.split('/').collect());
        pp.len() <= np.len() && pp.iter().zip(&np).all(|(a, b)| glob(a, b))
    })
}

/// Options of the check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// `NAME=VALUE`, as `docker build --build-arg`.
    pub build_args: Vec<String>,
    /// Parse and check without running the build steps.
    pub no_run: bool,
}

fn workspace_rust_version() -> anyhow::Result<String> {
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))?.parse()?;
    manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("rust-version"))
        .and_then(|v| v.as_str())
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("no workspace.package.rust-version in Cargo.toml"))
}

/// What checking the Dockerfile found: the file, its build stage's WORKDIR (what
/// compose.yaml is checked against) and the problems.
pub struct Checked {
    pub file: Dockerfile,
    pub workdir: String,
    pub problems: Vec<String>,
}

/// Checks the workspace's Dockerfile (and, unless `no_run`, runs its build steps).
pub fn check(options: &CheckOptions) -> anyhow::Result<Checked> {
    let file = parse(&std::fs::read_to_string(root().join("Dockerfile"))?)?;
    let mut problems = Vec::new();
    let names: Vec<Option<&str>> = file.stages.iter().map(|s| s.name.as_deref()).collect();
    let mut build_stages = BTreeSet::new();
    for (i, stage) in file.stages.iter().enumerate() {
        for ins in stage.instructions.iter().filter(|i| i.keyword == "COPY") {
            let copy = copy_of(&ins.args)?;
            if let Some(from) = &copy.from {
                match names[..i].iter().position(|n| *n == Some(from.as_str())) {
                    Some(at) => {
                        build_stages.insert(at);
                    }
                    None => problems.push(format!("line {}: COPY --from={from}: no earlier stage", ins.line)),
                }
            }
        }
    }
    anyhow::ensure!(build_stages.len() == 1, "expected one build stage that the others copy from: {build_stages:?}");
    let build = &file.stages[*build_stages.first().expect("one")];
    let rust = workspace_rust_version()?;
    let tag = build.image.strip_prefix("rust:").unwrap_or("");
    if !tag.starts_with(&rust) {
        problems.push(format!("the build stage's image {} is not rust:{rust} (workspace rust-version)", build.image));
    }
    let workdir = build
        .instructions
        .iter()
        .rev()
        .find(|i| i.keyword == "WORKDIR")
        .map(|i| i.args.trim_end_matches('/').to_string())
        .ok_or_else(|| anyhow::anyhow!("the build stage has no WORKDIR"))?;
    let copies_context =
        build.instructions.iter().filter(|i| i.keyword == "COPY").filter_map(|i| copy_of(&i.args).ok()).any(|c| {
            c.from.is_none() && c.sources == ["."] && (matches!(c.dest.as_str(), "." | "./") || c.dest == workdir)
        });
    if !copies_context {
        problems.push(format!("the build stage does not `COPY . .` into {workdir}"));
    }
    let patterns = dockerignore()?;
    for must in ["target", ".git"] {
        if !ignored(&patterns, must) {
            problems.push(format!(".dockerignore does not leave `{must}` out of the build context"));
        }
    }
    // Runtime stages: no RUN (so every RUN of the file is one CI executes), a non-root user.
    for stage in file.stages.iter().filter(|s| !std::ptr::eq(*s, build)) {
        let label = stage.name.clone().unwrap_or_else(|| stage.image.clone());
        for ins in stage.instructions.iter().filter(|i| i.keyword == "RUN") {
            problems
                .push(format!("line {}: stage {label} runs `{}`; only the build stage may RUN", ins.line, ins.args));
        }
        let user = stage.instructions.iter().rev().find(|i| i.keyword == "USER").map(|i| i.args.clone());
        match user.as_deref().map(|u| u.split(':').next().unwrap_or("")) {
            Some("root" | "0") | None => problems.push(format!("stage {label} does not end as a non-root USER")),
            Some(_) => {}
        }
        if !stage.instructions.iter().any(|i| i.keyword == "ENTRYPOINT") {
            problems.push(format!("stage {label} has no ENTRYPOINT"));
        }
        for ins in stage.instructions.iter().filter(|i| i.keyword == "COPY") {
            let copy = copy_of(&ins.args)?;
            if copy.from.is_none() {
                for src in &copy.sources {
                    let rel = src.trim_start_matches("./");
                    if !root().join(rel).exists() || ignored(&patterns, rel) {
                        problems.push(format!("line {}: COPY {src}: not in the build context", ins.line));
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("Dockerfile:\n  - {}", problems.join("\n  - "));
    }
    if !options.no_run {
        run_build_steps(&file, build, options)?;
    }
    // What the runtime stages copy from the build stage exists where the commands left it.
    for stage in &file.stages {
        for ins in stage.instructions.iter().filter(|i| i.keyword == "COPY") {
            let copy = copy_of(&ins.args)?;
            if copy.from.as_deref() != build.name.as_deref() || copy.from.is_none() {
                continue;
            }
            for src in &copy.sources {
                let rel = src.strip_prefix(&format!("{workdir}/")).ok_or_else(|| {
                    anyhow::anyhow!("line {}: COPY --from source {src} is outside WORKDIR {workdir}", ins.line)
                })?;
                if !options.no_run && !root().join(rel).exists() {
                    problems.push(format!(
                        "line {}: COPY --from={}: {src} was not built",
                        ins.line,
                        copy.from.as_deref().unwrap_or("")
                    ));
                }
            }
        }
    }
    Ok(Checked { file, workdir, problems })
}

/// The build stage's ARG values: global defaults, the stage's own, then `--build-arg`s.
fn build_env(file: &Dockerfile, stage: &Stage, options: &CheckOptions) -> anyhow::Result<BTreeMap<String, String>> {
    let mut overrides = BTreeMap::new();
    for arg in &options.build_args {
        let (k, v) = arg.split_once('=').ok_or_else(|| anyhow::anyhow!("--build-arg {arg}: not NAME=VALUE"))?;
        overrides.insert(k.to_string(), v.to_string());
    }
    let globals: BTreeMap<&str, Option<&String>> =
        file.global_args.iter().map(|(k, v)| (k.as_str(), v.as_ref())).collect();
    let mut env = BTreeMap::new();
    for ins in &stage.instructions {
        match ins.keyword.as_str() {
            "ARG" => {
                let (name, default) = match ins.args.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(unquote(d))),
                    None => (ins.args.clone(), globals.get(ins.args.as_str()).copied().flatten().cloned()),
                };
                if let Some(v) = overrides.get(&name).cloned().or(default) {
                    env.insert(name, v);
                }
            }
            "ENV" => {
                for pair in ins.args.split_whitespace() {
                    if let Some((k, v)) = pair.split_once('=') {
                        env.insert(k.to_string(), unquote(v));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(env)
}

/// Runs the build stage's RUN commands in the workspace root, as `/bin/sh -c` does in the image.
fn run_build_steps(file: &Dockerfile, build: &Stage, options: &CheckOptions) -> anyhow::Result<()> {
    let env = build_env(file, build, options)?;
    for ins in build.instructions.iter().filter(|i| i.keyword == "RUN") {
        let command = run_command(&ins.args);
        eprintln!("Dockerfile line {}: RUN {command}", ins.line);
        let status = Command::new("/bin/sh")
            .args(["-c", &command])
            .envs(&env)
            .current_dir(root())
            .status()
            .map_err(|e| anyhow::anyhow!("RUN {command}: {e}"))?;
        anyhow::ensure!(status.success(), "Dockerfile line {}: RUN {command} failed with {status}", ins.line);
    }
    Ok(())
}

/// The files a path in the image maps to on the host, given the build stage's WORKDIR and
/// the runtime stages' `COPY --from` lines: `/etc/xjp/demo.toml` -> target/dist/etc/xjp/demo.toml.
pub fn host_path(file: &Dockerfile, workdir: &str, image_path: &str) -> Option<PathBuf> {
    for stage in &file.stages {
        for ins in stage.instructions.iter().filter(|i| i.keyword == "COPY") {
            let Ok(copy) = copy_of(&ins.args) else { continue };
            let (Some(_), [src]) = (&copy.from, copy.sources.as_slice()) else { continue };
            let dest = copy.dest.trim_end_matches('/');
            let rest = if image_path == dest { Some("") } else { image_path.strip_prefix(&format!("{dest}/")) };
            if let (Some(rest), Some(rel)) = (rest, src.strip_prefix(&format!("{workdir}/"))) {
                let base = root().join(rel);
                return Some(if rest.is_empty() { base } else { base.join(rest) });
            }
        }
    }
    None
}

/// A path relative to the workspace, for messages.
pub fn shown(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_continuations_comments_and_copies() {
        let text = "# syntax=docker/dockerfile:1\nARG P=release\nFROM rust:1.95 AS build\nARG P\nRUN a \\\n  # note\n  && b\nCOPY --from=build --chown=1:1 /src/x /y\n";
        let f = parse(text).unwrap();
        assert_eq!(f.global_args, vec![("P".to_string(), Some("release".to_string()))]);
        let ins = &f.stages[0].instructions;
        assert_eq!(ins[1].args, "a && b");
        let c = copy_of(&ins[2].args).unwrap();
        assert_eq!(c, Copy { from: Some("build".into()), sources: vec!["/src/x".into()], dest: "/y".into() });
        let env = build_env(&f, &f.stages[0], &CheckOptions::default()).unwrap();
        assert_eq!(env.get("P").map(String::as_str), Some("release"));
        let opts = CheckOptions { build_args: vec!["P=dev".into()], no_run: true };
        assert_eq!(build_env(&f, &f.stages[0], &opts).unwrap().get("P").map(String::as_str), Some("dev"));
    }

    #[test]
    fn ignore_patterns() {
        let p = vec!["target".to_string(), "*.swp".to_string(), "docs/adr".to_string()];
        assert!(ignored(&p, "target") && ignored(&p, "target/debug/x"));
        assert!(ignored(&p, "a.swp") && ignored(&p, "docs/adr/0001.md"));
        assert!(!ignored(&p, "config/gateway.toml") && !ignored(&p, "docs/config.md"));
    }
}
