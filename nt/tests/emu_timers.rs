//! KTIMER, KDPC and the virtual clock on the host emulation.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, TAG, take_one};
use core::ptr;
use nt::emu::{self, Rule};
use nt::*;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A timer, its DPC, and what the DPC routine observed.
struct Timed {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
    runs: AtomicUsize,
    irql: AtomicU8,
    thread: Mutex<Option<String>>,
    /// The interrupt time when the DPC routine last ran.
    ran_at: AtomicU64,
    fired: Box<Event>,
}
// SAFETY: the timer and DPC are kernel objects the emulation accesses from its DPC thread under its
// own locks; the observations are atomics / a mutex.
unsafe impl Sync for Timed {}
// SAFETY: as above; nothing in `Timed` is tied to the thread that created it.
unsafe impl Send for Timed {}

unsafe extern "system" fn on_dpc(_dpc: *mut KDPC, context: PVOID, _a1: PVOID, _a2: PVOID) {
    // SAFETY: the context is the test's `Timed`, alive until the timer is cancelled and DPCs flushed.
    let timed = unsafe { &*(context as *const Timed) };
    timed.irql.store(KeGetCurrentIrql(), Ordering::SeqCst);
    *timed.thread.lock().unwrap() = std::thread::current().name().map(str::to_string);
    timed.ran_at.store(emu::clock::now(), Ordering::SeqCst);
    timed.runs.fetch_add(1, Ordering::SeqCst);
    timed.fired.set();
}

impl Timed {
    /// In an `Arc`: the DPC's context pointer must stay valid while the test keeps using the object
    /// (a `Box` would assert uniqueness each time it moves).
    fn new(kind: TIMER_TYPE) -> Arc<Timed> {
        // SAFETY: all-zero KTIMER / KDPC are valid bit patterns; both are initialised right after.
        let timed = Arc::new(Timed {
            timer: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            dpc: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            runs: AtomicUsize::new(0),
            irql: AtomicU8::new(0xff),
            thread: Mutex::new(None),
            ran_at: AtomicU64::new(0),
            fired: Event::new(SynchronizationEvent, false),
        });
        // SAFETY: fresh objects, not armed or queued.
        unsafe {
            KeInitializeTimerEx(timed.timer.get(), kind);
            KeInitializeDpc(timed.dpc.get(), Some(on_dpc), Arc::as_ptr(&timed) as PVOID);
        }
        timed
    }

    /// `KeSetTimerEx` with this object's DPC.
    fn set(&self, due: i64, period_ms: LONG) -> bool {
        // SAFETY: the timer and DPC stay alive until the test cancels the timer.
        unsafe {
            KeSetTimerEx(
                self.timer.get(),
                LARGE_INTEGER { QuadPart: due },
                period_ms,
                self.dpc.get(),
            ) != FALSE
        }
    }

    fn cancel(&self) -> bool {
        // SAFETY: the timer is initialised.
        unsafe { KeCancelTimer(self.timer.get()) != FALSE }
    }

