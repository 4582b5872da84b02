//! The registry of pools: every pool that ever spawned a task, so that an executor's shutdown can
//! find its tasks that are not queued (waiting on a waker). Pools are `'static` and never leave it.
//!
//! A pool's first spawn registers it; later spawns only read its stride. Registering is a window:
//! the registering thread counts itself in `registering`, sets the pool's stride (from then on other
//! spawns in the pool go ahead), links the pool at the head of the list, and counts itself out.
//! A spawn that saw the stride set may therefore hand its task to an executor before the pool is
//! linked, and a shutdown that scanned the list at that moment would miss the task's pool. So the
//! scan ([`Registry::for_each`]) first waits until no registration is under way:
//!
//! * the registering thread increments `registering` before it sets the stride (Release, through the
//!   swap's AcqRel), and decrements it (Release) only after the link;
//! * a spawner that reads the stride (Acquire) and whose task the executor then receives (the run
//!   queue's push is Release, the drain Acquire) makes that increment visible to the executor;
//! * so the executor reads either a count that includes the increment (and waits), or the count
//!   after the matching decrement (or a later one, in its release sequence), which publishes the link.
//!
//! The loom models `loom_a_scan_finds_the_pool_of_every_received_task` and
//! `loom_concurrent_registrations_lose_no_pool` (in `loom_model.rs`) check this: the first fails
//! without the wait, with the increment moved after the swap or the decrement before the link, and
//! with any of the orderings above weakened to Relaxed; and
//! `loom_a_scan_that_does_not_wait_can_miss_a_pool` keeps showing that a scan without the wait
//! misses the pool.
//!
//! The window holds no lock and is a handful of atomic operations, but at PASSIVE_LEVEL the
//! registering thread could be preempted or suspended inside it, making the scan wait for as long.
//! `PoolCore::register_slow` (pool.rs) therefore runs it at DISPATCH_LEVEL: nothing can preempt it or
//! deliver it an APC, so once a scan sees it under way it ends within a few hundred instructions plus
//! whatever interrupt service routines borrow its CPU meanwhile.

use crate::sync::{AtomicPtr, AtomicUsize, Ordering};
use core::ptr;

/// A pool as the registry sees it: the bytes from one slot to the next, and its link in the list.
pub(crate) trait Registrable: Sized {
    /// The bytes from one slot to the next; 0 until the pool's first spawn starts registering it.
    /// Non-zero does not imply linked: see the module documentation.
    fn stride(&self) -> &AtomicUsize;
    /// The next pool in the registry.
    fn next_registered(&self) -> &AtomicPtr<Self>;
}

/// Every pool that ever spawned a task (an intrusive lock-free stack, pushed once per pool, never
/// popped), and how many registrations are under way.
pub(crate) struct Registry<P: Registrable> {
    head: AtomicPtr<P>,
    /// Registrations under way: from just before a pool's stride is set until it is linked.
    registering: AtomicUsize,
}

impl<P: Registrable> Registry<P> {
    /// An empty registry.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            registering: AtomicUsize::new(0),
        }
    }

    /// An empty registry.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            registering: AtomicUsize::new(0),
        }
    }

    /// Whether `pool` still needs [`Registry::register`]: false once any spawn started registering
    /// it. The Acquire pairs with the stride's swap in `register` (see the module documentation).
    #[inline(always)]
    pub(crate) fn needs_registering(pool: &P) -> bool {
        pool.stride().load(Ordering::Acquire) == 0
    }

    /// The registration window: sets `pool`'s stride and, if this call is the first to set it, links
    /// the pool. Concurrent first spawns of one pool may all enter; one links it. Never blocks.
    ///
    /// The kernel caller runs this at DISPATCH_LEVEL (see the module documentation): that is what
    /// bounds [`Registry::for_each`]'s wait.
    ///
    /// # Safety
    /// `pool` points to a `P` that is never moved nor freed while the registry is in use, with the
    /// provenance the users of [`Registry::for_each`] need (the whole pool, for its slots).
    pub(crate) unsafe fn register(&self, pool: *const P, stride: usize) {
        // SAFETY: the caller's contract.
        let this = unsafe { &*pool };
        self.registering.fetch_add(1, Ordering::Relaxed);
        if this.stride().swap(stride, Ordering::AcqRel) == 0 {
            let mut head = self.head.load(Ordering::Relaxed);
            loop {
                this.next_registered().store(head, Ordering::Relaxed);
                // Release publishes the link (and the stride) to the scan's Acquire.
                match self
                    .head
                    .compare_exchange_weak(head, pool.cast_mut(), Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(now) => head = now,
                }
            }
        }
        self.registering.fetch_sub(1, Ordering::Release);
    }

    /// Waits until no registration is under way, calling `pause(round)` (round 0, 1, 2, ...) between
    /// two looks, then calls `f` on every registered pool. Every pool whose stride a spawner read
    /// before the caller received that spawner's task is then found (see the module documentation).
    pub(crate) fn for_each(&self, pause: impl FnMut(u32), f: impl FnMut(*const P)) {
        self.wait_for_registrations(pause);
        self.walk(f);
    }

    /// Waits until `registering` is 0, with `pause(round)` between two looks.
    pub(crate) fn wait_for_registrations(&self, mut pause: impl FnMut(u32)) {
        let mut round = 0;
        while self.registering.load(Ordering::Acquire) != 0 {
            pause(round);
            round = round.saturating_add(1);
        }
    }

    /// Calls `f` on every pool linked so far, without waiting for registrations under way: a pool
    /// whose registration is half done may be missed (the loom model's negative control uses this).
    pub(crate) fn walk(&self, mut f: impl FnMut(*const P)) {
        let mut pool = self.head.load(Ordering::Acquire).cast_const();
        while !pool.is_null() {
            f(pool);
            // SAFETY: only pools that are never moved nor freed are registered (`register`).
            pool = unsafe { &*pool }.next_registered().load(Ordering::Acquire).cast_const();
        }
    }
}
