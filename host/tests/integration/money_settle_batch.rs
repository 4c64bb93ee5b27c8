//! Settlements are batched into one Redis call per tenant (`billing::settle_batch`): many at
//! once take a few calls, and each one still settles exactly once and to the nano-USD, for
//! several tenants in the same batches, with repeats and releases among them. A request's
//! state is kept a week when the client chose its id and an hour when the gateway made it.

use crate::common;

use super::ledger_robustness::database;
use common::harness::TestDb;
use common::services::PrivateRedis;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use xjp_gateway::billing::{Balances, IdOrigin, KeySpace, Reservation, Settlement};
use xjp_gateway::db::RedisTarget;
use xjp_gateway::db::credits::{self, CreditKind};
use xjp_gateway::ledger::PendingDebits;

const CREDIT: i64 = 1_000_000_000;
const HOLD: i64 = 5_000_000;

/// `settle.lua` calls the server has run (EVALSHA and EVAL), from `INFO commandstats`.
fn script_calls(redis: &PrivateRedis) -> u64 {
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut conn).unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_settlements_take_few_calls_and_each_settles_once() {
    let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
    let db = TestDb::create().await;
    let (pool, first, _) = database(&db.url).await;
    let second = xjp_gateway::db::tenants::create(&pool, "second").await.unwrap().id;
    for tenant in [first, second] {
        credits::insert(&pool, tenant, "start", CreditKind::TopUp, CREDIT, None).await.unwrap();
    }
    let target = RedisTarget::single(&redis.url(), None, None).unwrap();
    let pending = Arc::new(PendingDebits::default());
    let balances = Balances::new(target, KeySpace::new("batch"), pool.clone(), pending, Duration::from_secs(60));

    // 150 holds per tenant; request i costs i nano-USD, every 10th is released (cost 0);
    // every third id is the client's, the others the gateway's.
    let origin = |i: usize| if i.is_multiple_of(3) { IdOrigin::Client } else { IdOrigin::Gateway };
    let ids: Vec<(Uuid, String, i64, IdOrigin)> = (0..300)
        .map(|i| {
            let tenant = if i % 2 == 0 { first } else { second };
            let cost = if i % 10 == 0 { 0 } else { i as i64 };
            (tenant, format!("req-{i}"), cost, origin(i))
        })
        .collect();
    for (tenant, id, _, origin) in &ids {
        let reserved = balances.reserve(*tenant, id, *origin, HOLD).await.unwrap();
        assert!(matches!(reserved, Reservation::Reserved { .. }), "{reserved:?}");
    }
    // A reserve sent again (a client library resending after a dropped connection) holds once.
    let (tenant, id, _, origin) = &ids[1];
    assert_eq!(*origin, IdOrigin::Gateway);
    let again = balances.reserve(*tenant, id, *origin, HOLD).await.unwrap();
    assert!(matches!(again, Reservation::Reserved { .. }), "{again:?}");
    let held = balances.live(first).await.unwrap().held_nano + balances.live(second).await.unwrap().held_nano;
    assert_eq!(held, 300 * HOLD, "a resent reserve held twice");
    let before = script_calls(&redis);
    let settles = ids.iter().map(|(tenant, id, cost, origin)| {
        let label = if *cost > 0 { "settled" } else { "released" };
        balances.settle(*tenant, id, *origin, *cost, label, false)
    });
    let settled = futures_util::future::join_all(settles).await;
    let calls = script_calls(&redis) - before;
    assert!(settled.iter().all(|s| matches!(s, Ok(Settlement::Settled { .. }))), "{settled:?}");
    assert!(calls <= 20, "300 settlements took {calls} script calls: they were not batched");

    for tenant in [first, second] {
        let spent: i64 = ids.iter().filter(|(t, ..)| *t == tenant).map(|(_, _, c, _)| c).sum();
        let live = balances.live(tenant).await.unwrap();
        assert_eq!((live.available_nano, live.held_nano), (CREDIT - spent, 0), "tenant {tenant}");
    }
    // Each request's state says what happened to it, and a second settlement changes nothing.
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    for (tenant, id, cost, origin) in ids.iter().step_by(7) {
        let key = balances.keys().request(*tenant, id);
        let state: String = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
        let label = if *cost > 0 { "settled" } else { "released" };
        assert_eq!(state, format!("{label}:{cost}"));
        let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut conn).await.unwrap();
        match origin {
            IdOrigin::Client => assert!(ttl > 6 * 24 * 3600, "{id}: a client's id is kept a week, not {ttl} s"),
            IdOrigin::Gateway => {
                assert!((3000..=3600).contains(&ttl), "{id}: a gateway id is kept an hour, not {ttl} s")
            }
        }
        let again = balances.settle(*tenant, id, *origin, cost + 1_000, "settled", false).await.unwrap();
        assert_eq!(again, Settlement::AlreadySettled);
        if *origin == IdOrigin::Client {
            let reused = balances.reserve(*tenant, id, *origin, HOLD).await.unwrap();
            assert_eq!(reused, Reservation::AlreadyDone, "{id}: a client's finished id is refused");
        }
    }
    for tenant in [first, second] {
        let spent: i64 = ids.iter().filter(|(t, ..)| *t == tenant).map(|(_, _, c, _)| c).sum();
        assert_eq!(balances.live(tenant).await.unwrap().available_nano, CREDIT - spent, "repeats debit nothing");
    }
}
