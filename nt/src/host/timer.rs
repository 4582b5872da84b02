//! `KTIMER` and `KDPC`: timers expire on the emulated clock, on a clock tick (see
//! [`clock::on_tick`]), are signalled like dispatcher objects and queue their DPC; DPC routines run
//! at emulated DISPATCH_LEVEL on [`DPC_CPUS`] emulation threads (the emulation's "DPC CPUs"), each
//! taking the oldest queued DPC when it is free. So two DPCs run at the same time, and a DPC queued
//! again while it runs (a periodic timer's, or one its timer re-armed) runs again on the other CPU,
//! concurrently with itself, as on a multiprocessor.
//!
//! The timer table and the DPC queue live under the dispatcher lock, as the kernel's timer table
//! and per-CPU DPC queues live under the dispatcher / DPC locks. The DPC threads are started when the
//! first timer is armed and stopped when the session ends, so no DPC of one session runs in the next.
//!
//! Every function here that takes a timer or DPC reports a [`Rule::UseAfterFree`] when the timer or DPC lies in a freed pool
//! block (see `freed_objects.rs`); in recording mode the call then does nothing and returns FALSE.

use super::dispatcher::{self, State, TIMER_NOTIFICATION_OBJECT, TIMER_SYNCHRONIZATION_OBJECT, signal_state};
use super::freed_objects::{dpc_is_freed, header_is_freed, storage_is_freed};
use super::leaks::LeakReport;
use super::verifier::{Rule, creation_site, violation};
use super::{clock, irql};
use crate::types::*;
use core::mem::size_of;
use core::ptr;
use std::backtrace::Backtrace;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Condvar, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A pointer handed between threads under the dispatcher lock.
struct Shared<T>(*mut T);
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
// SAFETY: the pointee (a driver's KTIMER / KDPC) is only accessed by the emulation under the
// dispatcher lock or by a DPC thread while the driver keeps it alive, as the kernel contract requires.
unsafe impl<T> Send for Shared<T> {}

struct Armed {
    timer: Shared<KTIMER>,
    due: u64,
    period: u64,
    dpc: Shared<KDPC>,
    /// The driver whose code armed the timer: its DPC routine is that driver's code.
    owner: Option<super::driver::DriverId>,
    created: Option<Backtrace>,
}

struct Queued {
    dpc: Shared<KDPC>,
    owner: Option<super::driver::DriverId>,
    argument1: usize,
    argument2: usize,
    sequence: u64,
}

/// A DPC routine running on a DPC CPU.
struct Running {
    dpc: usize,
    sequence: u64,
}

/// How many DPC CPUs run DPC routines. Invented: the number (Windows has one per processor; two is
/// the least that lets DPCs, and one DPC with itself, run concurrently).
pub const DPC_CPUS: usize = 2;

/// The timer table and the DPC queue.
pub struct Timers {
    armed: BTreeMap<usize, Armed>,
    queue: VecDeque<Queued>,
    queued: BTreeSet<usize>,
    /// Sequence number of the next queued DPC (the queue is in sequence order).
    next_sequence: u64,
    /// The DPCs running now, on any DPC CPU.
    running: Vec<Running>,
    threads: Vec<JoinHandle<()>>,
    /// Bumped when a session ends: a DPC thread of an older generation exits.
    generation: u64,
    /// For each DPC CPU, while its thread is blocked: the interrupt time it will wake at by itself
    /// (`u64::MAX`: only when woken). `None` while it runs: it looks at the armed timers again
    /// before it blocks. `KeSetTimerEx` wakes them only for a timer due earlier, so that re-arming a
    /// timer (an executor does for each deadline) costs no thread switch.
    dpc_sleeps_until: [Option<u64>; DPC_CPUS],
}

impl Timers {
    pub const fn new() -> Self {
        Self {
            armed: BTreeMap::new(),
            queue: VecDeque::new(),
            queued: BTreeSet::new(),
            next_sequence: 0,
            running: Vec::new(),
            threads: Vec::new(),
            generation: 0,
            dpc_sleeps_until: [None; DPC_CPUS],
        }
    }
}

/// Wakes the DPC threads (new timer, new DPC, clock change, shutdown).
static DPC_THREAD_WAKE: Condvar = Condvar::new();

fn timer_header(timer: PKTIMER) -> *mut DISPATCHER_HEADER {
    // SAFETY: only computes a field address; no access.
    unsafe { ptr::addr_of_mut!((*timer).Header) }
}

