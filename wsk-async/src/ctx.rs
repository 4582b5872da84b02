//! The socket context: one nonpaged pool block per socket holding its operation slots, the
//! `PWSK_SOCKET`, and a reference count; for listeners and connecting sockets the same block also
//! holds the socket addresses they pass to WSK ([`Addresses`]).
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
//!
//! # Which slots live where, and which have an IRP
//!
//! The slots an open socket may need while nothing can fail are inline, with their IRPs allocated
//! with the context ([`Kind::preallocates`]): receive/accept, the [`SEND_SLOTS`] send slots
//! (listeners, which never send, get no IRP for them) and close (a drop must close without allocating). The disconnect and abort slots,
//! with their IRPs, are in a separate block ([`EndSlots`]) that the first `disconnect()` or `abort()`
//! poll allocates, where a failure is an error value; a graceful disconnect provides for both before
//! it submits anything, so that its drop can always issue the abort that forces it to complete. An
//! open connection thus holds four IRPs; one that is ending up to six, as many as can be in flight
//! at once (receive, two sends, graceful disconnect, the abort that ends it, and the close of a dropped
//! handle: WSK allows the close while the others are pending, and a drop cannot wait for them).

use crate::end_slots::EndSlots;
use crate::error::{Result, WskError};
use crate::op::{Op, OpIo};
use crate::op_state::{FUTURE, KERNEL, ORPHANED};
use crate::pool_mem::{self, TAG_SOCKET};
use crate::registration::RegInner;
use crate::sync::{AtomicPtr, AtomicU32, Cell, Ordering};
use core::ptr::{self, NonNull};
use nt::*;

/// Slot indices. A connection uses all of them; a listener uses [`ACCEPT`] (also for creating the
/// socket, setting its options and binding it) and [`CLOSE`]; a connection being created by
/// `connect` uses [`SEND`] for `WskSocketConnect`. The first [`INLINE_SLOTS`] are in the context
/// ([`SocketCtx::slot`]); [`DISCONNECT`] and [`ABORT`] are in its [`EndSlots`].
pub(crate) const RECEIVE: usize = 0;
pub(crate) const ACCEPT: usize = 0;
/// The first of the [`SEND_SLOTS`] send slots.
pub(crate) const SEND: usize = 1;
/// How many sends a connection can have in flight at once. Each send slot costs an IRP (280 bytes
/// on x64, with one stack location), a 48-byte slot and a 40-byte [`OpIo`] in every open
/// connection, used or not: 368 bytes, as much as a third of the connection's own footprint. Two is
/// what a driver that keeps two buffers per connection (echosrv's design: receive into one while the
/// other is being sent) can ever use: when the receive completes while the previous send is still
/// pending, the next send goes out without waiting for it. More data in flight is a matter of bigger
/// buffers (see `Connection::ideal_send_backlog`), not more IRPs.
pub(crate) const SEND_SLOTS: usize = 2;
pub(crate) const CLOSE: usize = SEND + SEND_SLOTS;
pub(crate) const INLINE_SLOTS: usize = CLOSE + 1;
pub(crate) const DISCONNECT: usize = INLINE_SLOTS;
pub(crate) const ABORT: usize = DISCONNECT + 1;
/// The inline slots that lend the kernel a buffer and a `WSK_BUF` (receive, sends), and so have an
/// [`OpIo`] in the context (the disconnect's is in its [`EndSlots`]; abort and close lend nothing).
const INLINE_IO: usize = SEND + SEND_SLOTS;
const _: () = assert!(RECEIVE < INLINE_IO && SEND < INLINE_IO && CLOSE >= INLINE_IO && CLOSE < INLINE_SLOTS);

/// The inline slots that lend the kernel a buffer, by name: their [`OpIo`] is always there
/// ([`SocketCtx::stream_io`]), so code that names one needs no "no such cell" fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamSlot {
    Receive,
    /// Send slot `n`, `n < SEND_SLOTS` (the constructor [`StreamSlot::send`] keeps it in range).
    Send(u8),
}

impl StreamSlot {
    /// Send slot `n` (taken modulo [`SEND_SLOTS`], so an index is always in range).
    pub(crate) const fn send(n: usize) -> Self {
        StreamSlot::Send((n % SEND_SLOTS) as u8)
    }

    /// The slot's index in the context.
    pub(crate) const fn index(self) -> usize {
        match self {
            StreamSlot::Receive => RECEIVE,
            StreamSlot::Send(n) => SEND + n as usize % SEND_SLOTS,
        }
    }
}

