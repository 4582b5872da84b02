//! `bench executor`: this crate's executor against embassy-executor, async-task and tokio's
//! current_thread runtime, on the same futures with the same harness.
//!
//! Metrics (each the median of `harness::RUNS` runs):
//! * spawn+poll, batch 1: spawn one task that completes on its first poll, run it; repeat.
//! * spawn+poll, batch 256: spawn 256 such tasks (the pool then has 256 busy slots), run them all.
//! * self-wake+poll: one task wakes itself and returns `Pending`, again and again; cost per poll.
//! * wake from another thread + poll: 256 parked tasks; another thread wakes all of them, then the
//!   executor polls them; cost per task.
//! * bytes per task: the memory one task of the batch futures occupies (slot or heap block).
//! * heap allocations per spawn.
//!
//! Our executor runs on the calling thread (`run_until_idle`), as embassy's raw executor does with
//! `poll`; its wakes then never signal the KEVENT (the executor thread is not asleep).

mod async_task_peer;
mod embassy_peer;
mod ours;
mod tokio_peer;

use crate::figures::{Figure, median, ratio};
use crate::harness::ns_per_op;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

/// Operations per measured run.
pub const SPAWN_OPS: usize = 100_000;
pub const BATCH: usize = 256;
pub const BATCH_OPS: usize = BATCH * 400;
pub const SELF_WAKE_OPS: usize = 200_000;
pub const EXTERNAL_ROUNDS: usize = 400;

/// What one executor scored.
pub struct Results {
    pub name: &'static str,
    pub spawn_poll_1: f64,
    pub spawn_poll_256: f64,
    pub self_wake_poll: f64,
    pub external_wake_poll: f64,
    pub bytes_per_task: usize,
    pub allocations_per_spawn: f64,
}

/// Tasks of the batch benchmarks completed so far (a plain load + store: the executors under test
/// poll on one thread, and every peer pays the same).
pub static COMPLETED: AtomicUsize = AtomicUsize::new(0);

