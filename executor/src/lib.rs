//! A `no_std` async executor for Windows kernel drivers, written against the [`nt`] crate only.
//!
//! * Tasks live in static [`TaskPool`]s: a 32-byte header in front of the future, claimed in O(1)
//!   from a lock-free free list. Spawning and waking allocate nothing.
//! * A task's state word (`SPAWNED`, `RUN_QUEUED`, ...) makes a wake enqueue the task only on the
//!   `RUN_QUEUED` 0 -> 1 change; the state machine is documented in `state.rs`.
//! * The run queue is an intrusive lock-free stack drained with one `swap`; each batch it yields
//!   runs in the order its tasks were woken (oldest first), so no woken task waits behind later
//!   ones. A waker is the task pointer plus a static vtable; waking is safe from any CPU at
//!   IRQL <= DISPATCH_LEVEL (an IRP completion routine, a DPC) and never waits for another
//!   producer.
//! * An [`Executor`] runs on a system thread that sleeps on a synchronization KEVENT, signalled only
//!   by the wake that finds the queue empty with the thread asleep.
//! * [`block_on`] runs a future on a PASSIVE_LEVEL thread (DriverEntry), [`sleep`], [`timeout`] and
//!   [`sleep_until`] are timers on one KTIMER + KDPC ([`TimerDriver`]), usable by any future.
//! * [`Executor::shutdown`] drops every live future on the executor thread and ends the thread.
//! * An executor can also be run on the calling thread ([`Executor::local_runner`]); tasks spawned
//!   there through its [`LocalSpawner`] go on a local stack without atomic operations.
//!
//! Benchmarks against embassy-executor, async-task and tokio: `bench/` (`cargo run --release
//! --manifest-path bench/Cargo.toml -- executor`). The loom model of the lock-free core:
//! `RUSTFLAGS="--cfg loom" cargo test -p wdm-async-executor --release --lib loom`.
//!
//! ```no_run
//! use executor::{Duration, Executor, TaskPool, TIMERS, block_on, sleep};
//!
//! static EXECUTOR: Executor = Executor::new();
//! static TASKS: TaskPool<512, 64> = TaskPool::new();
//!
//! fn driver_entry() -> Result<(), executor::ExecutorError> {
//!     // PASSIVE_LEVEL: start the executor's system thread.
//!     EXECUTOR.start()?;
//!     let handle = TASKS
//!         .spawn(EXECUTOR.spawner(), async {
//!             sleep(Duration::from_millis(10)).await;
//!             7
//!         })
//!         .expect("a free slot");
//!     assert_eq!(block_on(handle), Ok(Ok(7)));
//!     Ok(())
//! }
//!
//! fn driver_unload() {
//!     // Drops every task still alive on the executor thread, then ends the thread.
//!     let _ = EXECUTOR.shutdown();
//!     // No timer DPC may run once the driver image is gone.
//!     TIMERS.stop();
//! }
//! # driver_entry().unwrap();
//! # driver_unload();
//! ```
#![no_std]
#![warn(missing_docs)]
#![cfg_attr(loom, allow(dead_code))]

#[cfg(test)]
extern crate std;

mod free_list;
mod registry;
mod run_queue;
mod state;
mod sync;

#[cfg(not(loom))]
mod block_on;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod event;
#[cfg(not(loom))]
mod executor;
#[cfg(not(loom))]
mod join;
#[cfg(not(loom))]
mod pool;
#[cfg(not(loom))]
mod task;
#[cfg(not(loom))]
mod time;
#[cfg(not(loom))]
mod timer;
#[cfg(not(loom))]
mod waker;

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_model;

#[cfg(not(loom))]
pub use block_on::{MAX_BLOCKED_THREADS, block_on};
#[cfg(not(loom))]
pub use core::time::Duration;
#[cfg(not(loom))]
pub use error::{BlockOnError, ExecutorError, JoinError, SpawnError};
#[cfg(all(not(loom), not(target_os = "windows")))]
#[doc(hidden)]
pub use executor::fail_next_thread_reference;
#[cfg(not(loom))]
pub use executor::{Executor, LocalRunner, LocalSpawner, SpawnOn, Spawner};
#[cfg(not(loom))]
pub use join::JoinHandle;
#[cfg(not(loom))]
pub use pool::TaskPool;
#[cfg(not(loom))]
pub use time::Instant;
#[cfg(not(loom))]
pub use timer::{Elapsed, Sleep, TIMERS, Timeout, TimerDriver, sleep, sleep_until, timeout, timeout_at};
