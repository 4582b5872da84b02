//! The socket context: one nonpaged pool block per socket holding its operation slots (each with its
//! own IRP, allocated when the socket is created), the `PWSK_SOCKET`, and a reference count.
//!
//! References: one for the handle (the [`Listener`](crate::Listener) / [`Connection`](crate::Connection),
//! or the future creating it) and one per IRP the kernel owns. The last one frees the IRPs, returns
//! any leftover buffers to their pool, frees the block and tells the registration; that may happen in
//! a completion routine (all of it is allowed at DISPATCH_LEVEL).
//!
//! Dropping a handle ([`Handle`]) closes the socket with the preallocated close slot, so a drop never
//! needs to allocate. WSK allows `WskCloseSocket` while IRPs of earlier calls are still pending (it
//! cancels and completes them); what it forbids is a close racing another call that has not returned
//! yet, which cannot happen here because every call is made from within a poll or a drop that holds
//! the handle.

use crate::error::{Result, WskError};
use crate::op::Op;
use crate::op_state::{FUTURE, KERNEL, ORPHANED};
use crate::pool_mem::{self, TAG_SOCKET};
use crate::registration::RegInner;
use crate::sync::{AtomicU32, AtomicUsize, Cell, Ordering};
use core::ptr::{self, NonNull};
use nt::*;

/// Slot indices. A connection uses all five; a listener uses [`ACCEPT`] (also for creating the
/// socket, setting its options and binding it) and [`CLOSE`]; a connection being created by
/// `connect` uses [`SEND`] for `WskSocketConnect`.
pub(crate) const RECEIVE: usize = 0;
pub(crate) const ACCEPT: usize = 0;
pub(crate) const SEND: usize = 1;
pub(crate) const DISCONNECT: usize = 2;
pub(crate) const ABORT: usize = 3;
pub(crate) const CLOSE: usize = 4;
pub(crate) const SLOTS: usize = 5;

/// A receive or send future was dropped while its IRP was pending: bytes may have been consumed or
/// sent, so the stream is in an unknown state and only abort and close are allowed.
pub(crate) const STREAM_UNKNOWN: u32 = 1 << 0;

/// The socket context. See the module documentation.
pub(crate) struct SocketCtx {
    refs: AtomicUsize,
    pub(crate) flags: AtomicU32,
    registration: NonNull<RegInner>,
    /// Set once by the creating future (before the handle is shared), read by later calls.
    socket: Cell<PWSK_SOCKET>,
    slots: [Op; SLOTS],
}

