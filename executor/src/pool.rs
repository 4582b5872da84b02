//! Static task pools: `N` slots of `SIZE` bytes each, claimed in O(1) from a lock-free free list.
//!
//! A pool is sized by bytes rather than typed by one future: on stable Rust the type of an
//! `async fn`'s future cannot be named, so `TaskPool<F, N>` could not hold one. Any future whose
//! size and alignment fit (checked at compile time, per spawn call site) can be spawned in any pool,
//! and one pool may hold tasks of different futures and serve several executors.
//!
//! ```no_run
//! use executor::{Executor, TaskPool};
//!
//! static EXECUTOR: Executor = Executor::new();
//! static POOL: TaskPool<256, 64> = TaskPool::new();
//!
//! let handle = POOL.spawn(EXECUTOR.spawner(), async { 42 }).expect("a free slot");
//! # drop(handle);
//! ```

use crate::error::SpawnError;
use crate::executor::SpawnOn;
use crate::join::JoinHandle;
use crate::registry::{Registrable, Registry};
use crate::sync::{AtomicPtr, AtomicUsize, Ordering};
use crate::task::{Header, STORAGE_OFFSET, Slot, TaskRef, TaskVTable};
use core::future::Future;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::task::{Context, Poll, Waker};

/// The room the join handle's waker takes at the end of a slot.
const JOIN_WAKER_BYTES: usize = size_of::<Waker>();
const _: () = assert!(JOIN_WAKER_BYTES == 16 || size_of::<usize>() != 8);

/// The untyped part of every pool, first in memory so that a pointer to it also reaches the slots.
///
/// All zero bytes in a new pool, like the slots (see `TaskPool::new`): nothing here is known before
/// the pool's first spawn needs it.
#[repr(C)]
pub(crate) struct PoolCore {
    free: crate::free_list::FreeList,
    /// The next pool in [`POOLS`].
    next_registered: AtomicPtr<PoolCore>,
    /// The bytes from one slot to the next; 0 until the pool's first spawn starts registering the
    /// pool. Non-zero does not imply linked in [`POOLS`] (see `registry.rs`).
    stride: AtomicUsize,
}

// No padding: a new pool's bytes can then be compared with zero (see the tests).
const _: () = assert!(size_of::<PoolCore>() == 16 + 2 * size_of::<usize>());

impl Registrable for PoolCore {
    #[inline(always)]
    fn stride(&self) -> &AtomicUsize {
        &self.stride
    }

    #[inline(always)]
    fn next_registered(&self) -> &AtomicPtr<Self> {
        &self.next_registered
    }
}

/// Every pool that ever spawned a task, so that an executor's shutdown can find its tasks that
/// are not queued (waiting on a waker).
static POOLS: Registry<PoolCore> = Registry::new();

impl PoolCore {
    /// The header of slot `index`.
    ///
    /// # Safety
    /// `core` points to the `PoolCore` at the start of a registered `'static` `TaskPool`, with
    /// provenance over the whole pool, and `index` is below its capacity.
    #[inline(always)]
    unsafe fn slot(core: *const PoolCore, index: u32) -> TaskRef {
        // SAFETY: forwarded from the caller; slots are `stride` bytes apart, right after the core
        // (`TaskPool::new` checks that offset), and a registered pool's stride is set.
        unsafe {
            let offset = size_of::<PoolCore>() + index as usize * (*core).stride.load(Ordering::Relaxed);
            TaskRef::from_ptr(NonNull::new_unchecked(
                core.cast::<u8>().add(offset).cast_mut().cast::<Header>(),
            ))
        }
    }

    /// Registers the pool in [`POOLS`] on its first spawn; later spawns only read the stride.
    #[inline(always)]
    fn register(core: *const PoolCore, stride: usize) {
        // SAFETY: `core` designates a `'static` pool.
        if Registry::needs_registering(unsafe { &*core }) {
            Self::register_slow(core, stride);
        }
    }

