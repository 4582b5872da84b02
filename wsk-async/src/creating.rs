//! [`Creating`]: a socket context owned by the future that is creating its socket (`listen`,
//! `connect`, and the connection an `accept` is about to produce), with the drop behaviour that makes
//! such futures safe to drop at any point.

use crate::ctx::{Handle, Kind, SocketCtx, orphan_slots};
use crate::error::{Result, WskError};
use crate::registration::RegInner;
use crate::slot::{Phase, SlotUse};
use core::ptr::NonNull;
use nt::*;

/// A context being set up, with the handle reference and the use of one slot.
pub(crate) struct Creating {
    ctx: Option<NonNull<SocketCtx>>,
    kind: Kind,
    index: usize,
    pub(crate) slot: SlotUse,
}

// SAFETY: like `Handle`.
unsafe impl Send for Creating {}
// SAFETY: like `Handle`.
unsafe impl Sync for Creating {}

impl Creating {
    /// A context of `kind` (allocated on first [`ensure`](Self::ensure)) whose socket is created on
    /// slot `index`.
    pub(crate) const fn new(kind: Kind, index: usize) -> Self {
        Self {
            ctx: None,
            kind,
            index,
            slot: SlotUse::new(),
        }
    }

    /// Allocates the context on first use; returns it with this future's use of its slot, as two
    /// disjoint borrows so a poll can drive the slot while it reads the context.
    pub(crate) fn ensure(&mut self, registration: &RegInner) -> Result<(&SocketCtx, &mut SlotUse)> {
        let ctx = match self.ctx {
            Some(ctx) => ctx,
            None => *self.ctx.insert(SocketCtx::allocate(registration, self.kind)?),
        };
        // SAFETY: we hold the handle reference, which keeps the context alive until `self` gives it
        // up (`drop` or `into_handle`); both need `self` exclusively, so not while this borrow lives.
        Ok((unsafe { ctx.as_ref() }, &mut self.slot))
    }

    /// The finished context, as a handle (the slot must have been released).
    fn into_handle(mut self) -> Option<Handle> {
        self.ctx.take().map(Handle::new)
    }

    /// [`into_handle`](Self::into_handle) for a future that owns `self`: leaves it as new, with
    /// nothing for its drop to do.
    pub(crate) fn finish(&mut self) -> Result<Handle> {
        let creating = core::mem::replace(self, Self::new(self.kind, self.index));
        creating.into_handle().ok_or(WskError::INVALID_STATE)
    }
}

impl Drop for Creating {
    /// Cancels a pending IRP, marks the slot orphaned *before* letting go of it (so that a completion
    /// arriving later sees `ORPHANED` and hands an unread socket to the registration's deferred
    /// closer), disposes of a result that already arrived (closing the socket it produced), then
    /// drops the context like a handle (closing the socket if it was created).
    fn drop(&mut self) {
        let Some(ctx_ptr) = self.ctx.take() else { return };
        // SAFETY: we hold the handle reference until `abandon` below.
        let ctx = unsafe { ctx_ptr.as_ref() };
        let op = ctx.slot(self.index);
        if self.slot.phase() == Phase::Submitted && !self.slot.completed(op) {
            // SAFETY: the IRP is alive (we hold the context); cancelling a completing IRP is harmless.
            unsafe { IoCancelIrp(op.irp()) };
        }
        op.state.orphan();
        if let Some(previous) = self.slot.release(op)
            && previous & crate::op_state::KERNEL == 0
        {
            // The kernel is done and the slot is orphaned: nobody else can own it.
            // SAFETY: exclusive ownership, IRQL <= DISPATCH_LEVEL (a drop, not a completion
            // routine; above PASSIVE_LEVEL an unread address list goes to the deferred closer).
            unsafe { op.dispose_unread() };
        }
        // SAFETY: the orphan pass skips our already-orphaned slot.
        unsafe { orphan_slots(ctx, Some(self.index)) };
        // SAFETY: we give up the handle reference.
        unsafe { Handle::abandon(ctx_ptr, true) };
    }
}
