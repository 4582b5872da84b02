//! The dispatcher lock and dispatcher headers: the common machinery of every waitable object.
//!
//! As in the kernel, the state of an event, timer or thread object is its `DISPATCHER_HEADER` in the
//! object's own memory (`Header.SignalState`), changed only under one global dispatcher lock. A
//! waiting thread registers itself with the object it waits on and blocks on its own condition
//! variable of that lock, and re-tests the state when woken (std `Mutex` + `Condvar`, so it runs
//! under Miri). Signalling an object wakes only its own waiters, after the lock is released, and
//! makes no system call when nobody waits (`KeSetEvent` is on the path of every executor wake).
//! `SignalState` and the type byte are accessed atomically, so that `KeReadStateEvent` needs no lock.

use super::clock;
use super::freed_objects::header_is_freed;
use super::inline_list::InlineList;
use super::timer::Timers;
use super::verifier::{Rule, violation};
use crate::types::*;
use core::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// `DISPATCHER_HEADER::Type` values (`KOBJECTS`).
pub const EVENT_NOTIFICATION_OBJECT: u8 = 0;
pub const EVENT_SYNCHRONIZATION_OBJECT: u8 = 1;
pub const THREAD_OBJECT: u8 = 6;
pub const TIMER_NOTIFICATION_OBJECT: u8 = 8;
pub const TIMER_SYNCHRONIZATION_OBJECT: u8 = 9;

/// One thread blocked in [`wait`]: the header it waits on, and its own condition variable, so that
/// signalling one object wakes only the threads waiting on it (the kernel's per-object wait list).
struct Waiter {
    header: usize,
    wake: Arc<Condvar>,
}

/// Everything the dispatcher lock protects besides the headers themselves.
pub struct State {
    pub timers: Timers,
    /// Each blocked wait, one entry per waiting thread: whom to wake when its object is signalled,
    /// and, so that freeing memory that a thread still waits in is reported, where it waits
    /// ([`waited_in_range`]). A few entries (one per waiting thread): a vector beats a map.
    waiting: Vec<Waiter>,
    /// Threads in [`wait_until_blocked`]: a thread that starts blocking wakes them only if there
    /// are any, so that a wait makes no extra system call otherwise.
    watchers: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    timers: Timers::new(),
    waiting: Vec::new(),
    watchers: 0,
});
/// Woken whenever the clock moves, a DPC finishes or a system thread ends: the emulation's own waits
/// ([`block`], [`block_real`]). Object waits have a condition variable per thread (see [`Waiter`]).
static WAITERS: Condvar = Condvar::new();

thread_local! {
    /// The condition variable this thread blocks on in [`wait`], always with the dispatcher lock.
    static WAKE: Arc<Condvar> = Arc::new(Condvar::new());
}

