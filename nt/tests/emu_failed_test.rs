//! What the emulation does when a test fails (panics) with operations still in flight. The
//! session's end must not run the failed test's completion routines while the test unwinds: their
//! contexts are the test's locals, already dropped by then, so a routine run there writes into freed
//! memory (it used to end such a run in SIGSEGV instead of the test's own failure). And a bug check
//! during the unwinding, which aborts the process and so discards the test's captured output, must
//! name the failure itself. A binary of its own: its tests deliberately leave sessions with
//! operations in flight.
#![cfg(not(target_os = "windows"))]

mod common;
mod wsk_support;

use common::{Event, TAG};
use nt::emu::wsk::{MemoryNetwork, Schedule, set_schedule};
use nt::emu::{self};
use nt::*;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use wsk_support::*;

/// Counts its runs in the `AtomicUsize` its context points to (a `static`).
unsafe extern "system" fn count_completion(_device: PDEVICE_OBJECT, _irp: PIRP, context: PVOID) -> NTSTATUS {
    // SAFETY: the context is a `&'static AtomicUsize` (see `submit_receive`).
    unsafe { &*context.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// A receive pending on an accepted in-memory connection, under the `pending` schedule, with
/// [`count_completion`] counting into the caller's static as its completion routine; what it needs
/// is kept alive with it.
struct PendingReceive {
    irp: PIRP,
    _peer: emu::wsk::Peer,
    _client: Client,
    _net: MemoryNetwork,
}

/// Call inside a session. What the receive borrows (its buffer and `WSK_BUF`) is pool memory never
/// freed, which the next session forgets, so that nothing the test frees is still lent when it
/// fails; the IRP is the caller's to free or not.
fn pending_receive(runs: &'static AtomicUsize) -> PendingReceive {
    // Under `pending`, a cancelled receive completes after IoCancelIrp returned: it waits in the
    // provider's deferred queue, which the session's end delivers if the test passes.
    set_schedule(Schedule::Pending);
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (_listener, socket, peer) = connected(&client, &net);
    PendingReceive {
        irp: submit_receive(socket, runs),
        _peer: peer,
        _client: client,
        _net: net,
    }
}

/// Submits a 16-byte `WskReceive` on `socket` with [`count_completion`] counting into `runs` as its
/// completion routine, with a buffer and `WSK_BUF` in pool memory that is never freed; returns the
/// IRP (pending).
fn submit_receive(socket: PWSK_SOCKET, runs: &'static AtomicUsize) -> PIRP {
    let buf = PoolBuf::new(16);
    // SAFETY: PASSIVE_LEVEL; a WSK_BUF-sized block, written before use.
    let wsk_buf = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size_of::<WSK_BUF>(), TAG) }.cast::<WSK_BUF>();
    assert!(!wsk_buf.is_null());
    // SAFETY: a fresh block of the right size and pool alignment.
    unsafe { wsk_buf.write(buf.wsk(0, 16)) };
    std::mem::forget(buf);
    // SAFETY: PASSIVE_LEVEL.
    let irp = unsafe { IoAllocateIrp(1, FALSE) };
    assert!(!irp.is_null());
    let context = ptr::from_ref(runs).cast_mut().cast();
    // SAFETY: a fresh IRP of ours; the context is a static.
    unsafe { IoSetCompletionRoutine(irp, Some(count_completion), context, true, true, true) };
    let receive = conn(socket).WskReceive.expect("WskReceive");
    // SAFETY: a connected socket; the buffer and its WSK_BUF are never freed, the IRP is live.
    assert_eq!(unsafe { receive(socket, wsk_buf, 0, irp) }, STATUS_PENDING);
    irp
}

#[test]
fn a_failed_test_s_deferred_completion_does_not_run_while_it_unwinds_or_after() {
    static COMPLETIONS: AtomicUsize = AtomicUsize::new(0);
    let failed = catch_unwind(AssertUnwindSafe(|| {
        let _session = emu::session();
        let receive = pending_receive(&COMPLETIONS);
        // SAFETY: a live IRP (never freed: the test fails with it in flight).
        assert_ne!(unsafe { IoCancelIrp(receive.irp) }, 0, "the cancel routine ran");
        assert_eq!(COMPLETIONS.load(Ordering::SeqCst), 0, "deferred, as on another CPU");
        panic!("the test's own failure");
    }));
    let message = failed.expect_err("the closure fails");
    assert_eq!(message.downcast_ref::<&str>(), Some(&"the test's own failure"));
    assert_eq!(
        COMPLETIONS.load(Ordering::SeqCst),
        0,
        "the failed test's completion routine ran while its session unwound"
    );
    // Nor later, before the next session: an emulated wait delivers whatever the provider still
    // holds deferred (as the unwinding's own drops, or the failed test's TCP event loop, would).
    // A signalled event: the wait returns at once, after the delivery hook.
    Event::new(NotificationEvent, true).wait(None);
    assert_eq!(
        COMPLETIONS.load(Ordering::SeqCst),
        0,
        "a wait after the failed test's session delivered its deferred completion"
    );
    // The next session starts clean: what the failed one left is forgotten, never completed.
    emu::session().finish();
    assert_eq!(COMPLETIONS.load(Ordering::SeqCst), 0);
}

