//! One operation slot: an IRP recycled with `IoReuseIrp`, the waker cell and the state word
//! ([`OpState`]); for the stream slots (receive, send, disconnect) also what the kernel borrows
//! during the call (the owned buffer and its `WSK_BUF`, an [`OpIo`] kept in the context).
//!
//! Slots live inside a [`SocketCtx`] in nonpaged pool, never inside a future, so a future can be
//! dropped at any `.await` without freeing memory the kernel may still write. The memory is kept
//! alive by the context's reference count, of which every submitted IRP holds one: the completion
//! routine releases it as its very last action.
//!
//! What a slot does *not* hold, to keep a connection's nonpaged footprint small (see
//! `footprint.rs` for the budget):
//!
//! * socket addresses and the option value: only listeners and connecting sockets pass them, so they
//!   live in the context's [`Addresses`](crate::ctx::Addresses) block, which accepted connections do
//!   not have;
//! * a copy of the IO_STATUS_BLOCK: the IRP's own `IoStatus` is read instead ([`Op::iosb`]). That is
//!   sound because nobody writes `IoStatus` between the provider's completion and the read:
//!   - the provider stores `IoStatus` and then calls `IoCompleteRequest`, and touches the IRP no
//!     more afterwards;
//!   - `IofCompleteRequest` reads `IoStatus` only *before* it calls our (top-level) completion
//!     routine, to evaluate the `SL_INVOKE_ON_*` bits, and returns as soon as the routine returned
//!     `STATUS_MORE_PROCESSING_REQUIRED`, without touching the IRP again (its `CurrentLocation` and
//!     stack-pointer updates happen only for other return values);
//!   - `IoCancelIrp`, called only by a future that still holds the slot, writes `Cancel` and
//!     `CancelIrql`, never `IoStatus`;
//!   - the only writer left is the slot's next owner, whose [`Op::start`] calls `IoReuseIrp`. The
//!     owner may do that as soon as the routine's state change (transition 3) is made, even before
//!     the routine returns; so the routine itself reads `IoStatus` only when that change left it the
//!     slot's sole owner (`Completed::Orphan`), and everyone else reads it only as the owner, after
//!     observing transition 3 and before giving the slot up;
//! * the orphan-list link: one per context suffices (see [`Op::orphan_link`]);
//! * an [`OpIo`] for the abort and close slots, which lend the kernel nothing.
//!
//! And the slots a connection needs only when it ends (graceful and abortive disconnect) are not in
//! the context at all until the first `disconnect()` or `abort()` allocates them with their IRPs
//! ([`EndSlots`](crate::end_slots::EndSlots)): an open connection holds three slots and three IRPs
//! (receive, send, close).

use crate::atomic_waker::AtomicWaker;
use crate::buffer::Buffer;
use crate::ctx::SocketCtx;
use crate::op_state::{COMPLETE, Completed, OpState};
use crate::registration::RegInner;
use crate::sync::Cell;
use core::ptr;
use nt::*;

/// What the kernel borrows from a stream slot while its IRP is in flight (send, receive, disconnect
/// with a final buffer). One per stream slot, in the context ([`SocketCtx::io_cell`]). Accessed only
/// by the slot's exclusive owner: the future holding `FUTURE` with `KERNEL` clear, or the code that
/// found the slot orphaned and unowned.
pub(crate) struct OpIo {
    /// The buffer lent to the kernel (send, receive, disconnect with a final buffer).
    pub(crate) buffer: Option<Buffer>,
    pub(crate) wsk_buf: WSK_BUF,
}

impl OpIo {
    pub(crate) fn new() -> Self {
        Self {
            buffer: None,
            wsk_buf: WSK_BUF {
                Mdl: ptr::null_mut(),
                Offset: 0,
                Length: 0,
            },
        }
    }

    /// The contents of `io` (a stream slot's cell), for its owner.
    ///
    /// # Safety
    /// `io` is the cell of a slot the caller owns exclusively (see [`OpIo`]), and the caller holds no
    /// other reference from this function.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn exclusive(io: &Cell<OpIo>) -> &mut OpIo {
        // SAFETY: exclusive ownership is the caller's contract.
        io.with_mut(|p| unsafe { &mut *p })
    }

    /// Leaves `buffer` in `io` (a stream slot's cell: the caller names it, so a slot without one
    /// cannot get here) until the pending IRP completes: a dropped future's buffer the kernel may
    /// still be writing through its MDL. It goes back to its pool when the next owner or the
    /// context's last release drops it. Writes the one field through a raw place, never creating a
    /// `&mut OpIo`: the kernel may be reading the slot's `WSK_BUF` through the pointer it was given,
    /// and a unique reference to the whole `OpIo` would assert exclusive access to it.
    ///
    /// # Safety
    /// `io` is the cell of a slot on which the caller holds `FUTURE` (the completion routine never
    /// touches `io` while a future holds the slot, and no other future can claim it).
    pub(crate) unsafe fn keep_buffer(io: &Cell<OpIo>, buffer: Option<Buffer>) {
        io.with_mut(|io| {
            // SAFETY: `io` points to the live cell; only the `buffer` field is written, which nobody
            // else reads or writes while `FUTURE` is held (caller's contract).
            unsafe { *ptr::addr_of_mut!((*io).buffer) = buffer };
        });
    }
}

