//! Balance leases (ADR 0002, `[billing] leases = true`): requests of a busy tenant reserve in
//! process, without a round trip to Redis; two gateways leasing the same account never
//! overdraw it, and refuse nothing while the account covers the request; the books balance
//! once the leases are given back. (A flush and a SIGKILL with a lease: `money_outages.rs`.)

use crate::common;

use common::harness::{Options, TestDb, TestGateway};
use common::http::post;
use common::money::{CHAT, assert_books_balance, books, hold_for, wait_rows};
use common::process::GatewayProcess;
use common::scenarios::{mock, pair_for};
use common::services::PrivateRedis;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use xjp_mock_upstream::MockUpstream;

const MODEL: &str = "gpt-4o-mini-2024-07-18";

pub(crate) fn leased() -> Options {
    Options { billing_toml: "leases = true".into(), initial_balance_nano: 0, ..Options::default() }
}

/// `n` requests at once; their statuses.
pub(crate) async fn burst(url: &str, key: &str, n: usize) -> Vec<u16> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (url, key) = (format!("{url}/v1/chat/completions"), key.to_string());
            tokio::spawn(async move { post(&url, &key, &CHAT).await.status })
        })
        .collect();
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

/// Tops the tenant up by `holds` of the test request's hold; returns the hold.
pub(crate) async fn fund(gw: &TestGateway, holds: i64) -> i64 {
    let hold = hold_for(&gw.gw, "gpt-4o-mini", &CHAT);
    let kind = xjp_gateway::db::credits::CreditKind::TopUp;
    xjp_gateway::db::credits::insert(&gw.gw.db, gw.tenant, "leases", kind, holds * hold, None).await.unwrap();
    hold
}

/// Whether some gateway holds a lease of the tenant now (a lease is a hold named `lease ...`).
pub(crate) async fn lease_in_redis(conn: &mut redis::aio::MultiplexedConnection, tenant: uuid::Uuid) -> bool {
    let holds = common::harness::keys().tenant(tenant).holds;
    let ids: Vec<String> = redis::cmd("HKEYS").arg(holds).query_async(conn).await.unwrap();
    ids.iter().any(|id| id.starts_with("lease "))
}