/// Over TCP, an IRP the failed test left queued on a socket is completed by the transport's event
/// loop when the host's end acts. The failed session's end stops that loop (it forgets the
/// provider's registrations and sockets, which joins the loop's thread), so nothing the host does
/// afterwards can run the failed test's routine.
#[cfg(not(miri))]
#[test]
fn a_failed_test_s_session_end_stops_the_tcp_transport_that_holds_its_irps() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let mut host_end = None;
    let failed = catch_unwind(AssertUnwindSafe(|| {
        let _session = emu::session();
        set_schedule(Schedule::Realistic);
        let client = Client::register();
        let (_listener, socket, peer) = connected_over_tcp(&client);
        let _irp = submit_receive(socket, &RUNS);
        // The loop's thread names itself once it runs (std sets a thread's name from inside it):
        // wait for that, bounded, before counting it below.
        let named_by = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while event_loop_threads() != 1 {
            assert!(std::time::Instant::now() < named_by, "the transport's event loop runs");
            std::thread::yield_now();
        }
        host_end = Some(peer);
        panic!("the test's own failure");
    }));
    assert!(failed.is_err());
    assert_eq!(
        event_loop_threads(),
        0,
        "the TCP transport's event loop outlived the failed test's session (it would complete the \
         test's queued receive when the host's end acts)"
    );
    // The host closes its end, which a live transport would complete the receive with.
    drop(host_end.take().expect("connected"));
    emu::session().finish();
    assert_eq!(RUNS.load(Ordering::SeqCst), 0);
}

/// How many threads of this process are the TCP transport's event loop (by name, which Linux
/// truncates to 15 bytes). This binary's other tests use the in-memory network, which has none.
#[cfg(not(miri))]
fn event_loop_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "wsk-tcp-event-l")
        .count()
}

/// Frees its IRP when dropped (the violation the tests below make, recorded and made harmless by
/// the emulation), and takes the violations recorded so far into `taken` while the session is
/// still held (once the failed test's session ends, another test's may clear them).
struct FreeOnDrop<'a> {
    irp: PIRP,
    taken: &'a Mutex<Vec<String>>,
}

impl Drop for FreeOnDrop<'_> {
    fn drop(&mut self) {
        // SAFETY: our IRP, pending: see the type's documentation.
        unsafe { IoFreeIrp(self.irp) };
        let messages = emu::take_violations().iter().map(ToString::to_string).collect();
        *self.taken.lock().unwrap() = messages;
    }
}

/// Runs `fail` in a session with a receive pending, and frees the receive's IRP (a violation)
/// while `fail`'s panic unwinds; returns the violations' reports.
fn violation_while_unwinding(fail: impl FnOnce()) -> Vec<String> {
    // The receive never completes (its IRP is freed); its routine counts here, apart from the
    // other tests' counts.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let taken = Mutex::new(Vec::new());
    let failed = catch_unwind(AssertUnwindSafe(|| {
        let _session = emu::session();
        emu::expect_violations();
        let receive = pending_receive(&RUNS);
        let _free = FreeOnDrop {
            irp: receive.irp,
            taken: &taken,
        };
        fail();
    }));
    assert!(failed.is_err(), "`fail` did not panic");
    let taken = taken.into_inner().unwrap();
    assert_eq!(taken.len(), 1, "one violation: {taken:?}");
    assert!(taken[0].contains("IRP freed while pending"), "{}", taken[0]);
    taken
}

/// A bug check while the test unwinds from its own failure aborts the process, and the abort
/// discards the test's output, panic message included. The report must carry that message itself.
#[test]
fn a_bug_check_while_a_failed_test_unwinds_names_the_failure() {
    let taken = violation_while_unwinding(|| panic!("the test's own failure"));
    assert!(
        taken[0].contains("detected while the thread unwinds from a panic")
            && taken[0].contains("'the test's own failure' at nt/tests/emu_failed_test.rs:"),
        "the report does not name the failure being unwound:\n{}",
        taken[0]
    );
}

/// A panic resumed with `resume_unwind` calls no panic hook: the report must not name an older
/// panic of the same thread instead, from before the session.
#[test]
fn a_bug_check_while_unwinding_never_names_a_panic_from_before_the_session() {
    // A session first, so that the hook is installed and records the earlier panic.
    emu::session().finish();
    let earlier = catch_unwind(|| panic!("a panic caught before the session"));
    assert!(earlier.is_err());
    let taken = violation_while_unwinding(|| resume_unwind(Box::new("resumed")));
    assert!(
        taken[0].contains("detected while the thread unwinds from a panic")
            && taken[0].contains("<message not recorded>")
            && !taken[0].contains("a panic caught before the session"),
        "{}",
        taken[0]
    );
}