/// `KeInitializeTimerEx`: any IRQL. Reinitialising an armed timer is a violation (it would corrupt
/// the kernel's timer list); in recording mode the timer is cancelled first.
///
/// # Safety
/// `Timer` points to writable storage for a KTIMER that no thread waits on.
pub unsafe extern "system" fn KeInitializeTimerEx(Timer: PKTIMER, Type: TIMER_TYPE) {
    let kind = match Type {
        NotificationTimer => TIMER_NOTIFICATION_OBJECT,
        SynchronizationTimer => TIMER_SYNCHRONIZATION_OBJECT,
        other => {
            violation(
                Rule::InvalidParameter,
                &format_args!("KeInitializeTimerEx type {other}"),
                None,
            );
            return;
        }
    };
    if storage_is_freed(Timer.addr(), "KeInitializeTimerEx", "KTIMER") {
        return;
    }
    let mut state = dispatcher::lock();
    if let Some(armed) = state.timers.armed.remove(&Timer.addr()) {
        violation(
            Rule::InvalidParameter,
            &format_args!("KeInitializeTimerEx on the armed timer {Timer:p}"),
            armed.created.as_ref(),
        );
    }
    // SAFETY: forwarded from the caller's contract; written under the dispatcher lock.
    unsafe {
        dispatcher::initialize(timer_header(Timer), kind, size_of::<KTIMER>(), 0);
        (*Timer).DueTime = 0;
        (*Timer).Dpc = ptr::null_mut();
        (*Timer).Period = 0;
    }
}

/// `KeSetTimerEx`: IRQL <= DISPATCH_LEVEL. Arms (or re-arms) the timer: a negative `DueTime` is
/// relative, a positive one an absolute interrupt time; `Period` in milliseconds (0: one-shot);
/// `Dpc` (may be NULL) is queued at each expiry. Returns whether the timer was already armed. The
/// timer expires on the first clock tick at or after its due time (`clock::deadline`), and each
/// period later on a tick too.
///
/// # Safety
/// `Timer` (and `Dpc` if not NULL) point to initialised objects that stay live while armed / queued.
pub unsafe extern "system" fn KeSetTimerEx(
    Timer: PKTIMER,
    DueTime: LARGE_INTEGER,
    Period: LONG,
    Dpc: PKDPC,
) -> BOOLEAN {
    if !irql::require_max("KeSetTimerEx", DISPATCH_LEVEL) {
        return FALSE;
    }
    if Period < 0 {
        violation(
            Rule::InvalidParameter,
            &format_args!("KeSetTimerEx period {Period}"),
            None,
        );
        return FALSE;
    }
    // SAFETY: forwarded from the caller's contract (the check is for callers that broke it).
    if unsafe { header_is_freed(timer_header(Timer), "KeSetTimerEx", "KTIMER") } {
        return FALSE;
    }
    // SAFETY: as above; a DPC being set is not written by anyone else meanwhile.
    if !Dpc.is_null() && unsafe { dpc_is_freed(Dpc, "KeSetTimerEx") } {
        return FALSE;
    }
    let created = creation_site();
    let due = clock::deadline(DueTime.QuadPart);
    let period = u64::from(Period.unsigned_abs()) * 10_000;
    let mut state = dispatcher::lock();
    let was_armed = state.timers.armed.remove(&Timer.addr()).is_some();
    // SAFETY: forwarded from the caller's contract; written under the dispatcher lock.
    unsafe {
        signal_state(timer_header(Timer)).store(0, Ordering::Release);
        (*Timer).DueTime = due;
        (*Timer).Period = Period as ULONG;
        (*Timer).Dpc = Dpc;
    }
    state.timers.armed.insert(
        Timer.addr(),
        Armed {
            timer: Shared(Timer),
            due,
            period,
            dpc: Shared(Dpc),
            owner: super::driver::arming_driver(),
            created,
        },
    );
    ensure_dpc_thread(&mut state);
    if state
        .timers
        .dpc_sleeps_until
        .iter()
        .flatten()
        .any(|&wakes_at| due < wakes_at)
    {
        DPC_THREAD_WAKE.notify_all();
    }
    BOOLEAN::from(was_armed)
}

