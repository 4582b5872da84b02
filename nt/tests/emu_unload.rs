//! [`Rule::RoutineAfterUnload`] for each kind of routine that carries no device object (DPC, system
//! thread, plain completion routine) when the session has loaded two drivers, so that the routine
//! is attributed to the driver whose code armed it, and a work item queued after its device object
//! (and with it the image) is gone.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, take_one};
use core::cell::UnsafeCell;
use core::ptr;
use nt::emu::driver::{self, TestDevice};
use nt::emu::{self, Rule};
use nt::*;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

/// What the driver under test armed in DriverEntry (one driver under test per test: tests of a
/// binary run one at a time under the session lock).
struct Armed {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
}
// SAFETY: kernel objects the emulation accesses under its own locks; the test only hands out
// pointers.
unsafe impl Sync for Armed {}

static ARMED: Armed = Armed {
    // SAFETY: all-zero KTIMER and KDPC are valid bit patterns before initialisation.
    timer: UnsafeCell::new(unsafe { core::mem::zeroed() }),
    // SAFETY: as above.
    dpc: UnsafeCell::new(unsafe { core::mem::zeroed() }),
};

/// The IRP, work item and thread handle the driver under test left behind.
static IRP: AtomicPtr<IRP> = AtomicPtr::new(ptr::null_mut());
static WORK_ITEM: AtomicPtr<IO_WORKITEM> = AtomicPtr::new(ptr::null_mut());
static THREAD: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(ptr::null_mut());
/// The gate of the system thread: entered, then waits for release.
static GATE: AtomicPtr<Gate> = AtomicPtr::new(ptr::null_mut());

struct Gate {
    entered: Box<Event>,
    release: Box<Event>,
}

unsafe extern "system" fn delete_devices(driver_object: PDRIVER_OBJECT) {
    // SAFETY: the driver object is live during DriverUnload.
    unsafe {
        while !(*driver_object).DeviceObject.is_null() {
            IoDeleteDevice((*driver_object).DeviceObject);
        }
    }
}

/// A driver with one device, deleted by its DriverUnload (which forgets everything else).
fn create_device(driver_object: PDRIVER_OBJECT) -> PDEVICE_OBJECT {
    let mut device = ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL in DriverEntry; `device` is valid for the write.
    unsafe {
        let status = IoCreateDevice(
            driver_object,
            0,
            ptr::null_mut(),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            FALSE,
            &mut device,
        );
        assert_eq!(status, STATUS_SUCCESS);
        (*driver_object).DriverUnload = Some(delete_devices);
    }
    device
}

unsafe extern "system" fn dpc_routine(_dpc: PKDPC, _context: PVOID, _a: PVOID, _b: PVOID) {}

/// Arms a one-shot timer whose DPC fires in one second, and never cancels it.
unsafe extern "system" fn entry_arming_a_timer(driver_object: PDRIVER_OBJECT, _path: *mut UNICODE_STRING) -> NTSTATUS {
    create_device(driver_object);
    // SAFETY: the static timer and DPC are not armed or queued (the previous test's timer expired).
    unsafe {
        KeInitializeTimerEx(ARMED.timer.get(), NotificationTimer);
        KeInitializeDpc(ARMED.dpc.get(), Some(dpc_routine), ptr::null_mut());
        KeSetTimerEx(
            ARMED.timer.get(),
            common::relative(Duration::from_secs(1)),
            0,
            ARMED.dpc.get(),
        );
    }
    STATUS_SUCCESS
}

/// Negative test of [`Rule::RoutineAfterUnload`] for a DPC: queued by a timer the driver never
/// cancelled, it fires after the image is unloaded. Two drivers are loaded: the DPC is attributed
/// to the one whose DriverEntry armed the timer.
#[test]
fn a_dpc_firing_after_the_image_was_unloaded_is_reported() {
    let _session = emu::session();
    let _other = TestDevice::create();
    emu::clock::pause();
    let loaded = driver::load(entry_arming_a_timer).expect("DriverEntry succeeds");
    let name = service_name(&loaded);
    let image = loaded.image();
    loaded.unload();
    assert!(image.is_unloaded());
    emu::expect_violations();
    emu::clock::advance(Duration::from_secs(2));
    let v = take_one(Rule::RoutineAfterUnload);
    assert!(v.message().contains(&format!("DPC routine of driver '{name}'")), "{v}");
}

