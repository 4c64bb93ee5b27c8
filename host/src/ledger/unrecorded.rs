//! Which spooled rows are not in Postgres yet, oldest first (what
//! `xjp_ledger_oldest_unrecorded_seconds` reports), and where in the spool each was first
//! written.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Where a row's frame is: its spool segment and the frame's start in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub segment: u64,
    pub offset: u64,
}

/// Keys with the time each was accepted and its place; the oldest in O(log n).
#[derive(Debug)]
pub struct Unrecorded<K> {
    since: HashMap<K, (u64, Place)>,
    order: BTreeMap<u64, Instant>,
    next: u64,
}

impl<K> Default for Unrecorded<K> {
    fn default() -> Self {
        Unrecorded { since: HashMap::new(), order: BTreeMap::new(), next: 0 }
    }
}

impl<K: Hash + Eq> Unrecorded<K> {
    /// `key` was accepted `at` into `place`; false when it was already waiting (then it
    /// keeps its earlier time and place).
    pub fn accepted(&mut self, key: K, at: Instant, place: Place) -> bool {
        match self.since.entry(key) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((self.next, place));
                self.order.insert(self.next, at);
                self.next += 1;
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
        }
    }

    /// `key` is in Postgres (or set aside for good): where it waited, if it waited.
    pub fn recorded(&mut self, key: &K) -> Option<Place> {
        let (n, place) = self.since.remove(key)?;
        self.order.remove(&n);
        Some(place)
    }

    /// Where `key` waits.
    pub fn place(&self, key: &K) -> Option<Place> {
        self.since.get(key).map(|(_, p)| *p)
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
        let at = |segment| Place { segment, offset: 8 };
        assert!(u.accepted("a", t0, at(0)));
        assert!(u.accepted("b", t0 + Duration::from_secs(5), at(1)));
        assert!(!u.accepted("a", Instant::now(), at(1)));
        assert_eq!(u.place(&"a"), Some(at(0)));
        assert!(u.oldest_age() >= Duration::from_secs(10));
        assert_eq!(u.recorded(&"a"), Some(at(0)));
        let age = u.oldest_age();
        assert!(age >= Duration::from_secs(5) && age < Duration::from_secs(10), "{age:?}");
        assert_eq!(u.recorded(&"b"), Some(at(1)));
        assert_eq!(u.recorded(&"b"), None);
        assert_eq!((u.oldest_age(), u.len()), (Duration::ZERO, 0));
    }
}
