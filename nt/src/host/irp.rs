//! IRPs: `IoAllocateIrp` / `IoReuseIrp` / `IoFreeIrp` / `IofCompleteRequest`, and the hand-over of a
//! driver-allocated IRP to a lower driver (the emulated WSK provider), with the I/O verification
//! checks of Driver Verifier.
//!
//! Ownership, as the kernel defines it: the driver that allocated an IRP owns it until it passes it
//! down ([`enter_provider`], the emulation's `IoCallDriver`); the lower driver then owns it until it
//! calls `IofCompleteRequest`, whose walk up the stack gives it back to the driver just before the
//! driver's completion routine (at the top location) runs. That routine must return
//! `STATUS_MORE_PROCESSING_REQUIRED`, since no I/O manager post-processing exists for an IRP without
//! a thread. Only the owner may reuse or free the IRP.

use super::cancel::cancel_flag;
use super::heap::{Access, Block, Class, Describe, Kind, heap};
use super::irql;
use super::verifier::{Rule, creation_site, violation};
use crate::inline_helpers::*;
use crate::types::*;
use core::mem::size_of;
use core::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// `IRP::AllocationFlags` bits set by `IoAllocateIrp` (from the WDK's private `iop.h` values).
const IRP_QUOTA_CHARGED: UCHAR = 0x01;
const IRP_ALLOCATED_FIXED_SIZE: UCHAR = 0x04;

/// IRPs are allocated with the alignment of the pool.
const IRP_ALIGNMENT: usize = 16;

/// `IoInitializeIrp`: zeroes the IRP and its stack locations, and positions the current location one
/// past the last one (the stack locations follow the IRP in memory).
///
/// # Safety
/// `irp` points to `size` writable bytes, with `size >= IoSizeOfIrp(stack_count)`.
unsafe fn initialize(irp: PIRP, size: usize, stack_count: CCHAR) {
    // SAFETY: forwarded from the caller's contract; all fields written are inside the IRP header and
    // the stack pointer stays at most one past the last location, inside the allocation.
    unsafe {
        ptr::write_bytes(irp.cast::<u8>(), 0, size);
        (*irp).Type = IO_TYPE_IRP;
        (*irp).Size = size as USHORT;
        (*irp).StackCount = stack_count;
        (*irp).CurrentLocation = stack_count + 1;
        let list = ptr::addr_of_mut!((*irp).ThreadListEntry);
        (*list).Flink = list;
        (*list).Blink = list;
        let first = irp.cast::<u8>().add(size_of::<IRP>()).cast::<IO_STACK_LOCATION>();
        ptr::addr_of_mut!((*irp).Tail.Overlay.CurrentStackLocation).write(first.add(stack_count as usize));
    }
}

/// `IoAllocateIrp`: IRQL <= DISPATCH_LEVEL. Allocates `IoSizeOfIrp(StackSize)` tracked bytes and
/// initialises them like `IoInitializeIrp`. Returns NULL for a stack size below 1 or when a failure
/// is injected.
///
/// # Safety
/// None beyond the kernel's contract.
pub unsafe extern "system" fn IoAllocateIrp(StackSize: CCHAR, ChargeQuota: BOOLEAN) -> PIRP {
    super::pool_stats::count_call(Class::Irp);
    if !irql::require_max("IoAllocateIrp", DISPATCH_LEVEL) {
        return ptr::null_mut();
    }
    if StackSize < 1 || StackSize == CCHAR::MAX {
        violation(
            Rule::InvalidParameter,
            &format_args!("IoAllocateIrp(StackSize {StackSize})"),
            None,
        );
        return ptr::null_mut();
    }
    let size = IoSizeOfIrp(StackSize);
    let created = creation_site();
    let irp = {
        let mut heap = heap();
        if heap.inject_failure(None) {
            return ptr::null_mut();
        }
        match heap.allocate(size, IRP_ALIGNMENT, None, Kind::Irp { pending: false }, created) {
            Some(p) => p.as_ptr().cast::<IRP>(),
            None => return ptr::null_mut(),
        }
    };
    // SAFETY: `irp` was just allocated with `size` bytes and is not shared yet.
    unsafe {
        initialize(irp, size, StackSize);
        (*irp).AllocationFlags = IRP_ALLOCATED_FIXED_SIZE | if ChargeQuota != FALSE { IRP_QUOTA_CHARGED } else { 0 };
    }
    irp
}

/// Only the IRP's owner may reuse or free it: reports `rule` if a lower driver owns the IRP in
/// `block` and returns true, so the caller makes its call harmless.
fn refuse_if_pending(rule: Rule, irp: PIRP, block: &Block) -> bool {
    let Kind::Irp { pending: true } = block.kind else {
        return false;
    };
    let describe = Describe {
        addr: irp.addr(),
        size: block.size,
        kind: &block.kind,
    };
    violation(rule, &describe, block.created.as_ref());
    true
}

