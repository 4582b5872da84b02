//! How the provider holds and completes the client's IRPs, as a lower driver does: it takes
//! ownership ([`take`]), keeps a cancel routine armed while an IRP pends ([`arm`]), disarms it before
//! touching the IRP again ([`claim`]), and completes with `IofCompleteRequest` ([`complete_all`]).
//!
//! The arm/claim pair is the classic cancel-safe queue pattern: whoever swaps the cancel routine out
//! (the provider in [`claim`], or `IoCancelIrp`) owns the IRP. If `IoCancelIrp` won, the provider
//! leaves the IRP in its queue and the cancel routine removes and completes it.

use super::super::inline_list::InlineList;
use super::socket::SocketCore;
use crate::types::*;
use crate::{IoIsIrpCancelRequested, IoReleaseCancelSpinLock, IoSetCancelRoutine, IofCompleteRequest};
use std::sync::Arc;

/// A client IRP the provider owns while it pends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProviderIrp(pub PIRP);

// SAFETY: once handed to the provider, an IRP is touched only by the provider (under the socket lock)
// and by IoCancelIrp through the interlocked `CancelRoutine`/`Cancel` fields; moving the pointer to the
// event-loop thread is what a real provider does when it completes from another CPU.
unsafe impl Send for ProviderIrp {}

/// A completion to deliver once no provider lock is held (the completion routine may call back into
/// the provider).
#[derive(Debug)]
pub(crate) struct Done {
    pub irp: ProviderIrp,
    pub status: NTSTATUS,
    pub information: usize,
    /// Ended by someone else's action: cancelled by `IoCancelIrp`, or flushed by a close, an abortive
    /// disconnect or `WskDeregister`. The schedule decides whether it completes before that action
    /// returns or later ([`super::schedule::late_ended`]).
    pub ended: bool,
}

impl Done {
    pub(crate) fn new(irp: ProviderIrp, status: NTSTATUS, information: usize) -> Self {
        Self {
            irp,
            status,
            information,
            ended: false,
        }
    }

    /// A completion ended by another action (see [`Done::ended`](Self::ended)).
    pub(crate) fn ended(irp: ProviderIrp, status: NTSTATUS, information: usize) -> Self {
        Self {
            ended: true,
            ..Self::new(irp, status, information)
        }
    }
}

/// How many completions a pump collects without a heap allocation: one pump of a socket finishes
/// at most a receive and a send in the steady state of a connection.
const INLINE_COMPLETIONS: usize = 4;

/// The completions one provider step collects, delivered by [`complete_all`]: the first few stored
/// inline, so that the per-message path allocates nothing on the host heap.
pub(crate) struct Completions(InlineList<Done, INLINE_COMPLETIONS>);

impl Completions {
    pub(crate) fn new() -> Self {
        Self(InlineList::new())
    }

    /// A single completion.
    pub(crate) fn one(done: Done) -> Self {
        let mut completions = Self::new();
        completions.push(done);
        completions
    }

    pub(crate) fn push(&mut self, done: Done) {
        self.0.push(done);
    }

    /// In the order they were pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Done> {
        self.0.iter()
    }

    /// Takes out the completion of `irp`, keeping the others in their order.
    pub(crate) fn take(&mut self, irp: ProviderIrp) -> Option<Done> {
        let mut taken = None;
        let mut rest = Self::new();
        for done in core::mem::replace(self, Self::new()).0.into_items() {
            if done.irp == irp && taken.is_none() {
                taken = Some(done);
            } else {
                rest.push(done);
            }
        }
        *self = rest;
        taken
    }
}

/// Takes ownership of the client's IRP, as `IoCallDriver` hands an IRP to a lower driver. False if
/// the IRP is NULL or the emulation rejected it (a violation already reported in recording mode).
///
/// # Safety
/// `irp` is NULL or a live IRP the caller hands over.
pub(crate) unsafe fn take(irp: PIRP) -> bool {
    if irp.is_null() {
        return false;
    }
    // SAFETY: forwarded from the caller's contract.
    if !unsafe { crate::emu::irp::enter_provider(irp) } {
        return false;
    }
    // SAFETY: the provider owns the IRP now, and with it `DriverContext` (whatever the client left
    // there is not the provider's mark).
    unsafe { (*irp).Tail.Overlay.DriverContext[REFUSES_CANCEL] = core::ptr::null_mut() };
    true
}

/// The `DriverContext` slot that marks an IRP [`refuse_cancel`] took: it holds the IRP's own address.
const REFUSES_CANCEL: usize = 1;

/// Makes the provider keep `irp` pending without a cancel routine, as Wine 8's netio keeps a
/// `WskConnect` ([`super::wine8`]): [`arm`] arms none (so `IoCancelIrp` finds none and returns
/// FALSE, whenever it is called) and [`claim`] always succeeds (the provider owns the IRP outright),
/// so only the provider's own progress or a flush (a close) completes it. Lasts until it completes.
pub(crate) fn refuse_cancel(irp: ProviderIrp) {
    // SAFETY: the provider owns `irp` (taken, not completed), and with it `DriverContext`.
    unsafe { (*irp.0).Tail.Overlay.DriverContext[REFUSES_CANCEL] = irp.0.cast() };
}

fn refuses_cancel(irp: ProviderIrp) -> bool {
    // SAFETY: the provider owns `irp` (taken, not completed); only the provider writes the slot.
    unsafe { (*irp.0).Tail.Overlay.DriverContext[REFUSES_CANCEL] == irp.0.cast() }
}

