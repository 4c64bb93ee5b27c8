//! The ledger's backlog: rows durable in the spool but not in Postgres yet. It tells the
//! spool which sealed segments can go (none of their rows waits any more), feeds the gauges,
//! and is what load shedding reads ([`Backlog::exceeds`], two atomic loads) so that the
//! gateway refuses new requests before the spool outgrows its bound.

use super::stages::RowKey;
use super::unrecorded::{Place, Unrecorded};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Spooled rows not in Postgres, by segment.
#[derive(Debug, Default)]
pub struct Backlog {
    state: Mutex<State>,
    /// Rows waiting (mirrors `state.unrecorded.len()` for lock-free reads).
    rows: AtomicU64,
    /// Bytes in the spool (every segment).
    bytes: AtomicU64,
    /// Shedding since the backlog reached a bound, until it is back under 90 % of both.
    shedding: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    unrecorded: Unrecorded<RowKey>,
    /// Segment -> rows first spooled there and still waiting.
    live: HashMap<u64, usize>,
    /// Sealed segments that still hold a waiting row.
    sealed: HashSet<u64>,
    /// Sealed segments none of whose rows waits any more: to delete.
    done: Vec<u64>,
}

impl Backlog {
    /// Rows were made durable, each at its place (call under the spool's lock, before
    /// anything can record them).
    pub fn spooled<'a>(&self, rows: impl IntoIterator<Item = (&'a RowKey, Place)>, at: Instant) {
        let mut s = self.state.lock();
        for (key, place) in rows {
            if s.unrecorded.accepted(key.clone(), at, place) {
                *s.live.entry(place.segment).or_default() += 1;
            }
        }
        self.rows.store(s.unrecorded.len() as u64, Ordering::Relaxed);
    }

    /// Rows are in Postgres (or set aside for good).
    pub fn recorded<'a>(&self, keys: impl IntoIterator<Item = &'a RowKey>) {
        let mut s = self.state.lock();
        for key in keys {
            let Some(Place { segment, .. }) = s.unrecorded.recorded(key) else { continue };
            let live = s.live.get_mut(&segment).expect("a waiting row's segment is counted");
            *live -= 1;
            if *live == 0 {
                s.live.remove(&segment);
                if s.sealed.remove(&segment) {
                    s.done.push(segment);
                }
            }
        }
        self.rows.store(s.unrecorded.len() as u64, Ordering::Relaxed);
    }

    /// `segment` was sealed: true when none of its rows waits (delete it now).
    pub fn sealed(&self, segment: u64) -> bool {
        let mut s = self.state.lock();
        let waiting = s.live.contains_key(&segment);
        if waiting {
            s.sealed.insert(segment);
        }
        !waiting
    }

    /// Sealed segments that no longer hold a waiting row.
    pub fn take_done(&self) -> Vec<u64> {
        std::mem::take(&mut self.state.lock().done)
    }

    /// Whether `key` waits.
    pub fn contains(&self, key: &RowKey) -> bool {
        self.state.lock().unrecorded.place(key).is_some()
    }

    /// Where the given keys wait: segment -> frame starts, in order.
    pub fn places_of<'a>(&self, keys: impl IntoIterator<Item = &'a RowKey>) -> BTreeMap<u64, Vec<u64>> {
        let s = self.state.lock();
        let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for place in keys.into_iter().filter_map(|k| s.unrecorded.place(k)) {
            out.entry(place.segment).or_default().push(place.offset);
        }
        out.values_mut().for_each(|v| v.sort_unstable());
        out
    }

    /// The spool now holds `bytes`.
    pub fn set_bytes(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// Rows waiting.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Bytes in the spool.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether new requests are shed: from when the backlog reaches either bound until it is
    /// back under 90 % of both (so the gateway does not flap at the bound).
    pub fn exceeds(&self, max_rows: u64, max_bytes: u64) -> bool {
        let (rows, bytes) = (self.rows(), self.bytes());
        if rows >= max_rows || bytes >= max_bytes {
            self.shedding.store(true, Ordering::Relaxed);
            return true;
        }
        if !self.shedding.load(Ordering::Relaxed) {
            return false;
        }
        let under = |v: u64, max: u64| u128::from(v) * 10 < u128::from(max) * 9;
        if under(rows, max_rows) && under(bytes, max_bytes) {
            self.shedding.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// How long the oldest waiting row has waited (zero when none waits).
    pub fn oldest_age(&self) -> Duration {
        self.state.lock().unrecorded.oldest_age()
    }

    /// Reports the backlog gauges.
    pub fn report(&self) {
        metrics::gauge!("xjp_ledger_oldest_unrecorded_seconds").set(self.oldest_age().as_secs_f64());
        metrics::gauge!("xjp_ledger_backlog_rows").set(self.rows() as f64);
        metrics::gauge!("xjp_ledger_spool_bytes").set(self.bytes() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RowKey {
        (uuid::Uuid::nil(), n.to_string())
    }

    fn spool(b: &Backlog, keys: &[RowKey], segment: u64) {
        b.spooled(keys.iter().zip(0..).map(|(k, i)| (k, Place { segment, offset: i * 100 })), Instant::now());
    }

    #[test]
    fn a_sealed_segment_is_done_when_its_rows_are_recorded() {
        let b = Backlog::default();
        spool(&b, &[key(1), key(2)], 0);
        spool(&b, &[key(2), key(3)], 1);
        assert_eq!(b.rows(), 3);
        let places = b.places_of(&[key(3), key(2), key(1)]);
        assert_eq!(places, BTreeMap::from([(0, vec![0, 100]), (1, vec![100])]));
        assert!(!b.sealed(0));
        b.recorded(&[key(1)]);
        assert!(b.take_done().is_empty());
        b.recorded(&[key(2)]);
        assert_eq!(b.take_done(), [0]);
        assert!(!b.sealed(1));
        b.recorded(&[key(3), key(3)]);
        assert_eq!((b.take_done(), b.rows()), (vec![1], 0));
        spool(&b, &[key(4)], 2);
        b.recorded(&[key(4)]);
        assert!(b.sealed(2), "an emptied segment is done when sealed");
    }

    #[test]
    fn shedding_starts_at_a_bound_and_stops_under_nine_tenths_of_both() {
        let b = Backlog::default();
        b.set_bytes(10);
        assert!(!b.exceeds(1, 11), "under both bounds");
        assert!(b.exceeds(u64::MAX, 10), "at the byte bound");
        b.set_bytes(9);
        assert!(b.exceeds(u64::MAX, 10), "still at 90 %: keeps shedding");
        b.set_bytes(8);
        assert!(!b.exceeds(u64::MAX, 10), "under 90 %: serves again");
        assert!(!b.exceeds(u64::MAX, 10));
        spool(&b, &[key(1), key(2)], 0);
        assert!(b.exceeds(2, u64::MAX), "at the row bound");
        b.recorded(&[key(1)]);
        assert!(!b.exceeds(2, u64::MAX), "1 row of 2 is under 90 %");
    }
}