/// `IoReuseIrp`: IRQL <= DISPATCH_LEVEL. Reinitialises an IRP the driver owns (keeping
/// `AllocationFlags`) and sets `IoStatus.Status`. Reusing an IRP a lower driver owns is a
/// [`Rule::IrpReuseWhilePending`].
///
/// # Safety
/// `Irp` is a live IRP the caller owns.
pub unsafe extern "system" fn IoReuseIrp(Irp: PIRP, Iostatus: NTSTATUS) {
    if !irql::require_max("IoReuseIrp", DISPATCH_LEVEL) {
        return;
    }
    let mut heap = heap();
    let Some(block) = heap.find(Irp.addr(), Class::Irp, "IoReuseIrp", Access::Use) else {
        return;
    };
    if refuse_if_pending(Rule::IrpReuseWhilePending, Irp, block) {
        return;
    }
    // SAFETY: the IRP is live and owned by the caller (not pending); the heap lock keeps a concurrent
    // free from racing with the reinitialisation.
    unsafe {
        let flags = (*Irp).AllocationFlags;
        let size = (*Irp).Size as usize;
        let stack_count = (*Irp).StackCount;
        initialize(Irp, size, stack_count);
        (*Irp).AllocationFlags = flags;
        (*Irp).IoStatus.Status = Iostatus;
    }
}

/// `IoFreeIrp`: IRQL <= DISPATCH_LEVEL. Freeing an IRP a lower driver owns is a
/// [`Rule::IrpFreeWhilePending`]; a second free is a [`Rule::DoubleFree`].
///
/// # Safety
/// `Irp` is a live IRP the caller owns, not used after this call.
pub unsafe extern "system" fn IoFreeIrp(Irp: PIRP) {
    if !irql::require_max("IoFreeIrp", DISPATCH_LEVEL) {
        return;
    }
    // Captured before taking the heap lock: a stack walk is slow.
    let freed_at = creation_site();
    let mut heap = heap();
    let Some(block) = heap.find(Irp.addr(), Class::Irp, "IoFreeIrp", Access::Free) else {
        return;
    };
    if refuse_if_pending(Rule::IrpFreeWhilePending, Irp, block) {
        return;
    }
    heap.release(Irp.addr(), freed_at);
}

/// Sets the ownership of a live IRP.
fn set_pending(irp: PIRP, pending: bool) {
    if let Some(block) = heap().find(irp.addr(), Class::Irp, "IofCompleteRequest", Access::Use) {
        block.kind = Kind::Irp { pending };
    }
}

/// Reports a violation about `irp`, with its creation site if it is still live.
fn report(rule: Rule, irp: PIRP, what: std::fmt::Arguments<'_>) {
    let heap = heap();
    let created = heap.get(irp.addr()).and_then(|b| b.created.as_ref());
    violation(rule, &format_args!("IRP {irp:p}: {what}"), created);
}

/// `IofCompleteRequest`: IRQL <= DISPATCH_LEVEL, called by the lower driver that owns the IRP. Walks
/// the stack from the current location up like the I/O manager: pops each location, sets
/// `PendingReturned` from its `SL_PENDING_RETURNED`, and calls its completion routine if the
/// `SL_INVOKE_ON_SUCCESS` / `ERROR` / `CANCEL` bit matches `NT_SUCCESS(Status)` / its negation /
/// `Irp->Cancel`, at the caller's IRQL; stops when a routine returns
/// `STATUS_MORE_PROCESSING_REQUIRED`. When the walk reaches the top location the IRP is the allocating
/// driver's again, and its routine must return `STATUS_MORE_PROCESSING_REQUIRED`.
///
/// # Safety
/// `Irp` is a live IRP owned by the caller (a lower driver).
pub unsafe extern "system" fn IofCompleteRequest(Irp: PIRP, PriorityBoost: CCHAR) {
    let _ = PriorityBoost;
    if !irql::require_max("IofCompleteRequest", DISPATCH_LEVEL) {
        return;
    }
    {
        let mut heap = heap();
        let Some(block) = heap.find(Irp.addr(), Class::Irp, "IofCompleteRequest", Access::Use) else {
            return;
        };
        if let Kind::Irp { pending: false } = block.kind {
            violation(
                Rule::IrpDoubleCompletion,
                &format_args!(
                    "IofCompleteRequest on {} (no lower driver owns it: completed twice or never submitted)",
                    Describe {
                        addr: Irp.addr(),
                        size: block.size,
                        kind: &block.kind
                    }
                ),
                block.created.as_ref(),
            );
            return;
        }
    }
    // SAFETY: the IRP is live and pending (checked above), so the caller owns it; the cancel routine
    // slot is read atomically because IoCancelIrp swaps it from other threads.
    unsafe {
        let cancel_routine = AtomicPtr::from_ptr(ptr::addr_of_mut!((*Irp).CancelRoutine).cast::<*mut ()>());
        if !cancel_routine.load(Ordering::Acquire).is_null() {
            report(
                Rule::IrpCompletedWithCancelRoutine,
                Irp,
                format_args!(
                    "completed while its cancel routine is still set (clear it with IoSetCancelRoutine(Irp, NULL) first)"
                ),
            );
            // Recording mode: complete as if the driver had cleared it.
            IoSetCancelRoutine(Irp, None);
        }
        // Bug check 0xC9 / 0x06 names both values: "a status marked as pending (or equal to -1)".
        let status = (*Irp).IoStatus.Status;
        if status == STATUS_PENDING || status == -1 {
            report(
                Rule::IrpCompletedWithStatusPending,
                Irp,
                format_args!("completed with status {status:#010x}"),
            );
        }
        complete_walk(Irp);
    }
}

