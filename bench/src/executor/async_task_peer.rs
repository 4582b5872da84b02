//! async-task with the simplest runner: a mutex-protected Vec of runnables, drained in batches.

use super::{BATCH, BATCH_OPS, Parked, Ready1, Results, SELF_WAKE_OPS, SPAWN_OPS, SelfWake};
use crate::harness::{count_allocations, ns_per_op};
use async_task::Runnable;
use std::future::Future;
use std::sync::Mutex;

static QUEUE: Mutex<Vec<Runnable>> = Mutex::new(Vec::new());

fn schedule(runnable: Runnable) {
    QUEUE.lock().unwrap().push(runnable);
}

fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
    let (runnable, task) = async_task::spawn(future, schedule);
    task.detach();
    runnable.schedule();
}

fn run() {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        std::mem::swap(&mut batch, &mut *QUEUE.lock().unwrap());
        if batch.is_empty() {
            return;
        }
        for runnable in batch.drain(..) {
            runnable.run();
        }
    }
}

pub fn measure() -> Results {
    super::reset();
    QUEUE.lock().unwrap().reserve(BATCH * 2);
    let spawn_one = |ops: usize| {
        for i in 0..ops {
            spawn(Ready1(i as u64));
            run();
        }
    };
    let spawn_poll_1 = ns_per_op(SPAWN_OPS, spawn_one);
    let (allocations, _) = count_allocations(|| spawn_one(SPAWN_OPS));
    let (_, bytes) = count_allocations(|| spawn(Ready1(0)));
    run();
    let spawn_poll_256 = ns_per_op(BATCH_OPS, |ops| {
        for batch in 0..ops / BATCH {
            for i in 0..BATCH {
                spawn(Ready1((batch + i) as u64));
            }
            run();
        }
    });
    let self_wake_poll = ns_per_op(SELF_WAKE_OPS, |ops| {
        spawn(SelfWake { left: ops as u32 });
        run();
    });
    for _ in 0..BATCH {
        spawn(Parked { registered: false });
    }
    run();
    let external_wake_poll = super::external_wake_poll(run);
    Results {
        name: "async-task 4.7",
        spawn_poll_1,
        spawn_poll_256,
        self_wake_poll,
        external_wake_poll,
        bytes_per_task: bytes,
        allocations_per_spawn: allocations as f64 / SPAWN_OPS as f64,
    }
}
