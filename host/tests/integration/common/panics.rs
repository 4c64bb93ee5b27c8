//! Counts the panics of the code under test. The gateway runs in the test process: a panic
//! in one of its connection or request tasks is caught by tokio and otherwise shows only as
//! a closed connection or a `Lost` row, which a test could mistake for a client hiccup.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Panics so far in this process outside test code (a failing assertion of another test
/// sharing the process under `cargo test` is not counted; nextest runs each test in a
/// process of its own). The first call installs the counting hook, which hands every panic
/// on to the hook that was there before, so messages still print.
pub fn count() -> usize {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("tests/")) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
    PANICS.load(Ordering::SeqCst)
}
