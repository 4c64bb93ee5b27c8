//! Golden cases: every recorded response and stream in `fixtures/openai`.

use xjp_plugin_openai::OpenAi;
use xjp_plugin_sdk::testing::run_golden;

#[test]
fn golden_cases() {
    let n = run_golden::<OpenAi>(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/openai"));
    assert!(n >= 16, "only {n} golden cases ran");
}
