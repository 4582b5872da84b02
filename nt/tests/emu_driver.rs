//! Driver images and device objects: `nt::emu::driver::load` / `LoadedDriver::unload`,
//! `IoCreateDevice` / `IoDeleteDevice`, device references, `TestDevice`, and the leak report.
#![cfg(not(target_os = "windows"))]

mod common;

use core::ptr;
use nt::emu::driver::{self, TestDevice};
use nt::emu;
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