/// A receive or send future was dropped while its IRP was pending: bytes may have been consumed or
/// sent, so the stream is in an unknown state and only abort and close are allowed.
pub(crate) const STREAM_UNKNOWN: u32 = 1 << 0;
/// The context's single orphan-list link ([`SocketCtx::orphan_next`]) is in use: set by
/// `RegInner::push_orphan`, cleared by `RegInner::drain_orphans` when it pops the context. A second
/// push while it is set would corrupt the list; see [`SocketCtx::mark_orphan_queued`].
pub(crate) const ORPHAN_QUEUED: u32 = 1 << 1;
/// Bits 8..16 of the flags: how many operations on this socket in a row completed without their
/// future ever returning `Pending` (the cooperative budget, see `slot.rs`). Saturates at 255.
const READY_STREAK_SHIFT: u32 = 8;
const READY_STREAK_MASK: u32 = 0xFF << READY_STREAK_SHIFT;
/// After this many operations in a row that completed without waiting, the next operation on the
/// socket yields once (wakes its task and returns `Pending`) before it starts: a provider that
/// completes everything inline (as WSK does when data is ready) cannot keep one task on the CPU.
pub const COOP_BUDGET: u32 = 32;

/// What a context is for; decides which slots get their IRP up front and whether the block has an
/// [`Addresses`] part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A connection produced by an accept (its socket comes from the listener's accept slot).
    Accepted,
    /// A connection created by `connect` (`WskSocketConnect` on its send slot, with addresses).
    Connecting,
    /// A listening socket (creation, options, bind, local address and accepts on its accept slot).
    Listener,
    /// A datagram socket (creation, options, bind and local address, then receives, on its receive
    /// slot; sends on its first send slot, the only one with an IRP).
    Datagram,
    /// No socket: a `WskGetAddressInfo` on its [`SEND`] slot, the one slot with an IRP, and its
    /// request after the context (see `resolve.rs`).
    Resolving,
}

impl Kind {
    /// Whether inline slot `index` gets an IRP (with the context). The send slots of a listener
    /// have none, and a datagram socket's only the first: nothing ever starts the others (a
    /// resolution has its send slot's alone).
    pub(crate) fn preallocates(self, index: usize) -> bool {
        if self == Kind::Resolving {
            return index == SEND;
        }
        match index {
            RECEIVE | CLOSE => true,
            SEND if self == Kind::Datagram => true,
            i if (SEND..SEND + SEND_SLOTS).contains(&i) => !matches!(self, Kind::Listener | Kind::Datagram),
            _ => false,
        }
    }

    fn has_addresses(self) -> bool {
        matches!(self, Kind::Connecting | Kind::Listener | Kind::Datagram)
    }

    /// Bytes of the pool block: the context, then (aligned) the addresses if the kind has them.
    pub(crate) fn block_size(self) -> usize {
        if self == Kind::Resolving {
            crate::resolve::BLOCK_SIZE
        } else if self.has_addresses() {
            ADDRESSES_OFFSET + size_of::<Addresses>()
        } else {
            size_of::<SocketCtx>()
        }
    }
}

/// Where [`Addresses`] start in a context's block.
const ADDRESSES_OFFSET: usize = size_of::<SocketCtx>().next_multiple_of(align_of::<Addresses>());

// The layout facts `SocketCtx::allocate` relies on, checked at compile time: the pool block's
// alignment suffices for the context and for the addresses after it (an over-aligned field added
// later, e.g. a cache-line pad, fails here instead of being misaligned in the kernel), and the
// addresses start after the context, at an offset aligned for them. `pool_mem::allocate` checks the
// same for `EndSlots`; it is repeated here next to the other layout facts.
const _: () = {
    assert!(align_of::<SocketCtx>() <= pool_mem::POOL_ALIGNMENT);
    assert!(align_of::<Addresses>() <= pool_mem::POOL_ALIGNMENT);
    assert!(align_of::<EndSlots>() <= pool_mem::POOL_ALIGNMENT);
    assert!(ADDRESSES_OFFSET >= size_of::<SocketCtx>());
    assert!(ADDRESSES_OFFSET % align_of::<Addresses>() == 0);
};