/// The service name of a loaded driver (from its `DriverName`, `\Driver\<service>`), which the
/// reports name.
fn service_name(loaded: &driver::LoadedDriver) -> String {
    // SAFETY: the driver object is live while the driver is loaded; its name is a counted string.
    let name = unsafe {
        let name = &(*loaded.object()).DriverName;
        String::from_utf16_lossy(core::slice::from_raw_parts(name.Buffer, usize::from(name.Length) / 2))
    };
    name.trim_start_matches("\\Driver\\").to_string()
}

unsafe extern "system" fn gated_thread(_context: PVOID) {
    // SAFETY: the test's gate, alive until the thread is waited for.
    let gate = unsafe { &*GATE.load(Ordering::SeqCst) };
    gate.entered.set();
    assert_eq!(gate.release.wait(Some(BOUND)), STATUS_SUCCESS);
}

/// Starts a system thread and keeps its handle; DriverUnload does not wait for it.
unsafe extern "system" fn entry_starting_a_thread(
    driver_object: PDRIVER_OBJECT,
    _path: *mut UNICODE_STRING,
) -> NTSTATUS {
    create_device(driver_object);
    let mut handle = ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; the gate outlives the thread (the test waits for it).
    unsafe {
        let mut attributes = kernel_handle_attributes();
        let status = PsCreateSystemThread(
            &mut handle,
            THREAD_ALL_ACCESS,
            &mut attributes,
            ptr::null_mut(),
            ptr::null_mut(),
            Some(gated_thread),
            ptr::null_mut(),
        );
        assert_eq!(status, STATUS_SUCCESS);
    }
    THREAD.store(handle, Ordering::SeqCst);
    STATUS_SUCCESS
}

/// Negative test of [`Rule::RoutineAfterUnload`] for a system thread still running at unload, with
/// two drivers loaded: the thread is the code of the driver whose DriverEntry created it.
#[test]
fn a_system_thread_of_one_of_two_drivers_running_at_unload_is_reported() {
    let _session = emu::session();
    let _other = TestDevice::create();
    let gate = Box::new(Gate {
        entered: Event::new(NotificationEvent, false),
        release: Event::new(NotificationEvent, false),
    });
    GATE.store(ptr::from_ref(&*gate).cast_mut(), Ordering::SeqCst);
    let loaded = driver::load(entry_starting_a_thread).expect("DriverEntry succeeds");
    let name = service_name(&loaded);
    assert_eq!(gate.entered.wait(Some(BOUND)), STATUS_SUCCESS);
    emu::expect_violations();
    loaded.unload();
    let v = take_one(Rule::RoutineAfterUnload);
    assert!(v.message().contains(&format!("driver '{name}'")), "{v}");
    assert!(v.message().contains("system thread"), "{v}");
    gate.release.set();
    let handle = THREAD.swap(ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: the handle is open; waiting on the thread object, then closing it.
    unsafe {
        let mut thread = ptr::null_mut();
        let status = ObReferenceObjectByHandle(
            handle,
            SYNCHRONIZE,
            ptr::null_mut(),
            KernelMode,
            &mut thread,
            ptr::null_mut(),
        );
        assert_eq!(status, STATUS_SUCCESS);
        let mut timeout = common::relative(BOUND);
        let status = KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, &mut timeout);
        assert_eq!(status, STATUS_SUCCESS);
        ObfDereferenceObject(thread);
        ZwClose(handle);
    }
}