/// Takes the dispatcher lock. Lock order: dispatcher first, then the heap and every other table.
pub fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes every waiter so it re-tests its object and its deadline (the emulation's `KiWaitTest` after
/// a change that may satisfy any wait: the clock moved, a timer expired, a thread ended). Called with
/// the dispatcher lock held (`state`).
pub fn wake_waiters(state: &State) {
    for waiter in &state.waiting {
        waiter.wake.notify_one();
    }
    WAITERS.notify_all();
}

/// How many waiters of one object [`Wakeups`] holds without a heap allocation.
const INLINE_WAKEUPS: usize = 2;

/// The threads to wake after an object was signalled, collected under the dispatcher lock and woken
/// after it is released: a thread woken while the signaller still holds the lock would only block
/// on the lock again (one more thread switch per wake).
pub struct Wakeups(InlineList<Arc<Condvar>, INLINE_WAKEUPS>);

impl Wakeups {
    /// Wakes them. Call without the dispatcher lock. Each waiter re-tests its object under the lock,
    /// so a wake that arrives after it stopped waiting is harmless.
    pub fn wake(self) {
        for condvar in self.0.iter() {
            condvar.notify_one();
        }
    }
}

/// The threads waiting on `header`, which was just signalled under the dispatcher lock (`state`), to
/// wake once the lock is released. No waiter, no system call: the common case of `KeSetEvent`.
pub fn waiters_of(state: &State, header: *mut DISPATCHER_HEADER) -> Wakeups {
    let mut wakeups = InlineList::new();
    for waiter in state.waiting.iter().filter(|w| w.header == header.addr()) {
        wakeups.push(waiter.wake.clone());
    }
    Wakeups(wakeups)
}

/// Blocks on `condvar` until woken or, with the clock running, until `deadline` (interrupt time) has
/// passed.
fn block_on(condvar: &Condvar, guard: MutexGuard<'static, State>, deadline: Option<u64>) -> MutexGuard<'static, State> {
    match deadline {
        Some(d) if !clock::is_paused() => {
            let left = clock::to_duration(d.saturating_sub(clock::now()));
            condvar
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
        // Paused clock: only `advance` (which wakes every waiter) can bring the deadline.
        _ => condvar.wait(guard).unwrap_or_else(PoisonError::into_inner),
    }
}

/// Blocks on the waiters' condition variable until woken by [`wake_waiters`] or, with the clock
/// running, until `deadline` (interrupt time) has passed.
pub fn block(guard: MutexGuard<'static, State>, deadline: Option<u64>) -> MutexGuard<'static, State> {
    block_on(&WAITERS, guard, deadline)
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

/// The whole `Lock` word (type, signalling, size and reserved bytes), for the freed-memory check.
///
/// # Safety
/// `header` points to a dispatcher header (live, or in quarantined freed memory).
pub unsafe fn lock_word(header: *mut DISPATCHER_HEADER) -> i32 {
    // SAFETY: as for `object_type`.
    unsafe { AtomicI32::from_ptr(ptr::addr_of_mut!((*header).Lock)).load(Ordering::Relaxed) }
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
/// forever. A deadline in the past makes it a poll. An object of unknown type, or in freed pool
/// ([`Rule::UseAfterFree`]), is reported and the wait returns `STATUS_INVALID_PARAMETER`.
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
        // The type byte of an object in freed pool is the freed fill: report that as what it is.
        // SAFETY: forwarded from the caller's contract (the check is for callers that broke it).
        if unsafe { header_is_freed(header, "KeWaitForSingleObject", "dispatcher object") } {
            return STATUS_INVALID_PARAMETER;
        }
        violation(
            Rule::UnknownObject,
            &format_args!("KeWaitForSingleObject on {header:p}, of unknown dispatcher type {kind}"),
            None,
        );
        return STATUS_INVALID_PARAMETER;
    }
    let mut guard = lock();
    // The memory may have been freed since the type check. Frees happen under this lock and check
    // the registered waiters, and this thread registers before it first releases the lock: so
    // either the free sees this waiter, or this check sees the free.
    // SAFETY: forwarded from the caller's contract (the check is for callers that broke it).
    if unsafe { header_is_freed(header, "KeWaitForSingleObject", "dispatcher object") } {
        return STATUS_INVALID_PARAMETER;
    }
    let mut wake: Option<Arc<Condvar>> = None;
    let status = loop {
        if state.load(Ordering::Acquire) > 0 {
            if auto_resets(kind) {
                state.store(0, Ordering::Release);
            }
            break STATUS_SUCCESS;
        }
        if deadline.is_some_and(|d| clock::now() >= d) {
            break STATUS_TIMEOUT;
        }
        let condvar = wake.get_or_insert_with(|| {
            let condvar = WAKE.with(Arc::clone);
            guard.waiting.push(Waiter {
                header: header.expose_provenance(),
                wake: condvar.clone(),
            });
            if guard.watchers > 0 {
                // Seen once this thread has blocked (`block_on` releases the lock as it blocks).
                WAITERS.notify_all();
            }
            condvar
        });
        guard = block_on(condvar, guard, deadline);
    };
    if let Some(condvar) = &wake
        && let Some(i) = guard
            .waiting
            .iter()
            .position(|w| w.header == header.addr() && Arc::ptr_eq(&w.wake, condvar))
    {
        guard.waiting.swap_remove(i);
    }
    status
}

/// Whether a thread is blocked waiting on a dispatcher object whose header lies in
/// `[start, start + len)`; describes the first one. A free that checks this must release the memory
/// before dropping the lock (see [`wait`]).
pub fn waited_in_range(state: &State, start: usize, len: usize) -> Option<String> {
    let end = start.saturating_add(len);
    state
        .waiting
        .iter()
        .map(|w| w.header)
        .find(|&w| w >= start && w < end)
        .map(|w| format!("the dispatcher object {w:#x}, which a thread is waiting on"))
}

/// How many threads are blocked waiting on the dispatcher object `object` (`emu::sync::waiters`).
pub fn waiters(object: *const core::ffi::c_void) -> usize {
    lock().waiting.iter().filter(|w| w.header == object.addr()).count()
}

/// Blocks until at least `threads` threads are blocked in a dispatcher wait on an object that is not
/// signalled, at most `bound` of real time; returns whether they are (`emu::sync`).
pub fn wait_until_blocked(threads: usize, bound: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + bound;
    let mut guard = lock();
    guard.watchers += 1;
    let blocked = loop {
        let blocked = guard
            .waiting
            .iter()
            // SAFETY: a waiter's header is live while it is registered (the `wait` contract), and
            // frees of waited-on memory are reported under this lock, which is held.
            .filter(|w| {
                unsafe { signal_state(ptr::with_exposed_provenance_mut(w.header)) }.load(Ordering::Acquire) <= 0
            })
            .count();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if blocked >= threads || left.is_zero() {
            break blocked >= threads;
        }
        guard = block_real(guard, left);
    };
    guard.watchers -= 1;
    blocked
}

/// Sleeps until the interrupt time reaches `deadline` (`KeDelayExecutionThread`).
pub fn sleep_until(deadline: u64) {
    let mut guard = lock();
    while clock::now() < deadline {
        guard = block(guard, Some(deadline));
    }
}
