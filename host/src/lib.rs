//! xjp-gateway: an LLM billing gateway. A hyper proxy in front of LLM providers whose
//! billing logic (usage extraction, pricing, budget) lives in WebAssembly plugins.
//!
//! `main.rs` is a thin CLI over this library; tests drive it in-process.

pub mod cli;
pub mod plugins;