fn count_completion() {
    COMPLETED.store(COMPLETED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Completes on its first poll.
pub struct Ready1(pub u64);

impl Future for Ready1 {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        std::hint::black_box(self.0);
        count_completion();
        Poll::Ready(())
    }
}

/// Wakes itself and stays pending `left` times, then completes.
pub struct SelfWake {
    pub left: u32,
}

impl Future for SelfWake {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.left == 0 {
            count_completion();
            return Poll::Ready(());
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Wakers of the parked tasks, collected on their first poll.
pub static PARKED_WAKERS: std::sync::Mutex<Vec<Waker>> = std::sync::Mutex::new(Vec::new());
/// Polls of parked tasks after their first.
pub static PARKED_POLLS: AtomicUsize = AtomicUsize::new(0);
/// Tells parked tasks to complete (at the end of the benchmark).
pub static RELEASE_PARKED: AtomicBool = AtomicBool::new(false);

/// Wake from another thread + poll, for an executor driven by `run` (poll until idle) whose
/// [`BATCH`] [`Parked`] tasks have been spawned and polled once: each round the waker thread wakes
/// them all and `run` polls them. Afterwards the tasks are released and run to completion.
pub fn external_wake_poll(mut run: impl FnMut()) -> f64 {
    let mut waker_thread = WakerThread::start();
    let ns = ns_per_op(EXTERNAL_ROUNDS * BATCH, |ops| {
        for _ in 0..ops / BATCH {
            waker_thread.wake_all();
            run();
        }
    });
    RELEASE_PARKED.store(true, Ordering::SeqCst);
    waker_thread.wake_all();
    run();
    drop(waker_thread);
    assert!(PARKED_POLLS.load(Ordering::SeqCst) >= EXTERNAL_ROUNDS * BATCH);
    ns
}

/// Stays pending until [`RELEASE_PARKED`]; hands its waker out on the first poll.
pub struct Parked {
    pub registered: bool,
}

impl Future for Parked {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if RELEASE_PARKED.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        if self.registered {
            PARKED_POLLS.store(PARKED_POLLS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else {
            self.registered = true;
            PARKED_WAKERS.lock().unwrap().push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A thread that wakes every parked task when asked, round after round.
pub struct WakerThread {
    round: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
    next: usize,
}

impl WakerThread {
    /// Takes the wakers collected in [`PARKED_WAKERS`].
    pub fn start() -> Self {
        let wakers = std::mem::take(&mut *PARKED_WAKERS.lock().unwrap());
        assert_eq!(wakers.len(), BATCH);
        let round = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (round, done) = (round.clone(), done.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                loop {
                    let now = round.load(Ordering::Acquire);
                    if now == usize::MAX {
                        return;
                    }
                    if now == last {
                        std::hint::spin_loop();
                        continue;
                    }
                    for waker in &wakers {
                        waker.wake_by_ref();
                    }
                    last = now;
                    done.store(now, Ordering::Release);
                }
            })
        };
        Self {
            round,
            done,
            thread: Some(thread),
            next: 1,
        }
    }

    /// Has the other thread wake every parked task, and waits until it has.
    pub fn wake_all(&mut self) {
        let round = self.next;
        self.next += 1;
        self.round.store(round, Ordering::Release);
        while self.done.load(Ordering::Acquire) != round {
            std::hint::spin_loop();
        }
    }
}

impl Drop for WakerThread {
    fn drop(&mut self) {
        self.round.store(usize::MAX, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// How many times the whole set of executors is measured, round-robin; each metric reported is the
/// median over the rounds of the per-round medians, so that load from other processes, which
/// varies over time, does not fall on one executor only.
const ROUNDS: usize = 3;

/// Runs every executor's benchmark, prints the table, and returns the ratios to embassy-executor.
pub fn run() -> Vec<Figure> {
    let measures: [fn() -> Results; 4] = [
        ours::measure,
        embassy_peer::measure,
        async_task_peer::measure,
        tokio_peer::measure,
    ];
    let mut rounds: Vec<Vec<Results>> = (0..measures.len()).map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for (peer, measure) in measures.iter().enumerate() {
            rounds[peer].push(measure());
        }
    }
    let results: Vec<Results> = rounds
        .into_iter()
        .map(|runs| {
            let pick = |f: fn(&Results) -> f64| median(runs.iter().map(f).collect());
            Results {
                name: runs[0].name,
                spawn_poll_1: pick(|r| r.spawn_poll_1),
                spawn_poll_256: pick(|r| r.spawn_poll_256),
                self_wake_poll: pick(|r| r.self_wake_poll),
                external_wake_poll: pick(|r| r.external_wake_poll),
                bytes_per_task: runs[0].bytes_per_task,
                allocations_per_spawn: pick(|r| r.allocations_per_spawn),
            }
        })
        .collect();
    println!(
        "{:<22} {:>14} {:>16} {:>16} {:>18} {:>14} {:>18}",
        "executor",
        "spawn+poll b1",
        "spawn+poll b256",
        "self-wake+poll",
        "ext. wake+poll",
        "bytes/task",
        "allocs/spawn"
    );
    for r in &results {
        println!(
            "{:<22} {:>11.1} ns {:>13.1} ns {:>13.1} ns {:>15.1} ns {:>14} {:>18.2}",
            r.name,
            r.spawn_poll_1,
            r.spawn_poll_256,
            r.self_wake_poll,
            r.external_wake_poll,
            r.bytes_per_task,
            r.allocations_per_spawn
        );
    }
    let (ours, embassy) = (&results[0], &results[1]);
    vec![
        Figure::ratio("spawn_poll_batch1", ratio(ours.spawn_poll_1, embassy.spawn_poll_1)),
        Figure::ratio(
            "spawn_poll_batch256",
            ratio(ours.spawn_poll_256, embassy.spawn_poll_256),
        ),
        Figure::ratio("self_wake_poll", ratio(ours.self_wake_poll, embassy.self_wake_poll)),
        Figure::ratio(
            "external_wake_poll",
            ratio(ours.external_wake_poll, embassy.external_wake_poll),
        ),
        Figure::ratio(
            "bytes_per_task",
            ratio(ours.bytes_per_task as f64, embassy.bytes_per_task as f64),
        ),
        Figure::ratio(
            "allocations_per_spawn",
            ratio(ours.allocations_per_spawn, embassy.allocations_per_spawn),
        ),
    ]
}

/// Resets the shared counters between executors.
pub fn reset() {
    COMPLETED.store(0, Ordering::SeqCst);
    PARKED_POLLS.store(0, Ordering::SeqCst);
    RELEASE_PARKED.store(false, Ordering::SeqCst);
    PARKED_WAKERS.lock().unwrap().clear();
}

/// Our spawn+poll loop alone, for `perf record`.
pub fn profile_spawn() {
    ours::profile_spawn();
}
