//! A task slot: a fixed header in front of the bytes that hold the future (and, once it returned
//! `Ready`, its output). Slots live in `'static` [`TaskPool`](crate::TaskPool)s and are never freed,
//! which is what lets a waker be a bare pointer to a header.

use crate::executor::Executor;
use crate::run_queue::Linked;
use crate::state::State;
use crate::sync::AtomicPtr;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::task::{Context, Waker};

/// The type-erased operations on a slot's contents, one static table per (future type, pool type).
pub(crate) struct TaskVTable {
    /// Polls the future; on `Ready` drops it and writes its output in its place, returning true.
    pub(crate) poll: unsafe fn(TaskRef, &mut Context<'_>) -> bool,
    /// Drops the future in place (abort, shutdown).
    pub(crate) drop_future: unsafe fn(TaskRef),
    /// Drops the output in place (a detached task's output, which nobody will take); `None` if the
    /// output needs no drop.
    pub(crate) drop_output: Option<unsafe fn(TaskRef)>,
    /// Returns the slot to its pool's free list (transition 8).
    pub(crate) release: unsafe fn(TaskRef),
    /// Where the join handle's waker lives, in bytes from the start of the storage: the last 16
    /// bytes of the slot, which tasks spawned with a handle must leave free (checked at compile time).
    pub(crate) join_waker_offset: usize,
}

/// The header in front of every task's storage (32 bytes on 64-bit targets).
#[repr(C)]
pub(crate) struct Header {
    /// The state word; see `state.rs` for the machine it follows.
    pub(crate) state: State,
    /// This slot's index in its pool (for `release`); written by every spawn, before `State::spawn`
    /// (always the same value: it is only 0 in a new pool, as every byte is, until the first spawn).
    pub(crate) index: UnsafeCell<u32>,
    /// While queued: the next task in the run queue. While free: the next free slot's index, stored
    /// as an address without provenance (never dereferenced).
    pub(crate) link: AtomicPtr<Header>,
    /// The executor the task was spawned on; written by the spawner before `State::spawn`.
    pub(crate) executor: AtomicPtr<Executor>,
    /// The operations on the storage; written by the spawner before `State::spawn`. `None` (null,
    /// so that a new pool is all zero bytes) until the slot's first spawn.
    pub(crate) vtable: UnsafeCell<Option<&'static TaskVTable>>,
}

impl Header {
    /// A free slot's header.
    pub(crate) const fn new() -> Self {
        Self {
            state: State::new(),
            index: UnsafeCell::new(0),
            link: AtomicPtr::new(ptr::null_mut()),
            executor: AtomicPtr::new(ptr::null_mut()),
            vtable: UnsafeCell::new(None),
        }
    }
}

/// One slot: header, then `SIZE` bytes for the future or its output, 8-aligned. A task spawned with
/// a join handle keeps the join handle's waker (16 bytes) at the end of the slot; ownership of that
/// cell is decided by the `JOIN_WAKER` bit of the state word.
#[repr(C)]
pub(crate) struct Slot<const SIZE: usize> {
    pub(crate) header: Header,
    pub(crate) storage: UnsafeCell<MaybeUninit<[u8; SIZE]>>,
}

impl<const SIZE: usize> Slot<SIZE> {
    /// A free slot: all zero bytes (the storage too, although it is only ever read after a write,
    /// so that the whole pool is zero and goes to `.bss`).
    pub(crate) const fn new() -> Self {
        Self {
            header: Header::new(),
            storage: UnsafeCell::new(MaybeUninit::zeroed()),
        }
    }
}

/// The offset of the storage in every slot (the header's size, already a multiple of 8).
pub(crate) const STORAGE_OFFSET: usize = core::mem::size_of::<Header>();
const _: () = assert!(STORAGE_OFFSET % 8 == 0 && core::mem::align_of::<Header>() == 8);
const _: () = assert!(STORAGE_OFFSET == 32 || core::mem::size_of::<usize>() != 8);

/// A pointer to a task header inside a `'static` pool, with provenance over its whole slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: a TaskRef designates a slot of a `'static` pool whose shared fields are atomics or are
// handed from thread to thread by the state word's acquire/release protocol.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// # Safety
    /// `header` points to the header of a slot in a `'static` pool, with provenance over the slot.
    #[inline(always)]
    pub(crate) const unsafe fn from_ptr(header: NonNull<Header>) -> Self {
        Self(header)
    }

    /// The raw header pointer (also a waker's data pointer).
    #[inline(always)]
    pub(crate) const fn as_ptr(self) -> NonNull<Header> {
        self.0
    }

    /// The header.
    #[inline(always)]
    pub(crate) fn header(self) -> &'static Header {
        // SAFETY: by construction the pointer designates a header in a `'static` pool; every field a
        // shared reference exposes is an atomic or an `UnsafeCell`.
        unsafe { self.0.as_ref() }
    }

    /// The first byte of the storage, where the future or its output lives.
    #[inline(always)]
    pub(crate) fn storage(self) -> *mut u8 {
        // SAFETY: the pointer has provenance over the whole slot and the storage follows the header.
        unsafe { self.0.as_ptr().cast::<u8>().add(STORAGE_OFFSET) }
    }

    /// The join handle's waker cell of a task spawned with a handle.
    ///
    /// # Safety
    /// The task is spawned (as for [`TaskRef::vtable`]) and was spawned with a handle.
    #[inline(always)]
    pub(crate) unsafe fn join_waker(self) -> *mut MaybeUninit<Waker> {
        // SAFETY: the offset keeps the 16-byte, 8-aligned cell inside the slot (see pool.rs).
        unsafe { self.storage().add(self.vtable().join_waker_offset).cast() }
    }

    /// The slot's operations table.
    ///
    /// # Safety
    /// The task is spawned (the caller observed `SPAWNED`, or owns the slot after a spawn).
    #[inline(always)]
    pub(crate) unsafe fn vtable(self) -> &'static TaskVTable {
        // SAFETY: written (`Some`) by the spawner before the Release store of `State::spawn`, which
        // the caller's observation of the state acquired; not written again while the task lives.
        unsafe { (*self.header().vtable.get()).unwrap_unchecked() }
    }

    /// Returns the slot to its pool (transition 8).
    ///
    /// # Safety
    /// The caller's read-modify-write of the state word made `SPAWNED`, `RUN_QUEUED` and `HANDLE`
    /// all clear, and the slot's future and output are gone.
    #[inline(always)]
    pub(crate) unsafe fn release(self) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.vtable().release)(self) }
    }
}

// SAFETY: `link` points to the header's own `link` field, which only the run queue writes while
// the task is queued (free-list use happens only while the slot is not queued).
unsafe impl Linked for Header {
    #[inline(always)]
    unsafe fn link(node: NonNull<Self>) -> *const AtomicPtr<Self> {
        // SAFETY: the caller guarantees the node is live; addr_of! creates no intermediate reference.
        unsafe { ptr::addr_of!((*node.as_ptr()).link) }
    }
}