/// An operation slot. See the module documentation.
pub(crate) struct Op {
    pub(crate) state: OpState,
    /// The operation returns a new socket in `IoStatus.Information` (accept, socket creation): an
    /// unread one must be closed by whoever disposes of the result. Same access rule as [`OpIo`].
    produces_socket: Cell<bool>,
    pub(crate) waker: AtomicWaker,
    /// Allocated with the slot, recycled with `IoReuseIrp` for every operation, freed with it.
    irp: PIRP,
    /// The context this slot belongs to (its memory owner).
    ctx: *const SocketCtx,
    /// This slot's index in its context (which [`OpIo`] is its own, if any).
    index: u8,
}

impl Op {
    /// Slot `index` of `ctx` (a pointer with the context allocation's provenance), using `irp`
    /// (freshly allocated and owned by the caller; null for a slot nothing ever starts: a listener's
    /// send slot).
    ///
    /// A slot without an IRP is born `ORPHANED` ([`OpState::new_unusable`]), so nobody can ever own
    /// it, and [`start`](Self::start), which requires ownership, can never reach its null IRP:
    /// [`OpState::claim`] refuses it (a future gets `STATUS_INVALID_DEVICE_STATE` as a value from
    /// `SlotUse::poll_acquire`), `orphan_slots` skips it as already orphaned, and nothing else takes
    /// a slot over (see `start`'s callers).
    pub(crate) fn new(irp: PIRP, ctx: *const SocketCtx, index: u8) -> Self {
        Self {
            state: if irp.is_null() {
                OpState::new_unusable()
            } else {
                OpState::new()
            },
            produces_socket: Cell::new(false),
            waker: AtomicWaker::new(),
            irp,
            ctx,
            index,
        }
    }

    /// The slot's IRP (null only for a slot nobody can own: a listener's send slot, see
    /// [`new`](Self::new)).
    pub(crate) fn irp(&self) -> PIRP {
        self.irp
    }

    /// The context pointer with the allocation's provenance (for releasing a reference).
    pub(crate) fn ctx_ptr(&self) -> *const SocketCtx {
        self.ctx
    }

    pub(crate) fn ctx(&self) -> &SocketCtx {
        // SAFETY: a slot lives inside its context; whoever can reach the slot keeps the context alive
        // (a handle reference, or the kernel's reference of an in-flight IRP).
        unsafe { &*self.ctx }
    }

    /// The link of this slot in the registration's orphan list. It is the context's single link: only
    /// a slot that produces sockets is ever pushed (an unread socket in an orphaned slot), a context
    /// has at most one such slot (a listener's accept slot, a connecting socket's send slot), and a
    /// slot is pushed at most once per completion (the drainer pops it before it can be submitted
    /// again). Touched only by the pusher, then the drainer. The context's `ORPHAN_QUEUED` flag checks
    /// this at run time ([`SocketCtx::mark_orphan_queued`]).
    pub(crate) fn orphan_link(&self) -> &Cell<*const Op> {
        &self.ctx().orphan_next
    }

    /// Records whether the next operation produces a socket.
    ///
    /// # Safety
    /// As for [`io`](Self::io): the caller owns the slot exclusively.
    pub(crate) unsafe fn set_produces_socket(&self, produces: bool) {
        // SAFETY: exclusive ownership is the caller's contract.
        self.produces_socket.with_mut(|p| unsafe { *p = produces });
    }