    /// Runs the registration window (`Registry::register`) at DISPATCH_LEVEL, so that the thread
    /// cannot be preempted, suspended or sent an APC inside it: a shutdown that finds the window
    /// open waits for a few hundred instructions, not for the scheduler (see registry.rs).
    /// Once per pool (or a few times, if its first spawns race), so the raise costs nothing.
    ///
    /// `core` is registered as given: a pointer with provenance over the whole pool, which the scan
    /// needs to reach the slots.
    #[cold]
    #[inline(never)]
    fn register_slow(core: *const PoolCore, stride: usize) {
        // Spawn's callers are at IRQL <= DISPATCH_LEVEL. Never lower the IRQL, even for a caller that
        // broke that rule: raising to the current IRQL is allowed and changes nothing.
        let target = nt::KeGetCurrentIrql().max(nt::DISPATCH_LEVEL);
        let mut old_irql: nt::KIRQL = nt::PASSIVE_LEVEL;
        // SAFETY: `target` is at least the current IRQL; the matching lower follows the window, which
        // holds no lock, never blocks and cannot panic (atomic operations only).
        unsafe { nt::KeRaiseIrql(target, &mut old_irql) };
        // SAFETY: `core` designates a `'static` pool and has provenance over all of it.
        unsafe { POOLS.register(core, stride) };
        // SAFETY: the IRQL saved by the raise above.
        unsafe { nt::KeLowerIrql(old_irql) };
    }
}

/// Calls `f` on every slot ever handed out by any pool (for shutdown; O(slots)), after waiting
/// for the pool registrations under way (see registry.rs), with `pause(round)` between two looks.
pub(crate) fn for_each_used_slot(pause: impl FnMut(u32), mut f: impl FnMut(TaskRef)) {
    POOLS.for_each(pause, |core| {
        // SAFETY: only `'static` pools are registered, through pointers with provenance over them.
        let this = unsafe { &*core };
        // `used()` never exceeds the capacity: `FreeList::pop` hands out fresh slots only below it.
        for index in 0..this.free.used() {
            // SAFETY: registered, and `index < used <= capacity`.
            f(unsafe { PoolCore::slot(core, index) });
        }
    });
}

/// `N` task slots of `SIZE` bytes each, for `static` storage.
///
/// A future `F` can be spawned here if `size_of::<F>()` and `size_of::<F::Output>()` are at most
/// `SIZE` and both are at most 8-aligned; otherwise the spawn call does not compile. A task spawned
/// with a [`JoinHandle`] ([`TaskPool::spawn`]) also keeps the handle's waker in the last 16 bytes
/// of its slot, so there the limit is [`TaskPool::MAX_JOINABLE`] (`SIZE` rounded up to 8, minus 16).
/// Each slot costs `SIZE` rounded up to 8, plus a 32-byte header. Spawning takes a slot in O(1) whatever the
/// number of busy slots; a full pool is reported as [`SpawnError::PoolFull`].
#[repr(C)]
pub struct TaskPool<const SIZE: usize, const N: usize> {
    core: PoolCore,
    slots: [Slot<SIZE>; N],
}

// SAFETY: every field shared between threads is an atomic, or an `UnsafeCell` whose access is
// handed over by the slot's state word (see state.rs); futures and outputs are required to be Send.
unsafe impl<const SIZE: usize, const N: usize> Sync for TaskPool<SIZE, N> {}

impl<const SIZE: usize, const N: usize> Default for TaskPool<SIZE, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SIZE: usize, const N: usize> TaskPool<SIZE, N> {
    /// The bytes one slot occupies (header plus storage): the memory cost of one task.
    pub const SLOT_BYTES: usize = size_of::<Slot<SIZE>>();

    /// The largest future (and output) [`TaskPool::spawn`] accepts: the storage minus the 16 bytes
    /// of the join handle's waker.
    pub const MAX_JOINABLE: usize = (Self::SLOT_BYTES - STORAGE_OFFSET).saturating_sub(JOIN_WAKER_BYTES);

