//! Loom model of the lock-free core: the state word, the run queue with its sleep protocol, and the
//! free list. Run with:
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
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::sync::{Arc, Notify};
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
