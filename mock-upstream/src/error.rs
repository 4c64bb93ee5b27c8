//! Typed errors of the mock: starting the server, loading scenarios, replaying streams.

use std::path::PathBuf;

/// The mock server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bound address could not be read back.
    #[error("cannot read the bound address: {0}")]
    LocalAddr(std::io::Error),
}

/// A scenario, fixture or scenario file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `<name>.case.json` fixture description is not valid.
    #[error("invalid fixture description {path}: {source}")]
    Case {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A scenario file is not valid JSON of the expected shape.
    #[error("invalid scenario file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// An entry of a scenario file is not valid.
    #[error("scenario {index} (model {model:?}): {reason}")]
    Invalid {
        /// Position of the entry in the `scenarios` list.
        index: usize,
        /// The entry's model.
        model: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a replayed stream ended without finishing; hyper aborts the response on it.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The scenario cuts the stream here.
    #[error("scenario cut the stream after {0} chunks")]
    Cut(usize),
    /// The mock is shutting down.
    #[error("mock upstream shutting down")]
    Shutdown,
}
