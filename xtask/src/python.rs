//! The Python venv with the official OpenAI and Anthropic SDKs (for the SDK test).

use crate::{root, run};
use std::process::Command;

/// Creates target/pyenv and installs `openai` and `anthropic` from PyPI when missing.
pub fn ensure_sdks() -> anyhow::Result<()> {
    let venv = root().join("target/pyenv");
    let python = venv.join("bin/python");
    let ready =
        Command::new(&python).args(["-c", "import openai, anthropic"]).output().is_ok_and(|o| o.status.success());
    if ready {
        return Ok(());
    }
    eprintln!("creating {} with the openai and anthropic SDKs", venv.display());
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "openai",
        "anthropic",
    ]))
}