/// How many commands of `name` Redis ran (scripts' commands included) since the last reset.
async fn calls_of(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
    let line = info.lines().find(|l| l.starts_with(&format!("cmdstat_{name}:"))).unwrap_or("calls=0,");
    line.split("calls=").nth(1).and_then(|r| r.split(',').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// One gateway with leases on its own Redis (and a connection to it), a tenant with 1 000
/// holds, and a lease: the first burst reserves through Redis, the next round leases a slice.
/// Also the hold.
async fn leasing_gateway(mock: &MockUpstream) -> (PrivateRedis, TestGateway, redis::aio::MultiplexedConnection, i64) {
    let redis = PrivateRedis::start();
    let options = Options { redis_url: Some(redis.url()), ..leased() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let hold = fund(&gw, 1_000).await;
    assert!(burst(&gw.url, &gw.key, 16).await.iter().all(|s| *s == 200));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let leased = gw.gw.billing.balances.leases.held(gw.tenant);
    assert!(leased >= 4 * hold, "a lease of several holds: {leased} (hold {hold})");
    let conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    (redis, gw, conn, hold)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leased_requests_reserve_without_a_round_trip_and_the_books_balance() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_first_byte_delay(Duration::from_millis(20)));
    let (_redis, gw, mut conn, _) = leasing_gateway(&mock).await;
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut conn).await.unwrap();
    for _ in 0..10 {
        assert!(burst(&gw.url, &gw.key, 16).await.iter().all(|s| *s == 200));
    }
    let b = wait_rows(&gw.gw.db, gw.tenant, 176, Duration::from_secs(20)).await;
    assert_eq!(b.served, 176);
    // A reservation through Redis adds its hold's expiry (one ZADD each); leased ones do not
    // (the lease's own renewals are a few a second). Each settled in Redis all the same (its
    // state: one SET each; rows reach Postgres after their settlement).
    let zadds = calls_of(&mut conn, "zadd").await;
    assert!(zadds < 40, "160 requests made {zadds} ZADDs: they reserved through Redis");
    let sets = calls_of(&mut conn, "set").await;
    assert!(sets >= 160, "160 requests made {sets} SETs: they did not settle in Redis");

    // An idle lease goes back within seconds; then Redis equals Postgres to the nano-USD.
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    assert_eq!(gw.gw.billing.balances.leases.held(gw.tenant), 0);
}

/// Two gateway processes (on `leasing`, leases on) and a database of their own; an
/// in-process gateway (leases off, on the same Redis) owns the tenant and checks the books.
pub(crate) async fn two_leasing_gateways(
    mock: &MockUpstream,
    leasing: &Options,
) -> (TestGateway, Vec<GatewayProcess>, TestDb) {
    let db = TestDb::create().await;
    let (database_url, redis_url) = (Some(db.url.clone()), leasing.redis_url.clone());
    let billing_toml = "leases = false".into();
    let options = Options { database_url, redis_url, billing_toml, initial_balance_nano: 0, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let mut procs = Vec::new();
    for _ in 0..2 {
        procs.push(GatewayProcess::start(&mock.base_url(), &db.url, leasing).await);
    }
    (gw, procs, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_leasing_gateways_never_overdraw_and_leave_nothing_unspendable() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_first_byte_delay(Duration::from_millis(30)));
    let (gw, procs, _db) = two_leasing_gateways(&mock, &leased()).await;
    let hold = fund(&gw, 120).await;
    let urls: Vec<String> = procs.iter().map(|p| p.url.clone()).collect();

    let seen = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn({
        let (seen, done, tenant) = (seen.clone(), done.clone(), gw.tenant);
        async move {
            let url = common::harness::redis_url();
            let mut conn = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
            let account = common::harness::keys().tenant(tenant).account;
            while !done.load(Ordering::SeqCst) {
                if lease_in_redis(&mut conn, tenant).await {
                    seen.store(true, Ordering::SeqCst);
                }
                let available: Option<i64> =
                    redis::cmd("HGET").arg(&account).arg("available").query_async(&mut conn).await.unwrap();
                assert!(available.unwrap_or(0) >= 0, "available below zero during the run: {available:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    // 16 clients, each alternating between the gateways until refused three times running.
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (urls, key) = (urls.clone(), gw.key.clone());
            tokio::spawn(async move {
                let (mut admitted, mut refused_in_a_row) = (0, 0);
                for i in 0..40 {
                    let url = format!("{}/v1/chat/completions", urls[(c + i) % 2]);
                    match post(&url, &key, &CHAT).await.status {
                        200 => (admitted, refused_in_a_row) = (admitted + 1, 0),
                        402 => refused_in_a_row += 1,
                        other => panic!("unexpected status {other}"),
                    }
                    if refused_in_a_row == 3 {
                        break;
                    }
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for c in clients {
        admitted += c.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    watch.await.unwrap();
    assert!(seen.load(Ordering::SeqCst), "the gateways leased the account");
    for p in procs {
        p.stop().await;
    }
    let b = books(&gw.gw.db, gw.tenant).await;
    assert_eq!(b.served, admitted as i64, "one row per answer");
    assert!(b.cost_nano <= b.credits_nano, "spent more than credited: {b:?}");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    // Stopped gateways gave their leases back: what is left cannot pay for one more request.
    let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
    assert!(live.available_nano < hold, "left {live:?} unspent while refusing (hold {hold})");
}

/// Sequential requests alternating between two leasing gateways until the first refusal:
/// at that moment the account (leases given back) cannot cover one more, for a balance too
/// small to lease (10 holds) and for one that is leased (100 holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_is_refused_while_the_account_covers_it() {
    let mock = mock().await;
    for holds in [10, 100] {
        let (gw, procs, _db) = two_leasing_gateways(&mock, &leased()).await;
        let hold = fund(&gw, holds).await;
        let url = common::harness::redis_url();
        let mut conn = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
        let (mut admitted, mut leased) = (0, false);
        loop {
            let url = format!("{}/v1/chat/completions", procs[admitted % 2].url);
            match post(&url, &gw.key, &CHAT).await.status {
                200 => admitted += 1,
                402 => break,
                other => panic!("unexpected status {other}"),
            }
            leased |= lease_in_redis(&mut conn, gw.tenant).await;
            // A request costs well under its hold (about 0.4 of it).
            if admitted > 4 * holds as usize {
                let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
                let b = books(&gw.gw.db, gw.tenant).await;
                panic!("far more admitted ({admitted}) than {holds} holds cover (hold {hold}): {live:?} {b:?}");
            }
        }
        for p in procs {
            p.stop().await;
        }
        wait_rows(&gw.gw.db, gw.tenant, admitted as i64 + 1, Duration::from_secs(20)).await;
        assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
        let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
        assert_eq!(leased, holds >= 32, "{holds} holds: leased {leased}");
        assert!(admitted as i64 >= 2 * holds, "{holds} holds: only {admitted} admitted");
        assert!(live.available_nano < hold, "{holds} holds: refused with {live:?} left (hold {hold})");
    }
}

/// A flushed Redis (or a failover that lost the keys) loses the lease's hold while its money
/// is still being spent here: the rebuild holds it again, to the nano-USD.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuilt_account_holds_this_gateway_s_lease_again() {
    let mock = mock().await;
    let (_redis, gw, mut conn, _) = leasing_gateway(&mock).await;
    let balances = &gw.gw.billing.balances;
    let leased = balances.leases.held(gw.tenant);
    let b = wait_rows(&gw.gw.db, gw.tenant, 16, Duration::from_secs(10)).await;

    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    balances.load(gw.tenant).await.unwrap();
    let live = balances.live(gw.tenant).await.unwrap();
    assert_eq!(live.held_nano, leased, "the lease is held again");
    assert_eq!(live.available_nano, b.credits_nano - b.cost_nano - leased);

    // Requests go on from the lease; the books balance once it is given back.
    assert!(burst(&gw.url, &gw.key, 16).await.iter().all(|s| *s == 200));
    wait_rows(&gw.gw.db, gw.tenant, 32, Duration::from_secs(10)).await;
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

/// A lease whose last call Redis holds otherwise (a failover lost an acknowledged call) is
/// answered "lost": the gateway stops reserving from it at its next round, reserves through
/// Redis again, closes it once idle, and the books balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_redis_holds_otherwise_is_given_up() {
    let mock = mock().await;
    let (_redis, gw, mut conn, _) = leasing_gateway(&mock).await;
    let keys = common::harness::keys().tenant(gw.tenant);
    let ids: Vec<String> = redis::cmd("HKEYS").arg(&keys.holds).query_async(&mut conn).await.unwrap();
    let lease = ids.into_iter().find(|id| id.starts_with("lease ")).expect("the lease's hold");
    let field = format!("lease-seq:{lease}");
    let _: () = redis::cmd("HSET").arg(&keys.account).arg(&field).arg("1:0").query_async(&mut conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut conn).await.unwrap();
    assert!(burst(&gw.url, &gw.key, 16).await.iter().all(|s| *s == 200));
    let zadds = calls_of(&mut conn, "zadd").await;
    assert!(zadds >= 16, "the lost lease was still reserved from: {zadds} ZADDs for 16 requests");
    wait_rows(&gw.gw.db, gw.tenant, 32, Duration::from_secs(10)).await;
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    let left: Option<String> = redis::cmd("HGET").arg(&keys.holds).arg(&lease).query_async(&mut conn).await.unwrap();
    assert_eq!(left, None, "the lost lease was closed");
}

/// `lease.lua` and `load.lua` on their own: a call sent twice is applied once and answered
/// alike; a call for a lease Redis holds otherwise is answered lost; a close gives back what
/// the lease holds whatever call was applied last; a lease the sweeper dropped is never held
/// again by a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_scripts_apply_each_call_once_and_never_revive_a_dropped_lease() {
    let (_redis, mut conn) = PrivateRedis::start_connected().await;
    let lease = redis::Script::new(include_str!("../../src/billing/lua/lease.lua"));
    let load = redis::Script::new(xjp_gateway::billing::balance::LOAD_LUA);
    let (account, holds, expiry, id) = ("{t}:account", "{t}:holds", "{t}:expiry", "lease r/1");
    let _: () = redis::cmd("HSET")
        .arg(account)
        .arg("loaded")
        .arg("1")
        .arg("available")
        .arg(8_000)
        .arg("held")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Arguments: amount, exists, ttl, close, least available, this call, the last applied.
    let call = |amount: i64, exists: u8, close: u8, seq: u64, prev: u64| {
        let mut invocation = lease.key(account);
        invocation.key(holds).key(expiry).arg(id).arg(amount).arg(exists).arg(60_000).arg(close).arg(0);
        invocation.arg(seq).arg(prev);
        invocation
    };
    let field = |conn: &mut redis::aio::MultiplexedConnection, key: &'static str, name: &'static str| {
        let mut conn = conn.clone();
        async move { redis::cmd("HGET").arg(key).arg(name).query_async::<Option<i64>>(&mut conn).await.unwrap() }
    };
    let taken: (i64, i64, i64) = call(2_000, 0, 0, 5, 0).invoke_async(&mut conn).await.unwrap();
    assert_eq!(taken, (1, 1_000, 7_000), "a take is at most an eighth of available");
    let again: (i64, i64, i64) = call(2_000, 0, 0, 5, 0).invoke_async(&mut conn).await.unwrap();
    assert_eq!(again, (1, 1_000, 7_000), "the same call sent again: the first answer, not applied twice");
    assert_eq!(field(&mut conn, holds, id).await, Some(1_000));
    let stale: (i64, i64, i64) = call(-500, 1, 0, 7, 4).invoke_async(&mut conn).await.unwrap();
    assert_eq!(stale.0, -1, "a call after another than the one applied is answered lost");
    assert_eq!(field(&mut conn, holds, id).await, Some(1_000), "and changes nothing");
    let closed: (i64, i64, i64) = call(0, 0, 1, 8, 4).invoke_async(&mut conn).await.unwrap();
    assert_eq!(closed, (1, -1_000, 8_000), "a close gives back what the lease holds");
    assert_eq!(field(&mut conn, holds, id).await, None);
    assert_eq!(field(&mut conn, account, "held").await, Some(0));
    assert_eq!(field(&mut conn, account, "leases").await, Some(0));

    // The sweeper dropped a lease: a rebuild by its gateway does not hold it again.
    let field_name = format!("lease-seq:{id}");
    let _: () = redis::cmd("HSET")
        .arg(account)
        .arg("loaded")
        .arg("0")
        .arg(&field_name)
        .arg("dropped")
        .query_async(&mut conn)
        .await
        .unwrap();
    let rebuild = |gen_: &str, lease_id: &str| {
        // Balance, marker ttl, generation, lease ttl, one lease, the loader, its snapshot,
        // the lease (id, amount, last call).
        let mut invocation = load.key(account);
        invocation.key(holds).key(expiry).arg(9_000).arg(60).arg(gen_).arg(60_000).arg(1).arg("gw").arg("5:5:");
        invocation.arg(lease_id).arg(3_000).arg(9);
        invocation
    };
    let loaded: i64 = rebuild("", id).invoke_async(&mut conn).await.unwrap();
    assert_eq!(loaded, 1);
    assert_eq!(field(&mut conn, holds, id).await, None, "a dropped lease is not held again");
    assert_eq!(field(&mut conn, account, "available").await, Some(9_000));
    // A lease Redis lost (a flush) is held again, under the gateway's last call number.
    let _: () = redis::cmd("HSET").arg(account).arg("loaded").arg("0").query_async(&mut conn).await.unwrap();
    let loaded: i64 = rebuild("", "lease r/2").invoke_async(&mut conn).await.unwrap();
    assert_eq!(loaded, 1);
    assert_eq!(field(&mut conn, holds, "lease r/2").await, Some(3_000));
    assert_eq!(field(&mut conn, account, "available").await, Some(6_000));
    assert_eq!(field(&mut conn, account, "leases").await, Some(1));
    let renewed: (i64, i64, i64) = {
        let mut invocation = lease.key(account);
        invocation.key(holds).key(expiry).arg("lease r/2").arg(0).arg(1).arg(60_000).arg(0).arg(0).arg(10).arg(9);
        invocation.invoke_async(&mut conn).await.unwrap()
    };
    assert_eq!(renewed, (1, 0, 6_000), "the gateway's next call finds its lease");
}