    /// A pool with every slot free. `const`, for `static POOL: TaskPool<..> = TaskPool::new();`.
    ///
    /// Its bytes are all zero, so a `static` pool takes no room in the driver's file: it goes to
    /// the zero-fill `.bss` section and the loader provides the memory.
    pub const fn new() -> Self {
        const {
            assert!(
                N <= crate::free_list::MAX_CAPACITY as usize,
                "a pool holds at most u32::MAX slots"
            );
            assert!(
                offset_of!(Self, slots) == size_of::<PoolCore>(),
                "the slots follow the core"
            );
        };
        Self {
            core: PoolCore {
                free: crate::free_list::FreeList::new(),
                next_registered: AtomicPtr::new(ptr::null_mut()),
                stride: AtomicUsize::new(0),
            },
            slots: [const { Slot::new() }; N],
        }
    }

    /// The number of slots.
    pub const fn capacity(&self) -> usize {
        N
    }

    fn core_ptr(&'static self) -> *const PoolCore {
        (self as *const Self).cast::<PoolCore>()
    }

    /// Slot `index`, addressed with compile-time offsets, from the pool's own address (so the
    /// pointer has provenance over the pool, which `release` relies on).
    #[inline(always)]
    fn slot(&'static self, index: u32) -> TaskRef {
        let offset = offset_of!(Self, slots) + index as usize * size_of::<Slot<SIZE>>();
        // SAFETY: `index < N` (free-list indices are), so the slot lies inside this `'static` pool.
        unsafe {
            TaskRef::from_ptr(NonNull::new_unchecked(
                (self as *const Self)
                    .cast::<u8>()
                    .add(offset)
                    .cast_mut()
                    .cast::<Header>(),
            ))
        }
    }

    /// Spawns `future` on the executor behind `spawner` and returns a handle to await its output
    /// or abort it (dropping the handle detaches the task). Callable from any thread at
    /// IRQL <= DISPATCH_LEVEL, including from inside a task. Allocates nothing.
    pub fn spawn<F>(&'static self, spawner: impl SpawnOn, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        const {
            assert!(
                Self::SLOT_BYTES - STORAGE_OFFSET >= JOIN_WAKER_BYTES,
                "this TaskPool's SIZE has no room for the join handle's waker (use spawn_detached)"
            );
            assert!(
                size_of::<F>() <= Self::MAX_JOINABLE && size_of::<F::Output>() <= Self::MAX_JOINABLE,
                "the future or its output leaves no room for the join handle's waker in this TaskPool's SIZE"
            )
        };
        let task = self.spawn_task(spawner, future, true)?;
        // SAFETY: the task was spawned with HANDLE set and its output type is F::Output.
        Ok(unsafe { JoinHandle::new(task) })
    }

    /// Spawns `future` with no join handle (its output is dropped on the executor thread).
    pub fn spawn_detached<F>(&'static self, spawner: impl SpawnOn, future: F) -> Result<(), SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_task(spawner, future, false).map(|_| ())
    }

    #[inline(always)]
    fn spawn_task<F>(&'static self, spawner: impl SpawnOn, future: F, with_handle: bool) -> Result<TaskRef, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        const {
            assert!(size_of::<F>() <= SIZE, "the future is larger than this TaskPool's SIZE");
            assert!(
                size_of::<F::Output>() <= SIZE,
                "the future's output is larger than this TaskPool's SIZE"
            );
            assert!(
                align_of::<F>() <= 8 && align_of::<F::Output>() <= 8,
                "TaskPool storage is 8-aligned"
            );
        }
        let core = self.core_ptr();
        let index = self.core.free.pop(N as u32, |index| {
            self.slot(index).header().link.load(Ordering::Relaxed).addr() as u32
        });
        let Some(index) = index else {
            return Err(SpawnError::PoolFull);
        };
        PoolCore::register(core, size_of::<Slot<SIZE>>());
        let task = self.slot(index);
        let executor = spawner.target();
        let counted = spawner.is_counted();
        if counted && !executor.admit_spawn() {
            self.give_back(task, index);
            return Err(SpawnError::ShutDown);
        }
        let header = task.header();
        // SAFETY: transition 1 gave this thread the slot exclusively: state word 0 means no waker,
        // executor or handle touches its cells (wakers only read the word until it has SPAWNED).
        unsafe {
            *header.index.get() = index;
            *header.vtable.get() = Some(&VTableOf::<F, SIZE, N>::VTABLE);
            header
                .executor
                .store(ptr::from_ref(executor).cast_mut(), Ordering::Relaxed);
            task.storage().cast::<F>().write(future);
        }
        header.state.spawn(with_handle, counted);
        if counted {
            executor.enqueue(task);
        } else {
            // SAFETY: `SpawnOn` promises that an uncounted spawner runs on the POLLER holder's thread;
            // spawn set RUN_QUEUED on a slot in no queue.
            unsafe { executor.enqueue_local(task) };
        }
        Ok(task)
    }

    /// Puts back a slot taken by a spawn that was then refused.
    fn give_back(&'static self, task: TaskRef, index: u32) {
        self.core.free.push(index, |_, next| {
            task.header()
                .link
                .store(ptr::without_provenance_mut(next as usize), Ordering::Relaxed)
        });
    }
}

