//! IRPs on the host emulation: lifecycle, completion routines, cancellation, reuse, and the I/O
//! verification rules.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, SendPtr, take_one};
use nt::emu::{self, Rule};
use nt::*;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};

/// What a completion routine saw, and the event it signals.
struct Completion {
    done: Box<Event>,
    calls: AtomicUsize,
    irql: AtomicU8,
    status: AtomicI32,
    cancel: AtomicU8,
    /// What the routine returns.
    returns: NTSTATUS,
}

impl Completion {
    fn new(returns: NTSTATUS) -> Box<Completion> {
        Box::new(Completion {
            done: Event::new(NotificationEvent, false),
            calls: AtomicUsize::new(0),
            irql: AtomicU8::new(0xff),
            status: AtomicI32::new(0),
            cancel: AtomicU8::new(0),
            returns,
        })
    }

    fn context(&self) -> PVOID {
        self as *const Completion as PVOID
    }
}

unsafe extern "system" fn on_complete(_device: PDEVICE_OBJECT, irp: PIRP, context: PVOID) -> NTSTATUS {
    // SAFETY: the context is the test's `Completion`, alive until the test has seen the event; the IRP
    // is ours again while this routine runs.
    unsafe {
        let c = &*(context as *const Completion);
        c.irql.store(KeGetCurrentIrql(), Ordering::SeqCst);
        c.status.store((*irp).IoStatus.Status, Ordering::SeqCst);
        c.cancel.store(
            AtomicU8::from_ptr(&raw mut (*irp).Cancel).load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
        c.calls.fetch_add(1, Ordering::SeqCst);
        c.done.set();
        c.returns
    }
}

/// Allocates a one-location IRP with `on_complete` armed for every outcome.
fn irp_with_routine(completion: &Completion) -> PIRP {
    // SAFETY: plain allocation; the routine and context stay valid while the IRP is in flight.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        assert!(!irp.is_null());
        IoSetCompletionRoutine(irp, Some(on_complete), completion.context(), true, true, true);
        irp
    }
}

/// Completes `irp` the way a provider does: status, then IofCompleteRequest at DISPATCH_LEVEL.
fn complete(irp: PIRP, status: NTSTATUS, information: usize) {
    emu::at_dispatch(|| {
        // SAFETY: the caller (acting as the provider) owns the pending IRP.
        unsafe {
            (*irp).IoStatus = IO_STATUS_BLOCK::new(status, information);
            IofCompleteRequest(irp, IO_NO_INCREMENT);
        }
    });
}

#[test]
fn allocate_initialises_like_io_initialize_irp() {
    let _session = emu::session();
    // SAFETY: the IRP is allocated, inspected and freed by this test only.
    unsafe {
        let irp = IoAllocateIrp(3, FALSE);
        assert!(!irp.is_null());
        assert_eq!((*irp).Type, IO_TYPE_IRP);
        assert_eq!((*irp).Size as usize, IoSizeOfIrp(3));
        assert_eq!((*irp).StackCount, 3);
        assert_eq!((*irp).CurrentLocation, 4);
        let first = irp.add(1).cast::<IO_STACK_LOCATION>();
        assert_eq!(IoGetCurrentIrpStackLocation(irp), first.add(3));
        assert_eq!(IoGetNextIrpStackLocation(irp), first.add(2));
        assert!((*irp).MdlAddress.is_null());
        assert_eq!((*irp).Cancel, FALSE);
        assert!(!emu::irp::is_pending(irp));
        assert_eq!(emu::irp::live_count(), 1);
        IoFreeIrp(irp);
        assert_eq!(emu::irp::live_count(), 0);
    }
}

#[test]
fn completion_routine_runs_at_dispatch_on_the_provider_thread() {
    let _session = emu::session();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP; it hands it to the provider thread and gets it back via the event.
    unsafe { assert!(emu::irp::enter_provider(irp)) };
    assert!(emu::irp::is_pending(irp));
    // SAFETY: the IRP is pending, so the provider owns it.
    unsafe { assert_eq!((*irp).CurrentLocation, 1) };
    let provider_irp = SendPtr(irp);
    let provider = std::thread::spawn(move || complete(provider_irp.get(), STATUS_SUCCESS, 42));
    assert_eq!(completion.done.wait(Some(BOUND)), STATUS_SUCCESS);
    provider.join().unwrap();
    assert_eq!(completion.calls.load(Ordering::SeqCst), 1);
    assert_eq!(completion.irql.load(Ordering::SeqCst), DISPATCH_LEVEL);
    assert_eq!(completion.status.load(Ordering::SeqCst), STATUS_SUCCESS);
    assert!(!emu::irp::is_pending(irp));
    // SAFETY: the IRP is back with the test (the routine returned STATUS_MORE_PROCESSING_REQUIRED).
    unsafe {
        assert_eq!((*irp).IoStatus.Information, 42);
        assert_eq!((*irp).CurrentLocation, 2);
        IoFreeIrp(irp);
    }
    assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
}

