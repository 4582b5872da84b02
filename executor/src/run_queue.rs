//! The run queue: an intrusive lock-free stack of task headers, pushed from any CPU at
//! IRQL <= DISPATCH_LEVEL and drained by the executor with a single `swap`.
//!
//! The head word also tells producers whether the executor is asleep: before waiting on its KEVENT
//! the executor replaces an empty head (null) with a "sleeping" mark. The one push that replaces
//! `SLEEPING` with a task is told so and signals the event; every other push (the executor is awake,
//! or another push already woke it) signals nothing. Why no wake-up is lost: the executor only goes
//! to sleep by a successful `null -> SLEEPING` exchange, so any task pushed before it is seen by the
//! exchange failing, and any task pushed after it finds `SLEEPING` and signals. The event is a
//! synchronization event: a signal given before the executor starts waiting is kept until it waits.
//! The loom model (`loom_model.rs`) checks this under every interleaving.
//!
//! Every signal pairs with one replaced mark, and the consumer waits once per mark it set: the
//! event never holds a spare signal. So when the consumer is awake, every producer that signalled
//! has finished with the event: `KeSetEvent` is done with a KEVENT once the wait it satisfied
//! returns (the kernel guarantee behind WDM's on-stack event pattern, as in
//! `IoForwardIrpSynchronously`). That is what lets the executor's owner free it after shutdown.
//! Stopping the consumer keeps the pairing: see [`RunQueue::wake_sleeper`] and
//! [`RunQueue::wait_for_push`].
//!
//! Producers never wait for one another: a push is one compare-exchange that only fails when another
//! push or the drain changed the head, i.e. when someone else made progress.

use crate::sync::{AtomicPtr, Ordering};
use core::ptr::{self, NonNull};

/// A type that can be linked in a [`RunQueue`] through a next-pointer it carries.
///
/// # Safety
/// `link` must return a pointer to an `AtomicPtr<Self>` inside the node that lives as long as the
/// node, and that nothing else writes while the node is linked.
pub(crate) unsafe trait Linked: Sized {
    /// The node's next-pointer.
    ///
    /// # Safety
    /// `node` points to a live node.
    unsafe fn link(node: NonNull<Self>) -> *const AtomicPtr<Self>;
}

/// The head value meaning "empty, and the executor is (about to be) waiting for a signal". It is an
/// address no node can have (nodes are at least 4-aligned); it is never dereferenced.
fn sleeping<T>() -> *mut T {
    ptr::without_provenance_mut(1)
}

/// An intrusive multi-producer, single-consumer stack of `T` nodes.
pub(crate) struct RunQueue<T: Linked> {
    head: AtomicPtr<T>,
}