/// The stack walk of `IofCompleteRequest`.
///
/// # Safety
/// `irp` is a live IRP owned by the caller, with `CurrentLocation <= StackCount`.
unsafe fn complete_walk(irp: PIRP) {
    // SAFETY: locations are only dereferenced while `CurrentLocation <= StackCount`, i.e. inside the
    // stack array; after the top routine runs the IRP may be freed and is not touched again.
    unsafe {
        loop {
            let stack_count = (*irp).StackCount;
            if (*irp).CurrentLocation > stack_count {
                // Only reachable if a routine below moved the stack itself; treat as the top.
                set_pending(irp, false);
                report(
                    Rule::WrongCompletionRoutineReturn,
                    irp,
                    format_args!("stack exhausted without STATUS_MORE_PROCESSING_REQUIRED"),
                );
                return;
            }
            let location = IoGetCurrentIrpStackLocation(irp);
            let control = (*location).Control;
            (*irp).PendingReturned = BOOLEAN::from(control & SL_PENDING_RETURNED != 0);
            let routine = (*location).CompletionRoutine;
            let context = (*location).Context;
            // ZeroIrpStackLocation, as the I/O manager does for each popped location (it leaves
            // CompletionRoutine and Context, which it has just read).
            (*location).MinorFunction = 0;
            (*location).Flags = 0;
            (*location).Control = 0;
            (*location).Parameters = [0; 4];
            (*location).FileObject = ptr::null_mut();
            IoSkipCurrentIrpStackLocation(irp);
            let at_top = (*irp).CurrentLocation == stack_count + 1;
            if at_top {
                // The allocating driver owns the IRP again; its routine may free or reuse it.
                set_pending(irp, false);
            }
            let status = (*irp).IoStatus.Status;
            let cancelled = cancel_flag(irp).load(Ordering::SeqCst) != FALSE;
            let invoke = (NT_SUCCESS(status) && control & SL_INVOKE_ON_SUCCESS != 0)
                || (!NT_SUCCESS(status) && control & SL_INVOKE_ON_ERROR != 0)
                || (cancelled && control & SL_INVOKE_ON_CANCEL != 0);
            match routine {
                Some(routine) if invoke => {
                    let device = if at_top {
                        ptr::null_mut()
                    } else {
                        (*IoGetCurrentIrpStackLocation(irp)).DeviceObject
                    };
                    let irql_before = irql::current();
                    // IoSetCompletionRoutineEx's routine tracks the driver's routine itself.
                    let guard = if !super::driver::any_driver() || super::completion_ex::is_ex_context(context) {
                        None
                    } else {
                        let owner = super::driver::plain_routine_owner(irp);
                        super::driver::enter_routine("completion routine", owner)
                    };
                    let result = routine(device, irp, context);
                    drop(guard);
                    if irql::current() != irql_before {
                        violation(
                            Rule::IrqlMismatch,
                            &format_args!(
                                "the completion routine of IRP {irp:p} was called at {} and returned at {}",
                                irql::name(irql_before),
                                irql::name(irql::current())
                            ),
                            None,
                        );
                        irql::set(irql_before);
                    }
                    if result == STATUS_MORE_PROCESSING_REQUIRED {
                        return;
                    }
                    if at_top {
                        report(
                            Rule::WrongCompletionRoutineReturn,
                            irp,
                            format_args!("the driver's completion routine returned {result:#010x}"),
                        );
                        return;
                    }
                }
                _ => {
                    if at_top {
                        report(
                            Rule::WrongCompletionRoutineReturn,
                            irp,
                            format_args!(
                                "no completion routine ran at the top location (none set, or its SL_INVOKE_ON_* bits {control:#04x} do not match status {status:#010x})"
                            ),
                        );
                        return;
                    }
                    if (*irp).PendingReturned != FALSE {
                        IoMarkIrpPending(irp);
                    }
                }
            }
        }
    }
}

