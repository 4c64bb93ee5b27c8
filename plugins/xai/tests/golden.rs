//! Golden cases: every recorded response in `../../fixtures/xai` against its `.case.json`,
//! whole, and for streams split at every byte boundary.

use xjp_plugin_sdk::testing::run_golden;
use xjp_plugin_xai::Xai;

#[test]
fn golden_cases() {
    let n = run_golden::<Xai>(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/xai"));
    assert!(n >= 3, "only {n} golden cases ran");
}
