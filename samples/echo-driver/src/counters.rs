//! The driver's counters: atomics updated by the tasks, read at any time, logged at unload.

use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The live counters (one set per loaded driver; reset by DriverEntry).
pub(crate) struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    active: AtomicUsize,
    bytes_echoed: AtomicU64,
    idle_aborts: AtomicU64,
    accept_errors: AtomicU64,
    buffer_waits: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    accepted: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    active: AtomicUsize::new(0),
    bytes_echoed: AtomicU64::new(0),
    idle_aborts: AtomicU64::new(0),
    accept_errors: AtomicU64::new(0),
    buffer_waits: AtomicU64::new(0),
};

impl Counters {
    pub(crate) fn reset(&self) {
        for counter in [
            &self.accepted,
            &self.refused,
            &self.bytes_echoed,
            &self.idle_aborts,
            &self.accept_errors,
            &self.buffer_waits,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.active.store(0, Ordering::Relaxed);
    }

    /// Takes one of `limit` connection places; `None` when all are taken. Only on [`COUNTERS`] (the
    /// one instance): a [`Place`] gives its place back there.
    pub(crate) fn try_claim(&'static self, limit: usize) -> Option<Place> {
        debug_assert!(core::ptr::eq(self, &COUNTERS));
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < limit).then_some(active + 1)
            })
            .ok()
            .map(|_| Place { _claimed: () })
    }

    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn echoed(&self, bytes: usize) {
        self.bytes_echoed.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn idle_abort(&self) {
        self.idle_aborts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn buffer_wait(&self) {
        self.buffer_waits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Acquire),
            bytes_echoed: self.bytes_echoed.load(Ordering::Relaxed),
            idle_aborts: self.idle_aborts.load(Ordering::Relaxed),
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
            buffer_waits: self.buffer_waits.load(Ordering::Relaxed),
        }
    }
}

/// One connection's place under the limit, given back when dropped: when its task ends, or when the
/// executor's shutdown drops the task's future, or when the spawn fails.
///
/// A place is in [`COUNTERS`], so it holds nothing: every connection's future carries one, and a
/// pointer would be 8 bytes of each connection's task slot.
pub(crate) struct Place {
    _claimed: (),
}

impl Drop for Place {
    fn drop(&mut self) {
        COUNTERS.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The counters at one moment ([`counters`](crate::counters)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterSnapshot {
    /// Connections served (given a task).
    pub accepted: u64,
    /// Connections over the limit (or finding no task slot, or no buffer within
    /// [`BUFFER_RETURN_BOUND`](crate::BUFFER_RETURN_BOUND)), reset.
    pub refused: u64,
    /// Connections being served now.
    pub active: usize,
    /// Bytes sent back to peers.
    pub bytes_echoed: u64,
    /// Connections aborted after the idle timeout.
    pub idle_aborts: u64,
    /// Accepts that failed (the listener retries after a short pause).
    pub accept_errors: u64,
    /// Connections admitted under the limit that found every buffer still lent to an operation of a
    /// connection that had ended (a cancelled IRP not yet completed), and waited for it.
    pub buffer_waits: u64,
}

impl fmt::Display for CounterSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted {}, refused {}, active {}, bytes echoed {}, idle aborts {}, accept errors {}, buffer waits {}",
            self.accepted,
            self.refused,
            self.active,
            self.bytes_echoed,
            self.idle_aborts,
            self.accept_errors,
            self.buffer_waits
        )
    }
}
