//! A token bucket holding one second's worth of tokens: the rate limit on lookups of keys
//! no cache knows.

use parking_lot::Mutex;
use std::time::Instant;

/// A token bucket holding one second's worth of tokens.
pub(super) struct TokenBucket {
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub(super) fn new(per_sec: u32) -> Self {
        let per_sec = f64::from(per_sec);
        TokenBucket { per_sec, state: Mutex::new((per_sec, Instant::now())) }
    }

    /// Takes a token if there is one.
    pub(super) fn take(&self) -> bool {
        let mut state = self.state.lock();
        let now = Instant::now();
        let (tokens, at) = *state;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.per_sec).min(self.per_sec);
        let (left, taken) = if tokens >= 1.0 { (tokens - 1.0, true) } else { (tokens, false) };
        *state = (left, now);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_holds_one_second() {
        let bucket = TokenBucket::new(5);
        assert_eq!((0..10).filter(|_| bucket.take()).count(), 5);
        std::thread::sleep(Duration::from_millis(220));
        assert!(bucket.take(), "refilled at 5 per second");
    }
}
