//! A harsh completion order for tests ([`set_defer_cancelled`](super::control::set_defer_cancelled)):
//! every IRP the provider completes with STATUS_CANCELLED (cancelled by `IoCancelIrp`, or flushed by
//! `WskCloseSocket` or `WskDeregister`) is parked instead of completed, and completed later, when the
//! test delivers it, on the test's thread at DISPATCH_LEVEL: as another CPU would.
//!
//! Why that is legal on Windows (Microsoft's documentation, paraphrased):
//! * `IoCancelIrp` only sets the IRP's cancel bit and calls its cancel routine, if one is set; its
//!   return value says whether a routine was called, not that the IRP has completed. An IRP without
//!   a cancel routine at that moment is cancelled later, when it becomes cancellable; and a driver
//!   that cancels an IRP it allocated has no guarantee that it completes with STATUS_CANCELLED,
//!   since another thread may already be completing it. Only the completion routine (set with
//!   InvokeOnCancel) says when the IRP is done. So a cancelled IRP may complete after `IoCancelIrp`
//!   has returned, on another CPU.
//! * `WskCloseSocket`: calling it makes the WSK subsystem cancel and complete every IRP still pending
//!   from earlier calls on the socket; STATUS_PENDING means the close IRP is completed once the socket
//!   is closed. Whether the close IRP completes only after the cancelled IRPs have completed (their
//!   completion routines returned) is not documented.
//!
//! Invented: the order this module produces, where the close IRP (and an abortive `WskDisconnect`)
//! completes while IRPs it cancelled have not completed yet. Windows documents no such order, and no
//! order that excludes it either; the emulation must not be kinder than Windows, so the harsh order is
//! available here on demand, and the completion schedules `pending` and `random` take it too
//! ([`super::schedule::late_ended`]). Invented (kind): without either, under `realistic` and
//! `inline`, every cancelled IRP completes before `IoCancelIrp` or the close returns.

use super::irp::Done;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The knob: park STATUS_CANCELLED completions.
static DEFER: AtomicBool = AtomicBool::new(false);

/// Completions parked while [`DEFER`] is set, in the order the provider made them.
static PARKED: Mutex<Vec<Done>> = Mutex::new(Vec::new());

/// Signalled when a completion is parked.
static PARKED_CHANGED: Condvar = Condvar::new();

fn parked() -> MutexGuard<'static, Vec<Done>> {
    PARKED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Parks `done` instead of completing it if the knob is set and it is a cancellation; false if the
/// caller must complete it now.
pub(crate) fn park(done: &Done) -> bool {
    if done.status != crate::types::STATUS_CANCELLED || !DEFER.load(Ordering::Acquire) {
        return false;
    }
    let mut list = parked();
    list.push(Done::new(done.irp, done.status, done.information));
    PARKED_CHANGED.notify_all();
    true
}

/// Sets the knob. Turning it off delivers what is parked (see [`deliver`]).
pub(crate) fn set(on: bool) {
    DEFER.store(on, Ordering::Release);
    if !on {
        deliver();
    }
}

/// Completes every parked IRP, oldest first, on the calling thread at DISPATCH_LEVEL; returns how
/// many. No provider lock is held here, as for every completion.
pub(crate) fn deliver() -> usize {
    let list = core::mem::take(&mut *parked());
    let count = list.len();
    crate::emu::at_dispatch(|| {
        for done in list {
            super::irp::complete_one(&done);
        }
    });
    count
}

/// Waits until at least `count` completions are parked; false after `bound`.
pub(crate) fn wait_parked(count: usize, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    let mut list = parked();
    while list.len() < count {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        list = PARKED_CHANGED
            .wait_timeout(list, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    true
}

/// A failed test's session end, while it unwinds: forgets what is parked without running its
/// completion routines (the knob stays as the test set it: what is cancelled later is parked too).
pub(crate) fn forget() {
    parked().clear();
}

/// A fresh session: knob off, and whatever a failed test left parked forgotten (its IRPs belong to
/// the ended session, whose leak report names them).
pub(crate) fn reset() {
    DEFER.store(false, Ordering::Release);
    parked().clear();
}
