//! The dispatcher lock and dispatcher headers: the common machinery of every waitable object.
//!
//! As in the kernel, the state of an event, timer or thread object is its `DISPATCHER_HEADER` in the
//! object's own memory (`Header.SignalState`), changed only under one global dispatcher lock. Waiters
//! block on a condition variable of that lock and re-test the state when woken (std `Mutex` +
//! `Condvar`, so it runs under Miri). `SignalState` and the type byte are accessed atomically, so
//! that `KeReadStateEvent` needs no lock.

use super::clock;
use super::timer::Timers;
use super::verifier::{Rule, violation};
use crate::types::*;
use core::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// `DISPATCHER_HEADER::Type` values (`KOBJECTS`).
pub const EVENT_NOTIFICATION_OBJECT: u8 = 0;
pub const EVENT_SYNCHRONIZATION_OBJECT: u8 = 1;
pub const THREAD_OBJECT: u8 = 6;
pub const TIMER_NOTIFICATION_OBJECT: u8 = 8;
pub const TIMER_SYNCHRONIZATION_OBJECT: u8 = 9;

/// Everything the dispatcher lock protects besides the headers themselves.
pub struct State {
    pub timers: Timers,
}

static STATE: Mutex<State> = Mutex::new(State { timers: Timers::new() });
/// Woken whenever a header is signalled, the clock moves, a DPC finishes or a system thread ends.
static WAITERS: Condvar = Condvar::new();

/// Takes the dispatcher lock. Lock order: dispatcher first, then the heap and every other table.
pub fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes every waiter so it re-tests its object (the emulation's `KiWaitTest`).
pub fn wake_waiters() {
    WAITERS.notify_all();
}

/// Blocks on the waiters' condition variable until woken or, with the clock running, until
/// `deadline` (interrupt time) has passed.
pub fn block(guard: MutexGuard<'static, State>, deadline: Option<u64>) -> MutexGuard<'static, State> {
    match deadline {
        Some(d) if !clock::is_paused() => {
            let left = clock::to_duration(d.saturating_sub(clock::now()));
            WAITERS
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
        // Paused clock: only `advance` (which wakes every waiter) can bring the deadline.
        _ => WAITERS.wait(guard).unwrap_or_else(PoisonError::into_inner),
    }
}

/// Blocks on the waiters' condition variable for at most `bound` of real time (the emulation's own
/// bounded waits, independent of the emulated clock).
pub fn block_real(guard: MutexGuard<'static, State>, bound: std::time::Duration) -> MutexGuard<'static, State> {
    WAITERS
        .wait_timeout(guard, bound)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

/// `Header.SignalState` as an atomic.
///
/// # Safety
/// `header` points to a live dispatcher header.
pub unsafe fn signal_state<'a>(header: *mut DISPATCHER_HEADER) -> &'a AtomicI32 {
    // SAFETY: `SignalState` is an aligned `i32` that the emulation only accesses atomically.
    unsafe { AtomicI32::from_ptr(ptr::addr_of_mut!((*header).SignalState)) }
}

/// The type byte (low byte of the `Lock` word).
///
/// # Safety
/// `header` points to a live dispatcher header.
pub unsafe fn object_type(header: *mut DISPATCHER_HEADER) -> u8 {
    // SAFETY: as for `signal_state`; the `Lock` word holds Type / Signalling / Size / Reserved bytes.
    unsafe { AtomicI32::from_ptr(ptr::addr_of_mut!((*header).Lock)).load(Ordering::Relaxed) as u8 }
}

/// Initialises a header like `KeInitialize*`: type, size in `LONG`s, signal state, empty wait list.
///
/// # Safety
/// `header` points to writable memory for a dispatcher header not in use by any waiter.
pub unsafe fn initialize(header: *mut DISPATCHER_HEADER, object_type: u8, size_bytes: usize, state: LONG) {
    let lock_word = i32::from(object_type) | (((size_bytes / 4) as i32 & 0xff) << 16);
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        AtomicI32::from_ptr(ptr::addr_of_mut!((*header).Lock)).store(lock_word, Ordering::Relaxed);
        signal_state(header).store(state, Ordering::Release);
        let list = ptr::addr_of_mut!((*header).WaitListHead);
        (*list).Flink = list;
        (*list).Blink = list;
    }
}

/// Whether a wait on this object type consumes the signal (synchronization objects).
fn auto_resets(object_type: u8) -> bool {
    matches!(object_type, EVENT_SYNCHRONIZATION_OBJECT | TIMER_SYNCHRONIZATION_OBJECT)
}

/// Waits until `header` is signalled (returns `STATUS_SUCCESS`, consuming the signal of a
/// synchronization object) or the interrupt time reaches `deadline` (`STATUS_TIMEOUT`). `None`:
/// forever. A deadline in the past makes it a poll.
///
/// # Safety
/// `header` points to a dispatcher header that stays live during the wait.
pub unsafe fn wait(header: *mut DISPATCHER_HEADER, deadline: Option<u64>) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    let (state, kind) = unsafe { (signal_state(header), object_type(header)) };
    if !matches!(
        kind,
        EVENT_NOTIFICATION_OBJECT
            | EVENT_SYNCHRONIZATION_OBJECT
            | THREAD_OBJECT
            | TIMER_NOTIFICATION_OBJECT
            | TIMER_SYNCHRONIZATION_OBJECT
    ) {
        violation(
            Rule::UnknownObject,
            &format_args!("KeWaitForSingleObject on {header:p}, of unknown dispatcher type {kind}"),
            None,
        );
        return STATUS_INVALID_PARAMETER;
    }
    let mut guard = lock();
    loop {
        if state.load(Ordering::Acquire) > 0 {
            if auto_resets(kind) {
                state.store(0, Ordering::Release);
            }
            return STATUS_SUCCESS;
        }
        if deadline.is_some_and(|d| clock::now() >= d) {
            return STATUS_TIMEOUT;
        }
        guard = block(guard, deadline);
    }
}

/// Sleeps until the interrupt time reaches `deadline` (`KeDelayExecutionThread`).
pub fn sleep_until(deadline: u64) {
    let mut guard = lock();
    while clock::now() < deadline {
        guard = block(guard, Some(deadline));
    }
}
