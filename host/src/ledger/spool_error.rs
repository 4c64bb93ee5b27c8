//! What can go wrong with the spool, and the I/O error wrapper that names the file.

use std::path::{Path, PathBuf};

/// Spool errors (disk full, permissions): the writer keeps retrying and reports them.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool record is not a transaction: {0}")]
    Decode(String),
    #[error("spool record of {0} bytes is larger than a frame")]
    TooLarge(usize),
    #[error(
        "spool directory {dir} is in use by another process ({holder}); each gateway needs a \
         spool directory of its own (billing.spool_dir / server.state_dir)"
    )]
    Locked { dir: PathBuf, holder: String },
}

/// Wraps an I/O error with the file it happened to.
pub(super) fn io(path: &Path) -> impl Fn(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}
