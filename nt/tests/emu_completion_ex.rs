//! `IoSetCompletionRoutineEx` and the two unload checks: a non-PnP driver's completion routine must
//! be unload-safe ([`Rule::CompletionRoutineNotUnloadSafe`]), and no driver routine may run in an
//! unloaded image ([`Rule::RoutineAfterUnload`]).
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, SendPtr, take_one};
use core::ptr;
use nt::emu::driver::{self, TestDevice};
use nt::emu::{self, Rule};
use nt::*;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The device of the driver under test.
static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(ptr::null_mut());

unsafe extern "system" fn delete_devices(driver_object: PDRIVER_OBJECT) {
    // SAFETY: the driver object is live during DriverUnload.
    unsafe {
        while !(*driver_object).DeviceObject.is_null() {
            IoDeleteDevice((*driver_object).DeviceObject);
        }
    }
}

/// A non-PnP driver with one unnamed device, deleted by its DriverUnload.
unsafe extern "system" fn entry(driver_object: PDRIVER_OBJECT, _path: *mut UNICODE_STRING) -> NTSTATUS {
    let mut device = ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL in DriverEntry; `device` is valid for the write.
    let status = unsafe {
        IoCreateDevice(
            driver_object,
            0,
            ptr::null_mut(),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            FALSE,
            &mut device,
        )
    };
    if NT_SUCCESS(status) {
        DEVICE.store(device, Ordering::SeqCst);
        // SAFETY: the driver object is live during DriverEntry.
        unsafe { (*driver_object).DriverUnload = Some(delete_devices) };
    }
    status
}

/// What a completion routine of these tests saw.
static CALLS: AtomicUsize = AtomicUsize::new(0);
static SEEN_CONTEXT: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn counting(_device: PDEVICE_OBJECT, _irp: PIRP, context: PVOID) -> NTSTATUS {
    CALLS.fetch_add(1, Ordering::SeqCst);
    SEEN_CONTEXT.store(context.addr(), Ordering::SeqCst);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Two events: the routine signals `entered`, then waits (PASSIVE_LEVEL: it runs on the thread
/// that completes the IRP) until the test signals `release`.
struct Gate {
    entered: Box<Event>,
    release: Box<Event>,
}

unsafe extern "system" fn blocking(_device: PDEVICE_OBJECT, _irp: PIRP, context: PVOID) -> NTSTATUS {
    // SAFETY: the context is the test's `Gate`, alive until the completing thread is joined.
    let gate = unsafe { &*context.cast::<Gate>() };
    gate.entered.set();
    assert_eq!(
        gate.release.wait(Some(BOUND)),
        STATUS_SUCCESS,
        "the test never released the routine"
    );
    STATUS_MORE_PROCESSING_REQUIRED
}

fn gate() -> Gate {
    Gate {
        entered: Event::new(NotificationEvent, false),
        release: Event::new(NotificationEvent, false),
    }
}

/// Hands `irp` to the emulated lower driver and completes it with success.
///
/// # Safety
/// `irp` is a live IRP with a completion routine set in its next location.
unsafe fn submit_and_complete(irp: PIRP) {
    // SAFETY: forwarded from the caller.
    unsafe {
        assert!(emu::irp::enter_provider(irp));
        (*irp).IoStatus.Status = STATUS_SUCCESS;
        IofCompleteRequest(irp, IO_NO_INCREMENT);
    }
}

/// Completes `irp` (already handed down) with success on another thread.
fn complete_on_another_thread(irp: PIRP) -> std::thread::JoinHandle<()> {
    let irp = SendPtr(irp);
    std::thread::spawn(move || {
        let irp = irp;
        // SAFETY: the provider owns the IRP; the test frees it only after joining this thread.
        unsafe {
            (*irp.get()).IoStatus.Status = STATUS_SUCCESS;
            IofCompleteRequest(irp.get(), IO_NO_INCREMENT);
        }
    })
}

#[test]
fn the_routine_gets_its_context_and_the_ex_context_and_device_reference_go_after_it() {
    let _session = emu::session();
    let device = TestDevice::create();
    CALLS.store(0, Ordering::SeqCst);
    let before = emu::pool::stats();
    // SAFETY: a fresh IRP with one stack location, completed once and freed.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        let status = IoSetCompletionRoutineEx(
            device.device(),
            irp,
            Some(counting),
            ptr::without_provenance_mut(0x1234),
            TRUE,
            TRUE,
            TRUE,
        );
        assert_eq!(status, STATUS_SUCCESS);
        let held = emu::pool::stats();
        assert_eq!(
            held.completion_contexts.blocks, 1,
            "the context is held until completion"
        );
        assert_eq!(
            held.completion_context_allocations - before.completion_context_allocations,
            1
        );
        assert_eq!(
            held.pool, before.pool,
            "the context is not counted as the driver's pool"
        );
        assert_eq!(held.pool_allocations, before.pool_allocations);
        // The device is referenced by the context: the reference count shows it.
        assert_eq!(ObfReferenceObject(device.device().cast()), 3);
        assert_eq!(ObfDereferenceObject(device.device().cast()), 2);
        submit_and_complete(irp);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        assert_eq!(SEEN_CONTEXT.load(Ordering::SeqCst), 0x1234);
        assert_eq!(
            emu::pool::stats().completion_contexts.blocks,
            0,
            "freed after the routine"
        );
        assert_eq!(ObfReferenceObject(device.device().cast()), 2);
        assert_eq!(
            ObfDereferenceObject(device.device().cast()),
            1,
            "the device reference is gone"
        );
        IoFreeIrp(irp);
    }
}

