//! The executor: a run queue, the KEVENT its thread sleeps on, and the loop that polls tasks.
//!
//! An [`Executor`] is a `static`. It runs either on its own system thread ([`Executor::start`],
//! the normal case in a driver) or on the calling thread ([`Executor::local_runner`],
//! [`Executor::run_until_idle`]: tests, benchmarks, drivers that drive it themselves). One thread
//! at a time holds the right to poll (the `POLLER` bit). Several executors can exist side by side;
//! a task stays on the executor it was spawned on.
//!
//! Queues: the shared run queue (`run_queue.rs`) takes wakes and spawns from any CPU; a local stack
//! without atomics takes spawns made by the polling thread itself through a [`LocalSpawner`].
//!
//! The thread sleeps on a synchronization KEVENT after marking the empty run queue "sleeping"; the
//! one wake that finds that mark signals the event (see `run_queue.rs` for why none is lost). When
//! the executor is busy, or runs on the caller's thread, wakes signal nothing.
//!
//! Shutdown ([`Executor::shutdown`]) closes the executor to new spawns (a spawn is admitted by one
//! compare-exchange on a counter that the close freezes), then on the executor thread:
//! 1. drains the run queue until every admitted spawn has arrived (counted by the `NEW` bit at its
//!    first dequeue): after that, no slot can newly become this executor's task;
//! 2. drops every remaining live future, found by scanning the pools (their `Drop` runs there), and
//!    counts the queue entries still owed by wakes that set `RUN_QUEUED` before the drop; the scan
//!    first lets any pool registration under way finish (see `registry.rs`);
//! 3. drains those entries, sleeping on the KEVENT until the last owed push arrives;
//!
//! then ends the thread. It returns when all of that is done; wakes arriving later find no
//! `SPAWNED` task and do nothing.
//!
//! The event never holds a spare signal: each `KeSetEvent` pairs with one sleep of the thread,
//! shutdown's own wake-up included (`RunQueue::wake_sleeper`). So the thread's last wait also waits
//! for the `KeSetEvent` of a wake or spawn that raced with the shutdown, and once `shutdown`
//! returns nothing touches the executor: its owner may free it (the echo driver keeps it in pool
//! memory). The loom model checks this by "freeing" the executor after shutdown in every
//! interleaving with a waker and a spawner.

use crate::error::ExecutorError;
use crate::event::Event;
use crate::pool::{self, TaskPool};
use crate::run_queue::RunQueue;
use crate::state::{self, ABORT, HANDLE, JOIN_WAKER, NEW, RUN_QUEUED, SPAWNED};
use crate::sync::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use crate::task::{Header, TaskRef};
use crate::waker;
use core::cell::UnsafeCell;
use core::future::Future;
use core::ptr::{self, NonNull};
use core::task::Context;

/// `spawns`: set once the executor accepts no more spawns; the other bits count admitted spawns.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// `control`: a thread holds the right to poll (the system thread, or a `run_until_idle` caller).
const POLLER: u32 = 1 << 0;
/// `control`: the system thread was started and not yet joined.
const THREAD: u32 = 1 << 1;
/// `control`: the KEVENT was initialised.
const EVENT_READY: u32 = 1 << 2;
/// `control`: shut down for good.
const DONE: u32 = 1 << 3;
/// `control`: `start` is creating the thread (shutdown refuses with `Busy` meanwhile).
const STARTING: u32 = 1 << 4;
/// `control`: a shutdown is under way (the first caller does it; later callers wait for DONE).
const STOPPING: u32 = 1 << 5;
/// `control`: the system thread made its last access to the executor (set by the thread itself).
const EXITED: u32 = 1 << 6;

/// How long a thread waiting for DONE or EXITED sleeps before it looks again, in 100 ns units: 1 ms
/// asked for, but the kernel ends a relative delay on a clock tick, so in effect at least one tick
/// (15.6 ms by default, down to about 1 ms while someone raised the timer resolution). Only a second
/// concurrent shutdown and `start` after a failed `ObReferenceObjectByHandle` poll (plus, as a
/// fallback, a shutdown that meets a pool's registration: see [`pause_for_registration`]); the
/// normal shutdown waits on the thread object.
const POLL_INTERVAL_100NS: i64 = 10_000;

