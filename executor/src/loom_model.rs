//! Loom model of the lock-free core: the state word, the run queue with its sleep protocol, the
//! free list, and the shutdown handshake (after which the executor's memory may be freed). Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p executor --release --lib loom
//! ```
//!
//! Under `cfg(loom)` the crate builds only these modules, on loom's atomics (see `sync.rs`), so the
//! model explores every interleaving (and every weak-memory outcome loom models) of the real code.

use crate::free_list::FreeList;
use crate::run_queue::{Linked, RunQueue};
use crate::state::{self, HANDLE, RUN_QUEUED, SPAWNED, State};
use crate::sync::{AtomicPtr, Ordering};
use core::ptr::{self, NonNull};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::sync::{Arc, Condvar, Mutex, Notify};
use loom::thread;
use std::boxed::Box;
use std::vec::Vec;

/// A task as the model sees it: a state word and a run-queue link.
struct Node {
    state: State,
    link: AtomicPtr<Node>,
}

// SAFETY: `link` is the node's own field.
unsafe impl Linked for Node {
    unsafe fn link(node: NonNull<Self>) -> *const AtomicPtr<Self> {
        // SAFETY: the node is live per the caller.
        unsafe { ptr::addr_of!((*node.as_ptr()).link) }
    }
}

/// The executor side of the model: a run queue and its event.
struct Model {
    queue: RunQueue<Node>,
    event: Notify,
}

impl Model {
    fn new() -> Self {
        Self {
            queue: RunQueue::new(),
            event: Notify::new(),
        }
    }

    /// `waker::wake_task` + `Executor::enqueue`.
    fn wake(&self, node: &Node) {
        if node.state.try_wake() {
            // SAFETY: RUN_QUEUED went 0 -> 1 here, so the node is in no queue.
            if unsafe { self.queue.push(NonNull::from(node)) } {
                self.event.notify();
            }
        }
    }

    /// Takes the queue and "polls" each node (transition 3); returns how many were polled.
    fn drain(&self) -> usize {
        let mut node = self.queue.take_all();
        let mut polled = 0;
        while let Some(current) = NonNull::new(node) {
            // SAFETY: a live node of the chain just taken.
            node = unsafe { RunQueue::next(current) };
            // SAFETY: nodes outlive the model.
            let previous = unsafe { current.as_ref() }.state.begin_poll();
            assert!(previous & RUN_QUEUED != 0, "a node in the queue has RUN_QUEUED");
            polled += 1;
        }
        polled
    }
}

/// Runs `f` under loom with a preemption bound of 4 (every interleaving with at most four forced
/// thread switches), which covers the races these models are about and keeps the run short.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(4);
    builder.check(f);
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

fn spawned_node() -> &'static Node {
    let node = leak(Node {
        state: State::new(),
        link: AtomicPtr::new(ptr::null_mut()),
    });
    node.state.spawn(false, true);
    node
}

/// Two wakers race with a poll: the task is queued at most once at a time, and a wake that happens
/// after the poll began (RUN_QUEUED cleared) always leads to another poll.
#[test]
fn loom_wake_during_poll_is_never_lost_nor_doubled() {
    model(|| {
        let model = Arc::new(Model::new());
        let node = spawned_node();
        // SAFETY: freshly spawned (RUN_QUEUED set by spawn), in no queue.
        unsafe { model.queue.push(NonNull::from(node)) };
        let mut polls = model.drain();
        assert_eq!(polls, 1);
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let model = model.clone();
                thread::spawn(move || model.wake(node))
            })
            .collect();
        polls += model.drain();
        for waker in wakers {
            waker.join().unwrap();
        }
        polls += model.drain();
        // Both wakes came after the first poll: at least one more poll, at most one per wake.
        assert!((2..=3).contains(&polls), "polls = {polls}");
        assert_eq!(node.state.load() & RUN_QUEUED, 0, "no wake is stranded");
    });
}

