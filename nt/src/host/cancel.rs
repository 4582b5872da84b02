//! The global cancel spin lock and `IoCancelIrp`, as the I/O manager implements them.

use super::heap::{Access, Class, heap};
use super::verifier::{Rule, violation};
use super::{irql, spinlock};
use crate::inline_helpers::IoSetCancelRoutine;
use crate::types::*;
use core::ptr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// The cancel spin lock: holds the owner's emulated thread id while held.
static CANCEL_LOCK: AtomicUsize = AtomicUsize::new(0);

const WHAT: &str = "the cancel spin lock";

/// Whether the current thread holds the cancel spin lock.
pub(super) fn held_by_me() -> bool {
    spinlock::held_by_me(&CANCEL_LOCK)
}

/// `Irp->Cancel` viewed as the byte IoCancelIrp sets from another thread while the IRP is pending.
///
/// # Safety
/// `irp` points to a live IRP.
pub(super) unsafe fn cancel_flag<'a>(irp: PIRP) -> &'a AtomicU8 {
    // SAFETY: `Cancel` is a `u8`, so it has the size and alignment of `AtomicU8`; the emulation only
    // accesses it atomically once the IRP is shared.
    unsafe { AtomicU8::from_ptr(ptr::addr_of_mut!((*irp).Cancel)) }
}

/// `IoAcquireCancelSpinLock`: IRQL <= DISPATCH_LEVEL; raises to DISPATCH_LEVEL and stores the previous
/// IRQL in `*Irql`.
///
/// # Safety
/// `Irql` is valid for a write.
pub unsafe extern "system" fn IoAcquireCancelSpinLock(Irql: *mut KIRQL) {
    let old = irql::current();
    if !irql::require_max("IoAcquireCancelSpinLock", DISPATCH_LEVEL) {
        return;
    }
    if !spinlock::acquire(&CANCEL_LOCK, &WHAT) {
        return;
    }
    irql::set(DISPATCH_LEVEL);
    // SAFETY: forwarded from the caller's contract; written after acquiring, as the kernel does.
    unsafe { Irql.write(old) };
}

/// `IoReleaseCancelSpinLock`: at DISPATCH_LEVEL by the holder; lowers to `Irql`.
///
/// # Safety
/// None beyond the kernel's contract.
pub unsafe extern "system" fn IoReleaseCancelSpinLock(Irql: KIRQL) {
    if !spinlock::require_dispatch("IoReleaseCancelSpinLock") {
        return;
    }
    if !spinlock::release(&CANCEL_LOCK, &WHAT) {
        return;
    }
    irql::set(Irql.min(DISPATCH_LEVEL));
}

/// Releases the cancel spin lock on behalf of a cancel routine that forgot to (recording mode only).
fn force_release(irql_before: KIRQL) {
    spinlock::release(&CANCEL_LOCK, &WHAT);
    irql::set(irql_before);
}

/// `IoCancelIrp`: IRQL <= DISPATCH_LEVEL. Takes the cancel spin lock (old IRQL in `Irp->CancelIrql`),
/// sets `Irp->Cancel`, swaps the cancel routine with NULL and, if there was one, calls it with the
/// lock held (it must release it with `IoReleaseCancelSpinLock(Irp->CancelIrql)`, which is checked)
/// and returns TRUE; otherwise releases the lock and returns FALSE.
///
/// # Safety
/// `Irp` is a live IRP.
pub unsafe extern "system" fn IoCancelIrp(Irp: PIRP) -> BOOLEAN {
    if !irql::require_max("IoCancelIrp", DISPATCH_LEVEL) {
        return FALSE;
    }
    if heap()
        .find(Irp.addr(), Class::Irp, "IoCancelIrp", Access::Use)
        .is_none()
    {
        return FALSE;
    }
    let before = irql::current();
    // SAFETY: the IRP is live (checked above); the caller keeps it alive for the call.
    unsafe {
        IoAcquireCancelSpinLock(ptr::addr_of_mut!((*Irp).CancelIrql));
        cancel_flag(Irp).store(TRUE, Ordering::SeqCst);
        let Some(routine) = IoSetCancelRoutine(Irp, None) else {
            IoReleaseCancelSpinLock(before);
            return FALSE;
        };
        // The device object of the current location, as the I/O manager passes it (none when the IRP
        // is back with the driver that allocated it).
        let device = if (*Irp).CurrentLocation <= (*Irp).StackCount {
            (*(*Irp).Tail.Overlay.CurrentStackLocation).DeviceObject
        } else {
            ptr::null_mut()
        };
        routine(device, Irp);
    }
    if held_by_me() {
        let heap = heap();
        let created = heap.get(Irp.addr()).and_then(|b| b.created.as_ref());
        violation(
            Rule::CancelSpinLockNotReleased,
            &format_args!("the cancel routine of IRP {Irp:p} returned holding the cancel spin lock"),
            created,
        );
        drop(heap);
        force_release(before);
    } else if irql::current() != before {
        violation(
            Rule::IrqlMismatch,
            &format_args!(
                "the cancel routine of IRP {Irp:p} returned at {}, IoCancelIrp was called at {}",
                irql::name(irql::current()),
                irql::name(before)
            ),
            None,
        );
        irql::set(before);
    }
    TRUE
}

/// Forgets a cancel spin lock left held by an earlier session's thread.
pub(super) fn reset() {
    CANCEL_LOCK.store(0, Ordering::SeqCst);
}