    fn signalled(&self) -> bool {
        // SAFETY: the timer is initialised.
        unsafe { KeReadStateTimer(self.timer.get()) != FALSE }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

const MS: i64 = 10_000;

/// The clock tick in 100 ns units.
const TICK: u64 = (emu::clock::TICK.as_nanos() / 100) as u64;

/// Advances the paused clock to the next clock tick (if not on one already), so that a test knows
/// on which tick a timer it sets next will expire.
fn advance_to_tick() {
    let past = emu::clock::now() % TICK;
    if past != 0 {
        emu::clock::advance(Duration::from_nanos((TICK - past) * 100));
    }
    assert_eq!(emu::clock::now() % TICK, 0);
}

#[test]
fn one_shot_timer_fires_its_dpc_at_dispatch_on_a_dpc_cpu() {
    let _session = emu::session();
    emu::clock::pause();
    let timed = Timed::new(NotificationTimer);
    assert!(!timed.set(-1000 * MS, 0));
    emu::clock::advance(Duration::from_millis(999));
    assert_eq!(timed.runs(), 0);
    assert!(!timed.signalled());
    // Due in 1 ms: it expires on the next clock tick at or after that, at most one tick later.
    emu::clock::advance(Duration::from_millis(1) + emu::clock::TICK);
    assert_eq!(timed.runs(), 1);
    assert!(timed.signalled());
    assert_eq!(timed.irql.load(Ordering::SeqCst), DISPATCH_LEVEL);
    let thread = timed.thread.lock().unwrap().clone().unwrap();
    assert!(thread.starts_with("nt-emu-dpc-"), "{thread}");
    // Expired one-shot timers are no longer armed.
    assert!(!timed.cancel());
    // A notification timer stays signalled for every waiter.
    let mut zero = LARGE_INTEGER::default();
    // SAFETY: the timer is alive.
    unsafe {
        assert_eq!(
            KeWaitForSingleObject(timed.timer.get().cast(), Executive, KernelMode, FALSE, &mut zero),
            STATUS_SUCCESS
        );
        assert_eq!(
            KeWaitForSingleObject(timed.timer.get().cast(), Executive, KernelMode, FALSE, &mut zero),
            STATUS_SUCCESS
        );
    }
}

#[test]
fn synchronization_timer_satisfies_one_wait() {
    let _session = emu::session();
    emu::clock::pause();
    let timed = Timed::new(SynchronizationTimer);
    timed.set(-MS, 0);
    emu::clock::advance(Duration::from_millis(1) + emu::clock::TICK);
    let mut zero = LARGE_INTEGER::default();
    // SAFETY: the timer is alive.
    unsafe {
        assert_eq!(
            KeWaitForSingleObject(timed.timer.get().cast(), Executive, KernelMode, FALSE, &mut zero),
            STATUS_SUCCESS
        );
        assert_eq!(
            KeWaitForSingleObject(timed.timer.get().cast(), Executive, KernelMode, FALSE, &mut zero),
            STATUS_TIMEOUT
        );
    }
}

/// A periodic timer expires on clock ticks: a period of 40 ms, one period after the tick of its
/// last expiry, rounded up to a tick, is three ticks (46.875 ms).
#[test]
fn periodic_timer_fires_once_per_period_rounded_to_ticks_until_cancelled() {
    let _session = emu::session();
    emu::clock::pause();
    advance_to_tick();
    let start = emu::clock::now();
    let timed = Timed::new(NotificationTimer);
    timed.set(-40 * MS, 40);
    // Expiries at 3, 6, 9 and 12 ticks (46.875 ... 187.5 ms).
    emu::clock::advance(Duration::from_millis(200));
    assert_eq!(timed.runs(), 4);
    assert_eq!(timed.ran_at.load(Ordering::SeqCst), start + 12 * TICK);
    // The next one is at 15 ticks (234.375 ms).
    emu::clock::advance(Duration::from_millis(34));
    assert_eq!(timed.runs(), 4);
    assert!(timed.cancel());
    emu::clock::advance(Duration::from_millis(100));
    assert_eq!(timed.runs(), 4);
}

/// A timer never expires before its due time, and expires on the first clock tick at or after it:
/// so up to one tick late (Microsoft documents the tick granularity; the phase is the emulation's).
#[test]
fn a_timer_never_fires_before_its_due_time_and_fires_on_the_next_tick() {
    let _session = emu::session();
    emu::clock::pause();
    let timed = Timed::new(NotificationTimer);
    for due in [
        1,
        MS,
        TICK as i64 - 1,
        TICK as i64,
        TICK as i64 + 1,
        3 * TICK as i64 + 7,
    ] {
        advance_to_tick();
        let start = emu::clock::now();
        let runs = timed.runs();
        timed.set(-due, 0);
        // Just before the due time: not fired.
        emu::clock::advance(Duration::from_nanos((due as u64 - 1) * 100));
        assert_eq!(timed.runs(), runs, "due in {due}");
        // At the due time: fired only if that is a tick (late by the rounding otherwise).
        emu::clock::advance(Duration::from_nanos(100));
        let on_tick = due as u64 % TICK == 0;
        assert_eq!(timed.runs(), runs + usize::from(on_tick), "due in {due}");
        // By the next tick: fired, on that tick.
        emu::clock::advance(emu::clock::TICK);
        assert_eq!(timed.runs(), runs + 1, "due in {due}");
        let ticks = (due as u64).div_ceil(TICK);
        assert_eq!(
            timed.ran_at.load(Ordering::SeqCst),
            start + ticks * TICK,
            "due in {due}"
        );
    }
}

/// A wait timeout ends on a clock tick too: a 1 ms timeout started on a tick is still waiting 1 ms
/// later (an event set then satisfies it), and ends on the next tick.
#[test]
fn a_wait_timeout_ends_on_the_next_tick() {
    let _session = emu::session();
    emu::clock::pause();
    let event = Event::new(SynchronizationEvent, false);
    // Waits 1 ms on the event while another thread advances the clock by `by`, then sets the event
    // if `set`. Returns the wait's status and the clock it returned at.
    let wait_while_advancing = |by: Duration, set: bool| {
        let ptr = common::SendPtr(event.ptr());
        let advancer = std::thread::spawn(move || {
            let limit = std::time::Instant::now() + BOUND;
            while emu::sync::waiters(ptr.get().cast()) == 0 {
                assert!(std::time::Instant::now() < limit, "the wait did not start");
                std::thread::yield_now();
            }
            emu::clock::advance(by);
            if set {
                // Give a wait that (wrongly) ended at its exact due time the chance to leave: the
                // wait under test never does, so this costs its whole bound, 100 ms of real time.
                let give = std::time::Instant::now() + Duration::from_millis(100);
                while emu::sync::waiters(ptr.get().cast()) != 0 && std::time::Instant::now() < give {
                    std::thread::yield_now();
                }
                // SAFETY: the event outlives this thread (joined below).
                unsafe { KeSetEvent(ptr.get(), 0, FALSE) };
            }
        });
        let status = event.wait(Some(Duration::from_millis(1)));
        let ended_at = emu::clock::now();
        advancer.join().unwrap();
        (status, ended_at)
    };
    advance_to_tick();
    let (status, _) = wait_while_advancing(Duration::from_millis(1), true);
    assert_eq!(status, STATUS_SUCCESS, "the wait timed out at its exact due time");
    advance_to_tick();
    let start = emu::clock::now();
    let (status, ended_at) = wait_while_advancing(emu::clock::TICK, false);
    assert_eq!(status, STATUS_TIMEOUT);
    assert_eq!(ended_at, start + TICK);
}

/// Two DPCs run at the same time on the two DPC CPUs: each waits (bounded) until it sees the other
/// running. One DPC CPU would run them one after the other, and the first would time out.
#[test]
fn two_dpcs_run_concurrently_on_two_dpc_cpus() {
    let _session = emu::session();
    emu::clock::pause();
    let pair: Arc<[Meeting; 2]> = Arc::new([Meeting::new(), Meeting::new()]);
    for (i, meeting) in pair.iter().enumerate() {
        meeting
            .other
            .store(ptr::from_ref(&pair[1 - i]).cast_mut(), Ordering::SeqCst);
        // SAFETY: fresh objects; the test keeps them alive until the DPCs are flushed.
        unsafe {
            KeInitializeTimerEx(meeting.timer.get(), NotificationTimer);
            KeInitializeDpc(meeting.dpc.get(), Some(meet), ptr::from_ref(meeting) as PVOID);
            KeSetTimerEx(
                meeting.timer.get(),
                LARGE_INTEGER { QuadPart: -MS },
                0,
                meeting.dpc.get(),
            );
        }
    }
    emu::clock::advance(Duration::from_millis(1) + emu::clock::TICK);
    // SAFETY: PASSIVE_LEVEL.
    unsafe { KeFlushQueuedDpcs() };
    let threads: Vec<String> = pair.iter().map(|m| m.thread.lock().unwrap().clone().unwrap()).collect();
    for meeting in pair.iter() {
        assert!(meeting.saw_other.load(Ordering::SeqCst), "{threads:?}");
        assert_eq!(meeting.irql.load(Ordering::SeqCst), DISPATCH_LEVEL);
    }
    assert_ne!(threads[0], threads[1]);
}

/// What [`meet`] records.
struct Meeting {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
    /// The other `Meeting`.
    other: std::sync::atomic::AtomicPtr<Meeting>,
    running: std::sync::atomic::AtomicBool,
    saw_other: std::sync::atomic::AtomicBool,
    irql: AtomicU8,
    thread: Mutex<Option<String>>,
}
// SAFETY: as for `Timed`.
unsafe impl Sync for Meeting {}
// SAFETY: as for `Timed`.
unsafe impl Send for Meeting {}

impl Meeting {
    fn new() -> Meeting {
        Meeting {
            // SAFETY: all-zero KTIMER / KDPC are valid bit patterns; both are initialised before use.
            timer: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            // SAFETY: as above.
            dpc: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            other: Default::default(),
            running: Default::default(),
            saw_other: Default::default(),
            irql: AtomicU8::new(0xff),
            thread: Mutex::new(None),
        }
    }
}

/// A DPC routine that marks itself running, then spins (bounded, real time: a DPC cannot block)
/// until the other `Meeting`'s DPC is running too (`running` stays set once set).
unsafe extern "system" fn meet(_dpc: *mut KDPC, context: PVOID, _a1: PVOID, _a2: PVOID) {
    // SAFETY: the context is a test's `Meeting`, alive until the DPCs are flushed; so is the other.
    let (me, other) = unsafe {
        let me = &*(context as *const Meeting);
        (me, &*me.other.load(Ordering::SeqCst))
    };
    me.irql.store(KeGetCurrentIrql(), Ordering::SeqCst);
    *me.thread.lock().unwrap() = std::thread::current().name().map(str::to_string);
    me.running.store(true, Ordering::SeqCst);
    let limit = std::time::Instant::now() + Duration::from_secs(5);
    while !other.running.load(Ordering::SeqCst) && std::time::Instant::now() < limit {
        std::hint::spin_loop();
    }
    me.saw_other
        .store(other.running.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// With the clock running, a periodic timer's DPC that has not returned when the timer expires again
/// runs again on the other DPC CPU, concurrently with itself.
#[test]
fn a_periodic_dpc_that_has_not_returned_runs_again_concurrently_with_itself() {
    let _session = emu::session();
    let overlap = Arc::new(Overlap {
        timer: UnsafeCell::new(unsafe_zeroed()),
        dpc: UnsafeCell::new(unsafe_zeroed()),
        entered: AtomicUsize::new(0),
        saw_second: std::sync::atomic::AtomicBool::new(false),
    });
    // SAFETY: fresh objects, alive until the timer is cancelled and the DPCs flushed.
    unsafe {
        KeInitializeTimerEx(overlap.timer.get(), NotificationTimer);
        KeInitializeDpc(overlap.dpc.get(), Some(overlapping), Arc::as_ptr(&overlap) as PVOID);
        KeSetTimerEx(
            overlap.timer.get(),
            LARGE_INTEGER { QuadPart: -MS },
            1,
            overlap.dpc.get(),
        );
    }
    let limit = std::time::Instant::now() + BOUND;
    while overlap.entered.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < limit, "the timer did not fire twice");
        std::thread::yield_now();
    }
    // SAFETY: the timer is initialised; PASSIVE_LEVEL for the flush.
    unsafe {
        KeCancelTimer(overlap.timer.get());
        KeFlushQueuedDpcs();
    }
    assert!(overlap.saw_second.load(Ordering::SeqCst));
}

/// What [`overlapping`] records.
struct Overlap {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
    entered: AtomicUsize,
    saw_second: std::sync::atomic::AtomicBool,
}
// SAFETY: as for `Timed`.
unsafe impl Sync for Overlap {}
// SAFETY: as for `Timed`.
unsafe impl Send for Overlap {}

fn unsafe_zeroed<T>() -> T {
    // SAFETY: only used for KTIMER / KDPC, for which all-zero is a valid bit pattern (initialised
    // before use).
    unsafe { core::mem::zeroed() }
}

/// Its first run spins (bounded, real time) until a second run has entered.
unsafe extern "system" fn overlapping(_dpc: *mut KDPC, context: PVOID, _a1: PVOID, _a2: PVOID) {
    // SAFETY: the context is the test's `Overlap`, alive until the DPCs are flushed.
    let overlap = unsafe { &*(context as *const Overlap) };
    if overlap.entered.fetch_add(1, Ordering::SeqCst) != 0 {
        return;
    }
    let limit = std::time::Instant::now() + Duration::from_secs(5);
    while overlap.entered.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < limit {
        std::hint::spin_loop();
    }
    overlap
        .saw_second
        .store(overlap.entered.load(Ordering::SeqCst) >= 2, Ordering::SeqCst);
}

#[test]
fn absolute_due_time_and_rearming() {
    let _session = emu::session();
    emu::clock::pause();
    let timed = Timed::new(NotificationTimer);
    let absolute = emu::clock::now() + 5 * MS as u64;
    assert!(!timed.set(absolute as i64, 0));
    // Re-arming an armed timer reports that it was armed.
    assert!(timed.set(absolute as i64, 0));
    emu::clock::advance(Duration::from_millis(4));
    assert_eq!(timed.runs(), 0);
    emu::clock::advance(Duration::from_millis(1) + emu::clock::TICK);
    assert_eq!(timed.runs(), 1);
    assert_eq!(timed.fired.wait(Some(Duration::ZERO)), STATUS_SUCCESS);
    // An absolute due time in the past fires at once (on the DPC thread, without moving the clock).
    timed.set(1, 0);
    assert_eq!(timed.fired.wait(Some(BOUND)), STATUS_SUCCESS);
    // SAFETY: PASSIVE_LEVEL.
    unsafe { KeFlushQueuedDpcs() };
    assert_eq!(timed.runs(), 2);
}

#[test]
fn timer_fires_in_real_time() {
    let _session = emu::session();
    let timed = Timed::new(NotificationTimer);
    timed.set(-MS, 0);
    assert_eq!(timed.fired.wait(Some(BOUND)), STATUS_SUCCESS);
    // SAFETY: PASSIVE_LEVEL.
    unsafe { KeFlushQueuedDpcs() };
    assert_eq!(timed.runs(), 1);
    assert!(timed.signalled());
}

#[test]
fn armed_timer_is_a_leak() {
    let session = emu::session();
    emu::clock::pause();
    let timed = Timed::new(NotificationTimer);
    timed.set(-1000 * MS, 0);
    let report = session.leak_report();
    assert_eq!(report.count("timer"), 1, "{report}");
    assert!(report.to_string().contains("still armed"), "{report}");
    assert!(timed.cancel());
    assert!(session.leak_report().is_empty());
}

#[test]
fn freeing_pool_that_holds_an_armed_timer_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: the timer lives in a pool block sized for it; the premature free is made harmless.
    unsafe {
        let timer = ExAllocatePool2(POOL_FLAG_NON_PAGED, core::mem::size_of::<KTIMER>(), TAG).cast::<KTIMER>();
        KeInitializeTimerEx(timer, NotificationTimer);
        KeSetTimerEx(
            timer,
            LARGE_INTEGER {
                QuadPart: -1000 * MS * 1000,
            },
            0,
            core::ptr::null_mut(),
        );
        ExFreePoolWithTag(timer.cast(), TAG);
        take_one(Rule::FreeWithActiveTimer);
        assert!(KeCancelTimer(timer) != FALSE);
        ExFreePoolWithTag(timer.cast(), TAG);
    }
}

#[test]
fn timer_and_dpc_in_freed_pool_are_reported() {
    let _session = emu::session();
    emu::expect_violations();
    /// A timer and its DPC in one pool block, as a driver's device extension would hold them.
    #[repr(C)]
    struct TimerAndDpc {
        timer: KTIMER,
        dpc: KDPC,
    }
    // SAFETY: every call after the free is the deliberate use after free under test; recording mode
    // makes each harmless (nothing is armed or written), and the block stays in quarantine (still
    // host memory) until the session ends.
    unsafe {
        let block =
            ExAllocatePool2(POOL_FLAG_NON_PAGED, core::mem::size_of::<TimerAndDpc>(), TAG).cast::<TimerAndDpc>();
        assert!(!block.is_null());
        let timer = &raw mut (*block).timer;
        let dpc = &raw mut (*block).dpc;
        KeInitializeTimerEx(timer, NotificationTimer);
        KeInitializeDpc(dpc, Some(on_dpc), core::ptr::null_mut());
        ExFreePoolWithTag(block.cast(), TAG);

        let due = LARGE_INTEGER { QuadPart: -1000 * MS };
        assert_eq!(KeSetTimerEx(timer, due, 0, dpc), FALSE);
        take_use_after_free("KeSetTimerEx", "KTIMER");
        assert_eq!(KeCancelTimer(timer), FALSE);
        take_use_after_free("KeCancelTimer", "KTIMER");
        assert_eq!(KeReadStateTimer(timer), FALSE);
        take_use_after_free("KeReadStateTimer", "KTIMER");
        KeInitializeTimerEx(timer, SynchronizationTimer);
        take_use_after_free("KeInitializeTimerEx", "KTIMER");
        KeInitializeDpc(dpc, Some(on_dpc), core::ptr::null_mut());
        take_use_after_free("KeInitializeDpc", "KDPC");

        // A live timer armed with a freed DPC: the DPC is caught before the DPC thread could run it.
        let live = Timed::new(NotificationTimer);
        assert_eq!(KeSetTimerEx(live.timer.get(), due, 0, dpc), FALSE);
        take_use_after_free("KeSetTimerEx", "KDPC");
        assert!(!live.cancel(), "a timer set with a freed DPC must not be armed");

        let bytes = core::slice::from_raw_parts(block.cast::<u8>(), core::mem::size_of::<TimerAndDpc>());
        assert!(bytes.iter().all(|&b| b == emu::pool::FREED_FILL), "{bytes:x?}");
    }
}

/// Takes the one violation the last call recorded: a use after free by `function` of the `object`
/// in the freed "Test" block.
#[track_caller]
fn take_use_after_free(function: &str, object: &str) {
    let v = take_one(Rule::UseAfterFree);
    let text = v.to_string();
    assert!(text.contains(&format!("{function} on the {object} ")), "{v}");
    assert!(text.contains("in the freed pool block"), "{v}");
    assert!(text.contains("tag 'Test'"), "{v}");
    assert!(text.contains("freed at:"), "{v}");
}
