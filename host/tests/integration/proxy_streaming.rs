//! Streams are relayed chunk by chunk, never buffered.

use crate::common;

use common::harness::TestGateway;
use common::http::post;
use common::scenarios::{mock, pair_for};
use std::time::Duration;

#[tokio::test]
async fn chunks_sent_100ms_apart_arrive_about_100ms_apart() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair_for("gpt-4o-mini-2024-07-18").with_chunk_interval(Duration::from_millis(100)),
    );
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let r = post(&format!("{}/v1/chat/completions", gw.url), &gw.key, body).await;
    assert_eq!(r.status, 200);
    assert!(r.frames.len() >= 5, "one frame per upstream chunk, got {}", r.frames.len());
    let gaps: Vec<Duration> = r.frames.windows(2).map(|w| w[1].0 - w[0].0).collect();
    // Each frame arrives when the provider sends it: gaps near 100 ms, none collapsed to ~0
    // (which buffering would cause) and the total spread matches the provider's pacing.
    let near = gaps.iter().filter(|g| **g >= Duration::from_millis(60) && **g <= Duration::from_millis(250)).count();
    assert!(near * 10 >= gaps.len() * 8, "gaps: {gaps:?}");
    let spread = r.frames.last().unwrap().0 - r.frames[0].0;
    assert!(spread >= Duration::from_millis(90 * gaps.len() as u64), "spread {spread:?} for {} gaps", gaps.len());
}
