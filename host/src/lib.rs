//! xjp-gateway: an LLM billing gateway. A hyper proxy in front of LLM providers whose
//! billing logic (usage extraction, pricing, budget) lives in WebAssembly plugins.
//!
//! `main.rs` is a thin CLI over this library; tests drive it in-process.

pub mod admin;
pub mod api;
pub mod billing;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod db;
pub mod gateway;
pub mod ledger;
pub mod ops;
pub mod plugins;
pub mod prices;
pub mod proxy;
pub mod reports;
pub mod server;
