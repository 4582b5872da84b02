//! `block_on`: run a future to completion on the calling PASSIVE_LEVEL thread (DriverEntry,
//! DriverUnload, a dispatch routine at PASSIVE_LEVEL), sleeping on a KEVENT while it is pending.
//!
//! The waker cannot point to an event on the caller's stack: a future may keep a clone of its waker
//! and wake it after `block_on` returned. So the event lives in one of
//! [`MAX_BLOCKED_THREADS`] static parking slots, and the waker carries the slot's index and the
//! generation of this use of it. A stale waker finds another generation and does nothing (or, if it
//! raced with the slot's release, signals the slot's next user once: a spurious poll, which the
//! `Future` contract allows). Waking is atomics plus `KeSetEvent`: fine at DISPATCH_LEVEL.

use crate::error::BlockOnError;
use crate::event::Event;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use core::cell::UnsafeCell;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

/// How many threads can be inside [`block_on`] at the same time.
pub const MAX_BLOCKED_THREADS: usize = 64;

struct Parker {
    event: Event,
    /// Bumped when a use starts and when it ends; a waker is valid only for the value it carries.
    generation: AtomicU32,
    /// Whether `event` was initialised; only the slot's current owner reads or writes it.
    initialised: UnsafeCell<bool>,
}

struct Parkers {
    /// Bit `i` set: slot `i` is in use.
    in_use: AtomicU64,
    slots: [Parker; MAX_BLOCKED_THREADS],
}

// SAFETY: `initialised` is only touched by the slot's owner (the `in_use` bit, claimed with
// Acquire and released with Release, hands it over); the rest are atomics and kernel events.
unsafe impl Sync for Parkers {}

static PARKERS: Parkers = Parkers {
    in_use: AtomicU64::new(0),
    slots: [const {
        Parker {
            event: Event::new(),
            generation: AtomicU32::new(0),
            initialised: UnsafeCell::new(false),
        }
    }; MAX_BLOCKED_THREADS],
};

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);

// The waker data packs a 32-bit generation above an 8-bit slot index.
const _: () = assert!(usize::BITS >= 40 && MAX_BLOCKED_THREADS <= 256);

fn encode(index: usize, generation: u32) -> *const () {
    core::ptr::without_provenance(((generation as usize) << 8) | index)
}

unsafe fn clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    let bits = data.addr();
    let Some(parker) = PARKERS.slots.get(bits & 0xff) else {
        return;
    };
    if parker.generation.load(Ordering::Acquire) == (bits >> 8) as u32 {
        // SAFETY: a waker with this slot's current generation exists only after the owner
        // initialised the event; events are never uninitialised afterwards.
        unsafe { parker.event.set() };
    }
}

unsafe fn drop(_: *const ()) {}

/// Polls `future` on the calling thread until it completes, waiting on a KEVENT while it is
/// pending. Refuses to run above PASSIVE_LEVEL ([`BlockOnError::NotPassiveLevel`]). The future's
/// wakers may be called from any thread at IRQL <= DISPATCH_LEVEL. Must not be called from a task
/// of an executor (it would block that executor's thread).
pub fn block_on<F: Future>(future: F) -> Result<F::Output, BlockOnError> {
    if nt::KeGetCurrentIrql() != nt::PASSIVE_LEVEL {
        return Err(BlockOnError::NotPassiveLevel);
    }
    let index = claim().ok_or(BlockOnError::TooManyBlockedThreads)?;
    let Some(parker) = PARKERS.slots.get(index) else {
        return Err(BlockOnError::TooManyBlockedThreads);
    };
    // SAFETY: the in_use bit makes this thread the slot's only owner; no waker of a live generation
    // exists before the event is initialised (the generation is bumped below, after this).
    unsafe {
        if !*parker.initialised.get() {
            parker.event.init();
            *parker.initialised.get() = true;
        }
    }
    let generation = parker.generation.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    // SAFETY: the vtable upholds the RawWaker contract: the data is an integer, valid forever.
    let waker = unsafe { Waker::from_raw(RawWaker::new(encode(index, generation), &VTABLE)) };
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let output = loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            break output;
        }
        // SAFETY: initialised above; PASSIVE_LEVEL was checked.
        unsafe { parker.event.wait() };
    };
    parker.generation.fetch_add(1, Ordering::AcqRel);
    PARKERS.in_use.fetch_and(!(1u64 << index), Ordering::Release);
    Ok(output)
}

/// Claims a free parking slot: the lowest clear bit of `in_use` (O(1): one word).
fn claim() -> Option<usize> {
    let mut in_use = PARKERS.in_use.load(Ordering::Relaxed);
    loop {
        let free = !in_use;
        if free == 0 {
            return None;
        }
        let index = free.trailing_zeros() as usize;
        match PARKERS.in_use.compare_exchange_weak(
            in_use,
            in_use | (1u64 << index),
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(index),
            Err(now) => in_use = now,
        }
    }
}
