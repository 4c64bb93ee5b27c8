//! Python venvs: target/pyenv with the official OpenAI and Anthropic SDKs (for the SDK
//! test), target/pyenv-openapi with openapi-spec-validator (for the OpenAPI document).

use crate::{root, run};
use std::process::Command;

/// A venv under target/ holding `packages` (PyPI name, a module it provides); created, or
/// completed, when an import fails.
fn ensure_venv(name: &str, packages: &[(&str, &str)]) -> anyhow::Result<std::path::PathBuf> {
    let venv = root().join("target").join(name);
    let python = venv.join("bin/python");
    let imports = format!("import {}", packages.iter().map(|(_, m)| *m).collect::<Vec<_>>().join(", "));
    let ready = Command::new(&python).args(["-c", &imports]).output().is_ok_and(|o| o.status.success());
    if ready {
        return Ok(venv);
    }
    eprintln!("setting up {} ({})", venv.display(), packages.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "));
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages.iter().map(|(p, _)| *p)))?;
    Ok(venv)
}

/// target/pyenv with `openai` and `anthropic` from PyPI.
pub fn ensure_sdks() -> anyhow::Result<()> {
    ensure_venv("pyenv", &[("openai", "openai"), ("anthropic", "anthropic")]).map(drop)
}

/// Validates host/src/reports/openapi.json as an OpenAPI 3 document with
/// openapi-spec-validator (target/pyenv-openapi), which reads its `openapi` version: 3.1
/// against the 3.1 schema, JSON Schema 2020-12 included.
pub fn check_openapi() -> anyhow::Result<()> {
    let venv = ensure_venv("pyenv-openapi", &[("openapi-spec-validator", "openapi_spec_validator")])?;
    let doc = root().join("host/src/reports/openapi.json");
    run(Command::new(venv.join("bin/openapi-spec-validator")).arg(&doc))
}
