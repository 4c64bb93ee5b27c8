//! A gateway that stalls (SIGSTOP) past its lease's TTL, as a frozen VM would: a sweeper
//! hands the lease's money back to the account, another gateway spends it, and the stalled
//! gateway, resumed while Redis cannot answer it yet, never reserves from the lease it no
//! longer holds (a lease is usable only within a second of its last renewal).

use crate::common;
use crate::money_leases::{burst, fund, lease_in_redis, leased, two_leasing_gateways};

use common::harness::{Options, TestGateway};
use common::money::{assert_books_balance, books, wait_rows};
use common::process::GatewayProcess;
use common::scenarios::{mock, pair_for};
use common::services::PrivateRedis;
use redis::aio::MultiplexedConnection as Connection;
use std::time::{Duration, Instant};

const MODEL: &str = "gpt-4o-mini-2024-07-18";

fn signal(p: &GatewayProcess, name: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(p.child.0.id().to_string()).status();
    assert!(status.unwrap().success(), "kill -{name}");
}

/// Bursts at `p` until the answers show the account spent: no lease left in Redis (the
/// gateways gave theirs back) and less than one hold available. Returns the requests served.
async fn spend_all(p: &GatewayProcess, gw: &TestGateway, hold: i64, conn: &mut Connection) -> usize {
    let (mut served, deadline) = (0, Instant::now() + Duration::from_secs(60));
    loop {
        let statuses = burst(&p.url, &gw.key, 16).await;
        assert!(statuses.iter().all(|s| [200, 402].contains(s)), "{statuses:?}");
        served += statuses.iter().filter(|s| **s == 200).count();
        if statuses.iter().all(|s| *s == 402) {
            // A lease idle 2 s is given back; then the account shows what is left.
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
            if !lease_in_redis(conn, gw.tenant).await && live.available_nano < hold {
                return served;
            }
        }
        assert!(Instant::now() < deadline, "the account was never spent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_gateway_s_lease_is_swept_and_never_spent_after() {
    let mock = mock().await;
    mock.set_scenario(MODEL, pair_for(MODEL).with_first_byte_delay(Duration::from_millis(20)));
    // Holds, and so leases, live 3 s unrenewed here; the sweepers look every 200 ms.
    // Redis of its own: the test pauses it.
    let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
    let options = Options { hold_ttl_secs: 3, sweep_interval_ms: 200, redis_url: Some(redis.url()), ..leased() };
    let (gw, procs, _db) = two_leasing_gateways(&mock, &options).await;
    let hold = fund(&gw, 64).await;
    let (a, b) = (&procs[0], &procs[1]);
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();

    // A leases a slice, and stops between two bursts (nothing of its in flight).
    let (mut served, deadline) = (0, Instant::now() + Duration::from_secs(10));
    loop {
        assert!(burst(&a.url, &gw.key, 16).await.iter().all(|s| *s == 200));
        served += 16;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if lease_in_redis(&mut conn, gw.tenant).await {
            break;
        }
        assert!(Instant::now() < deadline, "A never leased the account");
    }
    signal(a, "STOP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lease_in_redis(&mut conn, gw.tenant).await {
        assert!(Instant::now() < deadline, "the stalled gateway's lease was never swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // B spends everything, the swept lease's money included.
    served += spend_all(b, &gw, hold, &mut conn).await;
    // A resumes with requests waiting and Redis paused for writes (its lease call, which
    // would be answered "lost", waits): its lease is past its use window, so the requests
    // wait for Redis too, which refuses them.
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(1_500).arg("WRITE").query_async(&mut conn).await.unwrap();
    let waiting = tokio::spawn({
        let (url, key) = (a.url.clone(), gw.key.clone());
        async move { burst(&url, &key, 16).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(a, "CONT");
    let statuses = waiting.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 402), "the resumed gateway spent a lease it no longer holds: {statuses:?}");

    for p in procs {
        p.stop().await;
    }
    let b = wait_rows(&gw.gw.db, gw.tenant, served as i64, Duration::from_secs(20)).await;
    assert_eq!(b.served, served as i64, "one row per answer");
    assert!(b.cost_nano <= b.credits_nano, "spent more than credited: {b:?}");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    let live = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
    assert!(live.available_nano >= 0 && live.held_nano == 0, "{live:?} {:?}", books(&gw.gw.db, gw.tenant).await);
}

/// `lease_drop.lua` on its own: a dropped lease leaves a dated marker that its gateway's
/// calls and rebuilds respect; markers over a day old (and the undated ones older versions
/// wrote) are cleared by the next drop on the account, so a dead gateway's marker does not
/// stay in the account forever. Live leases' call numbers are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_marks_its_lease_and_clears_markers_over_a_day_old() {
    let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
    let mut conn: Connection =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let drop = redis::Script::new(xjp_gateway::billing::balance::LEASE_DROP_LUA);
    let lease = redis::Script::new(include_str!("../../src/billing/lua/lease.lua"));
    let (account, holds, expiry) = ("{t}:account", "{t}:holds", "{t}:expiry");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let hour_old = format!("dropped:{}", now_ms - 3_600_000);
    let day_old = format!("dropped:{}", now_ms - 86_500_000);
    let fields: [(&str, &str); 9] = [
        ("loaded", "1"),
        ("available", "5000"),
        ("held", "1000"),
        ("leases", "1"),
        ("lease-seq:lease r/1", "4:1000"),
        ("lease-seq:lease old/1", day_old.as_str()),
        ("lease-seq:lease older/1", "dropped"),
        ("lease-seq:lease recent/1", hour_old.as_str()),
        ("lease-seq:lease live/1", "9:0"),
    ];
    let _: () = redis::cmd("HSET").arg(account).arg(&fields[..]).query_async(&mut conn).await.unwrap();
    let _: () = redis::cmd("HSET").arg(holds).arg("lease r/1").arg(1000).query_async(&mut conn).await.unwrap();
    let _: () =
        redis::cmd("ZADD").arg(expiry).arg(now_ms - 1_000).arg("lease r/1").query_async(&mut conn).await.unwrap();

    let dropped: i64 = drop.key(account).key(holds).key(expiry).arg("lease r/1").invoke_async(&mut conn).await.unwrap();
    assert_eq!(dropped, 1);
    let left: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(account).query_async(&mut conn).await.unwrap();
    let marker = left.get("lease-seq:lease r/1").expect("the dropped lease is marked");
    let at: u64 = marker.strip_prefix("dropped:").expect("a dated marker").parse().unwrap();
    assert!(at >= now_ms - 1_000, "dated now: {marker}");
    assert!(!left.contains_key("lease-seq:lease old/1"), "a marker over a day old is cleared");
    assert!(!left.contains_key("lease-seq:lease older/1"), "an undated marker is cleared");
    assert_eq!(left.get("lease-seq:lease recent/1"), Some(&hour_old), "an hour-old marker stays");
    assert_eq!(left.get("lease-seq:lease live/1").map(String::as_str), Some("9:0"), "a live lease's number stays");
    assert_eq!(left.get("loaded").map(String::as_str), Some("0"), "the account is marked for a rebuild");

    // The dropped lease's gateway, renewing as if nothing happened, is answered lost.
    let _: () = redis::cmd("HSET").arg(account).arg("loaded").arg("1").query_async(&mut conn).await.unwrap();
    let mut renew = lease.key(account);
    renew.key(holds).key(expiry).arg("lease r/1").arg(500).arg(1).arg(60_000).arg(0).arg(0).arg(5).arg(4);
    let answer: (i64, i64, i64) = renew.invoke_async(&mut conn).await.unwrap();
    assert_eq!(answer.0, -1, "a dropped lease's calls are answered lost");
    let held: Option<i64> = redis::cmd("HGET").arg(holds).arg("lease r/1").query_async(&mut conn).await.unwrap();
    assert_eq!(held, None, "and hold nothing");
}