/// Emulation controls for IRPs, used by emulated lower drivers (the WSK provider).
pub mod control {
    use super::super::heap::{Access, Class, Describe, Kind, heap};
    use super::super::irql;
    use super::super::verifier::{Rule, violation};
    use crate::inline_helpers::IoSetNextIrpStackLocation;
    use crate::types::*;

    /// A lower driver takes ownership of a driver-allocated IRP, as `IoCallDriver` hands it down:
    /// checks that the IRP is live, not already pending ([`Rule::IrpSubmittedWhilePending`]), has a
    /// stack location left ([`Rule::IrpNoStackLocation`]) and no cancel routine
    /// ([`Rule::IrpSubmittedWithCancelRoutine`]), then does `IoSetNextIrpStackLocation` and
    /// marks it pending. The provider then owns it until it calls `IofCompleteRequest`. Returns whether
    /// the IRP was taken (false only after a violation in recording mode).
    ///
    /// # Safety
    /// `irp` is a live IRP the calling driver owns and hands over.
    pub unsafe fn enter_provider(irp: PIRP) -> bool {
        if !irql::require_max("IoCallDriver", DISPATCH_LEVEL) {
            return false;
        }
        let mut heap = heap();
        let Some(block) = heap.find(irp.addr(), Class::Irp, "IoCallDriver", Access::Use) else {
            return false;
        };
        if let Kind::Irp { pending: true } = block.kind {
            violation(
                Rule::IrpSubmittedWhilePending,
                &Describe {
                    addr: irp.addr(),
                    size: block.size,
                    kind: &block.kind,
                },
                block.created.as_ref(),
            );
            return false;
        }
        // SAFETY: the IRP is live (checked) and owned by the caller; the heap lock is held, so no
        // emulated free races with the hand-over.
        unsafe {
            if (*irp).CurrentLocation <= 1 {
                violation(
                    Rule::IrpNoStackLocation,
                    &format_args!("IRP {irp:p} passed down at CurrentLocation {}", (*irp).CurrentLocation),
                    block.created.as_ref(),
                );
                return false;
            }
            // Level 2 I/O Verification (0x203): the cancel routine belongs to the driver that owns
            // the IRP; one left set when the IRP goes down could be called by IoCancelIrp while a
            // lower driver owns it. Read atomically: IoCancelIrp swaps it from other threads.
            let cancel_routine = core::sync::atomic::AtomicPtr::from_ptr(
                core::ptr::addr_of_mut!((*irp).CancelRoutine).cast::<*mut ()>(),
            );
            if !cancel_routine.load(core::sync::atomic::Ordering::Acquire).is_null() {
                violation(
                    Rule::IrpSubmittedWithCancelRoutine,
                    &format_args!("IRP {irp:p} passed down with its cancel routine still set"),
                    block.created.as_ref(),
                );
                return false;
            }
            IoSetNextIrpStackLocation(irp);
        }
        block.kind = Kind::Irp { pending: true };
        drop(heap);
        // SAFETY: the IRP is live and now the provider's, which is this call: nobody else touches
        // it before this returns.
        unsafe { super::super::driver::check_unload_safe_routine(irp) };
        true
    }

    /// A lower driver that took `irp` with [`enter_provider`] gives it back untouched and will never
    /// complete it (a provider breaking the IRP contract, as Wine's stub WSK functions do): the stack
    /// location moves back and the IRP is no longer pending, so the driver may complete, reuse or
    /// free it.
    ///
    /// # Safety
    /// `irp` was taken with [`enter_provider`] and not completed.
    pub unsafe fn forget(irp: PIRP) {
        // SAFETY: the caller's contract: the lower driver owns the IRP and hands it back.
        unsafe { crate::inline_helpers::IoSkipCurrentIrpStackLocation(irp) };
        super::set_pending(irp, false);
    }

    /// Whether a lower driver owns the live IRP `irp`. False for an IRP that is not live.
    pub fn is_pending(irp: PIRP) -> bool {
        matches!(
            heap().get(irp.addr()).map(|b| b.kind),
            Some(Kind::Irp { pending: true })
        )
    }

    /// The number of live IRPs.
    pub fn live_count() -> usize {
        heap()
            .live_blocks()
            .filter(|(_, b)| matches!(b.kind, Kind::Irp { .. }))
            .count()
    }
}
