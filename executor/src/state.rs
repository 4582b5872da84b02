//! The task state word: one `AtomicU32` per task slot, changed only by the operations below
//! (read-modify-writes, and plain stores where this file shows no other thread can write the word).
//!
//! # The task state machine
//!
//! ```text
//!            1 claim               2 spawn
//!  ┌──────┐ ────────► ┌─────────┐ ────────► ┌──────────────────────┐ ◄─────────────┐
//!  │ FREE │           │ CLAIMED │           │ SPAWNED | RUN_QUEUED │               │
//!  └──────┘           └─────────┘           └──────────┬───────────┘               │ 4 wake (also while
//!     ▲                                                │ 3 dequeue                 │   being polled: the
//!     │                                                ▼                           │   task is polled again)
//!     │                                         ┌─────────────┐                    │
//!     │                                         │   SPAWNED   │ ───────────────────┘
//!     │                                         └──────┬──────┘
//!     │                                                │ 5 poll -> Ready, or abort, or shutdown
//!     │                                                ▼
//!     │   8 release (when SPAWNED, RUN_QUEUED   ┌─────────────┐   6 stale dequeue (clears RUN_QUEUED
//!     └────── and HANDLE are all clear) ─────── │  COMPLETE   │     of a task woken during its last poll)
//!                                               └─────────────┘   7 handle dropped or output taken
//! ```
//!
//! Numbered transitions and the function that makes each:
//!
//! 1. A free slot is taken off its pool's free list by one spawner, which now owns it exclusively;
//!    the state word keeps `SPAWNED` and `RUN_QUEUED` clear — `FreeList::pop` in `TaskPool::spawn_task`.
//! 2. The future is written into the slot and the task becomes `SPAWNED | RUN_QUEUED` (plus `HANDLE`
//!    when a [`JoinHandle`](crate::JoinHandle) is returned, plus `NEW` for a spawn counted by the
//!    executor's admission), then pushed on the executor's run queue — [`State::spawn`] in
//!    `TaskPool::spawn_task`, then `Executor::enqueue` (`RunQueue::push`), or `Executor::enqueue_local`
//!    for a spawn from the executor's own thread through a `LocalSpawner`.
//! 3. The executor takes the task off its run queue and clears `RUN_QUEUED` before polling, so that
//!    a wake arriving during the poll queues it again — [`State::begin_poll`] in `Executor::run_task`
//!    (a plain store for a task without a join handle, see there).
//! 4. A waker sets `RUN_QUEUED` if and only if the task is `SPAWNED` and not already queued; only the
//!    waker that made this 0 -> 1 change pushes the task on the run queue — [`State::try_wake`] in
//!    `waker::wake_task` (any thread, IRQL <= DISPATCH_LEVEL).
//! 5. The future returned `Ready` (its output replaces it in the slot), or it was dropped because of
//!    an abort or a shutdown: `COMPLETE` is set — [`State::complete`] in `Executor::finish_task`.
//!    Without a handle `SPAWNED` is cleared in the same step. With a handle, `SPAWNED` stays set
//!    (it keeps the slot alive) while the join waker is woken, then [`State::retire`] clears it.
//! 6. A finished task still in the run queue (woken during its last poll) is dequeued without being
//!    polled — [`State::begin_poll`] returns a word without `SPAWNED` in `Executor::run_task`.
//! 7. The join handle lets go of the task: dropped, or its output taken — [`State::release_handle`]
//!    in `JoinHandle::drop` and `JoinHandle::poll`.
//! 8. Whoever makes `SPAWNED`, `RUN_QUEUED` and `HANDLE` all clear returns the slot to the free list
//!    — `TaskRef::release` (`FreeList::push`), called after 5, 6 or 7. The word keeps history bits
//!    such as `COMPLETE`, never `SPAWNED` or `RUN_QUEUED`, until the next spawn overwrites it.
//!
//! `ABORT` is set by [`State::request_abort`] (`JoinHandle::abort`), followed by a wake (4); the
//! executor then drops the future instead of polling it (5). `JOIN_WAKER` says who owns the join
//! waker cell: clear, the join handle may write it; set, only the completing executor may take it.
//!
//! # Why a stale waker is harmless
//!
//! Wakers are not reference counted: a waker is the address of a slot in a `'static` pool. A wake
//! of a task that has finished finds `SPAWNED` clear and does nothing (4 requires `SPAWNED`). If the
//! slot has meanwhile been reused by another task, the stale wake queues that task: it is polled once
//! more than needed, which the `Future` contract allows. It can never queue a slot twice (4 needs
//! `RUN_QUEUED` clear) nor touch a free slot (a free slot's word has `SPAWNED` clear, and a claimed
//! slot's word only gets `SPAWNED` from the spawn's Release store, after the header and future are
//! written), and a slot is never freed while it is queued (8 needs `RUN_QUEUED` clear), so the run
//! queue only ever links live slots.

