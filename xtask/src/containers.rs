//! `cargo xtask check-dockerfile`: the container files checked together, the Dockerfile's
//! build steps first, then compose.yaml against what they built.

use crate::{compose, dockerfile};

/// Checks the Dockerfile and compose.yaml; fails listing every problem found.
pub fn check(options: &dockerfile::CheckOptions) -> anyhow::Result<()> {
    let checked = dockerfile::check(options)?;
    let mut problems = checked.problems;
    problems.extend(compose::check(&checked.file, &checked.workdir, !options.no_run)?);
    if !problems.is_empty() {
        anyhow::bail!("Dockerfile / compose.yaml:\n  - {}", problems.join("\n  - "));
    }
    eprintln!("Dockerfile and compose.yaml: ok{}", if options.no_run { " (build steps not run)" } else { "" });
    Ok(())
}
