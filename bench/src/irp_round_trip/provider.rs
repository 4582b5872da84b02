//! The lower driver both variants submit to, identical for (a) and (b): it takes the IRP over
//! (`enter_provider`, the emulation's `IoCallDriver`) and completes it with `STATUS_SUCCESS` at
//! DISPATCH_LEVEL, either inline on the submitting thread or from a provider thread that receives
//! the IRP through a one-slot mailbox and a synchronization KEVENT.

use nt::*;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// Where the provider completes the IRP.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// From the provider thread: the submitter's completion arrives from another CPU, like a WSK
    /// receive completed by the network stack.
    Thread,
    /// Inside the submit call, like a WSK call that completes at once (the IRP is still completed
    /// at DISPATCH_LEVEL, through `IofCompleteRequest`).
    Inline,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Thread => "thread",
            Mode::Inline => "inline",
        }
    }
}

/// Bytes the provider reports as transferred (`IoStatus.Information`), as a receive would.
pub const TRANSFERRED: ULONG_PTR = 64;

struct Shared {
    /// The IRP handed over and not yet taken by the provider thread (one at a time: each variant
    /// waits for a completion before it submits again).
    mailbox: AtomicPtr<IRP>,
    /// Signalled after each store to `mailbox` (and to stop).
    doorbell: Box<KEVENT>,
    stop: AtomicBool,
}

// SAFETY: the KEVENT is used only through the emulated Ke* functions, which synchronise internally;
// the rest is atomics.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// The emulated lower driver. See the module documentation.
pub struct Provider {
    mode: Mode,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Provider {
    /// Starts the provider (its thread in [`Mode::Thread`]). Needs an emulation session.
    pub fn start(mode: Mode) -> Self {
        // SAFETY: all-zero is a valid KEVENT to initialise; it is initialised before any use.
        let mut doorbell: Box<KEVENT> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: a fresh event nobody waits on.
        unsafe { KeInitializeEvent(&mut *doorbell, SynchronizationEvent, FALSE) };
        let shared = Arc::new(Shared {
            mailbox: AtomicPtr::new(ptr::null_mut()),
            doorbell,
            stop: AtomicBool::new(false),
        });
        let thread = (mode == Mode::Thread).then(|| {
            let shared = shared.clone();
            std::thread::spawn(move || provider_thread(&shared))
        });
        Self { mode, shared, thread }
    }

    /// `IoCallDriver`: the provider now owns `irp` and will complete it (inline before this returns,
    /// or on its thread).
    ///
    /// # Safety
    /// `irp` is a live IRP the caller owns, with its completion routine set; IRQL <= DISPATCH_LEVEL.
    pub unsafe fn submit(&self, irp: PIRP) {
        // SAFETY: forwarded from the caller's contract.
        let taken = unsafe { nt::emu::irp::enter_provider(irp) };
        assert!(taken, "the emulation refused the IRP");
        match self.mode {
            // SAFETY: the provider owns the IRP now.
            Mode::Inline => unsafe { complete(irp) },
            Mode::Thread => {
                self.shared.mailbox.store(irp, Ordering::Release);
                let doorbell = ptr::from_ref::<KEVENT>(&self.shared.doorbell).cast_mut();
                // SAFETY: an initialised event that lives as long as `shared`.
                unsafe { KeSetEvent(doorbell, IO_NO_INCREMENT.into(), FALSE) };
            }
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let doorbell = ptr::from_ref::<KEVENT>(&self.shared.doorbell).cast_mut();
        // SAFETY: as in `submit`.
        unsafe { KeSetEvent(doorbell, IO_NO_INCREMENT.into(), FALSE) };
        if let Some(thread) = self.thread.take() {
            thread.join().expect("provider thread");
        }
    }
}

fn provider_thread(shared: &Shared) {
    let doorbell = ptr::from_ref::<KEVENT>(&shared.doorbell).cast_mut();
    loop {
        // SAFETY: PASSIVE_LEVEL (a fresh thread), an initialised event, no timeout.
        unsafe { KeWaitForSingleObject(doorbell.cast(), Executive, KernelMode, FALSE, ptr::null_mut()) };
        let irp = shared.mailbox.swap(ptr::null_mut(), Ordering::Acquire);
        if !irp.is_null() {
            // SAFETY: the submitter handed the IRP over with `enter_provider`: the provider owns it.
            unsafe { complete(irp) };
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
    }
}

/// Completes an IRP the provider owns with success, at DISPATCH_LEVEL.
///
/// # Safety
/// The provider owns `irp` (handed over with `enter_provider`).
unsafe fn complete(irp: PIRP) {
    nt::emu::at_dispatch(|| {
        // SAFETY: the provider owns the IRP until IofCompleteRequest gives it back.
        unsafe {
            (*irp).IoStatus = IO_STATUS_BLOCK::new(STATUS_SUCCESS, TRANSFERRED);
            IofCompleteRequest(irp, IO_NO_INCREMENT);
        }
    });
}