use crate::sync::{AtomicU32, Ordering};

/// The task owns a live future (or is about to drop it) and belongs to an executor.
pub(crate) const SPAWNED: u32 = 1 << 0;
/// The task is linked in its executor's run queue, or about to be pushed by the waker that set this.
pub(crate) const RUN_QUEUED: u32 = 1 << 1;
/// A [`JoinHandle`](crate::JoinHandle) refers to the task.
pub(crate) const HANDLE: u32 = 1 << 2;
/// The future is gone: it returned `Ready`, or it was dropped by an abort or a shutdown.
pub(crate) const COMPLETE: u32 = 1 << 3;
/// The slot holds the future's output, not yet taken by the join handle.
pub(crate) const OUTPUT: u32 = 1 << 4;
/// The join handle asked for the task to be aborted.
pub(crate) const ABORT: u32 = 1 << 5;
/// The join handle stored a waker that the completing executor must take and wake.
pub(crate) const JOIN_WAKER: u32 = 1 << 6;
/// Spawned and not yet dequeued once: lets the executor count the spawns that reached it, which
/// shutdown needs to know that no admitted spawn is still on its way.
pub(crate) const NEW: u32 = 1 << 7;

/// The bits that keep a slot out of the free list.
const KEEPS_SLOT: u32 = SPAWNED | RUN_QUEUED | HANDLE;

/// True if a slot whose state word is `state` may be returned to its free list (transition 8).
#[inline(always)]
pub(crate) const fn is_releasable(state: u32) -> bool {
    state & KEEPS_SLOT == 0
}

/// One task's state word.
pub(crate) struct State {
    word: AtomicU32,
}