unsafe extern "system" fn plain_routine(_device: PDEVICE_OBJECT, _irp: PIRP, _context: PVOID) -> NTSTATUS {
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Passes an IRP down with a plain completion routine and forgets it.
unsafe extern "system" fn entry_passing_an_irp_down(
    driver_object: PDRIVER_OBJECT,
    _path: *mut UNICODE_STRING,
) -> NTSTATUS {
    create_device(driver_object);
    // SAFETY: PASSIVE_LEVEL; the IRP is handed to the emulated lower driver, which the test plays.
    unsafe {
        let irp = IoAllocateIrp(1, FALSE);
        assert!(!irp.is_null());
        IoSetCompletionRoutine(irp, Some(plain_routine), ptr::null_mut(), true, true, true);
        assert!(emu::irp::enter_provider(irp));
        IRP.store(irp, Ordering::SeqCst);
    }
    STATUS_SUCCESS
}

/// Negative test of [`Rule::RoutineAfterUnload`] for a plain completion routine entered after the
/// unload, with two drivers loaded: the routine belongs to the driver whose code passed the IRP down.
#[test]
fn a_plain_completion_routine_of_one_of_two_drivers_entered_after_unload_is_reported() {
    let _session = emu::session();
    let _other = TestDevice::create();
    emu::expect_violations();
    let loaded = driver::load(entry_passing_an_irp_down).expect("DriverEntry succeeds");
    // Passing it down was already a violation of SDV's rule (the cause of what follows).
    take_one(Rule::CompletionRoutineNotUnloadSafe);
    let name = service_name(&loaded);
    let image = loaded.image();
    loaded.unload();
    assert!(image.is_unloaded());
    let irp = IRP.swap(ptr::null_mut(), Ordering::SeqCst);
    emu::at_dispatch(|| {
        // SAFETY: the test plays the lower driver that owns the pending IRP.
        unsafe {
            (*irp).IoStatus = IO_STATUS_BLOCK::new(STATUS_SUCCESS, 0);
            IofCompleteRequest(irp, IO_NO_INCREMENT);
        }
    });
    let v = take_one(Rule::RoutineAfterUnload);
    assert!(
        v.message().contains(&format!("completion routine of driver '{name}'")),
        "{v}"
    );
    // SAFETY: back with its allocator (the routine returned STATUS_MORE_PROCESSING_REQUIRED).
    unsafe { IoFreeIrp(irp) };
}

unsafe extern "system" fn work_routine(_device: PDEVICE_OBJECT, _context: PVOID) {}

/// Allocates a work item on its device and forgets to free it.
unsafe extern "system" fn entry_allocating_a_work_item(
    driver_object: PDRIVER_OBJECT,
    _path: *mut UNICODE_STRING,
) -> NTSTATUS {
    let device = create_device(driver_object);
    // SAFETY: a live device object of this driver.
    let item = unsafe { IoAllocateWorkItem(device) };
    assert!(!item.is_null());
    WORK_ITEM.store(item, Ordering::SeqCst);
    STATUS_SUCCESS
}

/// A work item routine cannot run in an unloaded image through a queued item (IoQueueWorkItem
/// references the device object until the routine has returned), only through an item queued after
/// its device object is gone: that queueing is reported as the use after free it is.
#[test]
fn a_work_item_queued_after_its_device_and_image_are_gone_is_reported() {
    let _session = emu::session();
    let loaded = driver::load(entry_allocating_a_work_item).expect("DriverEntry succeeds");
    let image = loaded.image();
    loaded.unload();
    assert!(
        image.is_unloaded(),
        "an allocated (unqueued) work item does not keep the image"
    );
    emu::expect_violations();
    let item = WORK_ITEM.swap(ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: a live work item whose device object is gone: the call under test.
    unsafe { IoQueueWorkItem(item, Some(work_routine), DelayedWorkQueue, ptr::null_mut()) };
    let v = take_one(Rule::UseAfterFree);
    assert!(v.message().contains("IoQueueWorkItem"), "{v}");
    // SAFETY: not queued (refused in recording mode).
    unsafe { IoFreeWorkItem(item) };
}
