//! embassy-executor's raw executor, polled on the calling thread; its pender does nothing (the
//! loop polls anyway), the equivalent of our executor's skipped KEVENT signal.

use super::{BATCH, BATCH_OPS, Parked, Ready1, Results, SELF_WAKE_OPS, SPAWN_OPS, SelfWake};
use crate::harness::{count_allocations, ns_per_op};
use embassy_executor::raw::{Executor, TaskPool, TaskStorage};

/// The pender embassy-executor calls when a task is woken; the benchmark polls in a loop instead.
#[unsafe(export_name = "__pender")]
fn pender(_context: *mut ()) {}

static READY: TaskPool<Ready1, BATCH> = TaskPool::new();
static SELF_WAKE: TaskPool<SelfWake, 1> = TaskPool::new();
static PARKED: TaskPool<Parked, BATCH> = TaskPool::new();

pub fn measure() -> Results {
    super::reset();
    let executor: &'static Executor = Box::leak(Box::new(Executor::new(std::ptr::null_mut())));
    let spawner = executor.spawner();
    // SAFETY: `poll` is only called from this thread, never re-entrantly.
    let run = || unsafe { executor.poll() };
    let spawn_one = |ops: usize| {
        for i in 0..ops {
            spawner.spawn(READY.spawn(|| Ready1(i as u64)).unwrap());
            run();
        }
    };
    let spawn_poll_1 = ns_per_op(SPAWN_OPS, spawn_one);
    let (allocations, _) = count_allocations(|| spawn_one(SPAWN_OPS));
    let spawn_poll_256 = ns_per_op(BATCH_OPS, |ops| {
        for batch in 0..ops / BATCH {
            for i in 0..BATCH {
                spawner.spawn(READY.spawn(|| Ready1((batch + i) as u64)).unwrap());
            }
            run();
        }
    });
    let self_wake_poll = ns_per_op(SELF_WAKE_OPS, |ops| {
        spawner.spawn(SELF_WAKE.spawn(|| SelfWake { left: ops as u32 }).unwrap());
        // embassy polls each queued task once per `poll`: one call per self-wake.
        for _ in 0..=ops {
            run();
        }
    });
    for _ in 0..BATCH {
        spawner.spawn(PARKED.spawn(|| Parked { registered: false }).unwrap());
    }
    run();
    let external_wake_poll = super::external_wake_poll(run);
    Results {
        name: "embassy-executor 0.10",
        spawn_poll_1,
        spawn_poll_256,
        self_wake_poll,
        external_wake_poll,
        bytes_per_task: size_of::<TaskStorage<Ready1>>(),
        allocations_per_spawn: allocations as f64 / SPAWN_OPS as f64,
    }
}
