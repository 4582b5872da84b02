//! Driver images and device objects: `nt::emu::driver::load` / `LoadedDriver::unload`,
//! `IoCreateDevice` / `IoDeleteDevice`, device references, `TestDevice`, and the leak report.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, take_one};
use core::ptr;
use nt::emu::driver::{self, TestDevice};
use nt::emu::{self, Rule};
use nt::*;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The device the driver under test created (one driver per test: tests of a binary run one at a
/// time under the session lock).
static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(ptr::null_mut());

unsafe extern "system" fn delete_devices(driver_object: PDRIVER_OBJECT) {
    // SAFETY: the driver object is live during DriverUnload.
    unsafe {
        while !(*driver_object).DeviceObject.is_null() {
            IoDeleteDevice((*driver_object).DeviceObject);
        }
    }
}

/// Creates one unnamed device and sets an unload routine that deletes it.
unsafe extern "system" fn entry_with_device(driver_object: PDRIVER_OBJECT, _path: *mut UNICODE_STRING) -> NTSTATUS {
    let mut device = ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL in DriverEntry; `device` is valid for the write.
    let status = unsafe {
        IoCreateDevice(
            driver_object,
            16,
            ptr::null_mut(),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            FALSE,
            &mut device,
        )
    };
    if !NT_SUCCESS(status) {
        return status;
    }
    DEVICE.store(device, Ordering::SeqCst);
    // SAFETY: the driver object is live during DriverEntry.
    unsafe { (*driver_object).DriverUnload = Some(delete_devices) };
    STATUS_SUCCESS
}

#[test]
fn a_test_device_is_a_live_device_of_a_loaded_driver_until_dropped() {
    let _session = emu::session();
    let device = TestDevice::create();
    assert!(!device.device().is_null());
    let image = device.image();
    assert!(!image.is_unloaded());
    // A device object can be referenced and dereferenced like any object.
    // SAFETY: the device is live; the reference taken is dropped.
    unsafe {
        assert_eq!(ObfReferenceObject(device.device().cast()), 2);
        assert_eq!(ObfDereferenceObject(device.device().cast()), 1);
    }
    drop(device);
    assert!(image.is_unloaded(), "dropping the TestDevice unloads its driver");
}

#[test]
fn load_calls_driver_entry_and_unload_calls_driver_unload() {
    let _session = emu::session();
    let loaded = driver::load(entry_with_device).expect("DriverEntry succeeds");
    let object = loaded.object();
    // SAFETY: the driver object is live while the driver is loaded.
    unsafe {
        assert_eq!((*object).Type, IO_TYPE_DRIVER);
        assert_eq!((*object).DeviceObject, DEVICE.load(Ordering::SeqCst));
        assert!((*object).DriverUnload.is_some());
    }
    let image = loaded.image();
    loaded.unload();
    assert!(image.is_unloaded());
}

/// Creates a device, then fails.
unsafe extern "system" fn entry_that_fails_after_creating_a_device(
    driver_object: PDRIVER_OBJECT,
    path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: forwarded: DriverEntry's own arguments.
    let status = unsafe { entry_with_device(driver_object, path) };
    assert_eq!(status, STATUS_SUCCESS);
    STATUS_UNSUCCESSFUL
}

#[test]
fn a_device_left_by_a_failed_driver_entry_is_leaked_and_keeps_the_image() {
    let session = emu::session();
    let status = driver::load(entry_that_fails_after_creating_a_device).expect_err("DriverEntry fails");
    assert_eq!(status, STATUS_UNSUCCESSFUL);
    let report = session.leak_report();
    assert_eq!(report.count("device object"), 1, "{report}");
    assert_eq!(report.count("driver image"), 1, "{report}");
    // Cleaning up what Windows would leak, so that the session ends clean.
    // SAFETY: the device is live (never deleted).
    unsafe { IoDeleteDevice(DEVICE.load(Ordering::SeqCst)) };
    assert!(session.leak_report().is_empty());
}

#[test]
fn io_create_device_fails_under_pool_fault_injection_and_the_failure_unloads_the_image() {
    let session = emu::session();
    emu::pool::fail_next(1);
    let status = driver::load(entry_with_device).expect_err("IoCreateDevice fails");
    assert_eq!(status, STATUS_INSUFFICIENT_RESOURCES);
    assert!(session.leak_report().is_empty());
}

#[test]
fn io_create_device_on_a_driver_object_the_emulation_did_not_load_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: all-zero bytes are a valid DRIVER_OBJECT; the call only looks at its address.
    let mut fake: DRIVER_OBJECT = unsafe { core::mem::zeroed() };
    let mut device = ptr::null_mut();
    // SAFETY: `device` is valid for the write.
    let status = unsafe {
        IoCreateDevice(
            &mut fake,
            0,
            ptr::null_mut(),
            FILE_DEVICE_UNKNOWN,
            0,
            FALSE,
            &mut device,
        )
    };
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    assert!(device.is_null());
    take_one(Rule::UnknownObject);
}

