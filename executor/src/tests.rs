//! Tests of the executor core on the calling thread (`run_until_idle`): no kernel object is
//! involved, so they run unchanged under Miri. The system thread, KEVENT sleep, `block_on`, timers
//! and shutdown are tested on the host emulation in `tests/emulation.rs`.

use crate::{Executor, JoinError, JoinHandle, SpawnError, TaskPool};
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use std::sync::Mutex;
use std::sync::mpsc;
use std::vec::Vec;

/// Polls `handle` once with a no-op waker.
fn poll_handle<T>(handle: &mut JoinHandle<T>) -> Poll<Result<T, JoinError>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(handle).poll(&mut cx)
}

/// A future that stays pending until `release` is set, storing its waker in `waker`.
struct Gate {
    open: &'static AtomicBool,
    waker: &'static Mutex<Option<Waker>>,
}

impl Future for Gate {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.open.load(Ordering::Acquire) {
            return Poll::Ready(7);
        }
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Counts its drops.
struct DropCounter(&'static AtomicUsize);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn spawned_task_runs_and_its_output_is_joined() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 4> = TaskPool::new();
    let mut handle = POOL.spawn(EXECUTOR.spawner(), async { 40 + 2 }).unwrap();
    assert!(poll_handle(&mut handle).is_pending());
    assert_eq!(EXECUTOR.run_until_idle(), Ok(1));
    assert!(handle.is_finished());
    assert_eq!(poll_handle(&mut handle), Poll::Ready(Ok(42)));
    assert_eq!(poll_handle(&mut handle), Poll::Ready(Err(JoinError::AlreadyJoined)));
}

#[test]
fn a_full_pool_is_an_error_and_slots_are_reused() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 2> = TaskPool::new();
    static OPEN: AtomicBool = AtomicBool::new(false);
    static WAKER: Mutex<Option<Waker>> = Mutex::new(None);
    let gate = || Gate {
        open: &OPEN,
        waker: &WAKER,
    };
    let a = POOL.spawn(EXECUTOR.spawner(), gate()).unwrap();
    let b = POOL.spawn(EXECUTOR.spawner(), gate()).unwrap();
    assert_eq!(POOL.spawn(EXECUTOR.spawner(), gate()).err(), Some(SpawnError::PoolFull));
    EXECUTOR.run_until_idle().unwrap();
    OPEN.store(true, Ordering::Release);
    a.abort();
    drop(a);
    drop(b); // detached: completes when woken
    WAKER.lock().unwrap().take().unwrap().wake();
    EXECUTOR.run_until_idle().unwrap();
    // Both slots came back: many more spawns than slots succeed one after the other.
    for i in 0..10u32 {
        let mut handle = POOL.spawn(EXECUTOR.spawner(), async move { i }).unwrap();
        EXECUTOR.run_until_idle().unwrap();
        assert_eq!(poll_handle(&mut handle), Poll::Ready(Ok(i)));
    }
}

#[test]
fn a_task_woken_while_being_polled_is_polled_again() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 1> = TaskPool::new();
    static POLLS: AtomicUsize = AtomicUsize::new(0);
    let future = poll_fn(|cx| {
        if POLLS.fetch_add(1, Ordering::SeqCst) < 3 {
            cx.waker().wake_by_ref();
            // A second wake during the same poll must not queue the task twice.
            let clone = cx.waker().clone();
            clone.wake();
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    });
    POOL.spawn_detached(EXECUTOR.spawner(), future).unwrap();
    assert_eq!(EXECUTOR.run_until_idle(), Ok(4));
    assert_eq!(POLLS.load(Ordering::SeqCst), 4);
}

