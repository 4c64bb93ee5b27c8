//! The shutdown signal every connection, delay and stalled stream listens to.

use std::time::Duration;

use tokio::sync::watch;

/// Sends the shutdown signal (once).
#[derive(Debug)]
pub(crate) struct ShutdownTrigger(watch::Sender<bool>);

/// Resolves when the mock shuts down (or its trigger is dropped).
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal(watch::Receiver<bool>);

/// A trigger and its first signal.
pub(crate) fn channel() -> (ShutdownTrigger, ShutdownSignal) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), ShutdownSignal(rx))
}

impl ShutdownTrigger {
    /// Signals shutdown to every [`ShutdownSignal`].
    pub(crate) fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl ShutdownSignal {
    /// Waits until shutdown is signalled.
    pub(crate) async fn wait(&mut self) {
        // An error means the trigger is gone, which is a shutdown too.
        let _ = self.0.wait_for(|down| *down).await;
    }

    /// Sleeps for `delay`; `false` when shutdown came first.
    pub(crate) async fn sleep(&mut self, delay: Duration) -> bool {
        if delay.is_zero() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.wait() => false,
        }
    }
}
