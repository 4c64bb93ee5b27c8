//! `[billing] enabled = false` (benchmarks only): a request is authenticated, routed and
//! served, but nothing is held, recorded or debited; with billing on the same request is.

use crate::common;

use common::harness::{Options, TestGateway};
use common::money::{CHAT, books, rows_for, settlement, wait_rows};
use common::scenarios::mock;
use std::time::Duration;

async fn send(gw: &TestGateway, id: &str, key: &str) -> u16 {
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str()), ("x-request-id", id), ("content-type", "application/json")];
    common::http::send("POST", &format!("{}/v1/chat/completions", gw.url), &h, CHAT.to_string()).await.status
}

#[tokio::test]
async fn billing_off_serves_without_a_row_or_a_debit() {
    let mock = mock().await;
    let options = Options { billing_toml: "enabled = false".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let before = gw.gw.billing.balances.live(gw.tenant).await.ok();

    assert_eq!(send(&gw, "off-1", &gw.key).await, 200);
    let stream = CHAT.replacen("\"max_tokens\"", "\"stream\":true,\"max_tokens\"", 1);
    let auth = format!("Bearer {}", gw.key);
    let h = [("authorization", auth.as_str()), ("x-request-id", "off-2"), ("content-type", "application/json")];
    let r = common::http::send("POST", &format!("{}/v1/chat/completions", gw.url), &h, stream).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("data: [DONE]"), "the stream is relayed");
    // Still authenticated: a wrong key is refused.
    assert_eq!(send(&gw, "off-3", "XJP_not-a-key-at-all-0000000000000000000").await, 401);

    // Longer than the rollup and the ledger's batch window.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b = books(&gw.gw.db, gw.tenant).await;
    assert_eq!((b.rows, b.cost_nano), (0, 0), "no transaction row");
    assert!(rows_for(&gw.gw.db, "off-1").await.is_empty());
    for id in ["off-1", "off-2"] {
        assert_eq!(settlement(gw.tenant, id).await, (None, false), "{id}: nothing held or settled in Redis");
    }
    let after = gw.gw.billing.balances.live(gw.tenant).await.ok();
    if let (Some(before), Some(after)) = (before, after) {
        assert_eq!(after.available_nano, before.available_nano, "no debit");
        assert_eq!(after.held_nano, 0);
    }
}

#[tokio::test]
async fn billing_on_still_records_and_debits() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    assert_eq!(send(&gw, "on-1", &gw.key).await, 200);
    let b = wait_rows(&gw.gw.db, gw.tenant, 1, Duration::from_secs(15)).await;
    assert!(b.cost_nano > 0, "the row has a cost: {b:?}");
    common::money::assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    let (state, held) = settlement(gw.tenant, "on-1").await;
    assert_eq!(state, Some(format!("settled:{}", b.cost_nano)));
    assert!(!held);
}
