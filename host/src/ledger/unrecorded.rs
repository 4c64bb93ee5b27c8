//! Which spooled rows are not in Postgres yet, oldest first: what
//! `xjp_ledger_oldest_unrecorded_seconds` reports.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keys with the time each was accepted; the oldest in O(log n).
#[derive(Debug)]
pub struct Unrecorded<K> {
    since: HashMap<K, u64>,
    order: BTreeMap<u64, Instant>,
    next: u64,
}

impl<K> Default for Unrecorded<K> {
    fn default() -> Self {
        Unrecorded { since: HashMap::new(), order: BTreeMap::new(), next: 0 }
    }
}

impl<K: Hash + Eq> Unrecorded<K> {
    /// `key` was accepted `at` (a key already waiting keeps its earlier time).
    pub fn accepted(&mut self, key: K, at: Instant) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.since.entry(key) {
            e.insert(self.next);
            self.order.insert(self.next, at);
            self.next += 1;
        }
    }

    /// `key` is in Postgres (or set aside for good).
    pub fn recorded(&mut self, key: &K) {
        if let Some(n) = self.since.remove(key) {
            self.order.remove(&n);
        }
    }

    /// How long the oldest waiting key has waited (zero when none waits).
    pub fn oldest_age(&self) -> Duration {
        self.order.first_key_value().map(|(_, at)| at.elapsed()).unwrap_or_default()
    }

    /// How many keys wait.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_first() {
        let mut u = Unrecorded::default();
        let t0 = Instant::now() - Duration::from_secs(10);
        u.accepted("a", t0);
        u.accepted("b", t0 + Duration::from_secs(5));
        u.accepted("a", Instant::now());
        assert!(u.oldest_age() >= Duration::from_secs(10));
        u.recorded(&"a");
        let age = u.oldest_age();
        assert!(age >= Duration::from_secs(5) && age < Duration::from_secs(10), "{age:?}");
        u.recorded(&"b");
        u.recorded(&"b");
        assert_eq!((u.oldest_age(), u.len()), (Duration::ZERO, 0));
    }
}
