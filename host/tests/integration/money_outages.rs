//! Outages under load: Postgres stopped (rows spool, then replay), Redis flushed (counters
//! rebuilt from Postgres, no overspend), the gateway killed with SIGKILL (spool replayed,
//! holds swept, nothing billed twice). Each test runs its own private Postgres or Redis.

use crate::common;

use common::harness::{Options, PROVIDER_KEY, TestGateway, config_toml_with};
use common::http::post;
use common::money::{CHAT, ChildGuard, assert_books_balance, books, hold_for, wait_rows};
use common::scenarios::{mock, pair_for};
use common::services::{PrivatePostgres, PrivateRedis};
use std::time::Duration;

async fn load(url: &str, key: &str, n: usize) -> Vec<u16> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn({
                let (url, key) = (format!("{url}/v1/chat/completions"), key.to_string());
                async move { post(&url, &key, &CHAT).await.status }
            })
        })
        .collect();
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_during_load_loses_nothing() {
    let pg = PrivatePostgres::start();
    let mock = mock().await;
    let options = Options { database_url: Some(pg.url()), key_cache_ttl_ms: 100, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let before = load(&gw.url, &gw.key, 20).await;
    assert!(before.iter().all(|s| *s == 200));
    wait_rows(&gw.gw.db, gw.tenant, 20, Duration::from_secs(10)).await;

    pg.stop();
    // Keys verified before the outage keep working; balances live in Redis; rows spool.
    let during = load(&gw.url, &gw.key, 30).await;
    assert!(during.iter().all(|s| *s == 200), "{during:?}");
    let spooled = std::fs::metadata(gw.dir.path().join("spool/ledger.spool")).unwrap().len();
    assert!(spooled > 0, "rows went to the spool");

    pg.resume();
    let b = wait_rows(&gw.gw.db, gw.tenant, 50, Duration::from_secs(20)).await;
    assert_eq!(b.rows, 50, "every accepted request has exactly one row");
    assert_eq!(b.served, 50);
    let dupes: i64 = sqlx::query_scalar("SELECT count(*) FROM (SELECT request_id FROM billing_transactions GROUP BY tenant_id, request_id HAVING count(*) > 1) d")
        .fetch_one(&gw.gw.db)
        .await
        .unwrap();
    assert_eq!(dupes, 0);
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_during_load_rebuilds_without_overspend() {
    redis_flushed_during_load(false).await;
}

/// The same with balance leases: the flushes take the lease's hold with them, and the
/// rebuild holds it again (its money is being spent in this gateway).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_during_load_with_leases_rebuilds_without_overspend() {
    redis_flushed_during_load(true).await;
}

/// Batches of 25 requests until the balance runs out, Redis flushed four times meanwhile.
/// With leases the balance is larger (leases are taken only above 32 holds).
async fn redis_flushed_during_load(leases: bool) {
    let redis = PrivateRedis::start();
    let mock = mock().await;
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair_for("gpt-4o-mini-2024-07-18").with_first_byte_delay(Duration::from_millis(100)),
    );
    let billing_toml = format!("leases = {leases}");
    let options = Options { redis_url: Some(redis.url()), initial_balance_nano: 0, billing_toml, ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let hold = hold_for(&gw.gw, "gpt-4o-mini", &CHAT);
    let kind = xjp_gateway::db::credits::CreditKind::TopUp;
    // A request costs about 0.4 of its hold: 60 holds pay for about 140 requests, 90 (a
    // leased account: over 32 holds) for about 220.
    let (holds, batches) = if leases { (90, 10) } else { (60, 6) };
    xjp_gateway::db::credits::insert(&gw.gw.db, gw.tenant, "budget", kind, holds * hold, None).await.unwrap();
    // With leases, each flush waits until this gateway holds one (for at most a second).
    let client = redis::Client::open(redis.url()).unwrap();
    let flusher = tokio::spawn({
        let (gw, tenant) = (gw.gw.clone(), gw.tenant);
        async move {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let mut with_lease = 0;
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                for _ in 0..100 {
                    if !leases || gw.billing.balances.leases.held(tenant) > 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                with_lease += usize::from(gw.billing.balances.leases.held(tenant) > 0);
                let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
                let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
            }
            with_lease
        }
    });
    let mut admitted = 0;
    for _ in 0..batches {
        admitted += load(&gw.url, &gw.key, 25).await.iter().filter(|s| **s == 200).count();
    }
    let with_lease = flusher.await.unwrap();
    assert!(!leases || with_lease >= 2, "only {with_lease} of 4 flushes hit a lease");
    // The last flush may come after the load (it waited for a lease): one more request after
    // it rebuilds the account (and is refused: the balance ran out).
    admitted += load(&gw.url, &gw.key, 1).await.iter().filter(|s| **s == 200).count();
    let b = wait_rows(&gw.gw.db, gw.tenant, batches * 25 + 1, Duration::from_secs(20)).await;
    assert_eq!(b.served, admitted as i64);
    assert!(admitted < batches as usize * 25, "the balance ran out");
    assert!(b.cost_nano <= b.credits_nano, "overspent after flushes: {b:?}");
    let loads = gw.gw.billing.balances.live(gw.tenant).await.unwrap();
    assert!(loads.loaded, "the account was rebuilt");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_then_restart_bills_nothing_twice() {
    sigkill_mid_load(false).await;
}

/// The same with balance leases, killed while it holds one: the sweeper drops the expired
/// lease and rebuilds the account from Postgres, and the restart's replayed rows count once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_with_a_lease_then_restart_bills_nothing_twice() {
    sigkill_mid_load(true).await;
}

async fn sigkill_mid_load(leases: bool) {
    let mock = mock().await;
    mock.set_scenario(
        "gpt-4o-mini-2024-07-18",
        pair_for("gpt-4o-mini-2024-07-18").with_first_byte_delay(Duration::from_millis(300)),
    );
    // The in-process gateway owns the database and tenant; the binary is the one killed.
    let gw = TestGateway::start(&mock.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let plugins = common::root().join("target/plugins").display().to_string();
    let cache = common::root().join("target/plugin-cache").display().to_string();
    let billing_toml = format!("leases = {leases}");
    let options = Options { hold_ttl_secs: 2, sweep_interval_ms: 300, billing_toml, ..Options::default() };
    std::fs::write(&path, config_toml_with(&mock.base_url(), &plugins, &cache, &options)).unwrap();
    let db_url = gw.db.as_ref().unwrap().url.clone();
    let spawn = move || {
        let mut child = ChildGuard(
            std::process::Command::new(env!("CARGO_BIN_EXE_xjp-gateway"))
                .args(["serve", "--config"])
                .arg(&path)
                .env("TEST_DATABASE_URL", &db_url)
                .env("TEST_REDIS_URL", common::harness::redis_url())
                .env("MOCK_PROVIDER_KEY", PROVIDER_KEY)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.0.stdout.take().unwrap()), &mut line).unwrap();
        (child, line.trim().trim_start_matches("xjp-gateway listening on ").to_string())
    };
    let (first, url) = tokio::task::spawn_blocking(spawn.clone()).await.unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inflight = tokio::spawn({
        let (url, key, answered) = (url.clone(), gw.key.clone(), answered.clone());
        async move {
            let calls: Vec<_> = (0..40)
                .map(|i| {
                    let (url, key, answered) = (url.clone(), key.clone(), answered.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(i * 15)).await;
                        let auth = format!("Bearer {key}");
                        let h = [("authorization", auth.as_str()), ("content-type", "application/json")];
                        let status =
                            common::http::try_send("POST", &format!("{url}/v1/chat/completions"), &h, CHAT.clone())
                                .await;
                        if status == Some(200) {
                            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        status
                    })
                })
                .collect();
            let mut ok = 0;
            for c in calls {
                if c.await.unwrap().is_some_and(|s| s == 200) {
                    ok += 1;
                }
            }
            ok
        }
    });
    // Killed mid-load: once the first answers are out (however slow this machine is right
    // now) and the spool holds a row (answers that come out together may all still be in
    // their settlement), while later requests are still in flight.
    let spooled_bytes = || -> u64 {
        let files = std::fs::read_dir(dir.path().join("spool")).into_iter().flatten().flatten();
        files.filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum()
    };
    let empty = spooled_bytes();
    let waiting = std::time::Instant::now();
    let mut redis = redis::Client::open(common::harness::redis_url()).unwrap();
    let holds = common::harness::keys().tenant(gw.tenant).holds;
    let mut lease_held = || -> bool {
        let ids: Vec<String> = redis::cmd("HKEYS").arg(&holds).query(&mut redis).unwrap();
        ids.iter().any(|id| id.starts_with("lease "))
    };
    while (answered.load(std::sync::atomic::Ordering::SeqCst) < 3
        || spooled_bytes() <= empty
        || leases && !lease_held())
        && waiting.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!leases || lease_held(), "killed while holding a lease");
    let pid = first.0.id();
    let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    drop(first);
    let completed_before_kill = inflight.await.unwrap();

    // Restart on the same spool; the sweeper releases (or settles) the orphaned holds.
    let (_second, _url2) = tokio::task::spawn_blocking(spawn).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let b = books(&gw.gw.db, gw.tenant).await;
    // Rows acknowledged by the spool survive the kill; a response that finished within the
    // last batch window (a few ms) before SIGKILL may have no row, and then no debit either.
    assert!(b.served > 0 && b.served <= 40, "{b:?} (answered before the kill: {completed_before_kill})");
    let dupes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM billing_transactions GROUP BY tenant_id, request_id HAVING count(*) > 1) d",
    )
    .fetch_one(&gw.gw.db)
    .await
    .unwrap();
    assert_eq!(dupes, 0, "nothing billed twice");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}