impl<T: Linked> RunQueue<T> {
    /// An empty queue whose consumer is awake.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// An empty queue whose consumer is awake.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Pushes `node`. Returns true if the consumer was asleep, in which case the caller must signal
    /// it (exactly one push per sleep returns true).
    ///
    /// # Safety
    /// `node` is live until the consumer has taken it, and is not already linked in any queue
    /// (the task state word's `RUN_QUEUED` bit guarantees this for tasks).
    #[inline(always)]
    pub(crate) unsafe fn push(&self, node: NonNull<T>) -> bool {
        // SAFETY: the caller guarantees the node is live and unlinked, so its link is ours to write.
        let link = unsafe { &*T::link(node) };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let next = if head == sleeping() { ptr::null_mut() } else { head };
            link.store(next, Ordering::Relaxed);
            // Release publishes the link (and everything the waker did before) to the drain's Acquire.
            match self
                .head
                .compare_exchange_weak(head, node.as_ptr(), Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(previous) => return previous == sleeping(),
                Err(now) => head = now,
            }
        }
    }

    /// Whether no node is queued (the head is null or the sleeping mark). Consumer only: a push may
    /// come in right after, which the consumer's next `try_sleep` or `take_all` sees.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        head.is_null() || head == sleeping()
    }

    /// Takes every queued node at once; returns the first of a null-terminated chain (most recently
    /// pushed first), or null if the queue was empty. Consumer only.
    #[inline(always)]
    pub(crate) fn take_all(&self) -> *mut T {
        if self.head.load(Ordering::Relaxed).is_null() {
            return ptr::null_mut();
        }
        let head = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        if head == sleeping() { ptr::null_mut() } else { head }
    }

    /// Announces that the consumer is about to wait. Returns true if the queue was empty and is now
    /// marked sleeping: the consumer must then wait for the signal. Returns false if
    /// something is queued: the consumer must drain it instead of sleeping. Consumer only.
    pub(crate) fn try_sleep(&self) -> bool {
        self.head
            .compare_exchange(ptr::null_mut(), sleeping(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Takes back the sleeping mark of a successful [`RunQueue::try_sleep`], for a consumer that
    /// decided not to wait after all. Returns true if the mark was still there: nobody replaced it,
    /// so nobody owes a signal. Returns false if a push or [`RunQueue::wake_sleeper`] replaced it:
    /// that caller signals (or has signalled) the event, and the consumer must wait for that signal
    /// before it may assume that no producer still touches the queue's owner. Consumer only.
    pub(crate) fn cancel_sleep(&self) -> bool {
        self.head
            .compare_exchange(sleeping(), ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The consumer's idle step: marks the empty queue sleeping and calls `wait` (which must block
    /// until the event is signalled). Returns at once if something is queued (the consumer drains
    /// it), or if `closed()`, checked after the mark was set, says the consumer is being stopped and
    /// the mark could be taken back (see [`RunQueue::wake_sleeper`] for why the check comes after the
    /// mark). Every return from `wait` consumes the one signal owed by whoever replaced the mark.
    /// Consumer only.
    pub(crate) fn wait_for_push(&self, closed: impl FnOnce() -> bool, wait: impl FnOnce()) {
        if !self.try_sleep() {
            return;
        }
        if closed() && self.cancel_sleep() {
            return;
        }
        wait();
    }

    /// Wakes a consumer that sleeps (or is about to) so that it notices a stop request its owner
    /// published before this call: if the queue is marked sleeping, replaces the mark with an empty
    /// queue and returns true, and the caller must then signal the event exactly like a push that
    /// replaced the mark (one signal per mark: no signal is ever spare). Otherwise returns false and
    /// the caller signals nothing. Any thread.
    ///
    /// Why a consumer can neither sleep through the stop nor be signalled twice: this is always a
    /// read-modify-write of the head (it writes back the value it read when there is no mark), and
    /// every change of the head is one, so the head's modification order puts it either before or
    /// after the consumer's `null -> SLEEPING` exchange. Before: that exchange (Acquire) reads a
    /// value at the end of a release sequence this call (Release) heads, so `closed()` in
    /// [`RunQueue::wait_for_push`] sees the stop request. After: this call finds the mark, or
    /// whatever replaced it, and either it or that push signals.
    pub(crate) fn wake_sleeper(&self) -> bool {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let next = if head == sleeping() { ptr::null_mut() } else { head };
            match self
                .head
                .compare_exchange_weak(head, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(previous) => return previous == sleeping(),
                Err(now) => head = now,
            }
        }
    }

    /// The node after `node` in a chain returned by [`RunQueue::take_all`].
    ///
    /// # Safety
    /// `node` is a live node of such a chain, read before the node is handed back to anyone who
    /// could push it again.
    #[inline(always)]
    pub(crate) unsafe fn next(node: NonNull<T>) -> *mut T {
        // SAFETY: forwarded from the caller: the node is live and its link was written before the
        // push whose Release the drain's Acquire observed.
        unsafe { (*T::link(node)).load(Ordering::Relaxed) }
    }

    /// Reverses a chain returned by [`RunQueue::take_all`] (or a consumer-private stack linked the
    /// same way) in place and returns its new first node: the chain then runs oldest push first.
    ///
    /// Why the executor wants that order: a stack drained newest first makes the task that was woken
    /// first in a batch wait for every task woken after it. Under load, that is the connection whose
    /// completion has waited longest waiting longer still, which is what a latency tail is made of.
    /// Microsoft's echosrv pops its completed operations the same way (an SList flushed at once) and
    /// reverses them before handling them, for the same reason.
    ///
    /// # Safety
    /// `head` is null or the first node of such a chain, every node of it live, and the chain is
    /// the consumer's alone: no node in it can be pushed again before the consumer hands it back
    /// (for tasks, the `RUN_QUEUED` bit stays set until the task's poll begins), so nobody else
    /// writes these links meanwhile. (A task pool's free-list claimer that stalled may still read
    /// one, atomically, as its own stale "next free" link; it discards what it read: see
    /// `free_list.rs`.)
    pub(crate) unsafe fn oldest_first(mut head: *mut T) -> *mut T {
        let mut reversed = ptr::null_mut();
        while let Some(node) = NonNull::new(head) {
            // SAFETY: the caller guarantees the node is live and its link is the consumer's alone;
            // the successor is read before the link is overwritten.
            unsafe {
                let link = &*T::link(node);
                head = link.load(Ordering::Relaxed);
                link.store(reversed, Ordering::Relaxed);
            }
            reversed = node.as_ptr();
        }
        reversed
    }
}
