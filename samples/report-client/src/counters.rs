//! The client's counters: atomics updated by its task, read at any time (the tests do), logged at
//! unload, and sent in every report.

use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use executor::Instant;

/// What the client's task is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Not started, or ended (unloaded).
    Idle = 0,
    /// Resolving the server's name.
    Resolving = 1,
    /// Connecting to one of its addresses.
    Connecting = 2,
    /// Connected: reporting.
    Connected = 3,
    /// Waiting before the next attempt after a failure.
    BackingOff = 4,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Phase::Resolving,
            2 => Phase::Connecting,
            3 => Phase::Connected,
            4 => Phase::BackingOff,
            _ => Phase::Idle,
        }
    }
}

/// The live counters (one set per loaded driver; reset by DriverEntry).
pub(crate) struct Counters {
    connects: AtomicU64,
    reconnects: AtomicU64,
    reports_sent: AtomicU64,
    failures: AtomicU64,
    bytes_received: AtomicU64,
    /// The waits begun after failures.
    backoffs: AtomicU64,
    /// The length of the last of them, in milliseconds.
    last_backoff_ms: AtomicU64,
    /// When the current wait ends (interrupt time, 100 ns units); 0 when not backing off.
    retry_at: AtomicU64,
    phase: AtomicU8,
}

pub(crate) static COUNTERS: Counters = Counters {
    connects: AtomicU64::new(0),
    reconnects: AtomicU64::new(0),
    reports_sent: AtomicU64::new(0),
    failures: AtomicU64::new(0),
    bytes_received: AtomicU64::new(0),
    backoffs: AtomicU64::new(0),
    last_backoff_ms: AtomicU64::new(0),
    retry_at: AtomicU64::new(0),
    phase: AtomicU8::new(Phase::Idle as u8),
};

impl Counters {
    pub(crate) fn reset(&self) {
        for counter in [
            &self.connects,
            &self.reconnects,
            &self.reports_sent,
            &self.failures,
            &self.bytes_received,
            &self.backoffs,
            &self.last_backoff_ms,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.set_phase(Phase::Idle);
    }

    /// A connection was established; the first one is a connect, every later one a reconnect.
    pub(crate) fn connected(&self) {
        if self.connects.fetch_add(1, Ordering::Relaxed) > 0 {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn report_sent(&self) {
        self.reports_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_received.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A wait of `ms` milliseconds begins, ending at `until` (the phase says so too, after the
    /// counts: a reader that sees `BackingOff` sees this wait counted).
    pub(crate) fn backing_off(&self, ms: u64, until: Instant) {
        self.last_backoff_ms.store(ms, Ordering::Relaxed);
        self.retry_at.store(until.as_100ns().max(1), Ordering::Relaxed);
        self.backoffs.fetch_add(1, Ordering::Relaxed);
        self.phase.store(Phase::BackingOff as u8, Ordering::Release);
    }

    /// Any phase but `BackingOff` (which [`backing_off`](Self::backing_off) sets).
    pub(crate) fn set_phase(&self, phase: Phase) {
        self.retry_at.store(0, Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        let phase = Phase::from_u8(self.phase.load(Ordering::Acquire));
        CounterSnapshot {
            connects: self.connects.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            reports_sent: self.reports_sent.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            backoffs: self.backoffs.load(Ordering::Relaxed),
            last_backoff_ms: self.last_backoff_ms.load(Ordering::Relaxed),
            retry_at: match self.retry_at.load(Ordering::Relaxed) {
                0 => None,
                at => Some(Instant::from_100ns(at)),
            },
            phase,
        }
    }
}

/// The counters at one moment ([`counters`](crate::counters)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Connections established (the first and every reconnection).
    pub connects: u64,
    /// Connections established after the first.
    pub reconnects: u64,
    /// Reports whose send completed (WSK completes a send once the server acknowledged it).
    pub reports_sent: u64,
    /// Failures: a name that did not resolve, a connection refused or unreachable, a connection
    /// reset or closed by the server, a failed send or receive. Each is followed by a backoff.
    pub failures: u64,
    /// Bytes the server sent (read and discarded: it may acknowledge reports, or say nothing).
    pub bytes_received: u64,
    /// Backoff waits begun.
    pub backoffs: u64,
    /// The length of the last backoff wait, in milliseconds.
    pub last_backoff_ms: u64,
    /// While backing off: when the wait ends (the next attempt begins then, not before).
    pub retry_at: Option<Instant>,
    /// What the client is doing now.
    pub phase: Phase,
}

impl fmt::Display for CounterSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connects {}, reconnects {}, reports sent {}, failures {}, bytes received {}",
            self.connects, self.reconnects, self.reports_sent, self.failures, self.bytes_received
        )
    }
}
