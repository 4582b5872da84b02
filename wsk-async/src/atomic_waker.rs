//! A waker cell that a completion routine can wake from any CPU at IRQL <= DISPATCH_LEVEL: atomics
//! only, no lock, never blocks.
//!
//! The classic three-state protocol: the future *registers* its waker (at PASSIVE_LEVEL, while it is
//! polled), the completion routine *wakes* it. A `register` and a `wake` may overlap; then the waker
//! being registered is woken by `register` itself, so a wake is never lost.
//!
//! ```text
//! IDLE ──register──► REGISTERING ──(stored)──► IDLE
//!   │                     │ wake arrives: sets WAKING, returns
//!   │                     └─► REGISTERING|WAKING ──register sees it──► takes the waker, wakes it, IDLE
//!   └──wake──► WAKING ──(taken)──► IDLE, then the taken waker is woken outside the cell
//! ```

use crate::sync::{AtomicU32, Cell, Ordering};
use core::task::Waker;

const IDLE: u32 = 0;
const REGISTERING: u32 = 1;
const WAKING: u32 = 2;

/// A DISPATCH_LEVEL-safe waker slot.
pub(crate) struct AtomicWaker {
    state: AtomicU32,
    waker: Cell<Option<Waker>>,
}

// SAFETY: the cell is only accessed by the thread that moved `state` from IDLE to REGISTERING or
// WAKING (an exclusive claim), so the `Option<Waker>` is never accessed concurrently; `Waker` is
// `Send + Sync`.
unsafe impl Send for AtomicWaker {}
// SAFETY: as above.
unsafe impl Sync for AtomicWaker {}

impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(IDLE),
            waker: Cell::new(None),
        }
    }

    /// Stores a waker to be woken by the next [`wake`](Self::wake). Called by the one future that
    /// owns the operation (never concurrently with itself).
    pub(crate) fn register(&self, waker: &Waker) {
        match self
            .state
            .compare_exchange(IDLE, REGISTERING, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => {
                // SAFETY: REGISTERING is held: nobody else touches the cell.
                self.waker.with_mut(|slot| unsafe {
                    match &*slot {
                        Some(old) if old.will_wake(waker) => {}
                        _ => *slot = Some(waker.clone()),
                    }
                });
                if let Err(actual) = self
                    .state
                    .compare_exchange(REGISTERING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                {
                    // A wake arrived meanwhile (state is REGISTERING | WAKING): it could not take the
                    // waker, so do its job: take the waker and wake it.
                    debug_assert_eq!(actual, REGISTERING | WAKING);
                    // SAFETY: still exclusive (REGISTERING is set, the waker side backed off).
                    let taken = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                    self.state.swap(IDLE, Ordering::AcqRel);
                    if let Some(w) = taken {
                        w.wake();
                    }
                }
            }
            Err(WAKING) => {
                // A wake is taking the old waker right now; wake the new one directly.
                waker.wake_by_ref();
            }
            Err(_) => {
                // REGISTERING concurrently with ourselves cannot happen (one owner); be safe anyway.
                waker.wake_by_ref();
            }
        }
    }

    /// Wakes and removes the registered waker, if any. Any thread, IRQL <= DISPATCH_LEVEL.
    pub(crate) fn wake(&self) {
        if let Some(w) = self.take() {
            w.wake();
        }
    }

    /// Removes the registered waker without waking it (for a future that goes away).
    pub(crate) fn take(&self) -> Option<Waker> {
        match self.state.fetch_or(WAKING, Ordering::AcqRel) {
            IDLE => {
                // SAFETY: we moved IDLE -> WAKING: exclusive access to the cell.
                let taken = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                self.state.fetch_and(!WAKING, Ordering::Release);
                taken
            }
            // A register is in progress: it sees WAKING and wakes its own waker; or another wake is
            // already taking the waker.
            _ => None,
        }
    }
}
