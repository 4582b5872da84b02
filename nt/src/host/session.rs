//! Test isolation: a [`Session`] owns the emulation for one test.

use super::heap::{QUARANTINE_BLOCKS, QUARANTINE_BYTES, heap};
use super::leaks::{self, LeakReport};
use super::{cancel, clock, driver, exports, irql, objects, timer, tracking, verifier, workitem};
use crate::types::PASSIVE_LEVEL;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

static SESSION_LOCK: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread holds the session lock (to refuse a nested session instead of deadlocking).
    static IN_SESSION: Cell<bool> = const { Cell::new(false) };
}

/// Whether a session is current (started and not yet ending), on any thread.
static ACTIVE: AtomicBool = AtomicBool::new(false);

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
/// not freed, and its DPC threads are told to exit, so nothing of it runs into this one.
///
/// # Panics
/// If the current thread already holds a session (a second one would wait for itself forever).
pub fn session() -> Session {
    if IN_SESSION.with(Cell::get) {
        panic!("emu::session() called while this thread already holds a session");
    }
    let exclusive = SESSION_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    IN_SESSION.with(|s| s.set(true));
    verifier::note_panics();
    reset_all();
    ACTIVE.store(true, Ordering::SeqCst);
    Session { _exclusive: exclusive }
}

/// Panics unless a session is current. For the emulation's process-wide test controls (the clock):
/// called between sessions (a harness's `Drop` that runs after its session ended, a thread left
/// running), it would land in the next test's session, such as one that has just paused the clock.
/// A thread the test spawned may use them while the test's session is current (an advancer thread);
/// which session it belongs to is not checked.
pub(super) fn require_current_session(control: &str) {
    if !ACTIVE.load(Ordering::SeqCst) {
        panic!(
            "{control} called while no emu::session() is current: the emulated clock is process-wide, \
             so a call between sessions changes the next test's clock; make it before the session ends"
        );
    }
}

fn reset_all() {
    // First: a completion of an earlier session checks the driver registry's generation before it
    // touches the heap.
    driver::reset();
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

/// How much the checker keeps in memory to recognise and explain what it finds. Process-wide: a new
/// session keeps it. Every rule is checked whatever the setting; what changes is how many recently
/// freed blocks a use after free or a double free is recognised in (older ones have gone back to
/// the host allocator), and whether reports say where each object was created and freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    /// Freed pool blocks, IRPs and MDLs kept back from the host allocator (filled with
    /// [`FREED_FILL`](crate::emu::pool::FREED_FILL)): at most this many...
    pub quarantine_blocks: usize,
    /// ...and at most this many bytes of them.
    pub quarantine_bytes: usize,
    /// Closed WSK sockets whose header and state stay allocated, so that a call after
    /// `WskCloseSocket` is recognised: at most this many.
    pub closed_sockets: usize,
    /// A backtrace is captured where each object is created and freed (a stack walk and, while the
    /// object lives or sits in the quarantine, a few KiB per object).
    pub backtraces: bool,
}

impl Checks {
    /// What a test gets unless it asks otherwise: 4,096 freed blocks or 64 MiB in quarantine, 1,024
    /// closed sockets, and backtraces (the default of [`set_backtraces`](crate::emu::set_backtraces):
    /// `NT_EMU_BACKTRACES=0` and Miri turn them off).
    pub const FULL: Checks = Checks {
        quarantine_blocks: QUARANTINE_BLOCKS,
        quarantine_bytes: QUARANTINE_BYTES,
        closed_sockets: 1024,
        backtraces: true,
    };

    /// For a program that runs for long and serves many connections (the echo driver's host
    /// program): the last 1,024 freed blocks, at most 1 MiB, the last 256 closed sockets, and no
    /// backtraces. The quarantines then hold at most 1 MiB plus about 100 bytes of bookkeeping per
    /// block, and under 1 KiB per closed socket; with [`FULL`](Self::FULL) they may hold 64 MiB
    /// plus two backtraces per block, and a backtrace per closed socket.
    pub const BOUNDED: Checks = Checks {
        quarantine_blocks: 1024,
        quarantine_bytes: 1 << 20,
        closed_sockets: 256,
        backtraces: false,
    };
}

