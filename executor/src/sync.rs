//! The atomics the executor is built on: `core`'s in a normal build, loom's under `cfg(loom)` so
//! that the loom model (see `loom_model.rs`) explores every interleaving of the very same code.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