/// A batch runs oldest first: tasks are first polled in the order they were spawned, on the shared
/// queue and on a local runner's stack, and polled again in the order they were woken. Draining
/// either stack newest first (as it comes off the stack) fails both checks.
#[test]
fn tasks_are_polled_in_the_order_they_were_spawned_and_woken() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 8> = TaskPool::new();
    static POLLED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    static WAKERS: Mutex<Vec<(usize, Waker)>> = Mutex::new(Vec::new());
    // Pends on its first poll (leaving its waker), completes on its second; records both polls.
    fn task(id: usize) -> impl Future<Output = ()> + Send {
        let mut woken = false;
        poll_fn(move |cx| {
            POLLED.lock().unwrap().push(id);
            if woken {
                return Poll::Ready(());
            }
            woken = true;
            WAKERS.lock().unwrap().push((id, cx.waker().clone()));
            Poll::Pending
        })
    }
    let take_polled = || core::mem::take(&mut *POLLED.lock().unwrap());
    let wake_in = |order: &[usize]| {
        let mut wakers = core::mem::take(&mut *WAKERS.lock().unwrap());
        for id in order {
            let at = wakers.iter().position(|(w, _)| w == id).unwrap();
            wakers.swap_remove(at).1.wake();
        }
        assert!(wakers.is_empty());
    };

    for id in 0..4 {
        POOL.spawn_detached(EXECUTOR.spawner(), task(id)).unwrap();
    }
    assert_eq!(EXECUTOR.run_until_idle(), Ok(4));
    assert_eq!(take_polled(), [0, 1, 2, 3]);
    wake_in(&[2, 0, 3, 1]);
    assert_eq!(EXECUTOR.run_until_idle(), Ok(4));
    assert_eq!(take_polled(), [2, 0, 3, 1]);

    let runner = EXECUTOR.local_runner().unwrap();
    for id in 10..14 {
        POOL.spawn_detached(runner.spawner(), task(id)).unwrap();
    }
    assert_eq!(runner.run_until_idle(), 4);
    assert_eq!(take_polled(), [10, 11, 12, 13]);
    wake_in(&[13, 11, 10, 12]);
    assert_eq!(runner.run_until_idle(), 4);
    assert_eq!(take_polled(), [13, 11, 10, 12]);
}

#[test]
fn stale_wakes_of_finished_tasks_are_harmless() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 1> = TaskPool::new();
    static KEPT: Mutex<Option<Waker>> = Mutex::new(None);
    static SECOND_POLLS: AtomicUsize = AtomicUsize::new(0);
    POOL.spawn_detached(
        EXECUTOR.spawner(),
        poll_fn(|cx| {
            *KEPT.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(())
        }),
    )
    .unwrap();
    assert_eq!(EXECUTOR.run_until_idle(), Ok(1));
    let stale = KEPT.lock().unwrap().take().unwrap();
    // The task is gone: the wake does nothing.
    stale.wake_by_ref();
    assert_eq!(EXECUTOR.run_until_idle(), Ok(0));
    // The slot is reused by another task: a stale wake only causes one spurious poll of it.
    let mut handle = POOL
        .spawn(
            EXECUTOR.spawner(),
            poll_fn(|_| {
                if SECOND_POLLS.fetch_add(1, Ordering::SeqCst) == 2 {
                    Poll::Ready(5)
                } else {
                    Poll::Pending
                }
            }),
        )
        .unwrap();
    assert_eq!(EXECUTOR.run_until_idle(), Ok(1));
    stale.wake_by_ref();
    stale.wake_by_ref();
    assert_eq!(EXECUTOR.run_until_idle(), Ok(1));
    assert_eq!(SECOND_POLLS.load(Ordering::SeqCst), 2);
    stale.wake();
    assert_eq!(EXECUTOR.run_until_idle(), Ok(1));
    assert_eq!(poll_handle(&mut handle), Poll::Ready(Ok(5)));
}

#[test]
fn abort_drops_the_future_once_and_the_handle_reports_it() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 2> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let guard = DropCounter(&DROPS);
    let mut handle = POOL
        .spawn(EXECUTOR.spawner(), async move {
            let _guard = guard;
            core::future::pending::<()>().await;
        })
        .unwrap();
    EXECUTOR.run_until_idle().unwrap();
    assert_eq!(DROPS.load(Ordering::SeqCst), 0);
    handle.abort();
    handle.abort();
    assert!(
        poll_handle(&mut handle).is_pending(),
        "dropped on the executor, not by abort()"
    );
    assert_eq!(EXECUTOR.run_until_idle(), Ok(1));
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(poll_handle(&mut handle), Poll::Ready(Err(JoinError::Aborted)));
    assert_eq!(EXECUTOR.run_until_idle(), Ok(0));
}

