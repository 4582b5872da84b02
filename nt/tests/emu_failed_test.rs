//! What the emulation does when a test fails (panics) with operations still in flight: the
//! session's end must not run the failed test's completion routines while the test unwinds. Their
//! contexts are the test's locals, already dropped by then, so a routine run there writes into freed
//! memory (it used to end such a run in SIGSEGV instead of the test's own failure). A separate
//! binary: it deliberately leaves a session with a deferred completion behind.
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{MemoryNetwork, Schedule, set_schedule};
use nt::emu::{self};
use nt::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use wsk_support::*;

/// The pool tag of this test's blocks: `Fail`.
const POOL_TAG: ULONG = u32::from_le_bytes(*b"Fail");

/// Runs of [`count_completion`].
static COMPLETIONS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn count_completion(_device: PDEVICE_OBJECT, _irp: PIRP, _context: PVOID) -> NTSTATUS {
    COMPLETIONS.fetch_add(1, Ordering::SeqCst);
    STATUS_MORE_PROCESSING_REQUIRED
}

#[test]
fn a_failed_test_s_deferred_completion_does_not_run_while_it_unwinds() {
    let failed = catch_unwind(AssertUnwindSafe(|| {
        let _session = emu::session();
        // Under `pending`, a cancelled receive completes after IoCancelIrp returned: it waits in
        // the provider's deferred queue, which the session's end delivers if the test passes.
        set_schedule(Schedule::Pending);
        let net = MemoryNetwork::install();
        let client = Client::register();
        let listener = dual_stack_listener(&client, 0);
        let port = local_address(listener).port();
        let _peer = net
            .connect(std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
            .expect("connect");
        let socket = accept_one(listener);
        // What the receive borrows is never freed (pool memory, which the next session forgets),
        // so that nothing the test frees is still lent when it fails: the only thing checked here
        // is whether the completion routine runs.
        let buf = PoolBuf::new(16);
        // SAFETY: PASSIVE_LEVEL; a WSK_BUF-sized block, written before use.
        let wsk_buf = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size_of::<WSK_BUF>(), POOL_TAG) }.cast::<WSK_BUF>();
        assert!(!wsk_buf.is_null());
        // SAFETY: a fresh block of the right size and pool alignment.
        unsafe { wsk_buf.write(buf.wsk(0, 16)) };
        std::mem::forget(buf);
        // SAFETY: PASSIVE_LEVEL; the IRP is never freed (the test fails with it in flight).
        let irp = unsafe { IoAllocateIrp(1, FALSE) };
        assert!(!irp.is_null());
        // SAFETY: a fresh IRP of ours; the routine touches no context.
        unsafe { IoSetCompletionRoutine(irp, Some(count_completion), ptr::null_mut(), true, true, true) };
        let receive = conn(socket).WskReceive.expect("WskReceive");
        // SAFETY: a connected socket; the buffer, its WSK_BUF and the IRP are never freed.
        assert_eq!(unsafe { receive(socket, wsk_buf, 0, irp) }, STATUS_PENDING);
        // SAFETY: a live IRP.
        assert_ne!(unsafe { IoCancelIrp(irp) }, 0, "the cancel routine ran");
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
    // The next session starts clean: what the failed one left is forgotten, never completed.
    emu::session().finish();
    assert_eq!(COMPLETIONS.load(Ordering::SeqCst), 0);
}

/// Frees its IRP when dropped, and takes the violations recorded so far into `taken` while the
/// session is still held (once the failed test's session ends, another test's may clear them).
struct FreeOnDrop<'a> {
    irp: PIRP,
    taken: &'a std::sync::Mutex<Vec<String>>,
}

impl Drop for FreeOnDrop<'_> {
    fn drop(&mut self) {
        // SAFETY: our IRP; freeing it while pending is the violation under test (recorded, made
        // harmless by the emulation).
        unsafe { IoFreeIrp(self.irp) };
        let messages = emu::take_violations().iter().map(ToString::to_string).collect();
        *self.taken.lock().unwrap() = messages;
    }
}

/// A bug check while the test unwinds from its own failure aborts the process, and the abort
/// discards the test's output, panic message included. The report must carry that message itself.
#[test]
fn a_bug_check_while_a_failed_test_unwinds_names_the_failure() {
    let taken = std::sync::Mutex::new(Vec::new());
    let failed = catch_unwind(AssertUnwindSafe(|| {
        let _session = emu::session();
        emu::expect_violations();
        set_schedule(Schedule::Pending);
        let net = MemoryNetwork::install();
        let client = Client::register();
        let listener = dual_stack_listener(&client, 0);
        let port = local_address(listener).port();
        let _peer = net
            .connect(std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
            .expect("connect");
        let socket = accept_one(listener);
        let buf = PoolBuf::new(16);
        // SAFETY: PASSIVE_LEVEL; a WSK_BUF-sized block, written before use.
        let wsk_buf = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size_of::<WSK_BUF>(), POOL_TAG) }.cast::<WSK_BUF>();
        assert!(!wsk_buf.is_null());
        // SAFETY: a fresh block of the right size and pool alignment.
        unsafe { wsk_buf.write(buf.wsk(0, 16)) };
        std::mem::forget(buf);
        // SAFETY: PASSIVE_LEVEL.
        let irp = unsafe { IoAllocateIrp(1, FALSE) };
        assert!(!irp.is_null());
        // SAFETY: a fresh IRP of ours; the routine touches no context.
        unsafe { IoSetCompletionRoutine(irp, Some(count_completion), ptr::null_mut(), true, true, true) };
        let receive = conn(socket).WskReceive.expect("WskReceive");
        // SAFETY: a connected socket; the buffer and its WSK_BUF are never freed; the IRP is freed
        // only by the guard, which is the violation this test makes.
        assert_eq!(unsafe { receive(socket, wsk_buf, 0, irp) }, STATUS_PENDING);
        let _free = FreeOnDrop { irp, taken: &taken };
        panic!("the test's own failure");
    }));
    assert!(failed.is_err());
    let taken = taken.into_inner().unwrap();
    assert_eq!(taken.len(), 1, "one violation: {taken:?}");
    assert!(taken[0].contains("IRP freed while pending"), "{}", taken[0]);
    assert!(
        taken[0].contains("detected while the thread unwinds from a panic")
            && taken[0].contains("'the test's own failure' at nt/tests/emu_failed_test.rs:"),
        "the report does not name the failure being unwound:\n{}",
        taken[0]
    );
}