    /// The slot's borrowed-by-the-kernel data; `None` for a slot that lends nothing (abort, close).
    ///
    /// # Safety
    /// The caller owns the slot exclusively (see [`OpIo`]) and holds no other reference from this
    /// function.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn io(&self) -> Option<&mut OpIo> {
        let cell = self.ctx().io_cell(self.index)?;
        // SAFETY: exclusive ownership is the caller's contract.
        Some(cell.with_mut(|p| unsafe { &mut *p }))
    }

    /// The IO_STATUS_BLOCK of the last completion, read from the IRP itself (see the module
    /// documentation for why no copy is needed).
    ///
    /// # Safety
    /// The caller is the slot's exclusive owner *and* the completion has happened, i.e. one of:
    /// * a future holding `FUTURE` that observed transition 3 ([`OpState::is_complete`], Acquire),
    ///   before it releases the slot;
    /// * whoever owns the slot with `KERNEL` clear and `COMPLETE` set (a claimer disposing of a stale
    ///   result, the code that found the slot orphaned and unowned, the orphan-list drainer);
    /// * the completion routine of the slot's IRP, *only* after [`OpState::complete`] returned
    ///   [`Completed::Orphan`]: it is then the slot's only owner.
    ///
    /// Never the completion routine after `Completed::Wake` or `Completed::Idle`: from that RMW on
    /// the slot belongs to a future or to the next claimer, which may call [`start`](Self::start)
    /// (`IoReuseIrp` rewrites `IoStatus`) while the routine is still running.
    pub(crate) unsafe fn iosb(&self) -> IO_STATUS_BLOCK {
        // SAFETY: the provider stored IoStatus before completing the IRP, and the completion routine's
        // AcqRel RMW (transition 3) orders that store before the owner's Acquire observation (or, for
        // the routine itself, comes after it on the same thread). The caller is the exclusive owner
        // (contract), and only an owner rewrites IoStatus (`start`), so nobody writes it concurrently.
        unsafe { (*self.irp()).IoStatus }
    }

    /// Transition 2: reinitialises the IRP, installs the completion routine, takes the kernel's
    /// reference on the context and makes the WSK call `call`. The completion routine runs exactly
    /// once for the call (WSK completes the IRP whatever it returns, even inline), so the call's
    /// return value is ignored: the result is taken from the completion, once. If `call` cannot make
    /// the call (it returns `None`: no such function in the provider's table), the IRP is completed
    /// here with `STATUS_NOT_SUPPORTED` through the same path.
    ///
    /// Callers, and why each slot they start has an IRP: `SlotUse::start` (after `poll_acquire`
    /// claimed the slot, which a slot without an IRP refuses: it is born `ORPHANED`);
    /// [`dispose_unread`](Self::dispose_unread) (only with `COMPLETE` set, i.e. after an earlier
    /// start); `SocketCtx::abort_in_background` (the abort slot, whose IRP `EndSlots::allocate`
    /// guarantees); `Handle::abandon` (the close slot, preallocated for every
    /// [`Kind`](crate::ctx::Kind)).
    ///
    /// # Safety
    /// The caller owns the slot exclusively with `KERNEL` clear (which implies the slot has an IRP:
    /// see [`new`](Self::new)), IRQL <= DISPATCH_LEVEL, and `call` passes the IRP to at most one WSK
    /// function.
    pub(crate) unsafe fn start(&self, call: impl FnOnce(PIRP) -> Option<NTSTATUS>) {
        let irp = self.irp();
        // Unreachable by construction (see above); checked in debug builds.
        debug_assert!(!irp.is_null(), "a slot without an IRP is never owned, so never started");
        // SAFETY: the IRP is owned by the slot's owner (KERNEL clear); the context (and so this slot)
        // stays alive until the completion routine releases the reference taken here.
        unsafe {
            IoReuseIrp(irp, STATUS_UNSUCCESSFUL);
            IoSetCompletionRoutine(
                irp,
                Some(op_completion),
                ptr::from_ref(self).cast_mut().cast(),
                true,
                true,
                true,
            );
        }
        self.ctx().acquire();
        self.state.submit();
        if call(irp).is_none() {
            // Nothing took the IRP: deliver the failure through the completion routine as WSK would.
            // SAFETY: the slot's completion context is `self`, which is alive; the IRP is owned here.
            unsafe {
                (*irp).IoStatus = IO_STATUS_BLOCK::new(STATUS_NOT_SUPPORTED, 0);
                op_completion(ptr::null_mut(), irp, ptr::from_ref(self).cast_mut().cast());
            }
        }
    }

    /// The socket an accept or a socket creation returned, if the slot holds such a result unread.
    ///
    /// # Safety
    /// The caller owns the slot exclusively with `KERNEL` clear: a future or a disposer, or the
    /// completion routine after [`OpState::complete`] returned [`Completed::Orphan`] (see
    /// [`iosb`](Self::iosb)).
    pub(crate) unsafe fn unread_socket(&self) -> Option<PWSK_SOCKET> {
        if self.state.load() & COMPLETE == 0 {
            return None;
        }
        // SAFETY: exclusive ownership after completion (caller's contract).
        let (produces_socket, iosb) = unsafe { (self.produces_socket.with(|p| *p), self.iosb()) };
        if produces_socket && NT_SUCCESS(iosb.Status) && iosb.Information != 0 {
            Some(socket_from_information(iosb.Information))
        } else {
            None
        }
    }

    /// Disposes of an unread result: closes an unread socket with this slot's IRP (returns true: the
    /// slot is then busy until that close completes) and returns a leftover buffer to its pool.
    ///
    /// # Safety
    /// The caller owns the slot exclusively with `KERNEL` clear, at IRQL <= DISPATCH_LEVEL, and is
    /// not a completion routine (this calls WSK).
    pub(crate) unsafe fn dispose_unread(&self) -> bool {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            let socket = self.unread_socket();
            self.set_produces_socket(false);
            if let Some(io) = self.io() {
                io.buffer = None;
            }
            self.state.consume();
            match socket {
                Some(socket) => {
                    self.start(|irp| crate::ctx::call_close(socket, irp));
                    true
                }
                None => false,
            }
        }
    }
}