/// `IoMarkIrpPending` on the provider's stack location, as every driver does before it returns
/// STATUS_PENDING for an IRP: `IofCompleteRequest` then sets `Irp->PendingReturned` for the client's
/// completion routine. Called while no other thread can complete `irp` yet (under the socket lock
/// with the IRP queued, or before its deferred completion is queued).
pub(crate) fn mark_pending(irp: ProviderIrp) {
    // SAFETY: the provider owns `irp` (taken, not completed, and no other thread can complete it
    // before the caller lets go of it); its current stack location is the provider's.
    unsafe { crate::IoMarkIrpPending(irp.0) }
}

/// Arms the cancel routine of a pending IRP and records which socket it pends on (in
/// `Tail.Overlay.DriverContext[0]`, which belongs to the driver that owns the IRP). Returns false if
/// the IRP was cancelled before the routine could be armed: the caller then completes it with
/// STATUS_CANCELLED itself.
pub(crate) fn arm(irp: ProviderIrp, core: &Arc<SocketCore>) -> bool {
    // SAFETY: the provider owns `irp` (taken and not completed); DriverContext is ours while we own it;
    // `CancelRoutine` and `Cancel` are only accessed atomically (IoSetCancelRoutine,
    // IoIsIrpCancelRequested), as IoCancelIrp accesses them from other threads.
    unsafe {
        let context = &mut (*irp.0).Tail.Overlay.DriverContext[0];
        if context.is_null() {
            *context = Arc::into_raw(core.clone()) as PVOID;
        }
        if refuses_cancel(irp) {
            return true;
        }
        IoSetCancelRoutine(irp.0, Some(cancel_routine));
        // `Cancel` is stored atomically by IoCancelIrp on another thread: read it atomically too.
        if IoIsIrpCancelRequested(irp.0) && IoSetCancelRoutine(irp.0, None).is_some() {
            return false;
        }
    }
    true
}

/// Disarms the cancel routine before the provider works on a pending IRP. False if `IoCancelIrp`
/// got there first: the IRP must then stay where its cancel routine will look for it.
pub(crate) fn claim(irp: ProviderIrp) -> bool {
    if refuses_cancel(irp) {
        return true;
    }
    // SAFETY: the provider owns `irp`; IoSetCancelRoutine is an interlocked exchange.
    unsafe { IoSetCancelRoutine(irp.0, None).is_some() }
}

/// `DRIVER_CANCEL` for every pending WSK IRP: releases the cancel spin lock, removes the IRP from its
/// socket's queues and completes it with STATUS_CANCELLED: inside `IoCancelIrp` (Invented (kind),
/// schedules `realistic` and `inline`) or later (`pending`, `random`: see [`complete_all`]).
unsafe extern "system" fn cancel_routine(_device: PDEVICE_OBJECT, irp: PIRP) {
    // SAFETY: IoCancelIrp calls us with the cancel spin lock held and the IRP's cancel routine already
    // swapped out, so we own the IRP; DriverContext[0] holds a strong reference to its socket, set in
    // `arm` and released only when the IRP is completed, which only we can do now.
    let core = unsafe {
        IoReleaseCancelSpinLock((*irp).CancelIrql);
        let raw = (*irp).Tail.Overlay.DriverContext[0] as *const SocketCore;
        Arc::increment_strong_count(raw);
        Arc::from_raw(raw)
    };
    core.cancel(ProviderIrp(irp));
}

/// Completes each IRP: releases its socket reference, stores the status, and calls
/// `IofCompleteRequest`, which runs the client's completion routine and hands the IRP back. A
/// cancellation is parked instead while a test asks for it ([`super::deferred`]); an IRP ended by a
/// cancel, a close or an abort is deferred ([`super::later`]) when the schedule takes the harsh
/// order, so it completes after the others of this step (the close or abort IRP among them) and
/// after `IoCancelIrp`, the close or the abort returned.
pub(crate) fn complete_all(done: Completions) {
    let mut late = Vec::new();
    for d in done.iter() {
        if super::deferred::park(d) {
            continue;
        }
        if d.ended && super::schedule::late_ended() {
            late.push(Done::new(d.irp, d.status, d.information));
            continue;
        }
        complete_one(d);
    }
    for d in late {
        super::later::push(d, None);
    }
}

/// Completes one IRP (see [`complete_all`]): at DISPATCH_LEVEL when the schedule says so
/// ([`super::schedule::complete_at_dispatch`]), else at the current IRQL.
pub(crate) fn complete_one(d: &Done) {
    if crate::host::irql::current() < crate::types::DISPATCH_LEVEL && super::schedule::complete_at_dispatch() {
        crate::emu::at_dispatch(|| complete_now(d));
    } else {
        complete_now(d);
    }
}

fn complete_now(d: &Done) {
    // SAFETY: the provider owns the IRP in `d` and no longer refers to it from any queue; its cancel
    // routine is disarmed (claimed, or never armed). A parked IRP stays owned, untouched, until this.
    unsafe {
        let context = &mut (*d.irp.0).Tail.Overlay.DriverContext[0];
        if !context.is_null() {
            drop(Arc::from_raw(*context as *const SocketCore));
            *context = core::ptr::null_mut();
        }
        (*d.irp.0).Tail.Overlay.DriverContext[REFUSES_CANCEL] = core::ptr::null_mut();
        (*d.irp.0).IoStatus = IO_STATUS_BLOCK::new(d.status, d.information);
        IofCompleteRequest(d.irp.0, IO_NO_INCREMENT);
    }
}

/// Completes `irp` at once with `status`: the harmless outcome of a call the checks rejected.
///
/// # Safety
/// `irp` is NULL or a live IRP the caller hands over.
pub(crate) unsafe fn fail(irp: PIRP, status: NTSTATUS) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { take(irp) } {
        complete_all(Completions::one(Done::new(ProviderIrp(irp), status, 0)));
    }
    status
}
