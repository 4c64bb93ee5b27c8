//! Plugin errors, classified by what went wrong (load vs call, and which limit).

use super::bindings::PluginError;

/// Why a plugin file could not be loaded. The previous version, if any, keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("not a valid wasm component: {0}")]
    Compile(String),
    #[error("component does not implement the xjp:billing/billing-plugin@0.1.0 world: {0}")]
    WrongWorld(String),
    #[error("self-test failed: {0}")]
    SelfTest(String),
}

/// Why a call into a plugin failed. The instance that failed is discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginCallError {
    /// The plugin returned its own typed error.
    #[error("plugin error: {0:?}")]
    Plugin(PluginError),
    /// The plugin trapped (a panic, `unreachable`, a bad memory access, a denied import).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its time budget (epoch deadline).
    #[error("plugin exceeded its time budget of {0} ms")]
    Timeout(u64),
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin exceeded its memory cap of {0} bytes")]
    OutOfMemory(usize),
    /// No instance could be created (for example the instance pool is exhausted).
    #[error("plugin instance unavailable: {0}")]
    Unavailable(String),
}

impl PluginCallError {
    /// A short stable class name for metrics and the ledger (`trap`, `timeout`, ...).
    pub fn class(&self) -> &'static str {
        match self {
            PluginCallError::Plugin(_) => "plugin_error",
            PluginCallError::Trap(_) => "trap",
            PluginCallError::Timeout(_) => "timeout",
            PluginCallError::OutOfMemory(_) => "out_of_memory",
            PluginCallError::Unavailable(_) => "unavailable",
        }
    }
}
