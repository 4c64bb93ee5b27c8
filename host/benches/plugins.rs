//! Plugin cost: extract + price and stream parsing, wasm (pooled and fresh instances) vs native.

#[path = "support/plugin_inputs.rs"]
mod plugin_inputs;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plugin_inputs::*;
use std::hint::black_box;
use xjp_gateway::plugins::bindings::ApiFormat;
use xjp_gateway::plugins::{PluginStream, RuntimeLimits};
use xjp_plugin_openai::OpenAi;
use xjp_plugin_sdk::{Provider, StreamParse};

fn plugins(c: &mut Criterion) {
    let pooled = load(RuntimeLimits::default());
    let fresh = load(RuntimeLimits { idle_per_plugin: 0, ..Default::default() });
    let body = response_2k();
    let events = sse_events();
    let (host_price, sdk_price) = (host_price(), sdk_price());
    let native = native_extract_price(&body, &sdk_price);
    assert_eq!(wasm_extract_price(&pooled, &body, &host_price), native, "wasm and native disagree on the cost");
    assert_eq!(wasm_extract_then_price(&pooled, &body, &host_price), native, "two calls disagree with one");

    let mut group = c.benchmark_group("plugins");
    group.bench_function("extract_price/wasm_reused", |b| {
        b.iter(|| wasm_extract_price(&pooled, black_box(&body), black_box(&host_price)))
    });
    group.bench_function("extract_price/wasm_two_calls", |b| {
        b.iter(|| wasm_extract_then_price(&pooled, black_box(&body), black_box(&host_price)))
    });
    // The proxy's path (`price_response_async`): below `offload_bytes` the call runs on the
    // calling task; above it, on tokio's blocking pool. Both measured on a runtime like the
    // gateway's, with the same 2 KB body (the second plugin offloads everything).
    let offloading = load(RuntimeLimits { offload_bytes: 0, ..Default::default() });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let async_call = |plugin: &std::sync::Arc<xjp_gateway::plugins::Plugin>| {
        let priced =
            rt.block_on(plugin.price_response_async(ApiFormat::OpenaiChat, 200, black_box(&body), &host_price));
        priced.unwrap().unwrap().cost.unwrap().total
    };
    assert_eq!(async_call(&offloading), native);
    group.bench_function("extract_price/wasm_async_inline", |b| b.iter(|| async_call(&pooled)));
    group.bench_function("extract_price/wasm_async_blocking_pool", |b| b.iter(|| async_call(&offloading)));
    group.bench_function("extract_price/native", |b| {
        b.iter(|| native_extract_price(black_box(&body), black_box(&sdk_price)))
    });
    group.bench_function("extract/wasm_reused", |b| {
        b.iter(|| pooled.extract_response(ApiFormat::OpenaiChat, 200, black_box(&body)).unwrap())
    });
    group.bench_function("extract/wasm_fresh_instance", |b| {
        b.iter(|| fresh.extract_response(ApiFormat::OpenaiChat, 200, black_box(&body)).unwrap())
    });

    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("stream_chunk/wasm", |b| {
        b.iter(|| {
            let mut stream = PluginStream::open(pooled.clone(), ApiFormat::OpenaiChat).unwrap();
            for event in &events {
                stream.push(black_box(event)).unwrap();
            }
            stream.finish().unwrap()
        })
    });
    group.bench_function("stream_chunk/native", |b| {
        b.iter(|| {
            let mut stream = OpenAi::new_stream(xjp_plugin_sdk::ApiFormat::OpenaiChat);
            for event in &events {
                stream.push(black_box(event)).unwrap();
            }
            stream.finish().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, plugins);
criterion_main!(benches);
