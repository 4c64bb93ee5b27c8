//! A price's stored form and identity: the snapshot (in `price_versions`, and in a row whose
//! version is not known to be there yet) and the content version (`p_<hash>`) that names it.
//! Both are pure functions of the price and are memoised (a request would otherwise
//! serialise and hash its price twice): the memo is keyed by a fingerprint and checked
//! against the whole entry, so it can only ever return what the functions compute.

use crate::plugins::bindings::{PriceEntry, TokenRates};
use serde_json::{Value, json};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

/// A price with its version and snapshot.
#[derive(Debug)]
struct Stamp {
    entry: PriceEntry,
    version: String,
    snapshot: Value,
    /// `price_versions` holds this version (a `versions::record` of it committed).
    stored: AtomicBool,
}

/// Distinct prices seen recently (a catalog holds a few thousand at most).
static MEMO: LazyLock<moka::sync::Cache<u64, Arc<Stamp>>> =
    LazyLock::new(|| moka::sync::Cache::builder().max_capacity(20_000).build());

/// The price as stored in `price_versions`, so any bill can be re-derived.
pub fn price_snapshot(p: &PriceEntry) -> Value {
    stamp(p).snapshot.clone()
}

/// The snapshot a transaction row carries: none once `price_versions` is known to hold the
/// price's version (the row's `price_version` names it there), the snapshot until then (a
/// price not recorded yet: just after start or a config reload, or while Postgres was down).
/// Each row carrying it cost Postgres a third more CPU per row and the gateway a sixth more.
pub fn row_snapshot(p: &PriceEntry) -> Option<Value> {
    let s = stamp(p);
    (!s.stored.load(Ordering::Acquire)).then(|| s.snapshot.clone())
}

/// Notes that `price_versions` holds `p`'s version (call after the insert committed). The
/// note is per process, which writes to one database. A failover that loses the commit (an
/// asynchronous standby) loses every later commit too, the rows that left the snapshot out
/// among them: no surviving row names a version the database lacks.
pub fn mark_stored(p: &PriceEntry) {
    stamp(p).stored.store(true, Ordering::Release);
}

/// A stable identity of a price: `p_` + the first 16 hex digits of SHA-256 of its snapshot.
/// Equal prices share a version; any change of any rate makes a new one.
pub fn price_version(p: &PriceEntry) -> String {
    stamp(p).version.clone()
}

fn stamp(p: &PriceEntry) -> Arc<Stamp> {
    let key = fingerprint(p);
    if let Some(s) = MEMO.get(&key).filter(|s| s.entry == *p) {
        return s;
    }
    let snapshot = build_snapshot(p);
    let version = {
        use sha2::Digest;
        format!("p_{}", &hex::encode(sha2::Sha256::digest(snapshot.to_string().as_bytes()))[..16])
    };
    let s = Arc::new(Stamp { entry: p.clone(), version, snapshot, stored: AtomicBool::new(false) });
    MEMO.insert(key, s.clone());
    s
}

fn build_snapshot(p: &PriceEntry) -> Value {
    let rates = |r: &TokenRates| {
        json!({ "input": r.input, "output": r.output, "cache_read": r.cache_read, "cache_write_5m": r.cache_write_5m,
                "cache_write_1h": r.cache_write_1h, "reasoning": r.reasoning, "unit": "atto_usd_per_token" })
    };
    json!({
        "rates": rates(&p.rates),
        "long_context": p.long_context.as_ref().map(|t| json!({ "threshold_tokens": t.threshold_tokens, "rates": rates(&t.rates) })),
        "fees": p.fees.iter().map(|f| (f.name.clone(), json!(f.atto_usd_per_unit))).collect::<serde_json::Map<_, _>>(),
    })
}

fn fingerprint(p: &PriceEntry) -> u64 {
    let mut h = DefaultHasher::new();
    let rates = |h: &mut DefaultHasher, r: &TokenRates| {
        (r.input, r.output, r.cache_read, r.cache_write_5m, r.cache_write_1h, r.reasoning).hash(h);
    };
    rates(&mut h, &p.rates);
    if let Some(t) = &p.long_context {
        t.threshold_tokens.hash(&mut h);
        rates(&mut h, &t.rates);
    }
    for f in &p.fees {
        (&f.name, f.atto_usd_per_unit).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::bindings::FeeRate;

    fn price(input: u64, fee: Option<u64>) -> PriceEntry {
        let rates =
            TokenRates { input, output: 2, cache_read: 3, cache_write_5m: 4, cache_write_1h: 5, reasoning: None };
        let fees = fee.map(|f| vec![FeeRate { name: "request".into(), atto_usd_per_unit: f }]).unwrap_or_default();
        PriceEntry { rates, long_context: None, fees }
    }

    #[test]
    fn the_memo_answers_what_the_functions_compute() {
        for p in [price(1, None), price(1, Some(7)), price(2, Some(7)), price(1, None)] {
            let fresh = build_snapshot(&p);
            assert_eq!(price_snapshot(&p), fresh);
            assert_eq!(price_snapshot(&p), fresh, "second call (memoised)");
            use sha2::Digest;
            let version = format!("p_{}", &hex::encode(sha2::Sha256::digest(fresh.to_string().as_bytes()))[..16]);
            assert_eq!(price_version(&p), version);
        }
        assert_ne!(price_version(&price(1, None)), price_version(&price(1, Some(7))));
    }

    #[test]
    fn a_row_carries_the_snapshot_until_its_version_is_stored() {
        let p = price(31, Some(9));
        assert_eq!(row_snapshot(&p), Some(build_snapshot(&p)));
        mark_stored(&p);
        assert_eq!(row_snapshot(&p), None);
        assert_eq!(row_snapshot(&price(32, Some(9))), Some(build_snapshot(&price(32, Some(9)))), "another price");
    }

    #[test]
    fn a_fingerprint_collision_cannot_return_another_price() {
        let (a, b) = (price(10, None), price(11, None));
        // Plant `a`'s stamp under `b`'s key, as a collision would.
        MEMO.insert(fingerprint(&b), stamp(&a));
        assert_eq!(price_snapshot(&b), build_snapshot(&b));
    }
}
