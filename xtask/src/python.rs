//! The Python venv (target/pyenv): the official OpenAI and Anthropic SDKs (for the SDK
//! test) and openapi-spec-validator (for the OpenAPI document).

use crate::{root, run};
use std::process::Command;

/// PyPI packages the venv holds and a module each provides.
const PACKAGES: &[(&str, &str)] =
    &[("openai", "openai"), ("anthropic", "anthropic"), ("openapi-spec-validator", "openapi_spec_validator")];

/// Creates target/pyenv and installs the packages from PyPI when missing.
pub fn ensure_sdks() -> anyhow::Result<()> {
    let venv = root().join("target/pyenv");
    let python = venv.join("bin/python");
    let imports = format!("import {}", PACKAGES.iter().map(|(_, m)| *m).collect::<Vec<_>>().join(", "));
    let ready = Command::new(&python).args(["-c", &imports]).output().is_ok_and(|o| o.status.success());
    if ready {
        return Ok(());
    }
    eprintln!("setting up {} ({})", venv.display(), PACKAGES.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "));
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES.iter().map(|(p, _)| *p)))
}

/// Validates host/src/reports/openapi.json as an OpenAPI 3 document (openapi-spec-validator
/// reads its `openapi` version: 3.1 against the 3.1 schema, JSON Schema 2020-12 included).
pub fn check_openapi() -> anyhow::Result<()> {
    ensure_sdks()?;
    let doc = root().join("host/src/reports/openapi.json");
    run(Command::new(root().join("target/pyenv/bin/openapi-spec-validator")).arg(&doc))
}