/// What a listener or a connecting socket lends WSK besides buffers: the addresses of bind, get
/// local address, accept (outputs) and `WskSocketConnect` (inputs), and the option value of
/// `WskControlSocket`. It lives in the context's block after the [`SocketCtx`], so the kernel may
/// write it until the IRP completes whatever happens to the future, and it is freed with the
/// context. Only the owner of the context's socket-producing slot (a listener's [`ACCEPT`], a
/// connecting socket's [`SEND`]) touches it, under that slot's protocol.
///
/// A datagram socket's block has it too, and once the socket is created, splits it between the two
/// slots that may be lent to the kernel at once: its receive slot ([`RECEIVE`], which created the
/// socket) owns `remote` (the sender `WskReceiveFrom` writes) and `option` (its `ControlFlags`), its
/// send slot ([`SEND`]) owns `local` (the destination of `WskSendTo`). Those are reached through
/// raw field pointers ([`SocketCtx::addresses_ptr`]), never a reference to the whole structure,
/// which would assert exclusive access to the field the other slot's IRP may be using.
pub(crate) struct Addresses {
    pub(crate) local: SOCKADDR_STORAGE,
    pub(crate) remote: SOCKADDR_STORAGE,
    /// Input of `WskControlSocket(WskSetOption)`.
    pub(crate) option: ULONG,
}

/// The socket context. See the module documentation.
pub(crate) struct SocketCtx {
    /// At most the handle's + one per slot's IRP in flight + the orphan list's: 32 bits are plenty
    /// (and pack with `flags`).
    refs: AtomicU32,
    pub(crate) flags: AtomicU32,
    registration: NonNull<RegInner>,
    /// Set once by the creating future (before the handle is shared), read by later calls.
    socket: Cell<PWSK_SOCKET>,
    /// The [`Addresses`] part of the block (with the block's provenance), or null for
    /// [`Kind::Accepted`]. Set at allocation, never changed.
    addresses: *mut Addresses,
    /// The link of this context's socket-producing slot in the registration's orphan list (see
    /// [`Op::orphan_link`]).
    pub(crate) orphan_next: Cell<*const Op>,
    /// The disconnect and abort slots, null until the first `disconnect()` or `abort()` (see
    /// [`EndSlots`]); installed once, freed by the last release.
    end: AtomicPtr<EndSlots>,
    slots: [Op; INLINE_SLOTS],
    /// The receive and send slots' kernel-borrowed data ([`Op::io`]).
    io: [Cell<OpIo>; INLINE_IO],
}

