//! The balance scripts must not fail halfway: Redis keeps a script's writes up to a runtime
//! error, so a script stopped partway leaves, say, a request recorded as settled but not
//! debited, or a credit's marker without its credit. What once made them fail: `-0` (Lua's
//! `-x` for zero, refused by Redis as an integer), balances past what a double holds exactly
//! (written as `1.5e+17`), and a marker written before the change it marks.

use crate::common;

use common::services::PrivateRedis;

/// Redis refuses `-0` as an integer, and Lua's `-x` is `-0` for `x = 0`: a script that
/// negates a value it passes to Redis fails on a zero cost or an empty hold partway through,
/// after some of its writes (Redis keeps them). Every script writes `0 - x` instead, also
/// where the value is kept in a variable first.
#[test]
fn no_script_negates_a_value() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/billing/lua");
    let negated = regex::Regex::new(r"(?:[=,(]|\breturn)\s*-\s*[A-Za-z_(]").unwrap();
    let mut scripts = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        scripts += 1;
        for (n, line) in text.lines().enumerate() {
            let code = line.split("--").next().unwrap();
            assert!(!negated.is_match(code), "{}:{}: {line}", path.display(), n + 1);
        }
    }
    assert!(scripts >= 10, "read {scripts} scripts from {}", dir.display());
}

/// `load.lua` sets a balance of any size exactly (a Lua number would round it past 2^53 and
/// write it as `1.2e+17` past 1e17, which every later HINCRBY refuses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_past_what_a_double_holds_loads_exactly() {
    let (_redis, mut conn) = PrivateRedis::start_connected().await;
    let load = redis::Script::new(xjp_gateway::billing::balance::LOAD_LUA);
    let (account, holds, expiry) = ("{t}:account", "{t}:holds", "{t}:expiry");
    let _: () = redis::cmd("HSET").arg(holds).arg("r1").arg(1_000).query_async(&mut conn).await.unwrap();
    // Balance, marker ttl, generation, lease ttl, no leases, the loader, its snapshot; then r1,
    // whose row the balance counts already (300), is held again: 1 000 held, 300 given back.
    let mut invocation = load.key(account);
    invocation.key(holds).key(expiry).arg("123456789012345679").arg(60).arg("").arg(60_000).arg(0);
    invocation.arg("gw").arg("5:5:").arg("r1").arg(300);
    let loaded: i64 = invocation.invoke_async(&mut conn).await.unwrap();
    assert_eq!(loaded, 1);
    let available: String = redis::cmd("HGET").arg(account).arg("available").query_async(&mut conn).await.unwrap();
    assert_eq!(available, "123456789012344979", "123456789012345679 + 300 - 1 000, to the nano");
    let debited: i64 =
        redis::cmd("HINCRBY").arg(account).arg("available").arg(-9).query_async(&mut conn).await.unwrap();
    assert_eq!(debited, 123_456_789_012_344_970);
}

/// `credit.lua` writes a credit's marker only with its credit: a credit that failed to apply
/// (here an account holding a balance an older load wrote as `1.5e+17`) is applied by its
/// retry once the account is fixed, not answered "already applied".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_that_failed_to_apply_is_applied_by_its_retry() {
    let (_redis, mut conn) = PrivateRedis::start_connected().await;
    let credit = redis::Script::new(include_str!("../../src/billing/lua/credit.lua"));
    let (account, marker) = ("{t}:account", "{t}:credit:c1");
    let set = |available: &'static str| {
        redis::cmd("HSET").arg(account).arg("loaded").arg(1).arg("available").arg(available).clone()
    };
    let _: () = set("1.5e+17").query_async(&mut conn).await.unwrap();
    let failed: redis::RedisResult<i64> =
        credit.key(account).key(marker).arg(500).arg(60).invoke_async(&mut conn).await;
    assert!(failed.is_err(), "{failed:?}");
    let _: () = set("1000").query_async(&mut conn).await.unwrap();
    let applied: i64 = credit.key(account).key(marker).arg(500).arg(60).invoke_async(&mut conn).await.unwrap();
    assert_eq!(applied, 1, "the retry applies the credit");
    let again: i64 = credit.key(account).key(marker).arg(500).arg(60).invoke_async(&mut conn).await.unwrap();
    assert_eq!(again, 0, "once");
    let available: i64 = redis::cmd("HGET").arg(account).arg("available").query_async(&mut conn).await.unwrap();
    assert_eq!(available, 1_500);
}