/// The completion routine of every operation slot (IRQL <= DISPATCH_LEVEL, any CPU). The result
/// stays in the IRP's `IoStatus`, where the provider stored it before completing the IRP; the routine
/// makes transition 3 with one RMW (which publishes that store to the slot's owner), wakes the future
/// if one holds the slot, hands an unread socket of an orphaned slot to the registration's deferred
/// closer (it must not call WSK itself), and releases the kernel's reference on the context: after
/// that it touches nothing of the slot. It reads `IoStatus` only in the orphaned case, where the RMW
/// left it the slot's sole owner (see [`Op::iosb`]). It never allocates or blocks, and always
/// returns `STATUS_MORE_PROCESSING_REQUIRED` (the IRP belongs to this driver, not to the I/O
/// manager).
///
/// It is counted in the crate-wide active-completion count ([`quiesce`](crate::quiesce)) from its
/// first action to its last, so that deregistration can wait until no CPU runs it any more.
///
/// # Safety
/// Called by the I/O manager for an IRP submitted by [`Op::start`], with `context` that slot.
pub(crate) unsafe extern "system" fn op_completion(_device: PDEVICE_OBJECT, irp: PIRP, context: PVOID) -> NTSTATUS {
    crate::quiesce::enter();
    // SAFETY: forwarded from the caller's contract.
    unsafe { complete_op(irp, context.cast::<Op>()) };
    // Last action: the image may be unloaded once the count reads zero (only the `ret` remains).
    crate::quiesce::leave();
    STATUS_MORE_PROCESSING_REQUIRED
}

/// The body of [`op_completion`].
///
/// # Safety
/// As for [`op_completion`]; `node` is the slot whose IRP `irp` is.
unsafe fn complete_op(irp: PIRP, node: *const Op) {
    // SAFETY: `node` is the slot whose IRP this is; its context is alive because the kernel's
    // reference taken in `start` is released only at the end of this function (or handed to the
    // orphan list). `op` is a local reference, not used once that reference is given up.
    unsafe {
        let op = &*node;
        let ctx = op.ctx;
        // The result stays in the IRP's IoStatus (see `Op::iosb`); `irp` is this slot's IRP. (In a
        // debug build a failed assertion here panics at DISPATCH_LEVEL, i.e. bugchecks: acceptable for
        // an assertion, which a release build compiles out.)
        debug_assert_eq!(irp, op.irp());
        match op.state.complete() {
            Completed::Wake => op.waker.wake(),
            Completed::Orphan => {
                // ORPHANED and no future: this routine is the slot's only owner now, so it may read
                // the IRP's IoStatus (`unread_socket`). In the other arms it must not: the slot is a
                // future's or the next claimer's from the RMW on.
                if op.unread_socket().is_some() {
                    // The kernel's reference moves to the orphan list; the drainer closes the socket
                    // at PASSIVE_LEVEL and releases it. From the publication on, the slot and its
                    // context may be freed by the drainer: only the registration is touched after
                    // it, under a reference `push_orphan` takes first.
                    RegInner::push_orphan((*ctx).registration_ptr(), node);
                    return;
                }
            }
            Completed::Idle => {}
        }
        SocketCtx::release(ctx);
    }
}

/// The `PWSK_SOCKET` a WSK call returns in `IoStatus.Information` (a `ULONG_PTR`): the provider
/// exposed the pointer when it stored it as an integer, so its provenance is taken back from there.
pub(crate) fn socket_from_information(information: ULONG_PTR) -> PWSK_SOCKET {
    ptr::with_exposed_provenance_mut(information)
}

/// The result of a socket-producing call (accept, socket creation, `WskSocketConnect`): its error, or
/// the new socket. Success with `Information == 0` is an error
/// ([`WskError::NO_SOCKET`](crate::error::WskError::NO_SOCKET)), never a null socket that a later
/// dispatch-table lookup would dereference.
pub(crate) fn produced_socket(iosb: IO_STATUS_BLOCK) -> crate::error::Result<PWSK_SOCKET> {
    crate::error::WskError::check(iosb.Status)?;
    if iosb.Information == 0 {
        return Err(crate::error::WskError::NO_SOCKET);
    }
    Ok(socket_from_information(iosb.Information))
}
