//! The live settings: a config and the routes compiled from it, swapped as one on reload,
//! and where secrets come from.

use super::{Config, RouteTable};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Config and the routes compiled from it; swapped as one on reload.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    pub routes: RouteTable,
}

impl Settings {
    /// Compiles routes, reading provider credentials through `env`.
    pub fn new(config: Config, env: &EnvLookup) -> Settings {
        let routes = RouteTable::build(&config, &|name| env(name));
        Settings { config, routes }
    }
}

/// The current settings, shared by every part that reads config at request time.
pub type LiveSettings = Arc<ArcSwap<Settings>>;

/// Where secrets come from: the process environment in production, a map in tests.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment.
pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok())
}