#[test]
fn invoke_flags_select_the_routine_and_pending_returned_is_propagated() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    // SAFETY: the test owns the IRP throughout; it plays the provider on its own thread.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        // Invoke on error only: a success completion reaches the top without running it.
        IoSetCompletionRoutine(irp, Some(on_complete), completion.context(), false, true, false);
        assert!(emu::irp::enter_provider(irp));
        IoMarkIrpPending(irp);
        complete(irp, STATUS_SUCCESS, 0);
        assert_eq!(completion.calls.load(Ordering::SeqCst), 0);
        assert!(
            take_one(Rule::WrongCompletionRoutineReturn)
                .to_string()
                .contains("no completion routine ran")
        );
        assert_eq!((*irp).PendingReturned, TRUE);

        // Invoke on error: an error completion runs it.
        IoReuseIrp(irp, STATUS_SUCCESS);
        IoSetCompletionRoutine(irp, Some(on_complete), completion.context(), false, true, false);
        assert!(emu::irp::enter_provider(irp));
        complete(irp, STATUS_CONNECTION_RESET, 0);
        assert_eq!(completion.calls.load(Ordering::SeqCst), 1);
        assert_eq!(completion.status.load(Ordering::SeqCst), STATUS_CONNECTION_RESET);
        assert_eq!((*irp).PendingReturned, FALSE);
        IoFreeIrp(irp);
    }
}

unsafe extern "system" fn cancel_and_complete(_device: PDEVICE_OBJECT, irp: PIRP) {
    // SAFETY: IoCancelIrp calls this with the cancel spin lock held and the IRP's cancel routine
    // swapped out, so this routine owns the pending IRP.
    unsafe {
        assert_eq!(KeGetCurrentIrql(), DISPATCH_LEVEL);
        IoReleaseCancelSpinLock((*irp).CancelIrql);
        (*irp).IoStatus = IO_STATUS_BLOCK::new(STATUS_CANCELLED, 0);
        IofCompleteRequest(irp, IO_NO_INCREMENT);
    }
}

#[test]
fn cancel_irp_calls_the_cancel_routine_which_completes() {
    let _session = emu::session();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP; as the provider it arms a cancel routine while the IRP pends.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        assert!(IoSetCancelRoutine(irp, Some(cancel_and_complete)).is_none());
        assert_eq!(IoCancelIrp(irp), TRUE);
    }
    assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_eq!(completion.calls.load(Ordering::SeqCst), 1);
    assert_eq!(completion.status.load(Ordering::SeqCst), STATUS_CANCELLED);
    assert_eq!(completion.cancel.load(Ordering::SeqCst), TRUE);
    assert!(!emu::irp::is_pending(irp));
    // SAFETY: the IRP is back with the test.
    unsafe {
        // No cancel routine any more: IoCancelIrp only sets Cancel and returns FALSE.
        assert_eq!(IoCancelIrp(irp), FALSE);
        IoFreeIrp(irp);
    }
}

#[test]
fn reuse_recycles_an_irp_for_another_request() {
    let _session = emu::session();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    // SAFETY: the test owns the IRP between requests and plays the provider.
    unsafe {
        let irp = IoAllocateIrp(1, TRUE);
        let flags = (*irp).AllocationFlags;
        for round in 1..=3usize {
            IoSetCompletionRoutine(irp, Some(on_complete), completion.context(), true, true, true);
            assert!(emu::irp::enter_provider(irp));
            IoCancelIrp(irp);
            complete(irp, STATUS_SUCCESS, round);
            assert_eq!(completion.calls.load(Ordering::SeqCst), round);
            assert_eq!((*irp).IoStatus.Information, round);
            assert_eq!((*irp).Cancel, TRUE);
            IoReuseIrp(irp, STATUS_PENDING);
            assert_eq!((*irp).IoStatus.Status, STATUS_PENDING);
            assert_eq!((*irp).IoStatus.Information, 0);
            assert_eq!((*irp).Cancel, FALSE);
            assert_eq!((*irp).CurrentLocation, 2);
            assert_eq!((*irp).AllocationFlags, flags);
        }
        IoFreeIrp(irp);
    }
}