impl State {
    /// A free slot's state: 0.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
        }
    }

    /// A free slot's state: 0 (loom's atomics cannot be built in a `const fn`).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
        }
    }

    /// The current word, for decisions that a later read-modify-write confirms.
    #[inline(always)]
    pub(crate) fn load(&self) -> u32 {
        self.word.load(Ordering::Acquire)
    }

    /// Transition 2: a claimed slot (word 0, owned exclusively by the spawner) becomes a queued task.
    /// `Release` publishes the future and the header fields written before it to whoever acquires the
    /// word (a waker, the executor, the join handle).
    /// `counted` marks the task `NEW`: a spawn admitted through the executor's spawn count, which
    /// the executor then counts at the first dequeue (see `Executor::admit_spawn`).
    #[inline(always)]
    pub(crate) fn spawn(&self, with_handle: bool, counted: bool) {
        let handle = if with_handle { HANDLE } else { 0 };
        let new = if counted { NEW } else { 0 };
        self.word.store(SPAWNED | RUN_QUEUED | new | handle, Ordering::Release);
    }

    /// Transition 4: sets `RUN_QUEUED` if the task is `SPAWNED` and not queued. Returns true if this
    /// call made the 0 -> 1 change, in which case the caller must push the task on its run queue.
    /// Lock-free: the loop only retries when another thread changed the word in between.
    #[inline(always)]
    pub(crate) fn try_wake(&self) -> bool {
        // The first attempt guesses the most common word (a spawned, detached, idle task) instead of
        // loading it: a wake from another CPU then costs one cache-line transfer, not a shared read
        // followed by an upgrade.
        let mut expected = SPAWNED;
        loop {
            match self
                .word
                .compare_exchange(expected, expected | RUN_QUEUED, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => {
                    if now & (SPAWNED | RUN_QUEUED) != SPAWNED {
                        return false;
                    }
                    expected = now;
                }
            }
        }
    }

    /// Transitions 3 and 6: clears `RUN_QUEUED` (and `NEW`) when the executor dequeues the task,
    /// returning the word as it was. `SPAWNED` in the result means "poll it" (3); its absence means a
    /// stale entry (6).
    ///
    /// Without a join handle this is a plain load and store, not a read-modify-write: while
    /// `RUN_QUEUED` is set (it is, for a queued task) no waker can change the word (transition 4
    /// needs it clear), and with `HANDLE` clear (it can never be set again) nothing else can either:
    /// abort, join and release all come from the handle, and the executor is this thread.
    #[inline(always)]
    pub(crate) fn begin_poll(&self) -> u32 {
        let current = self.word.load(Ordering::Acquire);
        if current & (RUN_QUEUED | HANDLE) == RUN_QUEUED {
            self.word.store(current & !(RUN_QUEUED | NEW), Ordering::Release);
            return current;
        }
        self.word.fetch_and(!(RUN_QUEUED | NEW), Ordering::AcqRel)
    }

    /// Transition 5: the future is gone. With a handle: sets `COMPLETE` (and `OUTPUT` if
    /// `has_output`), keeping `SPAWNED` so the slot stays alive until [`State::retire`]. Without one:
    /// sets `COMPLETE` and clears `SPAWNED` at once. Returns the previous word.
    ///
    /// Without a handle and with `RUN_QUEUED` set (woken during its last poll), nothing but this
    /// thread can change the word (see [`State::begin_poll`]): a plain store suffices.
    #[inline(always)]
    pub(crate) fn complete(&self, has_output: bool) -> u32 {
        let output = if has_output { OUTPUT } else { 0 };
        let mut current = self.word.load(Ordering::Acquire);
        if current & (RUN_QUEUED | HANDLE) == RUN_QUEUED {
            self.word.store((current & !SPAWNED) | COMPLETE, Ordering::Release);
            return current;
        }
        loop {
            let next = if current & HANDLE != 0 {
                current | COMPLETE | output
            } else {
                (current & !SPAWNED) | COMPLETE
            };
            match self
                .word
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(previous) => return previous,
                Err(now) => current = now,
            }
        }
    }

    /// End of transition 5 for a task that had a handle: clears `SPAWNED` (and `JOIN_WAKER`, whose
    /// waker the executor has taken). Returns the previous word.
    #[inline(always)]
    pub(crate) fn retire(&self) -> u32 {
        self.word.fetch_and(!(SPAWNED | JOIN_WAKER), Ordering::AcqRel)
    }

    /// Transition 7: the join handle lets go (clears `HANDLE`, and `OUTPUT` and `JOIN_WAKER` with it).
    /// Refuses, returning the word, while the slot holds an output the caller has not consumed
    /// (`output_consumed == false` and `OUTPUT` set): the caller must drop or take that output first,
    /// because once `HANDLE` is clear the executor may free the slot. The caller must also have taken
    /// back the join waker cell ([`State::reclaim_join_waker`]) if it wants to drop its waker.
    /// Returns the previous word.
    #[inline(always)]
    pub(crate) fn release_handle(&self, output_consumed: bool) -> Result<u32, u32> {
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            if current & OUTPUT != 0 && !output_consumed {
                return Err(current);
            }
            match self.word.compare_exchange_weak(
                current,
                current & !(HANDLE | OUTPUT | JOIN_WAKER),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(previous) => return Ok(previous),
                Err(now) => current = now,
            }
        }
    }

    /// Sets `ABORT` unless the task already completed. Returns true if it was set by this call or
    /// before; the caller then wakes the task (transition 4) so the executor sees it.
    pub(crate) fn request_abort(&self) -> bool {
        let previous = self.word.fetch_or(ABORT, Ordering::AcqRel);
        previous & COMPLETE == 0
    }

    /// Join handle side: hands the freshly written join waker cell to the executor by setting
    /// `JOIN_WAKER`. Fails (returning the word) if the task completed meanwhile; the handle then
    /// still owns the cell. Every read here is Acquire: a word showing `COMPLETE | OUTPUT` is what
    /// entitles the handle to read the output the executor wrote before its Release.
    pub(crate) fn publish_join_waker(&self) -> Result<(), u32> {
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            if current & COMPLETE != 0 {
                return Err(current);
            }
            match self
                .word
                .compare_exchange_weak(current, current | JOIN_WAKER, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }

    /// Join handle side: takes the join waker cell back (clears `JOIN_WAKER`) to replace its waker.
    /// Fails if the task completed: the cell then belongs to the executor.
    pub(crate) fn reclaim_join_waker(&self) -> Result<(), u32> {
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            if current & COMPLETE != 0 {
                return Err(current);
            }
            match self
                .word
                .compare_exchange_weak(current, current & !JOIN_WAKER, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }
}
