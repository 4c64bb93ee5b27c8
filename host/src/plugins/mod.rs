//! The wasm plugin runtime: one engine, a pool of ready instances per plugin, hot reload.
//!
//! Walk it in this order: [`bindings`] (the one `bindgen!`), [`engine`] (limits and the
//! epoch ticker), [`cache`] (precompiled components by content hash), [`plugin`] (a loaded
//! plugin and its instance pool), [`stream`] (a stream parser leased from the pool),
//! [`registry`] (the atomically swapped plugin set) and [`watch`] (reload on file change).

pub mod bindings;
pub mod cache;
mod cache_secret;
pub mod convert;
pub mod engine;
pub mod error;
pub mod plugin;
pub mod registry;
pub mod stream;
mod ticker;
pub mod watch;

pub use bindings::ApiFormat;
pub use engine::{PluginEngine, RuntimeLimits};
pub use error::{LoadError, PluginCallError};
pub use plugin::Plugin;
pub use registry::{PluginRegistry, PluginSet, PluginStatus};
pub use stream::PluginStream;