#[test]
fn free_while_pending_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        IoFreeIrp(irp);
        let v = take_one(Rule::IrpFreeWhilePending);
        assert!(v.to_string().contains("IRP freed while pending"), "{v}");
        // The free was not performed: the IRP is still pending and can complete normally.
        assert!(emu::irp::is_pending(irp));
        complete(irp, STATUS_SUCCESS, 0);
        IoFreeIrp(irp);
    }
}

#[test]
fn double_free_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: the second free is the violation under test; the emulation makes it harmless.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        IoFreeIrp(irp);
        IoFreeIrp(irp);
    }
    let v = take_one(Rule::DoubleFree);
    assert!(v.to_string().contains("IoFreeIrp on freed IRP"), "{v}");
}

#[test]
fn use_after_free_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: the emulation checks the pointer before touching the (quarantined) IRP.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        IoFreeIrp(irp);
        assert_eq!(IoCancelIrp(irp), FALSE);
    }
    take_one(Rule::UseAfterFree);
}

#[test]
fn reuse_while_pending_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        IoReuseIrp(irp, STATUS_SUCCESS);
        take_one(Rule::IrpReuseWhilePending);
        // Not reinitialised: still pending at the provider's location.
        assert_eq!((*irp).CurrentLocation, 1);
        complete(irp, STATUS_SUCCESS, 0);
        IoFreeIrp(irp);
    }
}

#[test]
fn submit_while_pending_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        assert!(!emu::irp::enter_provider(irp));
        take_one(Rule::IrpSubmittedWhilePending);
        complete(irp, STATUS_SUCCESS, 0);
        IoFreeIrp(irp);
    }
}

#[test]
fn double_completion_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        complete(irp, STATUS_SUCCESS, 0);
        complete(irp, STATUS_SUCCESS, 0);
        let v = take_one(Rule::IrpDoubleCompletion);
        assert!(v.to_string().contains("completed twice"), "{v}");
        assert_eq!(completion.calls.load(Ordering::SeqCst), 1);
        IoFreeIrp(irp);
    }
}

#[test]
fn wrong_completion_routine_return_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_SUCCESS);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        complete(irp, STATUS_SUCCESS, 0);
        let v = take_one(Rule::WrongCompletionRoutineReturn);
        assert!(v.to_string().contains("returned 0x00000000"), "{v}");
        assert!(!emu::irp::is_pending(irp));
        IoFreeIrp(irp);
    }
}

unsafe extern "system" fn cancel_forgetting_the_lock(_device: PDEVICE_OBJECT, _irp: PIRP) {}

#[test]
fn cancel_routine_not_releasing_the_lock_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        IoSetCancelRoutine(irp, Some(cancel_forgetting_the_lock));
        assert_eq!(IoCancelIrp(irp), TRUE);
        take_one(Rule::CancelSpinLockNotReleased);
        // The emulation released the lock on the routine's behalf and restored the IRQL.
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
        complete(irp, STATUS_CANCELLED, 0);
        assert_eq!(completion.cancel.load(Ordering::SeqCst), TRUE);
        IoFreeIrp(irp);
    }
}

#[test]
fn completing_with_a_cancel_routine_set_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        IoSetCancelRoutine(irp, Some(cancel_and_complete));
        complete(irp, STATUS_SUCCESS, 0);
        take_one(Rule::IrpCompletedWithCancelRoutine);
        assert_eq!(completion.calls.load(Ordering::SeqCst), 1);
        IoFreeIrp(irp);
    }
}

#[test]
fn completing_with_status_pending_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        complete(irp, STATUS_PENDING, 0);
        take_one(Rule::IrpCompletedWithStatusPending);
        IoFreeIrp(irp);
    }
}

#[test]
fn irp_operations_above_dispatch_level_are_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let mut old = 0;
    // SAFETY: raising and lowering back around calls the emulation rejects.
    unsafe {
        KeRaiseIrql(DISPATCH_LEVEL + 1, &mut old);
        assert!(IoAllocateIrp(1, FALSE).is_null());
        KeLowerIrql(old);
    }
    let v = take_one(Rule::IrqlTooHigh);
    assert!(v.to_string().contains("IoAllocateIrp"), "{v}");
}