impl SocketCtx {
    /// Allocates a context of `kind` with the IRPs it preallocates, holding one (handle) reference,
    /// and counts it in the registration. PASSIVE_LEVEL or DISPATCH_LEVEL. Fails with
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) fn allocate(registration: &RegInner, kind: Kind) -> Result<NonNull<SocketCtx>> {
        let mut irps = [ptr::null_mut::<IRP>(); INLINE_SLOTS];
        for i in (0..INLINE_SLOTS).filter(|&i| kind.preallocates(i)) {
            // SAFETY: IoAllocateIrp has no preconditions at IRQL <= DISPATCH_LEVEL.
            irps[i] = unsafe { IoAllocateIrp(1, FALSE) };
            if irps[i].is_null() {
                free_irps(&irps);
                return Err(WskError::NO_RESOURCES);
            }
        }
        let Some(block) = pool_mem::allocate_bytes(kind.block_size(), TAG_SOCKET) else {
            free_irps(&irps);
            return Err(WskError::NO_RESOURCES);
        };
        let this = block.as_ptr().cast::<SocketCtx>();
        let addresses = if kind.has_addresses() {
            // SAFETY: the block is `ADDRESSES_OFFSET + size_of::<Addresses>()` bytes, aligned to
            // `POOL_ALIGNMENT`, and `ADDRESSES_OFFSET` is a multiple of `Addresses`' alignment (both
            // checked at compile time above); the pointer keeps the block's provenance (not a
            // `&SocketCtx`'s, which covers the context only).
            unsafe {
                let addresses = block.as_ptr().add(ADDRESSES_OFFSET).cast::<Addresses>();
                addresses.write(Addresses {
                    local: SOCKADDR_STORAGE::default(),
                    remote: SOCKADDR_STORAGE::default(),
                    option: 0,
                });
                addresses
            }
        } else {
            ptr::null_mut()
        };
        // SAFETY: `block` is fresh pool memory with room for a SocketCtx, aligned enough for it
        // (`POOL_ALIGNMENT`, checked at compile time above).
        unsafe {
            this.write(SocketCtx {
                refs: AtomicU32::new(1),
                flags: AtomicU32::new(0),
                registration: registration.this(),
                socket: Cell::new(ptr::null_mut()),
                addresses,
                orphan_next: Cell::new(ptr::null()),
                end: AtomicPtr::new(ptr::null_mut()),
                slots: core::array::from_fn(|i| Op::new(irps[i], this, i as u8)),
                io: core::array::from_fn(|_| Cell::new(OpIo::new())),
            });
        }
        registration.socket_created();
        // SAFETY: derived from the non-null block.
        Ok(unsafe { NonNull::new_unchecked(this) })
    }

    /// The addresses of a listener or connecting socket; `None` for an accepted connection.
    ///
    /// # Safety
    /// The caller owns the context's socket-producing slot exclusively (see [`Addresses`]) and holds
    /// no other reference from this function.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn addresses(&self) -> Option<&mut Addresses> {
        // SAFETY: the pointer is null or points into this context's live block; exclusive access is
        // the caller's contract.
        unsafe { self.addresses.as_mut() }
    }

    /// The addresses of a context that has them, as a raw pointer (null for an accepted
    /// connection): for a datagram socket's slots, which each own one field (see [`Addresses`]) and
    /// must reach it without a reference to the others.
    pub(crate) fn addresses_ptr(&self) -> *mut Addresses {
        self.addresses
    }

    /// The [`OpIo`] of slot `index`, if it lends the kernel a buffer (receive, send, disconnect).
    pub(crate) fn io_cell(&self, index: u8) -> Option<&Cell<OpIo>> {
        match usize::from(index) {
            DISCONNECT => self.end_slots().map(|end| &end.disconnect_io),
            index => self.io.get(index),
        }
    }

    /// The [`OpIo`] of the receive slot or a send slot.
    pub(crate) fn stream_io(&self, slot: StreamSlot) -> &Cell<OpIo> {
        // `index()` is below INLINE_IO by construction (asserted at compile time above); the
        // compiler keeps a bound check, which never fails.
        &self.io[slot.index()]
    }

    /// Inline slot `index` ([`RECEIVE`]/[`ACCEPT`], a send slot or [`CLOSE`]).
    pub(crate) fn slot(&self, index: usize) -> &Op {
        &self.slots[index]
    }

    /// The disconnect and abort slots, if a `disconnect()` or `abort()` allocated them.
    pub(crate) fn end_slots(&self) -> Option<&EndSlots> {
        // SAFETY: non-null only once installed (Acquire pairs with the installing CAS, so the block's
        // initialisation is visible); never removed while the context, which `self` keeps alive,
        // lives.
        unsafe { self.end.load(Ordering::Acquire).as_ref() }
    }

    /// The disconnect and abort slots, allocating them (and their IRPs) on first use. PASSIVE_LEVEL
    /// or DISPATCH_LEVEL. Fails with `STATUS_INSUFFICIENT_RESOURCES`, leaving nothing allocated.
    pub(crate) fn ensure_end_slots(&self) -> Result<&EndSlots> {
        // The inline slots' context pointer carries the allocation's provenance (a `&self`-derived
        // one covers the context only, and the last release frees the block through it).
        let ctx = self.slots[RECEIVE].ctx_ptr();
        let installed = crate::lazy::install_once(
            &self.end,
            || EndSlots::allocate(ctx),
            |unused| {
                // SAFETY: lost the race, never published: ours alone, no IRP submitted.
                unsafe { EndSlots::free(unused) }
            },
        );
        match installed {
            // SAFETY: installed, lives as long as the context (see `end_slots`).
            Some(end) => Ok(unsafe { &*end }),
            None => Err(WskError::NO_RESOURCES),
        }
    }

    /// Every slot that exists: the inline ones, then the end slots if allocated.
    fn each_slot(&self, mut f: impl FnMut(usize, &Op)) {
        for (index, op) in self.slots.iter().enumerate() {
            f(index, op);
        }
        if let Some(end) = self.end_slots() {
            f(DISCONNECT, &end.disconnect);
            f(ABORT, &end.abort);
        }
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
            // A slot without an IRP (a listener's send slot) has null here, which `free_irps` skips.
            let irps: [PIRP; INLINE_SLOTS] = core::array::from_fn(|i| (*this).slots[i].irp());
            let end = (*this).end.load(Ordering::Acquire);
            if !end.is_null() {
                EndSlots::free(end);
            }
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

    /// Claims the context's single orphan-list link for a push; false if it is already in the list.
    /// That cannot happen while only a context's socket-producing slot (a listener's accept, a
    /// connecting socket's send) produces sockets and a popped slot's disposal clears its
    /// `produces_socket` before it restarts the slot (see [`Op::orphan_link`]): the check turns a
    /// future break of that chain into a refusal (and a failed assertion in debug builds) instead of
    /// a corrupted list.
    /// Records how an operation on this socket ended: after a wait (`waited`: its future returned
    /// `Pending` at least once), the streak starts again; otherwise it grows. Relaxed: a heuristic
    /// that only decides when to yield, never what is safe.
    pub(crate) fn note_operation(&self, waited: bool) {
        let _ = self.flags.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |flags| {
            let streak = (flags & READY_STREAK_MASK) >> READY_STREAK_SHIFT;
            let streak = if waited { 0 } else { (streak + 1).min(0xFF) };
            Some((flags & !READY_STREAK_MASK) | (streak << READY_STREAK_SHIFT))
        });
    }

    /// Whether the socket's budget is spent; if so, starts it again (the caller yields once).
    pub(crate) fn take_spent_budget(&self) -> bool {
        let flags = self.flags.load(Ordering::Relaxed);
        if (flags & READY_STREAK_MASK) >> READY_STREAK_SHIFT < COOP_BUDGET {
            return false;
        }
        self.flags.fetch_and(!READY_STREAK_MASK, Ordering::Relaxed);
        true
    }

    pub(crate) fn mark_orphan_queued(&self) -> bool {
        let previous = self.flags.fetch_or(ORPHAN_QUEUED, Ordering::AcqRel);
        debug_assert!(
            previous & ORPHAN_QUEUED == 0,
            "a context's orphan-list link is used twice at once"
        );
        previous & ORPHAN_QUEUED == 0
    }

    /// Gives the orphan-list link back (the drainer popped the context, having read the link).
    pub(crate) fn clear_orphan_queued(&self) {
        let previous = self.flags.fetch_and(!ORPHAN_QUEUED, Ordering::AcqRel);
        debug_assert!(previous & ORPHAN_QUEUED != 0, "popped a context that was not queued");
    }

    /// The listen dispatch table of this (listening) socket.
    pub(crate) fn listen_dispatch(&self) -> &WSK_PROVIDER_LISTEN_DISPATCH {
        // SAFETY: a listening socket's `Dispatch` points to the provider's listen table, which lives
        // as long as the socket.
        unsafe { &*(*self.socket()).Dispatch.cast::<WSK_PROVIDER_LISTEN_DISPATCH>() }
    }

    /// The datagram dispatch table of this (datagram) socket.
    pub(crate) fn datagram_dispatch(&self) -> &WSK_PROVIDER_DATAGRAM_DISPATCH {
        // SAFETY: a datagram socket's `Dispatch` points to the provider's datagram table, which lives
        // as long as the socket.
        unsafe { &*(*self.socket()).Dispatch.cast::<WSK_PROVIDER_DATAGRAM_DISPATCH>() }
    }

    /// The connection dispatch table of this (connection) socket.
    pub(crate) fn connection_dispatch(&self) -> &WSK_PROVIDER_CONNECTION_DISPATCH {
        // SAFETY: as above, for connection sockets.
        unsafe { &*(*self.socket()).Dispatch.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>() }
    }

    /// Fire-and-forget: an abortive `WskDisconnect` on the abort slot, unless an abort is already in
    /// progress. Used when a pending graceful disconnect is dropped; that disconnect allocated the
    /// [`EndSlots`] before it submitted, so they are there (without them there is nothing to abort
    /// with, and nothing to do).
    pub(crate) fn abort_in_background(&self) {
        let Some(end) = self.end_slots() else { return };
        let op = &end.abort;
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
    ctx.each_slot(|i, op| {
        if Some(i) == except {
            return;
        }
        let previous = op.state.orphan();
        // A slot already orphaned was handled before (or by the creating future, which disposes of
        // its own slot).
        if previous & (FUTURE | KERNEL | ORPHANED) == 0 {
            // SAFETY: nobody owns the slot and no future can claim it any more: ours to clean.
            unsafe { op.dispose_unread() };
        }
    });
}

/// Frees the non-null IRPs of `irps` (a context's or its end slots', see `EndSlots`).
pub(crate) fn free_irps(irps: &[PIRP]) {
    for &irp in irps.iter().filter(|irp| !irp.is_null()) {
        // SAFETY: each IRP was allocated by `SocketCtx::allocate` or `EndSlots::allocate` and is owned
        // by the caller (not pending).
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
