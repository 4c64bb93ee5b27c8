//! The host's integration tests, one module per area, linked into one binary (each test
//! binary links wasmtime and the whole gateway, ~400 MB apiece: one binary instead of 18
//! saves most of the link time and disk). nextest still runs every test in its own process.

mod common;

mod admin_ops;
mod architecture;
mod billing_api;
mod billing_off;
mod config_docs;
mod edge_auth;
mod edge_fairness;
mod edge_http2;
mod edge_leaks;
mod edge_plugin_cache;
mod edge_server;
mod graceful_shutdown;
mod hostile_inputs;
mod ledger_backpressure;
mod ledger_lookups;
mod ledger_robustness;
mod ledger_segments;
mod money_concurrency;
mod money_disconnect;
mod money_endings;
mod money_holds;
mod money_idempotency;
mod money_lease_flush;
mod money_lease_stalls;
mod money_leases;
mod money_left_behind;
mod money_outages;
mod money_overdraft;
mod money_resync;
mod money_scripts;
mod money_settle_again;
mod money_settle_batch;
mod openapi;
mod ops_commands;
mod ops_runtime;
mod plugin_conformance;
mod plugin_faults;
mod plugin_footprint;
mod plugin_golden;
mod plugin_reload;
mod plugin_template;
mod price_catalog;
mod prices_import;
mod provider_bills;
mod proxy_allowlist;
mod proxy_credentials;
mod proxy_endpoints;
mod proxy_errors;
mod proxy_streaming;
mod redis_cluster;
mod sdk_clients;
mod tls_stores;