impl SocketCtx {
    /// Allocates a context with its IRPs, holding one (handle) reference, and counts it in the
    /// registration. PASSIVE_LEVEL or DISPATCH_LEVEL. Fails with `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) fn allocate(registration: &RegInner) -> Result<NonNull<SocketCtx>> {
        let mut irps = [ptr::null_mut::<IRP>(); SLOTS];
        for i in 0..SLOTS {
            // SAFETY: IoAllocateIrp has no preconditions at IRQL <= DISPATCH_LEVEL.
            irps[i] = unsafe { IoAllocateIrp(1, FALSE) };
            if irps[i].is_null() {
                free_irps(&irps[..i]);
                return Err(WskError::NO_RESOURCES);
            }
        }
        let Some(block) = pool_mem::allocate::<SocketCtx>(TAG_SOCKET) else {
            free_irps(&irps);
            return Err(WskError::NO_RESOURCES);
        };
        let this = block.as_ptr();
        // SAFETY: `block` is fresh, suitably aligned (16 bytes) pool memory for one SocketCtx.
        unsafe {
            this.write(SocketCtx {
                refs: AtomicUsize::new(1),
                flags: AtomicU32::new(0),
                registration: NonNull::from(registration),
                socket: Cell::new(ptr::null_mut()),
                slots: core::array::from_fn(|i| Op::new(irps[i], this)),
            });
        }
        registration.socket_created();
        Ok(block)
    }

    pub(crate) fn slot(&self, index: usize) -> &Op {
        &self.slots[index]
    }

    pub(crate) fn registration(&self) -> &RegInner {
        // SAFETY: every context holds a reference on its registration until it is freed.
        unsafe { self.registration.as_ref() }
    }

    /// The registration pointer with its allocation's provenance (for taking and releasing
    /// references on it from a completion routine).
    pub(crate) fn registration_ptr(&self) -> NonNull<RegInner> {
        self.registration
    }

    pub(crate) fn socket(&self) -> PWSK_SOCKET {
        // SAFETY: written only by the creating future before the context is shared.
        self.socket.with(|p| unsafe { *p })
    }

    /// # Safety
    /// Called only by the future creating the socket, before any other code reads it.
    pub(crate) unsafe fn set_socket(&self, socket: PWSK_SOCKET) {
        // SAFETY: caller's contract.
        self.socket.with_mut(|p| unsafe { *p = socket });
    }

    pub(crate) fn acquire(&self) {
        self.refs.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops one reference; the last one frees the context.
    ///
    /// # Safety
    /// `this` is alive and the caller owns one reference, not used afterwards. IRQL <= DISPATCH_LEVEL.
    pub(crate) unsafe fn release(this: *const SocketCtx) {
        // SAFETY: the caller's reference keeps the context alive for this RMW.
        if unsafe { &*this }.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // SAFETY: last reference: no handle, no future, no IRP in flight can reach the context. Each
        // IRP is owned by the driver again (its completion routine ran), so it may be freed, even from
        // inside its own completion routine (which then returns STATUS_MORE_PROCESSING_REQUIRED).
        unsafe {
            let registration = (*this).registration;
            let irps: [PIRP; SLOTS] = core::array::from_fn(|i| (*this).slots[i].irp());
            // Drops leftover buffers (back to their pools) and any waker still stored.
            ptr::drop_in_place(this.cast_mut());
            pool_mem::free(NonNull::new_unchecked(this.cast_mut()), TAG_SOCKET);
            free_irps(&irps);
            RegInner::socket_freed(registration);
        }
    }

    pub(crate) fn stream_unknown(&self) -> bool {
        self.flags.load(Ordering::Acquire) & STREAM_UNKNOWN != 0
    }

    pub(crate) fn mark_stream_unknown(&self) {
        self.flags.fetch_or(STREAM_UNKNOWN, Ordering::AcqRel);
    }

    /// The listen dispatch table of this (listening) socket.
    pub(crate) fn listen_dispatch(&self) -> &WSK_PROVIDER_LISTEN_DISPATCH {
        // SAFETY: a listening socket's `Dispatch` points to the provider's listen table, which lives
        // as long as the socket.
        unsafe { &*(*self.socket()).Dispatch.cast::<WSK_PROVIDER_LISTEN_DISPATCH>() }
    }

    /// The connection dispatch table of this (connection) socket.
    pub(crate) fn connection_dispatch(&self) -> &WSK_PROVIDER_CONNECTION_DISPATCH {
        // SAFETY: as above, for connection sockets.
        unsafe { &*(*self.socket()).Dispatch.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>() }
    }

    /// Fire-and-forget: an abortive `WskDisconnect` on the abort slot, unless an abort is already in
    /// progress. Used when a pending graceful disconnect is dropped.
    pub(crate) fn abort_in_background(&self) {
        let op = self.slot(ABORT);
        match op.state.claim() {
            crate::op_state::Claim::Owned { .. } => {
                let socket = self.socket();
                let disconnect = self.connection_dispatch().WskDisconnect;
                // SAFETY: the slot is ours (claimed, KERNEL clear); the completion routine finds no
                // future after the release below and just releases the kernel's reference.
                unsafe {
                    op.dispose_unread();
                    op.start(|irp| disconnect.map(|f| f(socket, ptr::null_mut(), WSK_FLAG_ABORTIVE, irp)));
                }
                op.state.release();
            }
            crate::op_state::Claim::Attached => {
                // An abort is already on its way; do not wait for it.
                op.state.release();
            }
            crate::op_state::Claim::InUse => {}
        }
    }
}

