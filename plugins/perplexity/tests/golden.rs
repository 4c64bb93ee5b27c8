//! Golden cases: every recorded response in `../../fixtures/perplexity` against its `.case.json`,
//! whole, and for streams split at every byte boundary.

use xjp_plugin_perplexity::Perplexity;
use xjp_plugin_sdk::testing::run_golden;

#[test]
fn golden_cases() {
    let n = run_golden::<Perplexity>(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/perplexity"));
    assert!(n >= 3, "only {n} golden cases ran");
}
