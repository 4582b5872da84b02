//! (a) The C-driver way: a completion routine that copies the IO_STATUS_BLOCK into the caller's
//! context, signals a KEVENT and returns `STATUS_MORE_PROCESSING_REQUIRED`; the caller waits on the
//! event. The IRP is allocated once and recycled with `IoReuseIrp`, as echosrv does.

use super::provider::Provider;
use nt::*;
use std::ptr;

/// What the completion routine fills in for the waiting caller.
#[repr(C)]
struct Waiter {
    done: KEVENT,
    iosb: IO_STATUS_BLOCK,
}

/// One submitting thread's IRP and event.
pub struct RawCaller {
    irp: PIRP,
    waiter: Box<Waiter>,
}

impl RawCaller {
    /// Allocates the IRP (one stack location, as a WSK client does) and the event.
    pub fn new() -> Self {
        // SAFETY: IoAllocateIrp at PASSIVE_LEVEL.
        let irp = unsafe { IoAllocateIrp(1, FALSE) };
        assert!(!irp.is_null(), "IoAllocateIrp");
        let mut waiter = Box::new(Waiter {
            // SAFETY: all-zero is a valid KEVENT to initialise; initialised right below.
            done: unsafe { std::mem::zeroed() },
            iosb: IO_STATUS_BLOCK::new(STATUS_PENDING, 0),
        });
        // SAFETY: a fresh event nobody waits on.
        unsafe { KeInitializeEvent(&mut waiter.done, SynchronizationEvent, FALSE) };
        Self { irp, waiter }
    }

    /// One round trip: reuse the IRP, set the completion routine, hand it to the provider, wait for
    /// the event, read the result. Returns `IoStatus.Information`.
    pub fn round_trip(&mut self, provider: &Provider) -> ULONG_PTR {
        let context = ptr::from_mut::<Waiter>(&mut self.waiter);
        // SAFETY: the IRP is ours (not pending: the previous round trip waited for its completion);
        // `waiter` outlives the IRP's time in the provider because this function waits for it.
        unsafe {
            IoReuseIrp(self.irp, STATUS_UNSUCCESSFUL);
            IoSetCompletionRoutine(self.irp, Some(raw_completion), context.cast(), true, true, true);
            provider.submit(self.irp);
            KeWaitForSingleObject(
                ptr::addr_of_mut!((*context).done).cast(),
                Executive,
                KernelMode,
                FALSE,
                ptr::null_mut(),
            );
            let iosb = ptr::addr_of!((*context).iosb).read();
            assert_eq!(iosb.Status, STATUS_SUCCESS);
            iosb.Information
        }
    }
}

impl Drop for RawCaller {
    fn drop(&mut self) {
        // SAFETY: the IRP is ours and not pending.
        unsafe { IoFreeIrp(self.irp) };
    }
}

/// The completion routine (DISPATCH_LEVEL, provider's thread or inline).
///
/// # Safety
/// `context` is the submitting caller's `Waiter`, alive until the event is signalled.
unsafe extern "system" fn raw_completion(_device: PDEVICE_OBJECT, irp: PIRP, context: PVOID) -> NTSTATUS {
    let waiter = context.cast::<Waiter>();
    // SAFETY: the caller waits on `done` until this signals it, so `waiter` is alive; the IRP is ours
    // again (top location).
    unsafe {
        ptr::addr_of_mut!((*waiter).iosb).write((*irp).IoStatus);
        KeSetEvent(ptr::addr_of_mut!((*waiter).done), IO_NO_INCREMENT.into(), FALSE);
    }
    STATUS_MORE_PROCESSING_REQUIRED
}