/// How many `spin_loop` pauses a shutdown makes while a pool registration is under way before it
/// falls back to sleeping [`POLL_INTERVAL_100NS`] at a time: 4096 pauses, from some 20 µs to
/// 0.3 ms depending on the CPU, against a window of a few hundred instructions (see
/// [`pause_for_registration`]).
const REGISTRATION_SPINS: u32 = 1 << 12;

/// A task executor for PASSIVE_LEVEL kernel code, woken from any CPU at IRQL <= DISPATCH_LEVEL.
pub struct Executor {
    queue: RunQueue<Header>,
    /// Admitted spawns (low bits) and [`CLOSED`].
    spawns: AtomicUsize,
    control: AtomicU32,
    /// Spawns that reached the run queue (first dequeue of a `NEW` task); touched by the poller only.
    received: UnsafeCell<usize>,
    /// Tasks spawned by the thread holding POLLER through a [`LocalSpawner`]: an intrusive stack
    /// (same link field as the run queue) with no atomics, touched by the POLLER holder only.
    local: UnsafeCell<*mut Header>,
    event: Event,
    /// The system thread's object (referenced), between `start` and `shutdown`.
    thread: AtomicPtr<core::ffi::c_void>,
}

// SAFETY: `received` is only touched by the thread holding POLLER (acquired/released with
// Acquire/Release); every other field is an atomic or a kernel event.
unsafe impl Sync for Executor {}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

/// A cheap, copyable handle to spawn tasks on an executor from any thread or task.
#[derive(Clone, Copy)]
pub struct Spawner {
    executor: &'static Executor,
}

/// Where a spawn goes: a [`Spawner`] (any thread) or a [`LocalSpawner`] (the thread running the
/// executor). Sealed: implemented only by these two.
///
/// # Safety
/// `is_counted() == false` promises that the caller is the thread holding the executor's POLLER
/// right (so the task may go on the local queue and no shutdown can overlap the spawn).
pub unsafe trait SpawnOn: sealed::Sealed + Copy {
    /// The executor.
    #[doc(hidden)]
    fn target(self) -> &'static Executor;
    /// Whether the spawn must be admitted through the executor's spawn count (see
    /// [`Executor::shutdown`]); not needed on the thread that holds the right to run the executor,
    /// which no shutdown can overlap.
    #[doc(hidden)]
    fn is_counted(self) -> bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Spawner {}
    impl Sealed for super::LocalSpawner<'_> {}
}

// SAFETY: counted spawns make no promise.
unsafe impl SpawnOn for Spawner {
    #[inline(always)]
    fn target(self) -> &'static Executor {
        self.executor
    }
    #[inline(always)]
    fn is_counted(self) -> bool {
        true
    }
}

/// A spawner usable only on the thread holding a [`LocalRunner`] (it borrows the runner). Spawning
/// through it skips the cross-thread admission count (the runner keeps any shutdown from
/// overlapping) and queues the task on a local stack without atomic operations, the way
/// embassy-executor's non-`Send` `Spawner` relies on being on the executor's thread.
#[derive(Clone, Copy)]
pub struct LocalSpawner<'runner> {
    executor: &'static Executor,
    _runner: core::marker::PhantomData<&'runner LocalRunner>,
}

// SAFETY: a LocalSpawner borrows the LocalRunner, which holds POLLER, and is neither Send nor Sync
// (through the PhantomData of a reference to the !Sync runner), so it is used on the runner's thread.
unsafe impl SpawnOn for LocalSpawner<'_> {
    #[inline(always)]
    fn target(self) -> &'static Executor {
        self.executor
    }
    #[inline(always)]
    fn is_counted(self) -> bool {
        false
    }
}

impl Spawner {
    /// The executor this spawner spawns on.
    pub fn executor(self) -> &'static Executor {
        self.executor
    }

    /// Spawns `future` in `pool` on this executor; see [`TaskPool::spawn`].
    pub fn spawn<F, const SIZE: usize, const N: usize>(
        self,
        pool: &'static TaskPool<SIZE, N>,
        future: F,
    ) -> Result<crate::JoinHandle<F::Output>, crate::SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        pool.spawn(self, future)
    }
}

