//! Which spooled rows are not in Postgres yet, oldest first (what
//! `xjp_ledger_oldest_unrecorded_seconds` reports), and the spool segment each was first
//! written to.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keys with the time each was accepted and its segment; the oldest in O(log n).
#[derive(Debug)]
pub struct Unrecorded<K> {
    since: HashMap<K, (u64, u64)>,
    order: BTreeMap<u64, Instant>,
    next: u64,
}

impl<K> Default for Unrecorded<K> {
    fn default() -> Self {
        Unrecorded { since: HashMap::new(), order: BTreeMap::new(), next: 0 }
    }
}

impl<K: Hash + Eq> Unrecorded<K> {
    /// `key` was accepted `at` into `segment`; false when it was already waiting (then it
    /// keeps its earlier time and segment).
    pub fn accepted(&mut self, key: K, at: Instant, segment: u64) -> bool {
        match self.since.entry(key) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((self.next, segment));
                self.order.insert(self.next, at);
                self.next += 1;
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
        }
    }

    /// `key` is in Postgres (or set aside for good): the segment it waited in, if it waited.
    pub fn recorded(&mut self, key: &K) -> Option<u64> {
        let (n, segment) = self.since.remove(key)?;
        self.order.remove(&n);
        Some(segment)
    }

    /// The segment `key` waits in.
    pub fn segment(&self, key: &K) -> Option<u64> {
        self.since.get(key).map(|(_, s)| *s)
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
        assert!(u.accepted("a", t0, 0));
        assert!(u.accepted("b", t0 + Duration::from_secs(5), 1));
        assert!(!u.accepted("a", Instant::now(), 1));
        assert_eq!(u.segment(&"a"), Some(0));
        assert!(u.oldest_age() >= Duration::from_secs(10));
        assert_eq!(u.recorded(&"a"), Some(0));
        let age = u.oldest_age();
        assert!(age >= Duration::from_secs(5) && age < Duration::from_secs(10), "{age:?}");
        assert_eq!(u.recorded(&"b"), Some(1));
        assert_eq!(u.recorded(&"b"), None);
        assert_eq!((u.oldest_age(), u.len()), (Duration::ZERO, 0));
    }
}
