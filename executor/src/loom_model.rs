//! Loom model of the lock-free core: the state word, the run queue with its sleep protocol, the
//! free list, the pool registry against shutdown's scan, and the shutdown handshake (after which the executor's memory may be freed). Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p wdm-async-executor --release --lib loom
//! ```
//!
//! Under `cfg(loom)` the crate builds only these modules, on loom's atomics (see `sync.rs`), so the
//! model explores every interleaving (and every weak-memory outcome loom models) of the real code.

use crate::free_list::FreeList;
use crate::registry::{Registrable, Registry};
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

/// Concurrent claims and releases never hand one slot to two owners, and a claimer reads the link
/// its releaser stored (the model fails with the list's orderings weakened to Relaxed). Each thread
/// holds one slot at a time, which cannot produce ABA: see the next model.
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

/// The ABA case the tag exists for, which needs a thread that holds two slots while the first goes
/// back on top (the model above never holds two): each thread claims two slots and gives the first
/// back while the second is still in use. So one thread's claim can stall between reading
/// `head = a, next(a) = b` and its compare-exchange while the other claims `a` and `b` and gives `a`
/// back; without the tag that compare-exchange succeeds and installs `b`, still in use (this model
/// fails with the tag increments removed from `free_list.rs`; the one above does not).
#[test]
fn loom_the_free_list_tag_defeats_aba() {
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
        let claim = |list: &FreeList, links: &[crate::sync::AtomicU32], owned: &[AtomicBool]| {
            let i = list.pop(CAPACITY, |i| links[i as usize].load(Ordering::Relaxed))?;
            assert!(
                !owned[i as usize].swap(true, Ordering::SeqCst),
                "slot {i} handed out twice"
            );
            Some(i)
        };
        let give = |list: &FreeList, links: &[crate::sync::AtomicU32], owned: &[AtomicBool], i: u32| {
            owned[i as usize].store(false, Ordering::SeqCst);
            list.push(i, |i, next| links[i as usize].store(next, Ordering::Relaxed));
        };
        let other = {
            let (list, links, owned) = (list.clone(), links.clone(), owned.clone());
            thread::spawn(move || {
                let first = claim(&list, &links, &owned);
                let second = claim(&list, &links, &owned);
                for i in [first, second].into_iter().flatten() {
                    give(&list, &links, &owned, i);
                }
            })
        };
        // Holds two slots and gives the first back before the second, so the first is on top
        // again while the second is still in use.
        let first = claim(&list, &links, &owned);
        let second = claim(&list, &links, &owned);
        if let Some(i) = first {
            give(&list, &links, &owned, i);
        }
        thread::yield_now();
        if let Some(i) = second {
            give(&list, &links, &owned, i);
        }
        other.join().unwrap();
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

/// A pool as the registry models see it.
struct ModelPool {
    stride: crate::sync::AtomicUsize,
    next_registered: AtomicPtr<ModelPool>,
}

impl Registrable for ModelPool {
    fn stride(&self) -> &crate::sync::AtomicUsize {
        &self.stride
    }
    fn next_registered(&self) -> &AtomicPtr<Self> {
        &self.next_registered
    }
}

fn new_pool() -> &'static ModelPool {
    leak(ModelPool {
        stride: crate::sync::AtomicUsize::new(0),
        next_registered: AtomicPtr::new(ptr::null_mut()),
    })
}

/// `PoolCore::register` (without the IRQL raise, which only bounds how long the window lasts),
/// then the task's hand-over to the executor: the run queue's push (Release) as a flag.
fn spawn_in(registry: &Registry<ModelPool>, pool: &'static ModelPool, delivered: &AtomicBool) {
    if Registry::needs_registering(pool) {
        // SAFETY: the pool is leaked, so never moved nor freed.
        unsafe { registry.register(pool, 72) };
    }
    delivered.store(true, Ordering::Release);
}

/// Pool registration against shutdown's scan: thread A makes a pool's first spawn (its task goes
/// to some other executor), thread B spawns in the same pool and its task reaches the executor,
/// which then scans. With the scan's wait (`Registry::for_each`) it always finds B's pool; without
/// it (`scan_waits == false`: `Registry::walk` alone) B can see the stride A set and be received
/// while A has not linked the pool yet.
fn scan_after_a_racing_registration(scan_waits: bool) {
    model(move || {
        let registry = Arc::new(Registry::<ModelPool>::new());
        let pool = new_pool();
        let a = {
            let registry = registry.clone();
            thread::spawn(move || spawn_in(&registry, pool, &AtomicBool::new(false)))
        };
        let delivered = Arc::new(AtomicBool::new(false));
        let b = {
            let (registry, delivered) = (registry.clone(), delivered.clone());
            thread::spawn(move || spawn_in(&registry, pool, &delivered))
        };
        // The executor: phase 1 receives B's task (the drain's Acquire), then phase 2 scans.
        while !delivered.load(Ordering::Acquire) {
            thread::yield_now();
        }
        let mut found = false;
        let visit = |p: *const ModelPool| found |= ptr::eq(p, pool);
        if scan_waits {
            registry.for_each(|_| thread::yield_now(), visit);
        } else {
            registry.walk(visit);
        }
        assert!(found, "the scan missed the pool of a received task");
        assert_ne!(pool.stride.load(Ordering::Relaxed), 0);
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn loom_a_scan_finds_the_pool_of_every_received_task() {
    scan_after_a_racing_registration(true);
}

/// The negative control: the model catches the race when the scan does not wait.
#[test]
#[should_panic(expected = "the scan missed the pool of a received task")]
fn loom_a_scan_that_does_not_wait_can_miss_a_pool() {
    scan_after_a_racing_registration(false);
}

/// Two pools registered at once by their first spawns, both of whose tasks reach the executor:
/// the list's compare-exchange loses neither, and the scan finds both, each once.
#[test]
fn loom_concurrent_registrations_lose_no_pool() {
    model(|| {
        let registry = Arc::new(Registry::<ModelPool>::new());
        let pools = [new_pool(), new_pool()];
        let spawners: Vec<_> = pools
            .iter()
            .map(|&pool| {
                let (registry, delivered) = (registry.clone(), Arc::new(AtomicBool::new(false)));
                let handle = {
                    let delivered = delivered.clone();
                    thread::spawn(move || spawn_in(&registry, pool, &delivered))
                };
                (handle, delivered)
            })
            .collect();
        for (_, delivered) in &spawners {
            while !delivered.load(Ordering::Acquire) {
                thread::yield_now();
            }
        }
        let mut seen = [0; 2];
        registry.for_each(
            |_| thread::yield_now(),
            |p| {
                for (count, &pool) in seen.iter_mut().zip(&pools) {
                    if ptr::eq(p, pool) {
                        *count += 1;
                    }
                }
            },
        );
        assert_eq!(seen, [1, 1], "each registered pool is found exactly once");
        for (handle, _) in spawners {
            handle.join().unwrap();
        }
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