#[test]
fn io_delete_device_twice_or_on_an_unknown_pointer_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let loaded = driver::load(entry_with_device).expect("DriverEntry succeeds");
    let device = DEVICE.load(Ordering::SeqCst);
    // SAFETY: a live device; the second delete and the unknown pointer are refused harmlessly.
    unsafe {
        ObfReferenceObject(device.cast());
        IoDeleteDevice(device);
        IoDeleteDevice(device);
        take_one(Rule::DoubleFree);
        ObfDereferenceObject(device.cast());
        // Gone now: a third delete is a double free of freed memory.
        IoDeleteDevice(device);
        take_one(Rule::DoubleFree);
        let mut not_a_device = 0u64;
        IoDeleteDevice(ptr::from_mut(&mut not_a_device).cast());
        take_one(Rule::UnknownObject);
    }
    loaded.unload();
}

#[test]
fn a_device_reference_keeps_the_image_loaded_after_driver_unload() {
    let _session = emu::session();
    let loaded = driver::load(entry_with_device).expect("DriverEntry succeeds");
    let device = DEVICE.load(Ordering::SeqCst);
    let image = loaded.image();
    // SAFETY: a live device, referenced once and dereferenced once.
    unsafe {
        assert_eq!(ObfReferenceObject(device.cast()), 2);
        loaded.unload();
        assert!(!image.is_unloaded(), "deleted but referenced: the image stays");
        assert_eq!(ObfDereferenceObject(device.cast()), 0);
    }
    assert!(image.is_unloaded());
}

#[test]
fn unload_within_runs_driver_unload_on_another_thread_and_waits_for_the_image() {
    let _session = emu::session();
    let loaded = driver::load(entry_with_device).expect("DriverEntry succeeds");
    let image = loaded.image();
    let took = loaded.unload_within(BOUND);
    assert!(image.is_unloaded());
    assert!(took < BOUND, "{took:?}");
}

#[test]
fn unload_within_fails_when_a_device_reference_keeps_the_image() {
    let _session = emu::session();
    let loaded = driver::load(entry_with_device).expect("DriverEntry succeeds");
    let device = DEVICE.load(Ordering::SeqCst);
    let image = loaded.image();
    // SAFETY: a live device, referenced here and dereferenced below.
    assert_eq!(unsafe { ObfReferenceObject(device.cast()) }, 2);
    // The image cannot unload while the reference is held, so any bound expires: normally in the
    // wait for the image, on a loaded machine possibly already in the wait for DriverUnload.
    let outcome = std::panic::catch_unwind(|| loaded.unload_within(std::time::Duration::from_millis(10)));
    let message = outcome.expect_err("a referenced device keeps the image");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        text.contains("the image did not unload within 10ms")
            || text.contains("DriverUnload did not return within 10ms"),
        "{text}"
    );
    // SAFETY: releases the reference taken above; DriverUnload deletes (or deleted) the device.
    unsafe { ObfDereferenceObject(device.cast()) };
    assert!(image.wait_unloaded(BOUND));
}

/// DriverUnload that waits 1 ms of emulated time (as a driver polling for its threads to end
/// does), then deletes its devices.
unsafe extern "system" fn delay_then_delete_devices(driver_object: PDRIVER_OBJECT) {
    let mut one_ms = LARGE_INTEGER::relative_100ns(10_000);
    // SAFETY: PASSIVE_LEVEL in DriverUnload; a local interval.
    unsafe { KeDelayExecutionThread(KernelMode, FALSE, &mut one_ms) };
    // SAFETY: forwarded: the driver object is live during DriverUnload.
    unsafe { delete_devices(driver_object) };
}

unsafe extern "system" fn entry_with_delaying_unload(
    driver_object: PDRIVER_OBJECT,
    path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: forwarded from the loader.
    let status = unsafe { entry_with_device(driver_object, path) };
    // SAFETY: the driver object is live during DriverEntry.
    unsafe { (*driver_object).DriverUnload = Some(delay_then_delete_devices) };
    status
}

