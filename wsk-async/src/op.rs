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
//!     the routine returns; so the routine itself reads `IoStatus` only *before* that change, while
//!     `KERNEL` still keeps every owner away, and everyone else reads it only as the owner, after
//!     observing transition 3 and before giving the slot up (or, for a slot the routine kept, as
//!     the deferred closer the routine handed it to);
//! * the orphan-list link: one per context suffices (see [`Op::orphan_link`]);
//! * an [`OpIo`] for the abort and close slots, which lend the kernel nothing.
//!
//! And the slots a connection needs only when it ends (graceful and abortive disconnect) are not in
//! the context at all until the first `disconnect()` or `abort()` allocates them with their IRPs
//! ([`EndSlots`](crate::end_slots::EndSlots)): an open connection holds four slots and four IRPs
//! (receive, two sends, close).

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
    /// The operation is a `WskGetAddressInfo` whose list, on success, is in its context's request
    /// (`resolve.rs`): an unread one must be freed with `WskFreeAddressInfo` by whoever disposes of
    /// the result. Same access rule as [`OpIo`].
    produces_address_info: Cell<bool>,
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
            produces_address_info: Cell::new(false),
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

    /// Records whether the next operation is a `WskGetAddressInfo` (see `produces_address_info`).
    ///
    /// # Safety
    /// As for [`io`](Self::io): the caller owns the slot exclusively.
    pub(crate) unsafe fn set_produces_address_info(&self, produces: bool) {
        // SAFETY: exclusive ownership is the caller's contract.
        self.produces_address_info.with_mut(|p| unsafe { *p = produces });
    }

    /// Whether the IRP that just completed left an address list nobody has read.
    ///
    /// # Safety
    /// As for [`produced_socket_unread`](Self::produced_socket_unread).
    unsafe fn address_info_unread(&self) -> bool {
        // SAFETY: forwarded from the caller's contract; a resolving context's request is there.
        unsafe { self.produces_address_info.with(|p| *p) && crate::resolve::has_list(self.ctx) }
    }

    /// Frees an unread address list (a successful `WskGetAddressInfo` nobody read), if there is one,
    /// and forgets that the slot produces one.
    ///
    /// # Safety
    /// The caller owns the slot's result exclusively after the completion, at PASSIVE_LEVEL
    /// (`WskFreeAddressInfo`), and is not a completion routine. Above PASSIVE_LEVEL,
    /// [`dispose_unread`](Self::dispose_unread) hands the list to the deferred closer instead.
    unsafe fn free_unread_address_info(&self) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            if self.produces_address_info.with(|p| *p) {
                self.set_produces_address_info(false);
                let list = crate::resolve::take_list(self.ctx);
                if !list.is_null() {
                    crate::resolve::free_list(self.ctx().registration(), list);
                }
            }
        }
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
    ///   result, the code that found the slot orphaned and unowned);
    /// * the completion routine of the slot's IRP *before* it makes transition 3 (while `KERNEL` is
    ///   set nobody else may touch the result);
    /// * the orphan-list drainer, for a slot its completion routine kept (`KERNEL` still set, no
    ///   transition 3: see [`complete_op`]).
    ///
    /// Never the completion routine after transition 3: from that RMW on the slot belongs to a
    /// future or to the next claimer, which may call [`start`](Self::start) (`IoReuseIrp` rewrites
    /// `IoStatus`) while the routine is still running.
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
        // Unreachable by construction (see above); checked in debug builds.
        debug_assert!(
            !self.irp().is_null(),
            "a slot without an IRP is never owned, so never started"
        );
        // SAFETY: forwarded from the caller's contract; `submit` sets KERNEL before the call.
        unsafe { self.submit_irp(true, call) };
    }

    /// Reinitialises the IRP, sets the completion routine (see [`arm_completion`]), takes the kernel's
    /// reference on the context, makes transition 2 if `transition` (a kept slot is `KERNEL`-owned
    /// already), and makes the call.
    ///
    /// # Safety
    /// The caller owns the slot's IRP (as for [`start`](Self::start), or as the deferred closer of a
    /// kept slot), IRQL <= DISPATCH_LEVEL, and `call` passes the IRP to at most one WSK function.
    unsafe fn submit_irp(&self, transition: bool, call: impl FnOnce(PIRP) -> Option<NTSTATUS>) {
        let irp = self.irp();
        let context = ptr::from_ref(self).cast_mut().cast();
        // SAFETY: the IRP is owned by the caller; the context (and so this slot) stays alive until the
        // completion routine releases the reference taken here.
        unsafe {
            IoReuseIrp(irp, STATUS_UNSUCCESSFUL);
            arm_completion(self.ctx().registration().device(), irp, context);
        }
        self.ctx().acquire();
        self.state.clear_delivered();
        if transition {
            self.state.submit();
        }
        let undelivered = match call(irp) {
            // Nothing took the IRP.
            None => Some(STATUS_NOT_SUPPORTED),
            // The IRP contract: a provider that returns anything but STATUS_PENDING has completed the
            // IRP, so its completion routine has run by now. A provider that breaks it (Wine 8's stub
            // WskDisconnect, WskControlSocket and address queries return STATUS_NOT_IMPLEMENTED and
            // never complete their IRP) would leave this operation waiting for ever, and its socket
            // unclosable: the operation fails with the returned status instead. A conforming provider
            // completed the IRP before returning, so this never completes one twice.
            Some(status) if status != STATUS_PENDING && !self.state.delivered() => Some(status),
            Some(_) => None,
        };
        if let Some(status) = undelivered {
            // Deliver the failure through the routine the next stack location names, as completing
            // the IRP would (for `IoSetCompletionRoutineEx`, the I/O manager's wrapper, which calls
            // ours and then drops its device reference and frees its context).
            // SAFETY: the IRP is ours again (never taken, or given back uncompleted); the stack
            // location was written by `arm_completion`.
            unsafe {
                (*irp).IoStatus = IO_STATUS_BLOCK::new(status, 0);
                let next = IoGetNextIrpStackLocation(irp);
                if let Some(routine) = (*next).CompletionRoutine {
                    routine(ptr::null_mut(), irp, (*next).Context);
                }
            }
        }
    }

    /// The deferred closer's step for a kept slot (see [`complete_op`]): closes the unread socket
    /// that the slot's last operation produced, with the slot's own IRP. The slot stays
    /// `KERNEL`-owned throughout; the close's completion makes transition 3 as any completion does.
    ///
    /// # Safety
    /// The slot was kept by its completion routine and handed to the caller through the orphan list
    /// (so the caller owns its IRP and result exclusively), at PASSIVE_LEVEL, never from a completion
    /// routine.
    pub(crate) unsafe fn close_kept_socket(&self) {
        // SAFETY: exclusive ownership of the kept slot (caller's contract).
        unsafe {
            if self.address_info_unread() {
                // A resolution's list, not a socket: freed here and now (no IRP needed); then the
                // slot's operation ends as its completion would have ended it, with a reference
                // of its own, as the close below would hold one.
                self.free_unread_address_info();
                self.ctx().acquire();
                complete_op(self.irp(), self);
                return;
            }
            let socket = socket_from_information(self.iosb().Information);
            self.set_produces_socket(false);
            self.submit_irp(false, |irp| crate::ctx::call_close(socket, irp));
        }
    }

    /// Whether the IRP that just completed produced a socket nobody has read: the operation produces
    /// one and succeeded with a non-null pointer.
    ///
    /// # Safety
    /// The caller owns the slot's IRP and result: the completion routine before transition 3 (the
    /// slot is `KERNEL`-owned, so nobody else writes them), or an exclusive owner after it.
    unsafe fn produced_socket_unread(&self) -> bool {
        // SAFETY: forwarded from the caller's contract.
        let (produces_socket, iosb) = unsafe { (self.produces_socket.with(|p| *p), self.iosb()) };
        produces_socket && NT_SUCCESS(iosb.Status) && iosb.Information != 0
    }

    /// The socket an accept or a socket creation returned, if the slot holds such a result unread.
    ///
    /// # Safety
    /// The caller owns the slot exclusively with `KERNEL` clear and `COMPLETE` set: a future or a
    /// disposer (see [`iosb`](Self::iosb)).
    pub(crate) unsafe fn unread_socket(&self) -> Option<PWSK_SOCKET> {
        if self.state.load() & COMPLETE == 0 {
            return None;
        }
        // SAFETY: exclusive ownership after completion (caller's contract).
        unsafe {
            self.produced_socket_unread()
                .then(|| socket_from_information(self.iosb().Information))
        }
    }

    /// Hands an unread address list to the registration's deferred closer, which frees it at
    /// PASSIVE_LEVEL: `WskFreeAddressInfo` may not be called above it, nor the list (which the
    /// provider may have allocated from paged pool) be read. The slot becomes a kept slot, as if
    /// its completion routine had kept it (`complete_op`): `KERNEL`-owned again, its result unread,
    /// with a reference of its own on the context, which moves to the orphan list; the closer's
    /// [`close_kept_socket`](Self::close_kept_socket) frees the list and makes transition 3.
    ///
    /// # Safety
    /// The caller owns the slot exclusively with `KERNEL` clear and `COMPLETE` set, the unread list
    /// in its context's request, and keeps the context alive (a handle reference) until it returns.
    unsafe fn defer_address_info(&self) {
        // Transition 2 without a call: clears COMPLETE and sets KERNEL, so that nobody but the
        // closer touches the slot (a future claiming it attaches and is woken by the closer).
        self.state.submit();
        self.ctx().acquire();
        // SAFETY: a kept slot with an unread result, exclusively ours, whose new reference goes to
        // the list; the context (and its registration) stays alive through the caller's reference.
        unsafe { RegInner::push_orphan(self.ctx().registration_ptr(), self) };
    }

    /// Disposes of an unread result: closes an unread socket with this slot's IRP (returns true: the
    /// slot is then busy until that close completes), hands an unread address list that may not be
    /// freed at the current IRQL to the deferred closer (returns true as well: the slot is busy until
    /// the closer freed it) and returns a leftover buffer to its pool.
    ///
    /// # Safety
    /// The caller owns the slot exclusively with `KERNEL` clear, at IRQL <= DISPATCH_LEVEL, and is
    /// not a completion routine (this calls WSK).
    pub(crate) unsafe fn dispose_unread(&self) -> bool {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            if self.state.load() & COMPLETE != 0 && self.address_info_unread() && KeGetCurrentIrql() > PASSIVE_LEVEL {
                self.defer_address_info();
                return true;
            }
            let socket = self.unread_socket();
            self.set_produces_socket(false);
            if self.state.load() & COMPLETE != 0 {
                self.free_unread_address_info();
            }
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
/// An operation that produced a socket (accept, socket creation, `WskSocketConnect`) for which no
/// future is waiting — its future was dropped while the IRP was pending, or its handle is gone —
/// must have that socket closed, promptly, and not by this routine (it must not call WSK). So the
/// routine does not make transition 3 for it: the slot stays `KERNEL`-owned, as if its operation
/// were still in flight, and passes with the kernel's reference on the context to the
/// registration's deferred closer (the orphan list and its work item), which closes the socket with
/// the slot's own IRP at PASSIVE_LEVEL; the close's completion then makes transition 3 like any
/// other. To everyone else nothing changes: a future claiming the slot attaches and waits (1'), a
/// handle drop leaves the slot to "the kernel". The decision is made before any RMW, which is sound
/// because the slot's result is the routine's while `KERNEL` is set, and it is atomic with respect
/// to futures: [`OpState::complete_if_held`] completes only if a future holds the slot.
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
        op.state.mark_delivered();
        // Before transition 3 this routine owns the slot's result (KERNEL is set): it may read it.
        if op.produced_socket_unread() || op.address_info_unread() {
            if op.state.complete_if_held() {
                op.waker.wake();
                SocketCtx::release(ctx);
            } else {
                // Kept: the kernel's reference moves to the orphan list. From the publication on,
                // the slot and its context may be freed by the drainer: only the registration is
                // touched after it, under a reference `push_orphan` takes first.
                RegInner::push_orphan((*ctx).registration_ptr(), node);
            }
            return;
        }
        if op.state.complete() == Completed::Wake {
            op.waker.wake();
        }
        SocketCtx::release(ctx);
    }
}

/// Sets this crate's completion routine on the next stack location of `irp`, for success, error and
/// cancellation: with `IoSetCompletionRoutineEx` on `device`, so that the driver's image stays
/// loaded until the routine has returned (see `device.rs`). That call allocates a small context and
/// can fail for lack of pool; the operation must still be submitted (closes and aborts from drops
/// cannot fail), so it then falls back to `IoSetCompletionRoutine`, as Microsoft's own frameworks
/// do. Such a routine is counted by [`quiesce`](crate::quiesce), which deregistration waits out:
/// only under pool exhaustion does the window of the routine's final instructions reopen.
///
/// # Safety
/// `irp` is a live IRP the caller owns, with a next stack location; `device` is a referenced device
/// object of this driver; `context` is the slot the routine will receive.
unsafe fn arm_completion(device: PDEVICE_OBJECT, irp: PIRP, context: PVOID) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        let status = IoSetCompletionRoutineEx(device, irp, Some(op_completion), context, TRUE, TRUE, TRUE);
        if !NT_SUCCESS(status) {
            IoSetCompletionRoutine(irp, Some(op_completion), context, true, true, true);
        }
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