/// `KeCancelTimer`: IRQL <= DISPATCH_LEVEL. Disarms the timer (a DPC it already queued still runs);
/// returns whether it was armed.
///
/// # Safety
/// `Timer` points to an initialised KTIMER.
pub unsafe extern "system" fn KeCancelTimer(Timer: PKTIMER) -> BOOLEAN {
    if !irql::require_max("KeCancelTimer", DISPATCH_LEVEL) {
        return FALSE;
    }
    // SAFETY: forwarded from the caller's contract (the check is for callers that broke it).
    if unsafe { header_is_freed(timer_header(Timer), "KeCancelTimer", "KTIMER") } {
        return FALSE;
    }
    BOOLEAN::from(dispatcher::lock().timers.armed.remove(&Timer.addr()).is_some())
}

/// `KeReadStateTimer`: any IRQL; whether the timer has expired since it was last set.
///
/// # Safety
/// `Timer` points to an initialised KTIMER.
pub unsafe extern "system" fn KeReadStateTimer(Timer: PKTIMER) -> BOOLEAN {
    // SAFETY: forwarded from the caller's contract (the check is for callers that broke it).
    if unsafe { header_is_freed(timer_header(Timer), "KeReadStateTimer", "KTIMER") } {
        return FALSE;
    }
    // SAFETY: forwarded from the caller's contract.
    BOOLEAN::from(unsafe { signal_state(timer_header(Timer)) }.load(Ordering::Acquire) != 0)
}

/// `DpcObject` and `MediumImportance`, as `KeInitializeDpc` stores them in `TargetInfoAsUlong`.
const DPC_OBJECT_TYPE: ULONG = 0x13;
const MEDIUM_IMPORTANCE: ULONG = 1;

/// `KeInitializeDpc`: any IRQL.
///
/// # Safety
/// `Dpc` points to writable storage for a KDPC that is not queued.
pub unsafe extern "system" fn KeInitializeDpc(Dpc: PKDPC, DeferredRoutine: PKDEFERRED_ROUTINE, DeferredContext: PVOID) {
    if storage_is_freed(Dpc.addr(), "KeInitializeDpc", "KDPC") {
        return;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        Dpc.write(KDPC {
            TargetInfoAsUlong: DPC_OBJECT_TYPE | (MEDIUM_IMPORTANCE << 8),
            DpcListEntry: SINGLE_LIST_ENTRY { Next: ptr::null_mut() },
            ProcessorHistory: 0,
            DeferredRoutine,
            DeferredContext,
            SystemArgument1: ptr::null_mut(),
            SystemArgument2: ptr::null_mut(),
            DpcData: ptr::null_mut(),
        })
    };
}

/// `KeFlushQueuedDpcs`: PASSIVE_LEVEL; returns once every DPC queued before the call has run.
///
/// # Safety
/// None beyond the kernel's contract.
pub unsafe extern "system" fn KeFlushQueuedDpcs() {
    if !irql::require_max("KeFlushQueuedDpcs", PASSIVE_LEVEL) {
        return;
    }
    let state = dispatcher::lock();
    let target = state.timers.next_sequence;
    drop(wait_for_dpcs(state, target));
}

/// Whether a DPC with a sequence number below `target` is queued or running.
fn dpcs_before(state: &State, target: u64) -> bool {
    state.timers.queue.front().is_some_and(|q| q.sequence < target)
        || state.timers.running.iter().any(|r| r.sequence < target)
}

