//! KTIMER, KDPC and the virtual clock on the host emulation.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, TAG, take_one};
use nt::emu::{self, Rule};
use nt::*;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A timer, its DPC, and what the DPC routine observed.
struct Timed {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
    runs: AtomicUsize,
    irql: AtomicU8,
    thread: Mutex<Option<String>>,
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

#[test]
fn one_shot_timer_fires_its_dpc_at_dispatch_on_the_dpc_thread() {
    let _session = emu::session();
    emu::clock::pause();
    let timed = Timed::new(NotificationTimer);
    assert!(!timed.set(-1000 * MS, 0));
    emu::clock::advance(Duration::from_millis(999));
    assert_eq!(timed.runs(), 0);
    assert!(!timed.signalled());
    emu::clock::advance(Duration::from_millis(1));
    assert_eq!(timed.runs(), 1);
    assert!(timed.signalled());
    assert_eq!(timed.irql.load(Ordering::SeqCst), DISPATCH_LEVEL);
    assert_eq!(timed.thread.lock().unwrap().as_deref(), Some("nt-emu-dpc"));
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
    emu::clock::advance(Duration::from_millis(1));
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

#[test]
fn periodic_timer_fires_once_per_period_until_cancelled() {
    let _session = emu::session();
    emu::clock::pause();
    let timed = Timed::new(NotificationTimer);
    timed.set(-10 * MS, 10);
    emu::clock::advance(Duration::from_millis(100));
    assert_eq!(timed.runs(), 10);
    emu::clock::advance(Duration::from_millis(5));
    assert_eq!(timed.runs(), 10);
    assert!(timed.cancel());
    emu::clock::advance(Duration::from_millis(100));
    assert_eq!(timed.runs(), 10);
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
    emu::clock::advance(Duration::from_millis(1));
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