/// Marks every slot but `except` orphaned (no future will claim them again) and disposes of unread
/// results in slots nobody owns (closing an unread accepted socket with the slot's IRP). A slot
/// still owned by the kernel is disposed of by its completion routine (it sees `ORPHANED`).
///
/// # Safety
/// Called by the owner of the handle that is going away (no other future can use the slots).
pub(crate) unsafe fn orphan_slots(ctx: &SocketCtx, except: Option<usize>) {
    for i in 0..SLOTS {
        if Some(i) == except {
            continue;
        }
        let op = ctx.slot(i);
        let previous = op.state.orphan();
        // A slot already orphaned was handled before (or by the creating future, which disposes of
        // its own slot).
        if previous & (FUTURE | KERNEL | ORPHANED) == 0 {
            // SAFETY: nobody owns the slot and no future can claim it any more: ours to clean.
            unsafe { op.dispose_unread() };
        }
    }
}

fn free_irps(irps: &[PIRP]) {
    for &irp in irps {
        // SAFETY: each IRP was allocated by `allocate` and is owned by the caller (not pending).
        unsafe { IoFreeIrp(irp) };
    }
}

/// `WskCloseSocket(socket, irp)` through the socket's basic dispatch table (every category starts
/// with it). `None` if the provider has no such function.
pub(crate) fn call_close(socket: PWSK_SOCKET, irp: PIRP) -> Option<NTSTATUS> {
    // SAFETY: `socket` is a live socket of this client; `Dispatch` points to a provider table that
    // begins with WSK_PROVIDER_BASIC_DISPATCH.
    unsafe {
        let basic = &*(*socket).Dispatch.cast::<WSK_PROVIDER_BASIC_DISPATCH>();
        basic.WskCloseSocket.map(|close| close(socket, irp))
    }
}

/// Owns the handle reference on a context. Dropping it closes the socket (if created) and disposes
/// of unread sockets in its slots; see the module documentation.
pub(crate) struct Handle {
    ctx: NonNull<SocketCtx>,
}

// SAFETY: the context is shared with completion routines only through atomics and the slot protocol;
// a handle may move between threads like the socket it stands for.
unsafe impl Send for Handle {}
// SAFETY: every `&self` operation claims a slot atomically before touching it.
unsafe impl Sync for Handle {}

impl Handle {
    /// Takes over the reference returned by [`SocketCtx::allocate`].
    pub(crate) fn new(ctx: NonNull<SocketCtx>) -> Self {
        Self { ctx }
    }

    pub(crate) fn ctx(&self) -> &SocketCtx {
        // SAFETY: the handle holds a reference.
        unsafe { self.ctx.as_ref() }
    }

    /// Gives up the handle without closing: for `close(self)`, which closes through its own future.
    pub(crate) fn into_raw(self) -> NonNull<SocketCtx> {
        let ctx = self.ctx;
        core::mem::forget(self);
        ctx
    }

    /// Marks every slot orphaned and disposes of unread sockets in slots nobody owns, then closes the
    /// socket itself (fire-and-forget, with the preallocated close slot) unless `close_socket` is
    /// false, then drops the handle reference. PASSIVE_LEVEL (or DISPATCH_LEVEL; never from a
    /// completion routine).
    ///
    /// # Safety
    /// `ctx` carries a handle reference that the caller gives up.
    pub(crate) unsafe fn abandon(ctx: NonNull<SocketCtx>, close_socket: bool) {
        // SAFETY: the handle reference keeps the context alive until the final release.
        let this = unsafe { ctx.as_ref() };
        // SAFETY: the caller gives up the handle.
        unsafe { orphan_slots(this, None) };
        let socket = this.socket();
        if close_socket && !socket.is_null() {
            let op = this.slot(CLOSE);
            // The close slot is never used while a handle exists except by `close(self)`, which does
            // not come here, so it is idle and now orphaned: ours.
            if !op.state.kernel_owned() {
                // SAFETY: exclusive ownership of the idle, orphaned close slot.
                unsafe { op.start(|irp| call_close(socket, irp)) };
            }
        }
        // SAFETY: the caller gives up the handle reference.
        unsafe { SocketCtx::release(ctx.as_ptr()) };
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle owns its reference and is going away.
        unsafe { Handle::abandon(self.ctx, true) };
    }
}