#[test]
fn outputs_nobody_takes_are_dropped_exactly_once() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 4> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    // Detached before completion: dropped by the executor.
    drop(POOL.spawn(EXECUTOR.spawner(), async { DropCounter(&DROPS) }).unwrap());
    // Handle dropped after completion, output not taken: dropped by the handle.
    let handle = POOL.spawn(EXECUTOR.spawner(), async { DropCounter(&DROPS) }).unwrap();
    // Detached at spawn.
    POOL.spawn_detached(EXECUTOR.spawner(), async { DropCounter(&DROPS) })
        .unwrap();
    EXECUTOR.run_until_idle().unwrap();
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);
    drop(handle);
    assert_eq!(DROPS.load(Ordering::SeqCst), 3);
    // Every slot is free again.
    let handles: Vec<_> = (0..4)
        .map(|_| POOL.spawn(EXECUTOR.spawner(), async {}).unwrap())
        .collect();
    EXECUTOR.run_until_idle().unwrap();
    drop(handles);
}

#[test]
fn a_join_handle_awaited_in_another_task_is_woken() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<128, 4> = TaskPool::new();
    static OPEN: AtomicBool = AtomicBool::new(false);
    static WAKER: Mutex<Option<Waker>> = Mutex::new(None);
    let inner = POOL
        .spawn(
            EXECUTOR.spawner(),
            Gate {
                open: &OPEN,
                waker: &WAKER,
            },
        )
        .unwrap();
    let mut outer = POOL
        .spawn(EXECUTOR.spawner(), async move { inner.await.map(|v| v * 2) })
        .unwrap();
    EXECUTOR.run_until_idle().unwrap();
    assert!(poll_handle(&mut outer).is_pending());
    OPEN.store(true, Ordering::Release);
    WAKER.lock().unwrap().take().unwrap().wake();
    EXECUTOR.run_until_idle().unwrap();
    assert_eq!(poll_handle(&mut outer), Poll::Ready(Ok(Ok(14))));
}

#[test]
fn tasks_spawn_tasks_and_executors_run_side_by_side() {
    static FIRST: Executor = Executor::new();
    static SECOND: Executor = Executor::new();
    static POOL: TaskPool<256, 8> = TaskPool::new();
    let second = SECOND.spawner();
    let mut handle = POOL
        .spawn(FIRST.spawner(), async move {
            let child = POOL.spawn(second, async { 5u32 }).unwrap();
            child.await.unwrap() + 1
        })
        .unwrap();
    // The child runs on SECOND only.
    assert_eq!(FIRST.run_until_idle(), Ok(1));
    assert_eq!(FIRST.run_until_idle(), Ok(0));
    assert_eq!(SECOND.run_until_idle(), Ok(1));
    assert_eq!(FIRST.run_until_idle(), Ok(1));
    assert_eq!(poll_handle(&mut handle), Poll::Ready(Ok(6)));
}

#[test]
fn wakes_from_other_threads_are_never_lost_or_doubled() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 8> = TaskPool::new();
    static POLLS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
    const ROUNDS: usize = if cfg!(miri) { 3 } else { 200 };
    let (sender, receiver) = mpsc::channel::<(usize, Waker)>();
    let mut handles = Vec::new();
    for (i, polls) in POLLS.iter().enumerate() {
        let sender = sender.clone();
        handles.push(
            POOL.spawn(
                EXECUTOR.spawner(),
                poll_fn(move |cx| {
                    let n = polls.fetch_add(1, Ordering::SeqCst);
                    if n == ROUNDS {
                        return Poll::Ready(n);
                    }
                    sender.send((i, cx.waker().clone())).unwrap();
                    Poll::Pending
                }),
            )
            .unwrap(),
        );
    }
    drop(sender);
    // Two waker threads, each waking what it receives twice (the second wake must be a no-op or a
    // harmless extra poll, never a double enqueue).
    let to_wakers = std::sync::Arc::new(Mutex::new(receiver));
    let wakers: Vec<_> = (0..2)
        .map(|_| {
            let queue = to_wakers.clone();
            std::thread::spawn(move || {
                loop {
                    let next = queue.lock().unwrap().recv();
                    let Ok((_, waker)) = next else { return };
                    waker.wake_by_ref();
                    waker.wake();
                }
            })
        })
        .collect();
    let mut finished = 0;
    let mut spins = 0u64;
    while finished < handles.len() {
        EXECUTOR.run_until_idle().unwrap();
        finished = handles.iter().filter(|h| h.is_finished()).count();
        spins += 1;
        assert!(spins < 50_000_000, "wakes were lost");
        std::thread::yield_now();
    }
    for mut handle in handles {
        match poll_handle(&mut handle) {
            Poll::Ready(Ok(n)) => assert_eq!(n, ROUNDS),
            other => panic!("unexpected {other:?}"),
        }
    }
    for waker in wakers {
        waker.join().unwrap();
    }
}

