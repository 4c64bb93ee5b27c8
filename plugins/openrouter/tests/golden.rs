//! Golden cases: every recorded response and stream in `fixtures/openrouter`.

use xjp_plugin_openrouter::OpenRouter;
use xjp_plugin_sdk::testing::run_golden;

#[test]
fn golden_cases() {
    let n = run_golden::<OpenRouter>(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/openrouter"));
    assert!(n >= 14, "only {n} golden cases ran");
}