/// The sleep protocol: the executor sleeps only after marking the empty queue, producers signal
/// only the push that replaces the mark. A lost signal would deadlock, which loom reports.
#[test]
fn loom_the_executor_never_sleeps_through_a_push() {
    model(|| {
        let model = Arc::new(Model::new());
        // Spawned (RUN_QUEUED set) but not pushed yet: the producers push them.
        let nodes = [spawned_node(), spawned_node()];
        let producers: Vec<_> = nodes
            .iter()
            .map(|&node| {
                let model = model.clone();
                thread::spawn(move || {
                    // SAFETY: RUN_QUEUED was set by spawn and the node is in no queue.
                    if unsafe { model.queue.push(NonNull::from(node)) } {
                        model.event.notify();
                    }
                })
            })
            .collect();
        let mut polled = 0;
        while polled < nodes.len() {
            polled += model.drain();
            if polled < nodes.len() && model.queue.try_sleep() {
                model.event.wait();
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        assert_eq!(polled, 2);
    });
}

/// Completion on the executor, a stale wake and the join handle's release race: the slot is
/// released exactly once, and only when no bit keeps it.
#[test]
fn loom_a_slot_is_released_exactly_once() {
    model(|| {
        let releases = Arc::new(AtomicUsize::new(0));
        let model = Arc::new(Model::new());
        let node = leak(Node {
            state: State::new(),
            link: AtomicPtr::new(ptr::null_mut()),
        });
        node.state.spawn(true, true);
        let previous = node.state.begin_poll();
        assert_eq!(previous & SPAWNED, SPAWNED);
        let executor = {
            let releases = releases.clone();
            thread::spawn(move || {
                // The poll returned Ready: transition 5.
                let previous = node.state.complete(true);
                let last = if previous & HANDLE != 0 {
                    node.state.retire()
                } else {
                    previous
                };
                if state::is_releasable(last & !SPAWNED) {
                    releases.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let waker = {
            let model = model.clone();
            thread::spawn(move || model.wake(node))
        };
        let handle = {
            let releases = releases.clone();
            thread::spawn(move || {
                let mut consumed = false;
                let previous = loop {
                    match node.state.release_handle(consumed) {
                        Ok(previous) => break previous,
                        Err(_) => consumed = true, // the handle drops the output here
                    }
                };
                if state::is_releasable(previous & !HANDLE) {
                    releases.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        executor.join().unwrap();
        waker.join().unwrap();
        handle.join().unwrap();
        // The executor drains a stale entry left by the wake (transition 6).
        let mut entry = model.queue.take_all();
        while let Some(current) = NonNull::new(entry) {
            // SAFETY: a live node of the chain just taken.
            entry = unsafe { RunQueue::next(current) };
            let previous = node.state.begin_poll();
            if previous & SPAWNED == 0 && state::is_releasable(previous & !RUN_QUEUED) {
                releases.fetch_add(1, Ordering::SeqCst);
            }
        }
        assert_eq!(releases.load(Ordering::SeqCst), 1);
    });
}

/// Concurrent claims and releases never hand one slot to two owners (the tag defeats ABA).
#[test]
fn loom_the_free_list_never_hands_out_a_slot_twice() {
    model(|| {
        const CAPACITY: u32 = 2;
        let list = Arc::new(FreeList::new());
        let links: Arc<Vec<crate::sync::AtomicU32>> =
            Arc::new((0..CAPACITY).map(|_| crate::sync::AtomicU32::new(0)).collect());
        let owned: Arc<Vec<AtomicBool>> = Arc::new((0..CAPACITY).map(|_| AtomicBool::new(false)).collect());
        // Both slots used once and released, so the claims below go through the linked list.
        for _ in 0..CAPACITY {
            list.pop(CAPACITY, |i| links[i as usize].load(Ordering::Relaxed))
                .unwrap();
        }
        for i in 0..CAPACITY {
            list.push(i, |i, next| links[i as usize].store(next, Ordering::Relaxed));
        }
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (list, links, owned) = (list.clone(), links.clone(), owned.clone());
                thread::spawn(move || {
                    for _ in 0..2 {
                        let Some(i) = list.pop(CAPACITY, |i| links[i as usize].load(Ordering::Relaxed)) else {
                            continue;
                        };
                        assert!(
                            !owned[i as usize].swap(true, Ordering::SeqCst),
                            "slot {i} handed out twice"
                        );
                        owned[i as usize].store(false, Ordering::SeqCst);
                        list.push(i, |i, next| links[i as usize].store(next, Ordering::Relaxed));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // Everything came back.
        let mut left = 0;
        while list
            .pop(CAPACITY, |i| links[i as usize].load(Ordering::Relaxed))
            .is_some()
        {
            left += 1;
        }
        assert_eq!(left, CAPACITY);
    });
}

/// A detached task (no join handle) takes the plain-store paths of `begin_poll` and `complete`;
/// a waker racing with its last poll must neither be lost into a freed slot nor free it twice.
#[test]
fn loom_a_detached_task_completing_while_woken_is_released_once() {
    model(|| {
        let releases = Arc::new(AtomicUsize::new(0));
        let model_ = Arc::new(Model::new());
        let node = spawned_node();
        let executor = {
            let (releases, model_) = (releases.clone(), model_.clone());
            thread::spawn(move || {
                // Transition 3 (plain store: no handle), then the poll returns Ready: transition 5.
                let previous = node.state.begin_poll();
                assert_eq!(previous & (SPAWNED | RUN_QUEUED), SPAWNED | RUN_QUEUED);
                let previous = node.state.complete(true);
                assert_eq!(previous & HANDLE, 0);
                if state::is_releasable(previous & !SPAWNED) {
                    releases.fetch_add(1, Ordering::SeqCst);
                }
                // Later passes of the executor: stale entries (transition 6).
                let mut entry = model_.queue.take_all();
                while let Some(current) = NonNull::new(entry) {
                    // SAFETY: a live node of the chain just taken.
                    entry = unsafe { RunQueue::next(current) };
                    let previous = node.state.begin_poll();
                    if previous & SPAWNED == 0 && state::is_releasable(previous & !RUN_QUEUED) {
                        releases.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        let waker = {
            let model_ = model_.clone();
            thread::spawn(move || model_.wake(node))
        };
        executor.join().unwrap();
        waker.join().unwrap();
        let mut entry = model_.queue.take_all();
        while let Some(current) = NonNull::new(entry) {
            // SAFETY: a live node of the chain just taken.
            entry = unsafe { RunQueue::next(current) };
            let previous = node.state.begin_poll();
            assert_eq!(previous & SPAWNED, 0);
            if state::is_releasable(previous & !RUN_QUEUED) {
                releases.fetch_add(1, Ordering::SeqCst);
            }
        }
        assert_eq!(releases.load(Ordering::SeqCst), 1);
        assert_eq!(node.state.load() & (SPAWNED | RUN_QUEUED), 0);
    });
}

/// The executor's memory, for the shutdown models: every access made by a thread other than the
/// shutdown caller is a `touch`, and the shutdown caller `free`s it once shutdown returned (as the
/// echo driver frees the pool block holding its executor). Loom reports a touch that does not happen
/// before the free as a causality violation (a race on the cell); the flag also catches a touch
/// ordered after it.
struct Memory {
    cell: UnsafeCell<u8>,
    freed: AtomicBool,
}

impl Memory {
    fn new() -> Self {
        Self {
            cell: UnsafeCell::new(0),
            freed: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        assert!(
            !self.freed.load(Ordering::Relaxed),
            "the executor was touched after it was freed"
        );
        self.cell.with(|_| ());
    }

    fn free(&self) {
        self.freed.store(true, Ordering::Relaxed);
        self.cell.with_mut(|_| ());
    }
}

/// A synchronization KEVENT: a signal wakes the waiter or is kept (one at most) until it waits; no
/// spurious wake-up (loom's `Notify` has them, which would hide a missing signal). `set` touches the
/// executor's memory while it holds the event's lock, as `KeSetEvent` touches the KEVENT while it
/// holds the object's lock: the wait it satisfies returns after that (the guarantee WDM's on-stack
/// event pattern relies on), and `set` touches nothing afterwards.
struct Kevent {
    signalled: Mutex<bool>,
    changed: Condvar,
}

impl Kevent {
    fn new() -> Self {
        Self {
            signalled: Mutex::new(false),
            changed: Condvar::new(),
        }
    }

    fn set(&self, memory: &Memory) {
        let mut signalled = self.signalled.lock().unwrap();
        memory.touch();
        *signalled = true;
        self.changed.notify_one();
    }

    fn wait(&self) {
        let mut signalled = self.signalled.lock().unwrap();
        while !*signalled {
            signalled = self.changed.wait(signalled).unwrap();
        }
        *signalled = false;
    }
}

/// `spawns`: the executor accepts no more spawns (as in executor.rs).
const CLOSED: usize = 1 << (usize::BITS - 1);

/// The executor of the shutdown models: `Executor`'s queue, event, spawn count and memory, with
/// `thread_main`, `drop_everything`, `close`, `enqueue` and `admit_spawn` written out step by step
/// over the real `RunQueue` and `State` (executor.rs itself needs the kernel).
struct Executor {
    queue: RunQueue<Node>,
    event: Kevent,
    spawns: AtomicUsize,
    memory: Memory,
}

impl Executor {
    fn new() -> Self {
        Self {
            queue: RunQueue::new(),
            event: Kevent::new(),
            spawns: AtomicUsize::new(0),
            memory: Memory::new(),
        }
    }

    fn is_closed(&self) -> bool {
        self.spawns.load(Ordering::Acquire) & CLOSED != 0
    }

    /// `Executor::enqueue`: the push and the signal are accesses to the executor.
    fn enqueue(&self, node: &Node) {
        self.memory.touch();
        // SAFETY: the caller made the RUN_QUEUED 0 -> 1 change: the node is in no queue.
        if unsafe { self.queue.push(NonNull::from(node)) } {
            self.event.set(&self.memory);
        }
    }

    /// `waker::wake_task`.
    fn wake(&self, node: &Node) {
        if node.state.try_wake() {
            self.enqueue(node);
        }
    }

    /// `Executor::admit_spawn`, then `TaskPool::spawn_task`. A refused spawn's read of the count is
    /// not modelled as a touch: keeping calls through a `Spawner` away from the free is the owner's
    /// part of the contract (see `Executor::shutdown`).
    fn spawn(&self, node: &Node) {
        let mut spawns = self.spawns.load(Ordering::Relaxed);
        loop {
            if spawns & CLOSED != 0 {
                return;
            }
            match self
                .spawns
                .compare_exchange(spawns, spawns + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => spawns = now,
            }
        }
        self.memory.touch();
        node.state.spawn(false, true);
        self.enqueue(node);
    }

    /// `Executor::close`, called by `shutdown`.
    fn close(&self) {
        self.spawns.fetch_or(CLOSED, Ordering::AcqRel);
        if self.queue.wake_sleeper() {
            self.event.set(&self.memory);
        }
    }

    /// `Executor::run_queued` + `run_task` for detached tasks whose polls return `Pending`; while
    /// closing, futures are dropped and `owed` tracks entries still to come.
    fn run_queued(&self, received: &mut usize, mut closing: Option<&mut isize>) -> usize {
        let mut node = self.queue.take_all();
        let mut count = 0;
        while let Some(current) = NonNull::new(node) {
            // SAFETY: a live node of the chain just taken.
            node = unsafe { RunQueue::next(current) };
            // SAFETY: nodes outlive the model.
            let task = unsafe { current.as_ref() };
            let previous = task.state.begin_poll();
            if previous & state::NEW != 0 {
                *received += 1;
            }
            if previous & SPAWNED == 0 {
                if let Some(owed) = closing.as_deref_mut() {
                    *owed -= 1;
                }
            } else if let Some(owed) = closing.as_deref_mut()
                && task.state.complete(false) & RUN_QUEUED != 0
            {
                *owed += 1;
            }
            count += 1;
        }
        count
    }

    /// `Executor::thread_main` then `drop_everything`, over the tasks in `nodes`.
    fn thread_main(&self, nodes: &[&Node]) {
        let mut received = 0;
        loop {
            self.run_queued(&mut received, None);
            if self.is_closed() {
                break;
            }
            if !self.queue.is_empty() {
                continue;
            }
            self.queue.wait_for_push(|| self.is_closed(), || self.event.wait());
        }
        // Phase 1: every admitted spawn arrives.
        let admitted = self.spawns.load(Ordering::Acquire) & !CLOSED;
        loop {
            while self.run_queued(&mut received, Some(&mut 0)) != 0 {}
            if received == admitted {
                break;
            }
            self.queue.wait_for_push(|| false, || self.event.wait());
        }
        // Phase 2: drop the live tasks, count the entries owed by wakes.
        let mut owed: isize = 0;
        for node in nodes {
            let word = node.state.load();
            if word & SPAWNED != 0 {
                if node.state.complete(false) & RUN_QUEUED != 0 {
                    owed += 1;
                }
            } else if word & RUN_QUEUED != 0 {
                owed += 1;
            }
        }
        // Phase 3: drain them.
        loop {
            while self.run_queued(&mut received, Some(&mut owed)) != 0 {}
            if owed <= 0 {
                break;
            }
            self.queue.wait_for_push(|| false, || self.event.wait());
        }
    }
}

/// Runs the executor thread and the other threads' `actions`, then `shutdown` (close, wait for the
/// thread's end) and frees the executor's memory while the other threads may still be running.
fn shutdown_while(nodes: Vec<&'static Node>, actions: Vec<fn(&Executor, &'static Node)>) {
    let executor = Arc::new(Executor::new());
    let thread = {
        let (executor, nodes) = (executor.clone(), nodes.clone());
        thread::spawn(move || executor.thread_main(&nodes))
    };
    let others: Vec<_> = actions
        .into_iter()
        .zip(nodes)
        .map(|(action, node)| {
            let executor = executor.clone();
            thread::spawn(move || action(&executor, node))
        })
        .collect();
    executor.close();
    thread.join().unwrap();
    // `shutdown` returned: the owner frees the executor.
    executor.memory.free();
    for other in others {
        other.join().unwrap();
    }
}

/// A task waiting on its waker (spawned, polled once, not queued).
fn idle_task() -> &'static Node {
    let node = spawned_node();
    node.state.begin_poll();
    node
}

/// A slot claimed by a spawner that has not spawned it yet.
fn claimed_slot() -> &'static Node {
    leak(Node {
        state: State::new(),
        link: AtomicPtr::new(ptr::null_mut()),
    })
}

/// A completion routine wakes a task while the executor shuts down: whatever the interleaving, its
/// push and its `KeSetEvent` are over before `shutdown` returns (the thread's last wait consumed
/// the signal), so the executor may be freed.
#[test]
fn loom_no_waker_touches_the_executor_after_shutdown_returns() {
    model(|| shutdown_while(std::vec![idle_task()], std::vec![|e, node| e.wake(node)]));
}

/// The same for a spawn from another thread: admitted before the close, it is waited for; refused
/// after it, it never reaches the queue or the event.
#[test]
fn loom_no_spawner_touches_the_executor_after_shutdown_returns() {
    model(|| shutdown_while(std::vec![claimed_slot()], std::vec![|e, node| e.spawn(node)]));
}

/// A waker and a spawner at once: two producers can each replace one sleeping mark.
#[test]
fn loom_no_waker_nor_spawner_touches_the_executor_after_shutdown_returns() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        shutdown_while(
            std::vec![idle_task(), claimed_slot()],
            std::vec![|e, node| e.wake(node), |e, node| e.spawn(node)],
        )
    });
}
