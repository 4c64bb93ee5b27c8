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
        let epoch = state.strip_prefix(&format!("{label}:{cost}:")).unwrap_or_else(|| panic!("{state}"));
        assert!(epoch.contains('@'), "the state names the rebuild it was debited under: {state}");
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

/// `settle.lua` on its own: the requests of one lease in one call are debited together from
/// what the lease holds (the shortfall from `available`), exactly as one at a time would; a
/// request sent twice in the call is settled once; a lease Redis lost debits `available`
/// and says so; a request with its own hold settles beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lease_s_settlements_in_a_call_debit_as_one_at_a_time_would() {
    let (_redis, mut conn) = PrivateRedis::start_connected().await;
    let settle = redis::Script::new(xjp_gateway::billing::settle_batch::SETTLE_LUA);
    let (account, holds, expiry) = ("{t}:account", "{t}:holds", "{t}:expiry");
    let shared = conn.clone();
    let hset = move |key: &'static str, pairs: Vec<(&'static str, i64)>| {
        let mut conn = shared.clone();
        async move {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(key);
            for (field, value) in pairs {
                cmd.arg(field).arg(value);
            }
            let _: () = cmd.query_async(&mut conn).await.unwrap();
        }
    };
    // The lease holds 100 and its requests cost 30 + 50 + 40; `own` holds 70 of its own.
    hset(account, vec![("loaded", 1), ("available", 1_000), ("held", 170)]).await;
    let _: () = redis::cmd("HSET").arg(account).arg("epoch").arg("g@1").query_async(&mut conn).await.unwrap();
    hset(holds, vec![("lease g/1", 100), ("own", 70)]).await;
    let _: () = redis::cmd("ZADD").arg(expiry).arg(1).arg("own").query_async(&mut conn).await.unwrap();
    // (id, cost, lease)
    // (id, cost, lease); `label` is `+settled` for a resend.
    let call_as = |label: &'static str, requests: &[(&str, i64, &str)]| {
        let mut invocation = settle.key(account);
        invocation.key(holds).key(expiry);
        for (id, cost, lease) in requests {
            invocation.key(format!("{{t}}:req:{id}"));
            invocation.arg(*id).arg(*cost).arg(label).arg(600).arg(*lease);
        }
        invocation
    };
    let call = |requests: &[(&str, i64, &str)]| call_as("settled", requests);
    let requests = [
        ("a", 30, "lease g/1"),
        ("own", 60, ""),
        ("b", 50, "lease g/1"),
        ("a", 30, "lease g/1"),
        ("c", 40, "lease g/1"),
    ];
    let answer: Vec<redis::Value> = call(&requests).invoke_async(&mut conn).await.unwrap();
    let codes: Vec<i64> = answer[..10].iter().map(|v| redis::from_redis_value_ref(v).unwrap()).collect();
    // Own hold: 70 released, 60 debited (available 1 010); the lease: 100 from its hold, the
    // 20 it lacks from available (990). `a` again in the same call: already settled.
    assert_eq!(codes, vec![1, 990, 1, 1_010, 1, 990, 2, 1_010, 1, 990], "{answer:?}");
    let shared = conn.clone();
    let field = move |key: &'static str, name: &'static str| {
        let mut conn = shared.clone();
        async move { redis::cmd("HGET").arg(key).arg(name).query_async::<Option<i64>>(&mut conn).await.unwrap() }
    };
    assert_eq!(field(holds, "lease g/1").await, Some(0), "the lease gave all it held");
    assert_eq!(field(holds, "own").await, None);
    assert_eq!(field(account, "held").await, Some(0));
    assert_eq!(field(account, "available").await, Some(990), "1 000 + 10 the own hold left, - 20 the lease lacked");

    // The same call again settles nothing; a lease Redis no longer holds debits `available`.
    let again: Vec<redis::Value> = call(&requests).invoke_async(&mut conn).await.unwrap();
    let codes: Vec<i64> = again[..10].iter().step_by(2).map(|v| redis::from_redis_value_ref(v).unwrap()).collect();
    assert_eq!(codes, vec![2; 5]);
    let gone: Vec<redis::Value> =
        call(&[("d", 5, "lease g/2"), ("e", 7, "lease g/2")]).invoke_async(&mut conn).await.unwrap();
    let codes: Vec<i64> = gone[..4].iter().map(|v| redis::from_redis_value_ref(v).unwrap()).collect();
    assert_eq!(codes, vec![3, 978, 3, 978], "a lost lease: its requests debit available");
    assert_eq!(field(account, "held").await, Some(0));

    // Sent again after a lost answer: `a` under the same rebuild (2), `d` whose lease is gone
    // (4); nothing is debited and the account stays loaded.
    let resent: Vec<redis::Value> =
        call_as("+settled", &[("a", 30, "lease g/1"), ("d", 5, "lease g/2")]).invoke_async(&mut conn).await.unwrap();
    let codes: Vec<i64> = resent[..4].iter().map(|v| redis::from_redis_value_ref(v).unwrap()).collect();
    assert_eq!(codes, vec![2, 978, 4, 978]);
    assert_eq!(field(account, "loaded").await, Some(1));
    // After a rebuild (another epoch) it may have been missed: the account is marked, and a
    // new settlement behind it in the call waits for the rebuild (-2), debiting nothing.
    let _: () = redis::cmd("HSET").arg(account).arg("epoch").arg("g@2").query_async(&mut conn).await.unwrap();
    let resent: Vec<redis::Value> =
        call_as("+settled", &[("b", 50, "lease g/1"), ("f", 9, "")]).invoke_async(&mut conn).await.unwrap();
    let codes: Vec<i64> = resent[..4].iter().map(|v| redis::from_redis_value_ref(v).unwrap()).collect();
    assert_eq!(codes, vec![6, 978, -2, 0]);
    assert_eq!(redis::from_redis_value_ref::<String>(&resent[4]).unwrap(), "g@2", "the epoch the call met");
    assert_eq!(field(account, "loaded").await, Some(0), "marked for a rebuild");
    assert_eq!(field(account, "available").await, Some(978));
    // A first try finding a request settled changes nothing, whatever the epoch.
    let _: () = redis::cmd("HSET").arg(account).arg("loaded").arg(1).query_async(&mut conn).await.unwrap();
    let first: Vec<redis::Value> = call(&[("c", 40, "lease g/1")]).invoke_async(&mut conn).await.unwrap();
    assert_eq!(redis::from_redis_value_ref::<i64>(&first[0]).unwrap(), 2);
    assert_eq!(field(account, "loaded").await, Some(1));
    // A resent try that debited nothing (a release) left nothing a rebuild could miss: no mark.
    let released: Vec<redis::Value> = call_as("released", &[("z", 0, "")]).invoke_async(&mut conn).await.unwrap();
    assert_eq!(redis::from_redis_value_ref::<i64>(&released[0]).unwrap(), 1);
    let _: () = redis::cmd("HSET").arg(account).arg("epoch").arg("g@3").query_async(&mut conn).await.unwrap();
    let resent: Vec<redis::Value> = call_as("+released", &[("z", 0, "")]).invoke_async(&mut conn).await.unwrap();
    assert_eq!(redis::from_redis_value_ref::<i64>(&resent[0]).unwrap(), 2);
    assert_eq!(field(account, "loaded").await, Some(1), "a release resent after a rebuild marks nothing");
    // A lease its requests drained (it holds 0), a lease whose requests cost nothing, and a
    // lease after them in the same call: each debits what it should. (Negating 0 gives the
    // `-0` Redis refuses as an integer; a script stopping there has recorded every state but
    // debited no lease after it.)
    hset(holds, vec![("lease g/3", 5), ("lease g/4", 10)]).await;
    hset(account, vec![("held", 15)]).await;
    let drained: Vec<redis::Value> = call(&[("h", 15, "lease g/1"), ("i", 0, "lease g/3"), ("j", 4, "lease g/4")])
        .invoke_async(&mut conn)
        .await
        .unwrap();
    let codes: Vec<i64> = drained[..6].iter().map(|v| redis::from_redis_value_ref(v).unwrap()).collect();
    assert_eq!(codes, vec![1, 963, 1, 963, 1, 963], "15 of h from available, i nothing, j from its lease");
    assert_eq!(field(holds, "lease g/3").await, Some(5));
    assert_eq!(field(holds, "lease g/4").await, Some(6));
    assert_eq!(field(account, "held").await, Some(11));
    assert_eq!(field(account, "available").await, Some(963));
    // A state written before epochs were kept counts as applied under another: marked.
    let _: () = redis::cmd("SET").arg("{t}:req:old").arg("settled:12").query_async(&mut conn).await.unwrap();
    let resent: Vec<redis::Value> = call_as("+settled", &[("old", 12, "")]).invoke_async(&mut conn).await.unwrap();
    assert_eq!(redis::from_redis_value_ref::<i64>(&resent[0]).unwrap(), 6);
    assert_eq!(field(account, "loaded").await, Some(0));
}