#[test]
fn zero_stack_size_is_rejected() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: a rejected allocation returns NULL.
    assert!(unsafe { IoAllocateIrp(0, FALSE) }.is_null());
    take_one(Rule::InvalidParameter);
}

#[test]
fn allocation_failure_can_be_injected() {
    let _session = emu::session();
    emu::pool::fail_next(1);
    // SAFETY: plain allocations.
    unsafe {
        assert!(IoAllocateIrp(1, FALSE).is_null());
        let irp = IoAllocateIrp(1, FALSE);
        assert!(!irp.is_null());
        IoFreeIrp(irp);
    }
}

unsafe extern "system" fn returns_at_raised_irql(_device: PDEVICE_OBJECT, _irp: PIRP, _context: PVOID) -> NTSTATUS {
    let mut old = 0;
    // SAFETY: deliberately returns one level higher than it was called at, the violation under test.
    unsafe { KeRaiseIrql(KeGetCurrentIrql() + 1, &mut old) };
    STATUS_MORE_PROCESSING_REQUIRED
}

#[test]
fn completion_routine_changing_the_irql_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        IoSetCompletionRoutine(
            irp,
            Some(returns_at_raised_irql),
            core::ptr::null_mut(),
            true,
            true,
            true,
        );
        assert!(emu::irp::enter_provider(irp));
        complete(irp, STATUS_SUCCESS, 0);
        let v = take_one(Rule::IrqlMismatch);
        assert!(
            v.to_string().contains("was called at DISPATCH_LEVEL and returned at 3"),
            "{v}"
        );
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
        IoFreeIrp(irp);
    }
}

/// Bug check 0xC9 / 0x06 names -1 next to STATUS_PENDING.
#[test]
fn completing_with_status_minus_one_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        complete(irp, -1, 0);
        let v = take_one(Rule::IrpCompletedWithStatusPending);
        assert!(v.to_string().contains("0xffffffff"), "{v}");
        IoFreeIrp(irp);
    }
}

/// Negative test of [`Rule::IrpSubmittedWithCancelRoutine`] (Level 2 I/O Verification, 0x203).
#[test]
fn passing_down_an_irp_with_a_cancel_routine_set_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider.
    unsafe {
        IoSetCancelRoutine(irp, Some(cancel_and_complete));
        assert!(!emu::irp::enter_provider(irp), "refused in recording mode");
        take_one(Rule::IrpSubmittedWithCancelRoutine);
        assert!(!emu::irp::is_pending(irp));
        IoSetCancelRoutine(irp, None);
        assert!(emu::irp::enter_provider(irp));
        complete(irp, STATUS_SUCCESS, 0);
        assert_eq!(completion.calls.load(Ordering::SeqCst), 1);
        IoFreeIrp(irp);
    }
}

/// Negative test of [`Rule::IrpNoStackLocation`]: the driver used up the only location itself.
#[test]
fn passing_down_an_irp_without_a_stack_location_left_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: the test owns the IRP; it is never handed over.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        assert!(!irp.is_null());
        IoSetNextIrpStackLocation(irp);
        assert!(!emu::irp::enter_provider(irp), "refused in recording mode");
        let v = take_one(Rule::IrpNoStackLocation);
        assert!(v.to_string().contains("CurrentLocation 1"), "{v}");
        assert!(!emu::irp::is_pending(irp));
        IoFreeIrp(irp);
    }
}

/// IofCompleteRequest is documented for IRQL <= DISPATCH_LEVEL (bug check 0xC9 / 0x0E above it).
#[test]
fn completing_above_dispatch_level_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let completion = Completion::new(STATUS_MORE_PROCESSING_REQUIRED);
    let irp = irp_with_routine(&completion);
    // SAFETY: the test owns the IRP and plays the provider; the IRQL is lowered back after the call.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        let mut old = 0;
        KeRaiseIrql(DISPATCH_LEVEL + 1, &mut old);
        IofCompleteRequest(irp, IO_NO_INCREMENT);
        KeLowerIrql(old);
        let v = take_one(Rule::IrqlTooHigh);
        assert!(v.to_string().contains("IofCompleteRequest"), "{v}");
        assert_eq!(completion.calls.load(Ordering::SeqCst), 0, "refused in recording mode");
        complete(irp, STATUS_SUCCESS, 0);
        IoFreeIrp(irp);
    }
}