/// A paused clock is the usual reason a test's DriverUnload never returns (its timed waits see no
/// time pass): the failure says so instead of only reporting the bound.
#[test]
fn unload_within_names_a_paused_clock_when_driver_unload_does_not_return() {
    let _session = emu::session();
    let loaded = driver::load(entry_with_delaying_unload).expect("DriverEntry succeeds");
    let image = loaded.image();
    emu::clock::pause();
    let outcome = std::panic::catch_unwind(|| loaded.unload_within(std::time::Duration::from_millis(50)));
    let message = outcome.expect_err("DriverUnload waits for a clock that does not move");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    // The unload thread is still waiting: time moves again (before anything here can fail, so that
    // the thread never outlives the session), its delay ends, the image unloads.
    emu::clock::resume();
    assert!(image.wait_unloaded(BOUND));
    assert!(
        text.contains("DriverUnload did not return within 50ms; the emulated clock is paused"),
        "{text}"
    );
}

/// The system thread of [`a_system_thread_running_when_the_image_is_unloaded_is_reported`].
struct ThreadGate {
    entered: Box<Event>,
    release: Box<Event>,
}

unsafe extern "system" fn gated_thread(context: PVOID) {
    // SAFETY: the context is the test's `ThreadGate`, alive until the thread is waited for.
    let gate = unsafe { &*context.cast::<ThreadGate>() };
    gate.entered.set();
    assert_eq!(gate.release.wait(Some(BOUND)), STATUS_SUCCESS);
}

/// Negative test of [`Rule::RoutineAfterUnload`] for a system thread (attributed to the only
/// driver of the session).
#[test]
fn a_system_thread_running_when_the_image_is_unloaded_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let loaded = driver::load(entry_with_device).expect("DriverEntry succeeds");
    let gate = ThreadGate {
        entered: Event::new(NotificationEvent, false),
        release: Event::new(NotificationEvent, false),
    };
    let mut handle = ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; `gate` outlives the thread, which is waited for before it drops.
    unsafe {
        let mut attributes = kernel_handle_attributes();
        let status = PsCreateSystemThread(
            &mut handle,
            THREAD_ALL_ACCESS,
            &mut attributes,
            ptr::null_mut(),
            ptr::null_mut(),
            Some(gated_thread),
            ptr::from_ref(&gate).cast_mut().cast(),
        );
        assert_eq!(status, STATUS_SUCCESS);
    }
    assert_eq!(gate.entered.wait(Some(BOUND)), STATUS_SUCCESS);
    // A DriverUnload that does not wait for its thread.
    loaded.unload();
    let v = take_one(Rule::RoutineAfterUnload);
    assert!(v.message().contains("system thread"), "{v}");
    gate.release.set();
    // SAFETY: the handle is open; waiting on the thread object, then closing it.
    unsafe {
        let mut thread = ptr::null_mut();
        assert_eq!(
            ObReferenceObjectByHandle(
                handle,
                SYNCHRONIZE,
                ptr::null_mut(),
                KernelMode,
                &mut thread,
                ptr::null_mut()
            ),
            STATUS_SUCCESS
        );
        let mut timeout = common::relative(BOUND);
        assert_eq!(
            KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, &mut timeout),
            STATUS_SUCCESS
        );
        ObfDereferenceObject(thread);
        ZwClose(handle);
    }
}

/// What DriverEntry read of its registry path (valid during DriverEntry only).
static PATH_SEEN: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

unsafe extern "system" fn entry_keeping_the_path(driver_object: PDRIVER_OBJECT, path: *mut UNICODE_STRING) -> NTSTATUS {
    // SAFETY: the path is valid during DriverEntry.
    let text = unsafe { std::slice::from_raw_parts((*path).Buffer, (*path).Length as usize / 2) };
    *PATH_SEEN.lock().unwrap() = String::from_utf16_lossy(text);
    // SAFETY: forwarded: DriverEntry's own arguments.
    unsafe { entry_with_device(driver_object, path) }
}

#[test]
fn driver_entry_gets_the_registry_path_of_its_service() {
    let _session = emu::session();
    let loaded = driver::load(entry_keeping_the_path).expect("DriverEntry succeeds");
    assert!(
        PATH_SEEN
            .lock()
            .unwrap()
            .starts_with("\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\"),
        "{}",
        PATH_SEEN.lock().unwrap()
    );
    loaded.unload();
}