#[test]
fn a_failed_allocation_returns_insufficient_resources_and_leaves_the_next_location_untouched() {
    let _session = emu::session();
    let device = TestDevice::create();
    // SAFETY: a fresh IRP, freed at the end.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        emu::pool::fail_next(1);
        let status = IoSetCompletionRoutineEx(device.device(), irp, Some(counting), ptr::null_mut(), TRUE, TRUE, TRUE);
        assert_eq!(status, STATUS_INSUFFICIENT_RESOURCES);
        let next = IoGetNextIrpStackLocation(irp);
        assert!((*next).CompletionRoutine.is_none());
        assert!((*next).Context.is_null());
        assert_eq!((*next).Control, 0);
        assert_eq!(emu::pool::stats().completion_contexts.blocks, 0);
        IoFreeIrp(irp);
    }
}

/// Negative test of [`Rule::CompletionRoutineNotUnloadSafe`].
#[test]
fn a_plain_completion_routine_while_a_driver_is_loaded_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let device = TestDevice::create();
    // SAFETY: a fresh IRP, completed once and freed.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        IoSetCompletionRoutine(irp, Some(counting), ptr::null_mut(), true, true, true);
        submit_and_complete(irp);
        let v = take_one(Rule::CompletionRoutineNotUnloadSafe);
        assert!(v.message().contains("IoSetCompletionRoutineEx"), "{v}");
        IoFreeIrp(irp);
    }
    drop(device);
}

/// The fallback after IoSetCompletionRoutineEx failed on the same IRP is permitted, once.
#[test]
fn a_plain_routine_right_after_ex_failed_on_the_same_irp_is_permitted() {
    let _session = emu::session();
    emu::expect_violations();
    let device = TestDevice::create();
    // SAFETY: a fresh IRP, completed twice (reused in between) and freed.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        emu::pool::fail_next(1);
        let status = IoSetCompletionRoutineEx(device.device(), irp, Some(counting), ptr::null_mut(), TRUE, TRUE, TRUE);
        assert_eq!(status, STATUS_INSUFFICIENT_RESOURCES);
        IoSetCompletionRoutine(irp, Some(counting), ptr::null_mut(), true, true, true);
        submit_and_complete(irp);
        assert!(emu::take_violations().is_empty());
        // The excuse is used up: the next plain routine on this IRP is reported again.
        IoReuseIrp(irp, STATUS_SUCCESS);
        IoSetCompletionRoutine(irp, Some(counting), ptr::null_mut(), true, true, true);
        submit_and_complete(irp);
        take_one(Rule::CompletionRoutineNotUnloadSafe);
        IoFreeIrp(irp);
    }
    drop(device);
}

#[test]
fn without_a_loaded_driver_a_plain_completion_routine_is_not_checked() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: a fresh IRP, completed once and freed.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        IoSetCompletionRoutine(irp, Some(counting), ptr::null_mut(), true, true, true);
        submit_and_complete(irp);
        IoFreeIrp(irp);
    }
    assert!(emu::take_violations().is_empty());
}

