//! Test isolation: a [`Session`] owns the emulation for one test.

use super::heap::heap;
use super::leaks::{self, LeakReport};
use super::{cancel, clock, exports, irql, objects, timer, tracking, verifier};
use crate::types::PASSIVE_LEVEL;
use std::cell::Cell;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

static SESSION_LOCK: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread holds the session lock (to refuse a nested session instead of deadlocking).
    static IN_SESSION: Cell<bool> = const { Cell::new(false) };
}

/// How long the end of a session waits, in real time, for queued DPCs and for system threads that
/// have signalled their end to finish returning. Only a hung emulated thread ever hits it.
const SETTLE_BOUND: Duration = Duration::from_secs(10);

/// The emulation, owned by one test. See [`session`].
#[must_use = "the session ends (and checks for leaks) when this guard is dropped"]
pub struct Session {
    _exclusive: MutexGuard<'static, ()>,
}

/// Starts a session: takes the process-wide session lock (tests of one process that use the
/// emulation run one at a time), then resets every piece of emulation state (pool, IRPs, MDLs,
/// objects, handles, timers, DPCs, tracked objects, fault injection, recording mode, clock back to
/// real time, this thread back to PASSIVE_LEVEL). Objects left by an earlier session are forgotten,
/// not freed, and its DPC thread is told to exit, so nothing of it runs into this one.
///
/// # Panics
/// If the current thread already holds a session (a second one would wait for itself forever).
pub fn session() -> Session {
    if IN_SESSION.with(Cell::get) {
        panic!("emu::session() called while this thread already holds a session");
    }
    let exclusive = SESSION_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    IN_SESSION.with(|s| s.set(true));
    reset_all();
    Session { _exclusive: exclusive }
}

fn reset_all() {
    timer::reset();
    objects::reset();
    heap().reset();
    tracking::reset();
    cancel::reset();
    verifier::reset();
    clock::reset();
    exports::reset();
    super::wsk::reset();
    irql::set(PASSIVE_LEVEL);
}

/// Lets what is already under way finish: queued DPCs run, ended system threads are joined.
fn settle() {
    timer::settle(SETTLE_BOUND);
    objects::join_finished(SETTLE_BOUND);
}

impl Session {
    /// What is alive now and would be reported as a leak if the session ended here (after letting
    /// queued DPCs run and ended threads finish).
    pub fn leak_report(&self) -> LeakReport {
        settle();
        leaks::collect()
    }
}

impl Drop for Session {
    /// Ends the session: settles, then fails the test (panics; this is Rust code, not an
    /// `extern "system"` frame) if anything leaked or if violations were recorded but never taken.
    /// Stops the session's DPC thread. After a clean end, quarantined memory goes back to the host.
    fn drop(&mut self) {
        IN_SESSION.with(|s| s.set(false));
        settle();
        let report = leaks::collect();
        let dpc_thread_stopped = timer::stop_thread(SETTLE_BOUND);
        let untaken = verifier::take_violations();
        if report.is_empty() && dpc_thread_stopped {
            heap().flush_quarantine();
        }
        if std::thread::panicking() {
            return;
        }
        if !report.is_empty() {
            panic!("{report}");
        }
        if !untaken.is_empty() {
            let all: Vec<String> = untaken.iter().map(ToString::to_string).collect();
            panic!(
                "*** nt emulation: {} violation(s) recorded but never taken with emu::take_violations():\n{}",
                untaken.len(),
                all.join("\n")
            );
        }
        if !dpc_thread_stopped {
            panic!("*** nt emulation: a DPC routine was still running {SETTLE_BOUND:?} after the session ended");
        }
    }
}
