//! 200 concurrent requests against a balance that covers exactly k of them: at most k are
//! admitted, the balance never goes below zero, and the books balance (sum of transaction
//! costs = debits = credits - final balance) — with one gateway and with two processes.

use crate::common;

use common::harness::{Options, TestDb, TestGateway};
use common::http::post;
use common::money::{CHAT, assert_books_balance, books, hold_for, wait_rows};
use common::process::GatewayProcess;
use common::scenarios::{mock, pair_for};
use std::time::Duration;

const REQUESTS: usize = 200;
const K: i64 = 37;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_k_of_200_are_admitted() {
    let mock = mock().await;
    // Every request is in flight at once: admission is decided before any settles.
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair_for("gpt-4o-mini-2024-07-18").with_first_byte_delay(Duration::from_millis(1500)),
    );
    let gw = TestGateway::start_with(&mock.base_url(), Options { initial_balance_nano: 0, ..Options::default() }).await;
    let hold = hold_for(&gw.gw, "gpt-4o-mini", &CHAT);
    assert!(hold > 0);
    let kind = xjp_gateway::db::credits::CreditKind::TopUp;
    xjp_gateway::db::credits::insert(&gw.gw.db, gw.tenant, "k-holds", kind, K * hold, None).await.unwrap();

    let url = format!("{}/v1/chat/completions", gw.url);
    let calls: Vec<_> = (0..REQUESTS)
        .map(|_| {
            tokio::spawn({
                let (url, key) = (url.clone(), gw.key.clone());
                async move { post(&url, &key, &CHAT).await.status }
            })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for c in calls {
        match c.await.unwrap() {
            200 => admitted += 1,
            402 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted + refused, REQUESTS);
    assert_eq!(admitted, K as usize, "exactly the k that fit were admitted");
    let b = wait_rows(&gw.gw.db, gw.tenant, REQUESTS as i64, Duration::from_secs(20)).await;
    assert_eq!(b.served, admitted as i64);
    assert!(b.cost_nano <= b.credits_nano, "spent more than credited: {b:?}");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateway_processes_share_the_balance() {
    let mock = mock().await;
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair_for("gpt-4o-mini-2024-07-18").with_first_byte_delay(Duration::from_millis(1500)),
    );
    // An in-process gateway only to compute the hold and own the tenant.
    let db = TestDb::create().await;
    let gw = TestGateway::start_with(
        &mock.base_url(),
        Options { database_url: Some(db.url.clone()), initial_balance_nano: 0, ..Options::default() },
    )
    .await;
    let hold = hold_for(&gw.gw, "gpt-4o-mini", &CHAT);
    let kind = xjp_gateway::db::credits::CreditKind::TopUp;
    xjp_gateway::db::credits::insert(&gw.gw.db, gw.tenant, "k-holds", kind, K * hold, None).await.unwrap();

    let mut procs = Vec::new();
    for _ in 0..2 {
        procs.push(GatewayProcess::start(&mock.base_url(), &db.url, &Options::default()).await);
    }
    let urls: Vec<String> = procs.iter().map(|p| p.url.clone()).collect();
    let calls: Vec<_> = (0..REQUESTS)
        .map(|i| {
            tokio::spawn({
                let (url, key) = (format!("{}/v1/chat/completions", urls[i % 2]), gw.key.clone());
                async move { post(&url, &key, &CHAT).await.status }
            })
        })
        .collect();
    let mut admitted = 0;
    for c in calls {
        match c.await.unwrap() {
            200 => admitted += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted, K, "exactly k admitted across both gateways");
    let b = wait_rows(&gw.gw.db, gw.tenant, REQUESTS as i64, Duration::from_secs(20)).await;
    assert_eq!(b.served, K);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    for p in procs {
        p.stop().await;
    }
    let final_books = books(&gw.gw.db, gw.tenant).await;
    assert_eq!(final_books.rows, REQUESTS as i64, "no row twice, none lost");
}