impl Executor {
    /// A new executor, not running yet. `const`, for `static EXECUTOR: Executor = Executor::new();`.
    pub const fn new() -> Self {
        Self {
            queue: RunQueue::new(),
            spawns: AtomicUsize::new(0),
            control: AtomicU32::new(0),
            received: UnsafeCell::new(0),
            local: UnsafeCell::new(ptr::null_mut()),
            event: Event::new(),
            thread: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// A spawner for this executor.
    pub fn spawner(&'static self) -> Spawner {
        Spawner { executor: self }
    }

    /// Counts a spawn in, unless the executor is closed.
    #[inline(always)]
    pub(crate) fn admit_spawn(&self) -> bool {
        // A compare-exchange rather than a fetch_add: a refused spawn must not change the count, which
        // freezes at close to the number of spawns the shutdown has to wait for.
        let mut spawns = self.spawns.load(Ordering::Relaxed);
        loop {
            if spawns & CLOSED != 0 {
                return false;
            }
            match self
                .spawns
                .compare_exchange_weak(spawns, spawns + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => spawns = now,
            }
        }
    }

    /// Pushes a task whose `RUN_QUEUED` bit the caller set, and signals the thread if it sleeps.
    ///
    /// The push and the signal are the caller's last accesses to the executor. The push is waited
    /// for by shutdown (the task is an admitted spawn or an owed entry); the signal pairs with the
    /// sleep it ends, which the executor thread waits for before it can end (see `run_queue.rs`).
    #[inline(always)]
    pub(crate) fn enqueue(&self, task: TaskRef) {
        // SAFETY: the caller made the RUN_QUEUED 0 -> 1 change, so the task is in no queue; the slot
        // is `'static` and cannot be freed while RUN_QUEUED is set.
        if unsafe { self.queue.push(task.as_ptr()) } {
            // SAFETY: the queue is only marked sleeping after the event was initialised.
            unsafe { self.event.set() };
        }
    }

    /// Refuses further spawns and wakes the thread if it sleeps, without ever leaving a spare signal
    /// in the event (see `RunQueue::wake_sleeper`). Called with the event initialised.
    fn close(&self) {
        // Before the head's read-modify-write in `wake_sleeper`, which publishes it to the thread.
        self.spawns.fetch_or(CLOSED, Ordering::AcqRel);
        if self.queue.wake_sleeper() {
            // SAFETY: initialised (the caller's contract); this signal pairs with the mark replaced.
            unsafe { self.event.set() };
        }
    }

    fn is_closed(&self) -> bool {
        self.spawns.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Waits at PASSIVE_LEVEL until `control` has `bit`, looking every [`POLL_INTERVAL_100NS`].
    fn poll_control_until(&self, bit: u32) {
        poll_until(|| self.control.load(Ordering::Acquire) & bit != 0);
    }

    /// Queues a task spawned by the POLLER holder on the local stack (no atomic operation).
    ///
    /// # Safety
    /// The caller holds POLLER and made the task's RUN_QUEUED 0 -> 1 change (it is in no queue).
    #[inline(always)]
    pub(crate) unsafe fn enqueue_local(&self, task: TaskRef) {
        // SAFETY: forwarded from the caller: this thread owns the local stack and the task's link.
        unsafe {
            let head = self.local.get();
            task.header().link.store(*head, Ordering::Relaxed);
            *head = task.as_ptr().as_ptr();
        }
    }

    fn try_acquire_poller(&self, extra: u32) -> Result<(), ExecutorError> {
        let mut control = self.control.load(Ordering::Acquire);
        loop {
            if control & DONE != 0 {
                return Err(ExecutorError::ShutDown);
            }
            if control & POLLER != 0 {
                return Err(ExecutorError::Busy);
            }
            match self.control.compare_exchange_weak(
                control,
                control | POLLER | extra,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => control = now,
            }
        }
    }

    /// Gives up the right to poll. A plain store: while POLLER is held, only its holder changes the
    /// control word (THREAD, EVENT_READY and DONE are all set by the POLLER holder).
    #[inline(always)]
    fn release_poller(&self) {
        let control = self.control.load(Ordering::Relaxed);
        self.control.store(control & !POLLER, Ordering::Release);
    }

    /// Polls every queued task on the calling thread until the run queue is empty, and returns how
    /// many tasks were polled. For tests, benchmarks and drivers that drive the executor themselves;
    /// refused while another thread runs the executor (its own system thread, or a [`LocalRunner`]).
    pub fn run_until_idle(&'static self) -> Result<usize, ExecutorError> {
        Ok(self.local_runner()?.run_until_idle())
    }

    /// Takes the right to run this executor on the calling thread until the returned runner is
    /// dropped (no system thread can be started meanwhile). Running through a runner costs no
    /// atomic operation per call beyond the tasks' own.
    pub fn local_runner(&'static self) -> Result<LocalRunner, ExecutorError> {
        self.try_acquire_poller(0)?;
        Ok(LocalRunner {
            executor: self,
            _not_sync: core::marker::PhantomData,
        })
    }

    /// Starts the executor's system thread (`PsCreateSystemThread`), which polls tasks at
    /// PASSIVE_LEVEL and sleeps on a KEVENT when there is nothing to do. PASSIVE_LEVEL only.
    pub fn start(&'static self) -> Result<(), ExecutorError> {
        if nt::KeGetCurrentIrql() != nt::PASSIVE_LEVEL {
            return Err(ExecutorError::NotPassiveLevel);
        }
        self.try_acquire_poller(THREAD | STARTING)?;
        self.ensure_event();
        match self.create_thread() {
            Ok(thread) => {
                self.thread.store(thread, Ordering::Release);
                // From here on a shutdown finds the thread object to wait on.
                self.control.fetch_and(!STARTING, Ordering::Release);
                Ok(())
            }
            Err((status, false)) => {
                self.control.fetch_and(!(POLLER | THREAD | STARTING), Ordering::Release);
                Err(ExecutorError::Thread(status))
            }
            Err((status, true)) => {
                // The thread runs but there is no object to wait on: stop it now, and wait for its
                // last access to the executor (EXITED) by polling, so that the caller, told that
                // start failed, may free the executor. Nothing was spawned by this caller, but other
                // threads may have spawned: the thread drops those futures as in any shutdown.
                self.close();
                self.poll_control_until(EXITED);
                self.control.store(DONE | EVENT_READY, Ordering::Release);
                Err(ExecutorError::Thread(status))
            }
        }
    }

    /// Initialises the KEVENT once. Called only by the POLLER holder, before anything can mark the
    /// queue sleeping, so no thread waits on or signals the event meanwhile.
    fn ensure_event(&self) {
        if self.control.load(Ordering::Acquire) & EVENT_READY == 0 {
            // SAFETY: see above: the event is not in use yet.
            unsafe { self.event.init() };
            self.control.fetch_or(EVENT_READY, Ordering::AcqRel);
        }
    }

    /// Creates the system thread and references its object. On error, also says whether the thread
    /// runs anyway (then the caller must stop it and wait for it).
    fn create_thread(&'static self) -> Result<*mut core::ffi::c_void, (nt::NTSTATUS, bool)> {
        let mut handle: nt::HANDLE = ptr::null_mut();
        let mut attributes = nt::kernel_handle_attributes();
        // SAFETY: PASSIVE_LEVEL (checked by the caller); the start context is a `'static` executor.
        let status = unsafe {
            nt::PsCreateSystemThread(
                &mut handle,
                nt::THREAD_ALL_ACCESS,
                &mut attributes,
                ptr::null_mut(),
                ptr::null_mut(),
                Some(executor_thread),
                ptr::from_ref(self).cast_mut().cast(),
            )
        };
        if status < 0 {
            return Err((status, false));
        }
        let mut object: nt::PVOID = ptr::null_mut();
        // SAFETY: `handle` is the kernel handle just returned; a NULL object type skips the type check
        // (it is a thread handle by construction).
        let status = unsafe {
            nt::ObReferenceObjectByHandle(
                handle,
                nt::SYNCHRONIZE,
                ptr::null_mut(),
                nt::KernelMode,
                &mut object,
                ptr::null_mut(),
            )
        };
        let status = thread_reference_status(status, object);
        // SAFETY: the handle is ours and no longer needed: the referenced object is what we wait on.
        unsafe { nt::ZwClose(handle) };
        if status < 0 {
            return Err((status, true));
        }
        Ok(object)
    }

    /// The system thread's loop.
    fn thread_main(&'static self) {
        loop {
            self.run_queued(None);
            // Look for shutdown after every batch, not only when idle: tasks that keep waking
            // themselves (or a steady stream of completions) would otherwise hold the queue
            // non-empty and make `shutdown` (and so DriverUnload) wait for the traffic to stop.
            if self.is_closed() {
                break;
            }
            // Something queued during the batch: drain it. Otherwise go to sleep at once, without
            // an empty round of `run_queued` first: the sleep's exchange (`try_sleep`) fails anyway
            // if a push comes in between, and then the loop drains it. This saves a round per wake.
            // SAFETY: this thread holds POLLER, the only right to touch the local queue.
            if !unsafe { *self.local.get() }.is_null() || !self.queue.is_empty() {
                continue;
            }
            // SAFETY: initialised in `start`; the executor thread runs at PASSIVE_LEVEL.
            let wait = || unsafe { self.event.wait() };
            // The close check after the sleeping mark pairs with `close` (see `wake_sleeper`): the
            // thread either sees CLOSED or gets the close's signal, never a spare one.
            self.queue.wait_for_push(|| self.is_closed(), wait);
        }
        self.drop_everything();
        // The thread's last access to the executor; only `start` after a failed reference waits for
        // it (shutdown waits for the thread object, i.e. for the thread's end).
        self.control.fetch_or(EXITED, Ordering::Release);
    }

    /// Stops the executor: refuses new spawns, drops every live task's future on the executor
    /// thread (or on the caller's, if the executor never started a thread), ends the thread and
    /// returns once all of that is done. PASSIVE_LEVEL only; must not be called from one of this
    /// executor's tasks.
    ///
    /// Once it returns `Ok(())`, nothing touches the executor's memory any more, so its owner may
    /// free it (a driver may keep it in pool memory): the thread has ended; every admitted spawn
    /// and every wake that queued a task has made its last access (its push was drained and its
    /// signal, if any, consumed by the thread's last wait); wakers of its tasks, join handles and
    /// timers called later find no spawned task and never reach the executor. What the owner must
    /// still ensure: no call through a [`Spawner`] of this executor is running or starts during or
    /// after the free (a spawn refused with [`SpawnError::ShutDown`](crate::SpawnError::ShutDown)
    /// still reads the executor's state), and no other `shutdown` call is in progress.
    ///
    /// Single entry: the first call does the work; calls made meanwhile on other threads return
    /// `Ok(())` once it is done, and later calls at once. Refuses with [`ExecutorError::Busy`], having
    /// done nothing, while `start` is creating the thread or a [`LocalRunner`] is held.
    pub fn shutdown(&'static self) -> Result<(), ExecutorError> {
        if nt::KeGetCurrentIrql() != nt::PASSIVE_LEVEL {
            return Err(ExecutorError::NotPassiveLevel);
        }
        let mut control = self.control.load(Ordering::Acquire);
        loop {
            if control & DONE != 0 {
                return Ok(());
            }
            if control & STOPPING != 0 {
                self.poll_control_until(DONE);
                return Ok(());
            }
            // STARTING: no thread object to wait on yet. POLLER without THREAD: a LocalRunner.
            if control & STARTING != 0 || control & (POLLER | THREAD) == POLLER {
                return Err(ExecutorError::Busy);
            }
            // Without a thread, this caller also takes the right to poll (to drop the tasks).
            let next = control | STOPPING | POLLER;
            match self
                .control
                .compare_exchange_weak(control, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => control = now,
            }
        }
        if control & THREAD != 0 {
            let thread = self.thread.swap(ptr::null_mut(), Ordering::AcqRel);
            self.close();
            // SAFETY: THREAD without STARTING means `start` stored the referenced thread object,
            // and only this (single-entry) call takes it. Waiting on it at PASSIVE_LEVEL with no
            // timeout returns when the thread has terminated.
            unsafe {
                nt::KeWaitForSingleObject(thread, nt::Executive, nt::KernelMode, nt::FALSE, ptr::null_mut());
                nt::ObfDereferenceObject(thread);
            }
        } else {
            self.spawns.fetch_or(CLOSED, Ordering::AcqRel);
            self.ensure_event();
            self.drop_everything();
        }
        self.control.store(DONE | EVENT_READY, Ordering::Release);
        Ok(())
    }

    /// The end of the executor, on the poller's thread, after CLOSED was set.
    fn drop_everything(&'static self) {
        let admitted = self.spawns.load(Ordering::Acquire) & !CLOSED;
        // Phase 1: every spawn admitted before CLOSED reaches the queue (counted at its first
        // dequeue). After this no slot can newly become one of this executor's tasks.
        loop {
            while self.run_queued(Some(&mut 0)) != 0 {}
            // SAFETY: this thread holds POLLER.
            if unsafe { *self.received.get() } == admitted {
                break;
            }
            self.sleep_if_idle();
        }
        // Phase 2: drop every remaining live task, wherever it waits, and count the queue entries
        // still owed to this executor by wakes that raced with the drops. A spawn received above
        // may have found its pool being registered by another thread (the pool's first spawn) and
        // gone ahead before the pool was linked where the scan looks: the scan first waits for the
        // registrations under way (see registry.rs).
        let mut owed: isize = 0;
        let me = ptr::from_ref(self).cast_mut();
        pool::for_each_used_slot(pause_for_registration, |task| {
            let header = task.header();
            // Acquire the word first: if it shows SPAWNED, the executor pointer read next belongs to
            // that same life of the slot (see the module documentation of state.rs).
            let word = header.state.load();
            if word & (SPAWNED | RUN_QUEUED) == 0 || header.executor.load(Ordering::Relaxed) != me {
                return;
            }
            if word & SPAWNED != 0 {
                // SAFETY: only this thread clears SPAWNED of this executor's tasks, so the future
                // is still there and nobody else touches it.
                unsafe { (task.vtable().drop_future)(task) };
                if self.finish_task(task, false) {
                    owed += 1;
                }
            } else {
                // A finished task still linked in this queue (only this thread can unlink it).
                owed += 1;
            }
        });
        // Phase 3: drain the owed entries, waiting for wakes that set RUN_QUEUED but did not push yet.
        loop {
            while self.run_queued(Some(&mut owed)) != 0 {}
            if owed <= 0 {
                break;
            }
            self.sleep_if_idle();
        }
        // POLLER stays held: the caller marks the executor DONE (which also clears POLLER).
    }

    /// Sleeps until the next push unless something is queued. CLOSED is already set, so no close
    /// check: every mark is replaced by an owed push (or by `close`), which signals.
    fn sleep_if_idle(&self) {
        // SAFETY: the event was initialised (start or shutdown) and the poller is at PASSIVE_LEVEL.
        let wait = || unsafe { self.event.wait() };
        self.queue.wait_for_push(|| false, wait);
    }

    /// Takes the whole run queue and runs each task once, oldest first. `closing` is `Some(owed)`
    /// during shutdown: futures are dropped instead of polled, and `owed` tracks stale entries (see
    /// `drop_everything`). Returns how many entries were taken.
    #[inline(always)]
    fn run_queued(&'static self, mut closing: Option<&mut isize>) -> usize {
        let mut count = 0;
        let local = self.local.get();
        // SAFETY: the caller holds POLLER, the only right to touch the local queue. Only a non-empty
        // local queue is written (emptied).
        let newest_first = unsafe {
            if (*local).is_null() {
                self.queue.take_all()
            } else {
                local.replace(ptr::null_mut())
            }
        };
        // Run the batch in the order its tasks were queued (see `RunQueue::oldest_first`).
        // SAFETY: a chain just taken by this thread (the POLLER holder) from either queue; every task
        // in it keeps RUN_QUEUED set until `run_task` begins its poll, so nobody pushes it meanwhile.
        let mut node = unsafe { RunQueue::oldest_first(newest_first) };
        while let Some(current) = NonNull::new(node) {
            // SAFETY: `current` is a live node of the chain just taken; read its successor before the
            // task can be pushed again.
            node = unsafe { RunQueue::<Header>::next(current) };
            // SAFETY: only task headers of `'static` pools are ever pushed.
            let task = unsafe { TaskRef::from_ptr(current) };
            self.run_task(task, closing.as_deref_mut());
            count += 1;
        }
        count
    }

    /// Transitions 3 and 6, then a poll (or a drop, for an aborted task or during shutdown).
    #[inline(always)]
    fn run_task(&'static self, task: TaskRef, closing: Option<&mut isize>) {
        let previous = task.header().state.begin_poll();
        // The common case first, with one test: a spawned task that is neither new nor aborted,
        // outside shutdown (a constant `None` in `thread_main`), is polled.
        if previous & (SPAWNED | NEW | ABORT) == SPAWNED && closing.is_none() {
            self.poll_task(task);
            return;
        }
        if previous & NEW != 0 {
            // SAFETY: this thread holds POLLER.
            unsafe { *self.received.get() += 1 };
        }
        if previous & SPAWNED == 0 {
            if let Some(owed) = closing {
                *owed -= 1;
            }
            if state::is_releasable(previous & !RUN_QUEUED) {
                // SAFETY: this RMW cleared the last bit keeping the slot; its future is gone.
                unsafe { task.release() };
            }
            return;
        }
        // SAFETY: SPAWNED was acquired: the vtable and the future are the spawner's, published.
        let vtable = unsafe { task.vtable() };
        if previous & ABORT != 0 || closing.is_some() {
            // SAFETY: only the executor thread touches a spawned task's future.
            unsafe { (vtable.drop_future)(task) };
            let still_queued = self.finish_task(task, false);
            if let Some(owed) = closing
                && still_queued
            {
                *owed += 1;
            }
            return;
        }
        self.poll_task(task);
    }

    /// Transition 3's poll: polls a task whose dequeue (`begin_poll`) acquired `SPAWNED`, and
    /// finishes it (5) if its future returned `Ready`.
    #[inline(always)]
    fn poll_task(&'static self, task: TaskRef) {
        // SAFETY: SPAWNED was acquired by the caller: the vtable and the future are the spawner's,
        // published; only the executor thread touches a spawned task's future.
        let vtable = unsafe { task.vtable() };
        let waker = waker::waker_for(task);
        let mut cx = Context::from_waker(&waker);
        // SAFETY: as above; the future is pinned in its `'static` slot.
        if unsafe { (vtable.poll)(task, &mut cx) } {
            self.finish_task(task, true);
        }
    }

    /// Transition 5 (and 8 when possible) after the future is gone. Returns true if the task is
    /// still owed a run-queue entry (a wake set RUN_QUEUED before SPAWNED was cleared).
    fn finish_task(&self, task: TaskRef, has_output: bool) -> bool {
        let header = task.header();
        let previous = header.state.complete(has_output);
        let last = if previous & HANDLE == 0 {
            // SAFETY: the task is still ours (SPAWNED was set until this RMW).
            if let (true, Some(drop_output)) = (has_output, unsafe { task.vtable() }.drop_output) {
                // SAFETY: detached task: nobody else will ever read the output; drop it here.
                unsafe { drop_output(task) };
            }
            previous
        } else {
            if previous & JOIN_WAKER != 0 {
                // SAFETY: JOIN_WAKER was set before COMPLETE, so the cell holds the handle's waker and
                // now belongs to the executor (the handle never touches it after COMPLETE).
                let join_waker = unsafe { (*task.join_waker()).assume_init_read() };
                join_waker.wake();
            }
            header.state.retire()
        };
        let now = last & !(SPAWNED | JOIN_WAKER);
        if state::is_releasable(now) {
            // SAFETY: the RMW above cleared SPAWNED with RUN_QUEUED and HANDLE already clear; the
            // future is gone and so is any output (detached) — a handle would still hold HANDLE.
            unsafe { task.release() };
        }
        last & RUN_QUEUED != 0
    }
}

/// The right to run an [`Executor`] on the calling thread; see [`Executor::local_runner`].
/// `Send` (the right can move to another thread) but not `Sync`: only one thread uses it at a time.
pub struct LocalRunner {
    executor: &'static Executor,
    _not_sync: core::marker::PhantomData<core::cell::Cell<()>>,
}

impl LocalRunner {
    /// A spawner for this thread (see [`LocalSpawner`]).
    pub fn spawner(&self) -> LocalSpawner<'_> {
        LocalSpawner {
            executor: self.executor,
            _runner: core::marker::PhantomData,
        }
    }

    /// Polls every queued task until the run queue is empty; returns how many were polled.
    pub fn run_until_idle(&self) -> usize {
        let mut polled = 0;
        loop {
            let batch = self.executor.run_queued(None);
            if batch == 0 {
                return polled;
            }
            polled += batch;
        }
    }
}

impl Drop for LocalRunner {
    fn drop(&mut self) {
        self.executor.release_poller();
    }
}

/// Waits at PASSIVE_LEVEL until `done()`, looking every [`POLL_INTERVAL_100NS`]. Called from
/// `start` and `shutdown`, which check PASSIVE_LEVEL.
fn poll_until(mut done: impl FnMut() -> bool) {
    while !done() {
        sleep_poll_interval();
    }
}

/// Sleeps [`POLL_INTERVAL_100NS`] (at least a clock tick).
///
/// The caller is at PASSIVE_LEVEL: `start` and `shutdown` check it, and `drop_everything` (through
/// [`pause_for_registration`]) runs either on `shutdown`'s caller or on the executor's system
/// thread, which starts at PASSIVE_LEVEL and is there between polls (a future returns at the IRQL
/// it was polled at, as any function called at PASSIVE_LEVEL must).
fn sleep_poll_interval() {
    let mut interval = nt::LARGE_INTEGER::relative_100ns(POLL_INTERVAL_100NS);
    // SAFETY: PASSIVE_LEVEL (see above); the interval is a local. A non-alertable kernel-mode delay
    // returns STATUS_SUCCESS only.
    unsafe { nt::KeDelayExecutionThread(nt::KernelMode, nt::FALSE, &mut interval) };
}

/// Shutdown's pause between two looks at the pool registrations under way (`round` counts the
/// looks). A registration runs at DISPATCH_LEVEL (`PoolCore::register_slow`), so while the scan sees
/// one under way, its thread holds another CPU (not this one: this thread runs at PASSIVE_LEVEL, and
/// a thread at DISPATCH_LEVEL keeps its CPU until it lowers the IRQL) and ends it after a few hundred
/// instructions, plus the interrupts that CPU serves meanwhile: spinning covers that. Past
/// [`REGISTRATION_SPINS`] something outside the driver's control delays it (a hypervisor that
/// descheduled that virtual CPU, an interrupt storm; or the host emulation, whose raised IRQL does
/// not stop the host's scheduler): then sleep a tick at a time instead of burning this CPU.
fn pause_for_registration(round: u32) {
    if round < REGISTRATION_SPINS {
        core::hint::spin_loop();
    } else {
        sleep_poll_interval();
    }
}

/// `ObReferenceObjectByHandle`'s status, or a failure injected by [`fail_next_thread_reference`]
/// (host emulation only; the reference taken is then dropped).
#[inline(always)]
fn thread_reference_status(status: nt::NTSTATUS, object: nt::PVOID) -> nt::NTSTATUS {
    #[cfg(not(target_os = "windows"))]
    if status >= 0 && FAIL_NEXT_THREAD_REFERENCE.swap(false, Ordering::AcqRel) {
        // SAFETY: the reference just taken, not used by anyone else.
        unsafe { nt::ObfDereferenceObject(object) };
        return nt::STATUS_INVALID_HANDLE;
    }
    let _ = object;
    status
}

#[cfg(not(target_os = "windows"))]
static FAIL_NEXT_THREAD_REFERENCE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Host emulation only: makes the next [`Executor::start`] see `ObReferenceObjectByHandle` fail
/// (`STATUS_INVALID_HANDLE`) after the thread was created, which the emulation cannot do by itself,
/// so that tests reach the path where the thread runs but cannot be waited on.
#[cfg(not(target_os = "windows"))]
#[doc(hidden)]
pub fn fail_next_thread_reference() {
    FAIL_NEXT_THREAD_REFERENCE.store(true, Ordering::Release);
}

/// The system thread's start routine (`KSTART_ROUTINE`), entered at PASSIVE_LEVEL.
unsafe extern "system" fn executor_thread(context: nt::PVOID) {
    // SAFETY: `start` passes a pointer to a `'static` Executor.
    let executor: &'static Executor = unsafe { &*context.cast_const().cast::<Executor>() };
    executor.thread_main();
    // SAFETY: a system thread ends itself with PsTerminateSystemThread at PASSIVE_LEVEL.
    unsafe { nt::PsTerminateSystemThread(nt::STATUS_SUCCESS) };
}
