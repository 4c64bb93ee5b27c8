//! Redis flushed while two gateways each hold a lease of the same account: neither gateway's
//! rebuild knows the other's lease, which each finds gone at its next round (ADR 0002,
//! "Flushed Redis"), nor the other's debits whose rows were still on their way to Postgres,
//! which that gateway applies once they commit (`billing::recount`). Requests are served
//! throughout, every answer is billed once, no hold is left behind, and the account the
//! gateways leave agrees with the ledger to the nano-USD.

use crate::common;
use crate::money_leases::{burst, fund, leased, two_leasing_gateways};

use common::harness::Options;
use common::money::{assert_books_balance, wait_rows};
use common::scenarios::{mock, pair_for};
use common::services::PrivateRedis;
use redis::aio::MultiplexedConnection as Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MODEL: &str = "gpt-4o-mini-2024-07-18";

/// How many gateways hold a lease of `tenant` in Redis now.
async fn leases_held(conn: &mut Connection, tenant: uuid::Uuid) -> usize {
    let holds = common::harness::keys().tenant(tenant).holds;
    let ids: Vec<String> = redis::cmd("HKEYS").arg(holds).query_async(conn).await.unwrap();
    ids.iter().filter(|id| id.starts_with("lease ")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flush_under_two_leasing_gateways_bills_every_answer_once_and_the_books_balance() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_first_byte_delay(Duration::from_millis(20)));
    let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
    let options = Options { sweep_interval_ms: 200, redis_url: Some(redis.url()), ..leased() };
    let (gw, procs, _db) = two_leasing_gateways(&mock, &options).await;
    // Ample: the test is about what a flush does to the books, not about running out.
    fund(&gw, 5_000).await;
    let urls: Vec<String> = procs.iter().map(|p| p.url.clone()).collect();
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();

    // Bursts at both gateways, alternating, until the flusher is done.
    let done = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (urls, key, done) = (urls.clone(), gw.key.clone(), done.clone());
        async move {
            let (mut statuses, mut i) = (Vec::new(), 0);
            while !done.load(Ordering::SeqCst) {
                statuses.extend(burst(&urls[i % 2], &key, 16).await);
                i += 1;
            }
            statuses
        }
    });
    // Three flushes, each while both gateways hold a lease.
    let mut flushed_with_two = 0;
    for _ in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while leases_held(&mut conn, gw.tenant).await < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        flushed_with_two += usize::from(leases_held(&mut conn, gw.tenant).await == 2);
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    done.store(true, Ordering::SeqCst);
    let statuses = load.await.unwrap();
    assert!(flushed_with_two >= 2, "only {flushed_with_two} of 3 flushes found both gateways leasing");
    assert!(statuses.iter().all(|s| *s == 200), "a funded tenant was refused: {statuses:?}");

    // Stopping gives the leases back and drains the spools.
    for p in procs {
        p.stop().await;
    }
    let served = statuses.len() as i64;
    let b = wait_rows(&gw.gw.db, gw.tenant, served, Duration::from_secs(20)).await;
    assert_eq!((b.rows, b.served), (served, served), "one row per answer");
    assert_eq!(leases_held(&mut conn, gw.tenant).await, 0, "every lease was given back or dropped");
    // The account as the gateways left it: loaded, and equal to the ledger.
    let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
    assert!(live.loaded, "the last requests left the account loaded: {live:?}");
    let drift = live.available_nano - (b.credits_nano - b.cost_nano);
    eprintln!("drift {drift} nano-USD ({:.1} requests)", drift as f64 / (b.cost_nano / served) as f64);
    assert_eq!((drift, live.held_nano), (0, 0), "the live balance is off the ledger: {live:?} {b:?}");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// `recount.lua` on its own: committed debits are applied only when the account's rebuild