#[test]
fn spawning_from_several_threads_claims_distinct_slots() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 16> = TaskPool::new();
    static SUM: AtomicUsize = AtomicUsize::new(0);
    const PER_THREAD: usize = if cfg!(miri) { 4 } else { 8 };
    let threads: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let value = t * 100 + i;
                    POOL.spawn_detached(EXECUTOR.spawner(), async move {
                        SUM.fetch_add(value, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(EXECUTOR.run_until_idle(), Ok(2 * PER_THREAD));
    let expected: usize = (0..2).flat_map(|t| (0..PER_THREAD).map(move |i| t * 100 + i)).sum();
    assert_eq!(SUM.load(Ordering::SeqCst), expected);
}

#[test]
fn slot_cost_is_header_plus_storage() {
    assert_eq!(TaskPool::<64, 1>::SLOT_BYTES, 32 + 64);
    assert_eq!(TaskPool::<20, 1>::SLOT_BYTES, 32 + 24);
    assert_eq!(TaskPool::<20, 1>::MAX_JOINABLE, 8);
    assert_eq!(TaskPool::<8, 1>::MAX_JOINABLE, 0);
}

/// A new pool is all zero bytes, so a `static` one goes to the zero-fill `.bss` section and costs
/// the driver's file nothing. Checked on a `static` (what drivers declare) and on a local value.
#[test]
fn a_new_pool_is_all_zero_bytes() {
    // A storage size that is a multiple of 8 leaves no padding in the slots, whose bytes would not
    // be initialised (and reading them would be undefined behaviour, which Miri reports).
    type Pool = TaskPool<40, 3>;
    const { assert!(Pool::SLOT_BYTES == 32 + 40) };
    static POOL: Pool = TaskPool::new();
    fn all_zero(pool: &Pool) -> bool {
        // SAFETY: the pool is not in use (no spawn), has no padding (asserted above and in pool.rs),
        // and every byte of a new pool is initialised, so it can be read as `u8`s.
        let bytes =
            unsafe { std::slice::from_raw_parts(ptr::from_ref(pool).cast::<u8>(), core::mem::size_of::<Pool>()) };
        bytes.iter().all(|&byte| byte == 0)
    }
    assert!(all_zero(&POOL));
    let fresh: Pool = TaskPool::new();
    assert!(all_zero(&fresh));
    // A non-zero byte is seen: the check can fail.
    static USED: Pool = TaskPool::new();
    static EXECUTOR: Executor = Executor::new();
    USED.spawn_detached(EXECUTOR.spawner(), async {}).unwrap();
    assert_eq!(EXECUTOR.run_until_idle(), Ok(1));
    assert!(!all_zero(&USED));
}

#[test]
fn a_local_runner_spawns_without_atomics_and_excludes_other_pollers() {
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<64, 4> = TaskPool::new();
    static RAN: AtomicUsize = AtomicUsize::new(0);
    let runner = EXECUTOR.local_runner().unwrap();
    assert_eq!(EXECUTOR.run_until_idle().err(), Some(crate::ExecutorError::Busy));
    assert_eq!(EXECUTOR.local_runner().err(), Some(crate::ExecutorError::Busy));
    let local = runner.spawner();
    let mut joined = POOL.spawn(local, async { 3 }).unwrap();
    POOL.spawn_detached(local, async {
        RAN.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    // A task spawned from another thread meanwhile goes through the shared queue.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            POOL.spawn_detached(EXECUTOR.spawner(), async {
                RAN.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        });
    });
    assert_eq!(runner.run_until_idle(), 3);
    assert_eq!(RAN.load(Ordering::SeqCst), 2);
    assert_eq!(poll_handle(&mut joined), Poll::Ready(Ok(3)));
    drop(runner);
    assert_eq!(EXECUTOR.run_until_idle(), Ok(0));
}