/// The operations table for future `F` in a `TaskPool<SIZE, N>`.
struct VTableOf<F, const SIZE: usize, const N: usize>(PhantomData<F>);

impl<F: Future, const SIZE: usize, const N: usize> VTableOf<F, SIZE, N> {
    const VTABLE: TaskVTable = TaskVTable {
        poll: Self::poll,
        drop_future: Self::drop_future,
        drop_output: if core::mem::needs_drop::<F::Output>() {
            Some(Self::drop_output)
        } else {
            None
        },
        release: Self::release,
        join_waker_offset: TaskPool::<SIZE, N>::MAX_JOINABLE,
    };

    /// # Safety
    /// The storage holds a live `F`; called on the executor thread only.
    unsafe fn poll(task: TaskRef, cx: &mut Context<'_>) -> bool {
        let future = task.storage().cast::<F>();
        // SAFETY: the future lives in a `'static` slot and is never moved until dropped in place.
        match unsafe { Pin::new_unchecked(&mut *future) }.poll(cx) {
            Poll::Pending => false,
            Poll::Ready(output) => {
                // SAFETY: the future is done; its bytes are reused for the output, which fits (checked
                // at compile time in `spawn_task`).
                unsafe {
                    ptr::drop_in_place(future);
                    task.storage().cast::<F::Output>().write(output);
                }
                true
            }
        }
    }

    /// # Safety
    /// The storage holds a live `F`, which nobody else touches.
    unsafe fn drop_future(task: TaskRef) {
        // SAFETY: forwarded from the caller.
        unsafe { ptr::drop_in_place(task.storage().cast::<F>()) }
    }

    /// # Safety
    /// The storage holds an `F::Output`, which nobody else touches.
    unsafe fn drop_output(task: TaskRef) {
        // SAFETY: forwarded from the caller.
        unsafe { ptr::drop_in_place(task.storage().cast::<F::Output>()) }
    }

    /// # Safety
    /// See [`TaskRef::release`].
    unsafe fn release(task: TaskRef) {
        // SAFETY: the slot belongs to a `TaskPool<SIZE, N>` (this table is only installed by its
        // spawn); its index was written before spawn; the slot pointer has provenance over the pool
        // because every TaskRef is derived from the pool's own address.
        unsafe {
            let index = *task.header().index.get();
            let offset = offset_of!(TaskPool<SIZE, N>, slots) + index as usize * size_of::<Slot<SIZE>>();
            let core = task.as_ptr().as_ptr().cast::<u8>().sub(offset).cast::<PoolCore>();
            (*core).free.push(index, |_, next| {
                task.header()
                    .link
                    .store(ptr::without_provenance_mut(next as usize), Ordering::Relaxed)
            });
        }
    }
}