/// missed them (another gateway's, from a snapshot that did not see the commit, and settled
/// under an earlier epoch), once however often the check is sent; a commit with rows
/// recorded earlier marks the account; for an account not loaded the commit goes on its
/// must-see list, and `load.lua` refuses a snapshot that misses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recount_applies_only_what_the_rebuild_missed() {
    let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
    let mut conn: Connection =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let recount = redis::Script::new(xjp_gateway::billing::recount::RECOUNT_LUA);
    let (account, marker) = ("{t}:account", "{t}:recount:me:");
    let shared = conn.clone();
    let set = |fields: Vec<(&'static str, String)>| {
        let mut conn = shared.clone();
        async move {
            let _: () = redis::cmd("DEL").arg(account).query_async(&mut conn).await.unwrap();
            let _: () = redis::cmd("HSET").arg(account).arg(fields).query_async(&mut conn).await.unwrap();
        }
    };
    let field = |name: &'static str| {
        let mut conn = shared.clone();
        async move { redis::cmd("HGET").arg(account).arg(name).query_async::<Option<String>>(&mut conn).await.unwrap() }
    };
    // (transaction, all rows new, (epoch, cost) pairs), as gateway "me".
    let call = |xid: &str, all_new: bool, debits: &[(&str, i64)]| {
        let mut invocation = recount.key(account);
        invocation.key(format!("{marker}{xid}")).arg("me").arg(xid).arg(u8::from(all_new));
        for (epoch, cost) in debits {
            invocation.arg(*epoch).arg(*cost);
        }
        invocation
    };
    let rebuilt_by = |who: &str| {
        vec![
            ("loaded", "1".to_string()),
            ("available", "10000".to_string()),
            ("gen", "4".to_string()),
            ("epoch", format!("{who}@1700000000.5")),
            ("epoch-snapshot", "100:105:102,104".to_string()),
        ]
    };
    let old = [("old@1.1", 500), ("other@1700000000.5", 300)];

    set(rebuilt_by("other")).await;
    for (xid, seen) in [("99", true), ("103", true), ("102", false), ("104", false), ("105", false), ("9000", false)] {
        let _: () = redis::cmd("HSET").arg(account).arg("available").arg(10_000).query_async(&mut conn).await.unwrap();
        let debited: i64 = call(xid, true, &old).invoke_async(&mut conn).await.unwrap();
        let expected = if seen { 0 } else { 500 };
        assert_eq!(debited, expected, "transaction {xid}: seen by the rebuild's snapshot: {seen}");
        let available = field("available").await.unwrap().parse::<i64>().unwrap();
        assert_eq!(available, 10_000 - expected, "only the debit settled before the rebuild is applied");
    }
    // Sent again (its answer was lost): not applied twice.
    let debited: i64 = call("102", true, &old).invoke_async(&mut conn).await.unwrap();
    assert_eq!(debited, 0, "a check sent again debits nothing");
    assert_eq!(field("available").await.as_deref(), Some("9500"));
    // Settled under the current epoch only: applied by the settlement already.
    let debited: i64 = call("9001", true, &old[1..]).invoke_async(&mut conn).await.unwrap();
    assert_eq!(debited, 0);
    // Rebuilt by this gateway: its unrecorded debits were subtracted by the rebuild.
    set(rebuilt_by("me")).await;
    let debited: i64 = call("9002", true, &old).invoke_async(&mut conn).await.unwrap();
    assert_eq!(debited, 0);
    assert_eq!(field("available").await.as_deref(), Some("10000"));
    // Some rows were recorded earlier (maybe seen): the account is marked instead.
    set(rebuilt_by("other")).await;
    let debited: i64 = call("9003", false, &old).invoke_async(&mut conn).await.unwrap();
    assert_eq!(debited, -1);
    assert_eq!((field("loaded").await.as_deref(), field("gen").await.as_deref()), (Some("0"), Some("5")));
    assert_eq!(field("epoch").await, None, "a mark forgets whose rebuild it was");
    assert_eq!(field("available").await.as_deref(), Some("10000"));
    // Not loaded (a rebuild may be reading Postgres from before the commit): the transaction
    // goes on the account's must-see list, once…
    for xid in ["9004", "9004", "9005"] {
        let answer: i64 = call(xid, true, &old).invoke_async(&mut conn).await.unwrap();
        assert_eq!(answer, -2);
    }
    assert_eq!(field("must-see").await.as_deref(), Some("9004 9005"));
    assert_eq!((field("gen").await.as_deref(), field("available").await.as_deref()), (Some("5"), Some("10000")));
    // …and a load from a snapshot that misses one of them is refused; one that sees them all
    // loads (from Postgres, which counts the rows) and clears the list.
    let load = redis::Script::new(xjp_gateway::billing::balance::LOAD_LUA);
    let load_from = |snapshot: &'static str| {
        let mut invocation = load.key(account);
        invocation.key("{t}:holds").key("{t}:expiry").arg(7_000).arg(60).arg("5").arg(60_000).arg(0).arg("other");
        invocation.arg(snapshot);
        invocation
    };
    for stale in ["9000:9005:", "9000:9010:9004,9007", "9000:9010:9005"] {
        let answer: i64 = load_from(stale).invoke_async(&mut conn).await.unwrap();
        assert_eq!(answer, -1, "a snapshot {stale} misses a commit on the list");
    }
    let answer: i64 = load_from("9003:9010:9003,9007").invoke_async(&mut conn).await.unwrap();
    assert_eq!(answer, 1);
    assert_eq!(field("must-see").await, None);
    assert_eq!((field("loaded").await.as_deref(), field("available").await.as_deref()), (Some("1"), Some("7000")));
}
