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
