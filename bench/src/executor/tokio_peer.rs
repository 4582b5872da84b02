//! tokio's current_thread runtime: tasks spawned from the `block_on` future, which yields to let
//! them run.

use super::{
    BATCH, BATCH_OPS, COMPLETED, EXTERNAL_ROUNDS, PARKED_POLLS, Parked, Ready1, Results, SELF_WAKE_OPS, SPAWN_OPS,
    SelfWake,
};
use crate::harness::{count_allocations, ns_per_op};
use std::sync::atomic::Ordering;
use tokio::task::yield_now;

pub fn measure() -> Results {
    super::reset();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let spawn_one = |ops: usize| {
        runtime.block_on(async {
            for i in 0..ops {
                let target = COMPLETED.load(Ordering::Relaxed) + 1;
                drop(tokio::spawn(Ready1(i as u64)));
                while COMPLETED.load(Ordering::Relaxed) < target {
                    yield_now().await;
                }
            }
        })
    };
    let spawn_poll_1 = ns_per_op(SPAWN_OPS, spawn_one);
    let (allocations, _) = count_allocations(|| spawn_one(SPAWN_OPS));
    let (_, bytes) = count_allocations(|| {
        runtime.block_on(async {
            drop(tokio::spawn(Ready1(0)));
        })
    });
    let spawn_poll_256 = ns_per_op(BATCH_OPS, |ops| {
        runtime.block_on(async {
            for batch in 0..ops / BATCH {
                let target = COMPLETED.load(Ordering::Relaxed) + BATCH;
                for i in 0..BATCH {
                    drop(tokio::spawn(Ready1((batch + i) as u64)));
                }
                while COMPLETED.load(Ordering::Relaxed) < target {
                    yield_now().await;
                }
            }
        })
    });
    let self_wake_poll = ns_per_op(SELF_WAKE_OPS, |ops| {
        runtime.block_on(async {
            tokio::spawn(SelfWake { left: ops as u32 }).await.unwrap();
        })
    });
    runtime.block_on(async {
        for _ in 0..BATCH {
            drop(tokio::spawn(Parked { registered: false }));
        }
        while super::PARKED_WAKERS.lock().unwrap().len() < BATCH {
            yield_now().await;
        }
    });
    let mut waker_thread = super::WakerThread::start();
    let external_wake_poll = ns_per_op(EXTERNAL_ROUNDS * BATCH, |ops| {
        runtime.block_on(async {
            for _ in 0..ops / BATCH {
                let target = PARKED_POLLS.load(Ordering::Relaxed) + BATCH;
                waker_thread.wake_all();
                while PARKED_POLLS.load(Ordering::Relaxed) < target {
                    yield_now().await;
                }
            }
        })
    });
    super::RELEASE_PARKED.store(true, Ordering::SeqCst);
    waker_thread.wake_all();
    runtime.block_on(async {
        for _ in 0..BATCH {
            yield_now().await;
        }
    });
    drop(waker_thread);
    Results {
        name: "tokio current_thread",
        spawn_poll_1,
        spawn_poll_256,
        self_wake_poll,
        external_wake_poll,
        bytes_per_task: bytes,
        allocations_per_spawn: allocations as f64 / SPAWN_OPS as f64,
    }
}
