//! This crate's executor, run on the calling thread.

use super::{BATCH, BATCH_OPS, Parked, Ready1, Results, SELF_WAKE_OPS, SPAWN_OPS, SelfWake};
use crate::harness::{count_allocations, ns_per_op};
use executor::{Executor, TaskPool};

static EXECUTOR: Executor = Executor::new();
static READY: TaskPool<8, BATCH> = TaskPool::new();
static SELF_WAKE: TaskPool<8, 1> = TaskPool::new();
static PARKED: TaskPool<8, BATCH> = TaskPool::new();

pub fn measure() -> Results {
    super::reset();
    let runner = EXECUTOR.local_runner().unwrap();
    let run = || {
        runner.run_until_idle();
    };
    // The runner's spawner, as embassy's (non-Send) Spawner on the thread that polls.
    let spawner = runner.spawner();
    let spawn_one = |ops: usize| {
        for i in 0..ops {
            READY.spawn_detached(spawner, Ready1(i as u64)).unwrap();
            run();
        }
    };
    let spawn_poll_1 = ns_per_op(SPAWN_OPS, spawn_one);
    let (allocations, _) = count_allocations(|| spawn_one(SPAWN_OPS));
    let spawn_poll_256 = ns_per_op(BATCH_OPS, |ops| {
        for batch in 0..ops / BATCH {
            for i in 0..BATCH {
                READY.spawn_detached(spawner, Ready1((batch + i) as u64)).unwrap();
            }
            run();
        }
    });
    let self_wake_poll = ns_per_op(SELF_WAKE_OPS, |ops| {
        SELF_WAKE
            .spawn_detached(spawner, SelfWake { left: ops as u32 })
            .unwrap();
        run();
    });
    for _ in 0..BATCH {
        PARKED.spawn_detached(spawner, Parked { registered: false }).unwrap();
    }
    run();
    let external_wake_poll = super::external_wake_poll(run);
    Results {
        name: "ours",
        spawn_poll_1,
        spawn_poll_256,
        self_wake_poll,
        external_wake_poll,
        bytes_per_task: TaskPool::<8, 1>::SLOT_BYTES,
        allocations_per_spawn: allocations as f64 / SPAWN_OPS as f64,
    }
}

pub fn profile_spawn() {
    let runner = EXECUTOR.local_runner().unwrap();
    let spawner = runner.spawner();
    let ns = ns_per_op(SPAWN_OPS * 50, |ops| {
        for i in 0..ops {
            READY.spawn_detached(spawner, Ready1(i as u64)).unwrap();
            runner.run_until_idle();
        }
    });
    println!("spawn+poll, LocalSpawner: {ns:.1} ns");
    let shared = EXECUTOR.spawner();
    let ns = ns_per_op(SPAWN_OPS * 50, |ops| {
        for i in 0..ops {
            READY.spawn_detached(shared, Ready1(i as u64)).unwrap();
            runner.run_until_idle();
        }
    });
    println!("spawn+poll, Spawner (admission count + shared run queue): {ns:.1} ns");
}