/// Sets how much the checker keeps (see [`Checks`]) for the whole process, from now on: a smaller
/// quarantine gives its oldest blocks back at once. Sessions keep the setting.
pub fn set_checks(checks: Checks) {
    heap().set_quarantine_limits(checks.quarantine_blocks, checks.quarantine_bytes);
    CLOSED_SOCKETS.store(checks.closed_sockets, Ordering::Relaxed);
    verifier::set_backtraces(checks.backtraces);
}

/// [`Checks::closed_sockets`], read by the socket table each time a socket is closed.
static CLOSED_SOCKETS: AtomicUsize = AtomicUsize::new(Checks::FULL.closed_sockets);

/// How many closed sockets the socket table keeps (see [`Checks::closed_sockets`]).
pub(super) fn closed_socket_quarantine() -> usize {
    CLOSED_SOCKETS.load(Ordering::Relaxed)
}

/// The current setting (see [`set_checks`]).
pub fn checks() -> Checks {
    let (quarantine_blocks, quarantine_bytes) = heap().quarantine_limits();
    Checks {
        quarantine_blocks,
        quarantine_bytes,
        closed_sockets: closed_socket_quarantine(),
        backtraces: verifier::backtraces_enabled(),
    }
}

/// Lets what is already under way finish: queued DPCs run, ended system threads are joined.
fn settle() {
    // What the WSK provider deferred is completed first (its completion routines may queue work).
    super::wsk::settle();
    settle_without_wsk();
}

/// The part of [`settle`] that only waits for what is already queued or running: DPCs, work items,
/// ended threads. Unlike the WSK provider's deferred completions, which `settle` runs on the calling
/// thread, none of it is started here.
fn settle_without_wsk() {
    timer::settle(SETTLE_BOUND);
    workitem::settle(SETTLE_BOUND);
    objects::join_finished(SETTLE_BOUND);
}

impl Session {
    /// What is alive now and would be reported as a leak if the session ended here (after letting
    /// queued DPCs run and ended threads finish).
    pub fn leak_report(&self) -> LeakReport {
        settle();
        leaks::collect()
    }

    /// Ends the session after asserting, in the caller's frame, that its [`leak_report`] is empty
    /// (no IRP, socket, timer, work item, thread, pool block or driver image left) and that no
    /// violation was recorded and not yet taken ([`take_violations`]); panics (fails the test) with
    /// the report or the violations otherwise.
    ///
    /// [`leak_report`]: Self::leak_report
    /// [`take_violations`]: crate::emu::take_violations
    pub fn finish(self) {
        let report = self.leak_report();
        assert!(report.is_empty(), "{report}");
        let violations = verifier::take_violations();
        assert!(violations.is_empty(), "kernel rules broken: {violations:?}");
    }
}

impl Drop for Session {
    /// Ends the session: settles, then fails the test (panics; this is Rust code, not an
    /// `extern "system"` frame) if anything leaked or if violations were recorded but never taken.
    /// Stops the session's DPC threads. After a clean end, quarantined memory goes back to the host.
    fn drop(&mut self) {
        IN_SESSION.with(|s| s.set(false));
        ACTIVE.store(false, Ordering::SeqCst);
        if std::thread::panicking() {
            // The test failed and is unwinding: its locals, which the contexts of its completion
            // routines point into, are already dropped. Delivering the completions the provider
            // deferred would run those routines on freed memory (and end the run in a crash
            // instead of the test's failure). They are forgotten now, not delivered (waiting for
            // the next session to forget them would leave them to any wait in between), and the
            // provider's sockets with them (see `forget_failed_session`). DPCs and work items
            // already queued still run (on their own threads, as they would have anyway); the
            // waits below only bound how long they may take. What they defer meanwhile is
            // forgotten after them.
            super::wsk::forget_failed_session();
            settle_without_wsk();
            super::wsk::forget_failed_session();
        } else {
            settle();
        }
        let report = leaks::collect();
        let dpc_thread_stopped = timer::stop_thread(SETTLE_BOUND);
        let untaken = verifier::take_violations();
        if report.is_empty() && dpc_thread_stopped {
            heap().flush_quarantine();
        }
        if std::thread::panicking() {
            // The test failed: say how to replay it.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "*** nt emulation: {}",
                super::wsk::schedule::describe()
            );
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
