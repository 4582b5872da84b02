//! [`Device`]: a counted reference on one of the driver's device objects, which keeps the driver's
//! image loaded while this crate's code may still run in a completion routine or a work item.
//!
//! # Why a device object
//!
//! A completion routine set with `IoSetCompletionRoutine` returns (`ret`) into the I/O manager from
//! the driver's image. Nothing the routine does can keep the image mapped until that `ret` has
//! executed: a count it decrements as its last action still leaves the epilogue to run after
//! `DriverUnload` may have returned. `IoSetCompletionRoutineEx` closes that window: it takes a
//! reference on a device object of the driver, and drops it in ntoskrnl's own code *after* the
//! routine has returned; a referenced device object keeps its driver object, which keeps the image.
//! Static Driver Verifier's rule IoSetCompletionRoutineNonPnpDriver asks non-PnP drivers (this
//! crate's users: `sc create ... type= kernel`) for exactly that. Work items queued with
//! `IoQueueWorkItem` hold the same kind of reference until their routine returns.
//!
//! A driver that has no device object creates one, unnamed, in DriverEntry:
//!
//! ```text
//! let mut device = ptr::null_mut();
//! let status = IoCreateDevice(driver, 0, ptr::null_mut(), FILE_DEVICE_UNKNOWN,
//!                             FILE_DEVICE_SECURE_OPEN, FALSE, &mut device);
//! ```
//!
//! and deletes it with `IoDeleteDevice` in DriverUnload after deregistering; the references this
//! crate holds keep the object (and the image) until the last routine has returned.

use core::ptr::NonNull;
use nt::*;

/// A counted reference (`ObfReferenceObject`) on a device object of this driver. See the module
/// documentation for why [`Registration::register`](crate::Registration::register) needs one.
pub struct Device {
    object: NonNull<DEVICE_OBJECT>,
}

// SAFETY: a referenced device object may be used from any thread; reference counting is interlocked.
unsafe impl Send for Device {}
// SAFETY: `&Device` only reads the pointer.
unsafe impl Sync for Device {}

impl Device {
    /// Takes a reference on `device`. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `device` is a device object created by this driver (`IoCreateDevice`) that is alive now (not
    /// yet deleted, or still referenced). The reference taken here keeps its memory valid even after
    /// `IoDeleteDevice`, so the caller may delete it while this `Device` or its clones live (the image
    /// then stays loaded until they are gone, as it must).
    pub unsafe fn from_raw(device: PDEVICE_OBJECT) -> Option<Device> {
        let object = NonNull::new(device)?;
        // SAFETY: a live device object (caller's contract).
        unsafe { ObfReferenceObject(object.as_ptr().cast()) };
        Some(Device { object })
    }

    /// The device object.
    pub fn as_raw(&self) -> PDEVICE_OBJECT {
        self.object.as_ptr()
    }
}

impl Clone for Device {
    fn clone(&self) -> Self {
        // SAFETY: our reference keeps the object alive.
        unsafe { ObfReferenceObject(self.object.as_ptr().cast()) };
        Device { object: self.object }
    }
}

impl Drop for Device {
    /// Drops the reference. IRQL <= DISPATCH_LEVEL (it may be the last one, from a completion routine:
    /// the object, and with the driver's last one its image, goes only after that routine has
    /// returned, because `IoSetCompletionRoutineEx` holds a reference of its own across the call).
    fn drop(&mut self) {
        // SAFETY: gives back the reference this value holds.
        unsafe { ObfDereferenceObject(self.object.as_ptr().cast()) };
    }
}

impl core::fmt::Debug for Device {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Device").field(&self.object).finish()
    }
}
