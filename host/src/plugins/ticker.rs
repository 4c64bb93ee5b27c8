//! The epoch ticker: advances the engine's epoch every [`EPOCH_TICK`] while a plugin call
//! may be running, and sleeps otherwise. A call's deadline is a number of ticks from when it
//! is set; once no deadline was set for longer than that, every call has ended or is past its
//! deadline (and traps at its next epoch check), so no tick is owed and the thread parks until
//! the next deadline is set. An idle gateway then has no 200 wake-ups a second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::Engine;

/// How often the epoch advances; call budgets are rounded up to whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// What the ticker thread and the callers share.
#[derive(Debug, Default)]
pub(super) struct Ticker {
    stop: AtomicBool,
    parked: AtomicBool,
    /// Ticks so far, and their count when a deadline was last set.
    ticks: AtomicU64,
    last_set: AtomicU64,
    thread: OnceLock<std::thread::Thread>,
}

impl Ticker {
    /// Starts the thread ticking `engine`; it parks once no deadline was set for `budget`
    /// ticks (a call's deadline, in ticks) and two more.
    pub(super) fn start(engine: Engine, budget: u64) -> std::io::Result<Arc<Ticker>> {
        let ticker = Arc::new(Ticker::default());
        let t = ticker.clone();
        std::thread::Builder::new().name("xjp-epoch".into()).spawn(move || {
            // Set before this thread can first park, so every wake-up finds it.
            let _ = t.thread.set(std::thread::current());
            while !t.stop.load(SeqCst) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
                let now = t.ticks.fetch_add(1, SeqCst) + 1;
                // Two ticks more than the budget: a caller may have read the count just before
                // this thread advanced it, and a tick may fall between that and its deadline.
                let idle = |t: &Ticker| now.saturating_sub(t.last_set.load(SeqCst)) > budget + 2;
                if idle(&t) {
                    t.parked.store(true, SeqCst);
                    // A deadline set meanwhile either shows here or sees `parked` and unparks.
                    if idle(&t) {
                        std::thread::park();
                    }
                    t.parked.store(false, SeqCst);
                }
            }
        })?;
        Ok(ticker)
    }

    /// A deadline is being set: the ticker ticks for at least its budget from now. Called
    /// before every plugin entry: the shared count is written once a tick, not per call.
    pub(super) fn deadline_set(&self) {
        let now = self.ticks.load(SeqCst);
        if self.last_set.load(SeqCst) != now {
            self.last_set.store(now, SeqCst);
        }
        if self.parked.load(SeqCst) && self.parked.swap(false, SeqCst) {
            self.unpark();
        }
    }

    /// Ends the thread (at its next tick).
    pub(super) fn stop(&self) {
        self.stop.store(true, SeqCst);
        self.unpark();
    }

    /// Whether the thread is parked (tests).
    #[cfg(test)]
    pub(super) fn is_parked(&self) -> bool {
        self.parked.load(SeqCst)
    }

    /// Ticks so far (tests).
    #[cfg(test)]
    pub(super) fn ticks(&self) -> u64 {
        self.ticks.load(SeqCst)
    }

    fn unpark(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}
