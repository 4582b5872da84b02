//! A test hook ([`pause_next_call`](super::control::pause_next_call)): the next call on a socket
//! stops inside the provider, after it is counted as in progress, until the test releases it. That is
//! how a test makes `WskCloseSocket` race a call in progress deterministically.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A test hook that stops the next call on a socket inside the provider, so a test can make that call
/// be "in progress" while another thread calls `WskCloseSocket`.
#[derive(Default)]
pub(crate) struct CallGate {
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl CallGate {
    fn lock(&self) -> MutexGuard<'_, (bool, bool)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by the paused call: records that it is inside, waits until released.
    pub(crate) fn pass(&self) {
        let mut state = self.lock();
        state.0 = true;
        self.changed.notify_all();
        while !state.1 {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub(crate) fn wait_entered(&self, bound: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, bound, |s| !s.0)
            .unwrap_or_else(PoisonError::into_inner);
        state.0
    }

    pub(crate) fn release(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }
}