/// Blocks until every DPC with a sequence number below `target` has finished.
fn wait_for_dpcs(mut state: MutexGuard<'static, State>, target: u64) -> MutexGuard<'static, State> {
    while dpcs_before(&state, target) {
        state = dispatcher::block(state, None);
    }
    state
}

/// Expires every armed timer due at `now`: signals it (waking its waiters) and queues its DPC. Due
/// times are on clock ticks ([`clock::deadline`]); a period is rounded up to whole ticks.
fn expire(state: &mut State, now: u64) {
    let due: Vec<usize> = state
        .timers
        .armed
        .iter()
        .filter(|(_, a)| a.due <= now)
        .map(|(&t, _)| t)
        .collect();
    if due.is_empty() {
        return;
    }
    for timer in due {
        let Some(mut armed) = state.timers.armed.remove(&timer) else {
            continue;
        };
        let expired_at = armed.due;
        // SAFETY: an armed timer is live by the KeSetTimerEx contract; under the dispatcher lock.
        unsafe { signal_state(timer_header(armed.timer.0)).store(1, Ordering::Release) };
        if !armed.dpc.0.is_null() && state.timers.queued.insert(armed.dpc.0.addr()) {
            let sequence = state.timers.next_sequence;
            state.timers.next_sequence += 1;
            state.timers.queue.push_back(Queued {
                dpc: armed.dpc,
                owner: armed.owner,
                // Invented: the SystemArgument values of a timer DPC (the expiry time's halves).
                argument1: expired_at as u32 as usize,
                argument2: (expired_at >> 32) as usize,
                sequence,
            });
        }
        if armed.period > 0 {
            // Invented: the next expiry is one period after this one's tick (missed periods are not
            // caught up), on the first tick at or after that: a period shorter than a tick fires
            // once per tick.
            let next = if expired_at + armed.period > now {
                expired_at + armed.period
            } else {
                now + armed.period
            };
            armed.due = clock::on_tick(next);
            state.timers.armed.insert(timer, armed);
        }
    }
    dispatcher::wake_waiters(state);
    DPC_THREAD_WAKE.notify_all();
}

fn ensure_dpc_thread(state: &mut State) {
    while state.timers.threads.len() < DPC_CPUS {
        let generation = state.timers.generation;
        let cpu = state.timers.threads.len();
        let spawned = std::thread::Builder::new()
            .name(format!("nt-emu-dpc-{cpu}"))
            .spawn(move || dpc_thread(generation, cpu));
        match spawned {
            Ok(handle) => state.timers.threads.push(handle),
            Err(e) => {
                violation(
                    Rule::Other("the emulation could not start its DPC thread"),
                    &format_args!("{e}"),
                    None,
                );
                return;
            }
        }
    }
}

/// One of the emulation's DPC CPUs: expires timers on time and runs the oldest queued DPC at
/// DISPATCH_LEVEL whenever it is free, while the other CPUs run theirs.
fn dpc_thread(generation: u64, cpu: usize) {
    let mut state = dispatcher::lock();
    loop {
        if state.timers.generation != generation {
            return;
        }
        // Awake (only a thread of the current generation may say so).
        state.timers.dpc_sleeps_until[cpu] = None;
        expire(&mut state, clock::now());
        if let Some(queued) = state.timers.queue.pop_front() {
            let dpc = queued.dpc.0;
            state.timers.queued.remove(&dpc.addr());
            state.timers.running.push(Running {
                dpc: dpc.addr(),
                sequence: queued.sequence,
            });
            drop(state);
            irql::at_dispatch(|| {
                // SAFETY: a queued DPC is live by the KeInitializeDpc / KeSetTimerEx contract.
                unsafe {
                    if let Some(routine) = (*dpc).DeferredRoutine {
                        let owner = super::driver::Owner::ArmedBy(queued.owner);
                        let _running = super::driver::enter_routine("DPC routine", owner);
                        routine(
                            dpc,
                            (*dpc).DeferredContext,
                            ptr::without_provenance_mut(queued.argument1),
                            ptr::without_provenance_mut(queued.argument2),
                        );
                    }
                }
            });
            state = dispatcher::lock();
            state.timers.running.retain(|r| r.sequence != queued.sequence);
            dispatcher::wake_waiters(&state);
            continue;
        }
        let next_due = state.timers.armed.values().map(|a| a.due).min();
        state = match next_due {
            Some(due) if !clock::is_paused() => {
                state.timers.dpc_sleeps_until[cpu] = Some(due);
                let left = clock::to_duration(due.saturating_sub(clock::now()));
                DPC_THREAD_WAKE
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            _ => {
                state.timers.dpc_sleeps_until[cpu] = Some(u64::MAX);
                DPC_THREAD_WAKE.wait(state).unwrap_or_else(PoisonError::into_inner)
            }
        };
    }
}

/// `emu::clock::advance`: moves the paused clock forward by `by`, stopping at each timer expiry in
/// between so that every expiry signals its timer and runs its DPC (on a DPC CPU) before the
/// clock moves on. Returns once all of them have run, and no timer (re-armed by a DPC meanwhile) is
/// due any more.
///
/// Invented (kind, a test tool): a step waits for the DPCs it queued before the clock moves on, so
/// that what a test sees after `advance` does not depend on thread timing; a DPC that does not
/// return until the next expiry would therefore hang `advance`. With the clock running, expiries
/// do not wait for DPCs: a periodic timer's DPC that has not returned runs again on the other CPU.
pub(super) fn advance(by: Duration) {
    if !irql::require_max("emu::clock::advance", PASSIVE_LEVEL) {
        return;
    }
    clock::pause();
    let target = clock::now().saturating_add(clock::to_units(by));
    loop {
        let mut state = dispatcher::lock();
        ensure_dpc_thread(&mut state);
        let next = state
            .timers
            .armed
            .values()
            .map(|a| a.due)
            .filter(|&d| d <= target)
            .min();
        let step = next.unwrap_or(target);
        clock::set_paused_time(step);
        expire(&mut state, clock::now());
        dispatcher::wake_waiters(&state);
        DPC_THREAD_WAKE.notify_all();
        let pending = state.timers.next_sequence;
        let state = wait_for_dpcs(state, pending);
        let now = clock::now();
        if next.is_none() && !state.timers.armed.values().any(|a| a.due <= now) {
            return;
        }
    }
}

/// `emu::clock::resume`: back to real time; wakes every waiter and the DPC threads so that they
/// re-arm their real-time deadlines.
pub(super) fn resume() {
    let state = dispatcher::lock();
    clock::resume();
    dispatcher::wake_waiters(&state);
    DPC_THREAD_WAKE.notify_all();
}

/// Whether `[start, start + len)` contains an armed timer, the DPC of an armed timer, or a queued
/// DPC; describes it.
pub(super) fn active_in_range(state: &State, start: usize, len: usize) -> Option<String> {
    let end = start.saturating_add(len);
    let inside = |addr: usize, size: usize| addr < end && addr.saturating_add(size) > start;
    for (&timer, armed) in &state.timers.armed {
        if inside(timer, size_of::<KTIMER>()) {
            return Some(format!("the armed timer {timer:#x}"));
        }
        if !armed.dpc.0.is_null() && inside(armed.dpc.0.addr(), size_of::<KDPC>()) {
            return Some(format!("the DPC {:p} of the armed timer {timer:#x}", armed.dpc.0));
        }
    }
    for queued in &state.timers.queue {
        if inside(queued.dpc.0.addr(), size_of::<KDPC>()) {
            return Some(format!("the queued DPC {:p}", queued.dpc.0));
        }
    }
    state
        .timers
        .running
        .iter()
        .find(|r| inside(r.dpc, size_of::<KDPC>()))
        .map(|r| format!("the running DPC {:#x}", r.dpc))
}

/// Armed timers and queued DPCs, for the leak report.
pub(super) fn leaks(report: &mut LeakReport) {
    let state = dispatcher::lock();
    let now = clock::now();
    for (&timer, armed) in &state.timers.armed {
        let due_in = clock::to_duration(armed.due.saturating_sub(now));
        let period = if armed.period > 0 {
            format!(", periodic every {:?}", clock::to_duration(armed.period))
        } else {
            String::new()
        };
        report.push(
            "timer",
            format!("KTIMER {timer:#x} still armed (due in {due_in:?}{period}; cancel it with KeCancelTimer)"),
            armed.created.as_ref(),
        );
    }
    for queued in &state.timers.queue {
        report.push("DPC", format!("KDPC {:p} still queued", queued.dpc.0), None);
    }
}

/// Waits (bounded) for queued DPCs to run, at the end of a session.
pub(super) fn settle(bound: Duration) {
    let deadline = std::time::Instant::now() + bound;
    let mut state = dispatcher::lock();
    while !state.timers.queue.is_empty() || !state.timers.running.is_empty() {
        // Real time, not the emulated clock: this bounds the emulation itself.
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            return;
        };
        state = dispatcher::block_real(state, left);
    }
}

/// Stops the DPC threads of this session (bounded join: a DPC stuck forever is left detached).
pub(super) fn stop_thread(bound: Duration) -> bool {
    let deadline = std::time::Instant::now() + bound;
    let mut state = dispatcher::lock();
    state.timers.generation += 1;
    DPC_THREAD_WAKE.notify_all();
    let threads = std::mem::take(&mut state.timers.threads);
    // A thread exits as soon as it sees the new generation, i.e. once its current DPC returns.
    while !state.timers.running.is_empty() {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            return false;
        };
        state = dispatcher::block_real(state, left);
    }
    drop(state);
    threads.into_iter().all(|handle| handle.join().is_ok())
}

/// Forgets every timer and DPC of an earlier session.
pub(super) fn reset() {
    let mut state = dispatcher::lock();
    state.timers.armed.clear();
    state.timers.queue.clear();
    state.timers.queued.clear();
    state.timers.running.clear();
    state.timers.generation += 1;
    state.timers.threads.clear();
    state.timers.dpc_sleeps_until = [None; DPC_CPUS];
    DPC_THREAD_WAKE.notify_all();
}