/// Positive test: with IoSetCompletionRoutineEx, an unload while the routine runs is deferred until
/// the routine has returned.
#[test]
fn an_unload_while_an_ex_routine_runs_waits_for_it_to_return() {
    let _session = emu::session();
    emu::expect_violations();
    let loaded = driver::load(entry).expect("DriverEntry succeeds");
    let image = loaded.image();
    let gate = gate();
    // SAFETY: a fresh IRP; the completing thread is joined before the IRP is freed, and `gate`
    // outlives it.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        let status = IoSetCompletionRoutineEx(
            DEVICE.load(Ordering::SeqCst),
            irp,
            Some(blocking),
            ptr::from_ref(&gate).cast_mut().cast(),
            TRUE,
            TRUE,
            TRUE,
        );
        assert_eq!(status, STATUS_SUCCESS);
        assert!(emu::irp::enter_provider(irp));
        let completer = complete_on_another_thread(irp);
        assert_eq!(gate.entered.wait(Some(BOUND)), STATUS_SUCCESS);
        // DriverUnload runs and deletes the device; the routine still runs.
        loaded.unload();
        assert!(!image.is_unloaded(), "the image stays loaded while the routine runs");
        gate.release.set();
        assert!(
            image.wait_unloaded(BOUND),
            "the image is unloaded once the routine returned"
        );
        completer.join().unwrap();
        IoFreeIrp(irp);
    }
    assert!(emu::take_violations().is_empty());
}

/// Negative test of [`Rule::RoutineAfterUnload`]: a plain routine still running when the image is
/// unloaded.
#[test]
fn a_plain_routine_running_when_the_image_is_unloaded_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let loaded = driver::load(entry).expect("DriverEntry succeeds");
    let image = loaded.image();
    let gate = gate();
    // SAFETY: as in the test above.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        IoSetCompletionRoutine(
            irp,
            Some(blocking),
            ptr::from_ref(&gate).cast_mut().cast(),
            true,
            true,
            true,
        );
        assert!(emu::irp::enter_provider(irp));
        take_one(Rule::CompletionRoutineNotUnloadSafe);
        let completer = complete_on_another_thread(irp);
        assert_eq!(gate.entered.wait(Some(BOUND)), STATUS_SUCCESS);
        loaded.unload();
        assert!(image.is_unloaded(), "nothing keeps the image");
        let v = take_one(Rule::RoutineAfterUnload);
        assert!(v.message().contains("still running"), "{v}");
        gate.release.set();
        completer.join().unwrap();
        IoFreeIrp(irp);
    }
}

/// Negative test of [`Rule::RoutineAfterUnload`]: a plain routine entered after the image was
/// unloaded.
#[test]
fn a_plain_routine_entered_after_the_image_was_unloaded_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let loaded = driver::load(entry).expect("DriverEntry succeeds");
    CALLS.store(0, Ordering::SeqCst);
    // SAFETY: a fresh IRP, completed once and freed.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        IoSetCompletionRoutine(irp, Some(counting), ptr::null_mut(), true, true, true);
        assert!(emu::irp::enter_provider(irp));
        take_one(Rule::CompletionRoutineNotUnloadSafe);
        let image = loaded.image();
        loaded.unload();
        assert!(image.is_unloaded());
        (*irp).IoStatus.Status = STATUS_SUCCESS;
        IofCompleteRequest(irp, IO_NO_INCREMENT);
        let v = take_one(Rule::RoutineAfterUnload);
        assert!(v.message().contains("entered after"), "{v}");
        IoFreeIrp(irp);
    }
}

/// With an Ex routine pending, the image outlives DriverUnload until the IRP completes; the
/// routine entered then is not "after unload".
#[test]
fn a_pending_ex_routine_keeps_the_image_loaded_until_it_has_run() {
    let _session = emu::session();
    emu::expect_violations();
    let loaded = driver::load(entry).expect("DriverEntry succeeds");
    let image = loaded.image();
    CALLS.store(0, Ordering::SeqCst);
    // SAFETY: a fresh IRP, completed once and freed.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        let status = IoSetCompletionRoutineEx(
            DEVICE.load(Ordering::SeqCst),
            irp,
            Some(counting),
            ptr::null_mut(),
            TRUE,
            TRUE,
            TRUE,
        );
        assert_eq!(status, STATUS_SUCCESS);
        assert!(emu::irp::enter_provider(irp));
        loaded.unload();
        assert!(!image.is_unloaded());
        (*irp).IoStatus.Status = STATUS_CANCELLED;
        IofCompleteRequest(irp, IO_NO_INCREMENT);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        assert!(image.is_unloaded());
        IoFreeIrp(irp);
    }
    assert!(emu::take_violations().is_empty());
}
