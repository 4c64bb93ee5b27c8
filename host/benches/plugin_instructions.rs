//! Instructions per plugin call, counted by valgrind (callgrind): a figure that does not
//! move with the load of a shared machine, next to the criterion times of `plugins`.
//!
//! `cargo bench -p xjp-gateway --bench plugin_instructions` runs itself under valgrind
//! twice per operation (with `LOW` and `HIGH` iterations) and reports the difference
//! divided by the extra iterations, so set-up (engine, compile, instantiate) cancels out.

#[path = "support/plugin_inputs.rs"]
mod plugin_inputs;

use plugin_inputs::*;
use std::hint::black_box;
use std::process::Command;
use xjp_gateway::plugins::bindings::ApiFormat;
use xjp_gateway::plugins::{PluginStream, RuntimeLimits};
use xjp_plugin_openai::OpenAi;
use xjp_plugin_sdk::{Provider, StreamParse};

const LOW: u64 = 200;
const HIGH: u64 = 1_200;

/// The operations measured, by name.
const OPS: [&str; 7] = [
    "extract_price/wasm",
    "extract_price/wasm_two_calls",
    "extract_price/native",
    "extract/wasm",
    "extract_tiny/wasm",
    "stream/wasm",
    "stream/native",
];

/// The smallest body with usage: what a call costs apart from parsing.
const TINY: &[u8] = br#"{"usage":{"prompt_tokens":1}}"#;

fn run(op: &str, iterations: u64) {
    // A small pool: valgrind cannot map the default pool's virtual reservation, and the
    // pool's size does not change the cost of a call.
    let plugin = load(RuntimeLimits { max_instances: 4, ..RuntimeLimits::default() });
    let body = response_2k();
    let events = sse_events();
    let (host_price, sdk_price) = (host_price(), sdk_price());
    for _ in 0..iterations {
        match op {
            "extract_price/wasm" => _ = black_box(wasm_extract_price(&plugin, black_box(&body), &host_price)),
            "extract_price/wasm_two_calls" => {
                _ = black_box(wasm_extract_then_price(&plugin, black_box(&body), &host_price))
            }
            "extract_price/native" => _ = black_box(native_extract_price(black_box(&body), &sdk_price)),
            "extract/wasm" => _ = black_box(plugin.extract_response(ApiFormat::OpenaiChat, 200, &body).unwrap()),
            "extract_tiny/wasm" => _ = black_box(plugin.extract_response(ApiFormat::OpenaiChat, 200, TINY).unwrap()),
            "stream/wasm" => {
                let mut stream = PluginStream::open(plugin.clone(), ApiFormat::OpenaiChat).unwrap();
                for event in &events {
                    stream.push(black_box(event)).unwrap();
                }
                _ = black_box(stream.finish().unwrap());
            }
            "stream/native" => {
                let mut stream = OpenAi::new_stream(xjp_plugin_sdk::ApiFormat::OpenaiChat);
                for event in &events {
                    stream.push(black_box(event)).unwrap();
                }
                _ = black_box(stream.finish().unwrap());
            }
            other => panic!("unknown operation `{other}`; one of {OPS:?}"),
        }
    }
}

/// Instructions the child run of `op` with `iterations` executed, as callgrind counts them.
fn count(op: &str, iterations: u64) -> u64 {
    let me = std::env::current_exe().expect("own path");
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--smc-check=all-non-file", "--callgrind-out-file=/dev/null"])
        .arg(me)
        .args(["--child", op, &iterations.to_string()])
        .output()
        .expect("valgrind runs (apt-get install valgrind)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "valgrind run of {op} failed:\n{stderr}");
    let collected = stderr.lines().find_map(|l| l.split_once("Collected : ").map(|(_, n)| n.trim().to_string()));
    collected.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no `Collected` line:\n{stderr}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let [flag, op, n] = args.as_slice()
        && flag == "--child"
    {
        return run(op, n.parse().expect("iterations"));
    }
    let only: Vec<&str> =
        OPS.iter().copied().filter(|op| args.is_empty() || args.iter().any(|a| op.contains(a.as_str()))).collect();
    let events = sse_events().len() as u64;
    println!("instructions per call (callgrind, ({HIGH} - {LOW} iterations) difference):");
    for op in only {
        let per_call = (count(op, HIGH) - count(op, LOW)) / (HIGH - LOW);
        let per_chunk =
            if op.starts_with("stream") { format!("  ({} per chunk)", per_call / events) } else { String::new() };
        println!("  {op:<30} {per_call:>9}{per_chunk}");
    }
}
