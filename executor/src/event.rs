//! A synchronization `KEVENT` in static memory, with the three calls the executor makes on it.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr;

/// An auto-reset (synchronization) event: a signal wakes one waiter, or is kept until one waits.
pub(crate) struct Event {
    inner: UnsafeCell<MaybeUninit<nt::KEVENT>>,
}

// SAFETY: a KEVENT is made to be signalled and waited on from any thread; the kernel serialises
// access to it. `init` is only called before the event is shared (see its contract).
unsafe impl Sync for Event {}

impl Event {
    /// Storage for an event; [`Event::init`] must run before any other call.
    pub(crate) const fn new() -> Self {
        Self {
            inner: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    fn raw(&self) -> *mut nt::KEVENT {
        self.inner.get().cast()
    }

    /// `KeInitializeEvent(SynchronizationEvent, not signalled)`.
    ///
    /// # Safety
    /// No thread is waiting on or signalling the event.
    pub(crate) unsafe fn init(&self) {
        // SAFETY: the storage is nonpaged static memory the caller has to itself.
        unsafe { nt::KeInitializeEvent(self.raw(), nt::SynchronizationEvent, nt::FALSE) }
    }

    /// `KeSetEvent(.., Wait = FALSE)`: callable at IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// The event was initialised.
    #[inline]
    pub(crate) unsafe fn set(&self) {
        // SAFETY: initialised per the caller; the event lives in static memory.
        unsafe { nt::KeSetEvent(self.raw(), 0, nt::FALSE) };
    }

    /// `KeWaitForSingleObject` with no timeout: PASSIVE_LEVEL (or APC_LEVEL) only.
    ///
    /// # Safety
    /// The event was initialised; the caller runs at PASSIVE_LEVEL.
    pub(crate) unsafe fn wait(&self) {
        // SAFETY: as above. With no timeout, alertable FALSE and KernelMode, the only return is
        // STATUS_SUCCESS, so the status carries no information.
        unsafe {
            nt::KeWaitForSingleObject(
                self.raw().cast(),
                nt::Executive,
                nt::KernelMode,
                nt::FALSE,
                ptr::null_mut(),
            )
        };
    }
}
