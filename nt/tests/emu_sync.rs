//! Events, waits, IRQL and spin locks on the host emulation.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, SendPtr, TAG, relative, take_one};
use nt::emu::{self, Rule};
use nt::*;
use std::cell::UnsafeCell;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn notification_event_stays_signalled_until_reset() {
    let _session = emu::session();
    let event = Event::new(NotificationEvent, false);
    assert_eq!(event.state(), 0);
    assert_eq!(event.wait(Some(Duration::ZERO)), STATUS_TIMEOUT);
    assert_eq!(event.set(), 0);
    assert_eq!(event.set(), 1);
    assert_eq!(event.wait(Some(Duration::ZERO)), STATUS_SUCCESS);
    assert_eq!(event.wait(None), STATUS_SUCCESS);
    assert_eq!(event.state(), 1);
    // SAFETY: the event is alive.
    unsafe {
        assert_eq!(KeResetEvent(event.ptr()), 1);
        assert_eq!(event.state(), 0);
        event.set();
        KeClearEvent(event.ptr());
    }
    assert_eq!(event.state(), 0);
    let initially_set = Event::new(NotificationEvent, true);
    assert_eq!(initially_set.wait(Some(Duration::ZERO)), STATUS_SUCCESS);
}

#[test]
fn synchronization_event_satisfies_one_wait() {
    let _session = emu::session();
    let event = Event::new(SynchronizationEvent, true);
    assert_eq!(event.wait(Some(Duration::ZERO)), STATUS_SUCCESS);
    assert_eq!(event.state(), 0);
    assert_eq!(event.wait(Some(Duration::ZERO)), STATUS_TIMEOUT);
    event.set();
    assert_eq!(event.wait(None), STATUS_SUCCESS);
    assert_eq!(event.wait(Some(Duration::ZERO)), STATUS_TIMEOUT);
}

#[test]
fn relative_timeout_expires() {
    let _session = emu::session();
    let event = Event::new(NotificationEvent, false);
    assert_eq!(event.wait(Some(Duration::from_millis(5))), STATUS_TIMEOUT);
}

#[test]
fn absolute_timeout_expires_on_the_virtual_clock() {
    let _session = emu::session();
    emu::clock::pause();
    let event: Arc<Event> = Event::new(NotificationEvent, false).into();
    // Absolute deadline computed before the waiter starts, so the outcome does not depend on whether
    // the waiter is already blocked when the clock moves.
    let deadline = emu::clock::now() + 10_000_000;
    let waiter_event = event.clone();
    let waiter = std::thread::spawn(move || {
        let mut timeout = LARGE_INTEGER {
            QuadPart: deadline as i64,
        };
        // SAFETY: the event is kept alive by the Arc.
        unsafe { KeWaitForSingleObject(waiter_event.ptr().cast(), Executive, KernelMode, FALSE, &mut timeout) }
    });
    // A timeout ends on the first clock tick at or after its deadline.
    emu::clock::advance(Duration::from_secs(1) + emu::clock::TICK);
    assert_eq!(waiter.join().unwrap(), STATUS_TIMEOUT);
}

#[test]
fn set_event_wakes_a_waiter_on_another_thread() {
    let _session = emu::session();
    let request: Arc<Event> = Event::new(SynchronizationEvent, false).into();
    let reply: Arc<Event> = Event::new(NotificationEvent, false).into();
    let (request2, reply2) = (request.clone(), reply.clone());
    let waiter = std::thread::spawn(move || {
        let status = request2.wait(Some(BOUND));
        reply2.set();
        status
    });
    request.set();
    assert_eq!(reply.wait(Some(BOUND)), STATUS_SUCCESS);
    assert_eq!(waiter.join().unwrap(), STATUS_SUCCESS);
    // The synchronization event was consumed by the waiter.
    assert_eq!(request.state(), 0);
}

#[test]
fn wait_at_dispatch_level_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let event = Event::new(NotificationEvent, false);
    let status = emu::at_dispatch(|| {
        // A poll is allowed at DISPATCH_LEVEL.
        assert_eq!(event.wait(Some(Duration::ZERO)), STATUS_TIMEOUT);
        event.wait(None)
    });
    // Made harmless: the wait became a poll.
    assert_eq!(status, STATUS_TIMEOUT);
    let v = take_one(Rule::WaitAtDispatch);
    assert!(v.to_string().contains("wait at DISPATCH_LEVEL"), "{v}");
    emu::at_dispatch(|| event.wait(Some(Duration::from_millis(1))));
    take_one(Rule::WaitAtDispatch);
}

/// Allocates and initialises a KEVENT in nonpaged pool.
///
/// # Safety
/// The caller frees it with `ExFreePoolWithTag(event, TAG)`.
unsafe fn pool_event(kind: EVENT_TYPE) -> PKEVENT {
    // SAFETY: a block sized for a KEVENT, initialised before any other use.
    unsafe {
        let event = ExAllocatePool2(POOL_FLAG_NON_PAGED, core::mem::size_of::<KEVENT>(), TAG).cast::<KEVENT>();
        assert!(!event.is_null());
        KeInitializeEvent(event, kind, FALSE);
        event
    }
}

/// Takes the one violation the last call recorded: a use after free by `function` of an object in
/// the freed "Test" block.
#[track_caller]
fn take_use_after_free(function: &str) {
    let v = take_one(Rule::UseAfterFree);
    let text = v.to_string();
    assert!(text.contains(&format!("{function} on the ")), "{v}");
    assert!(text.contains("in the freed pool block"), "{v}");
    assert!(text.contains("tag 'Test'"), "{v}");
    assert!(text.contains("freed at:"), "{v}");
}

#[test]
fn event_in_freed_pool_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: every call after the free is the deliberate use after free under test; recording mode
    // makes each harmless (nothing is written), and the block stays in quarantine (still host
    // memory) until the session ends.
    unsafe {
        let event = pool_event(SynchronizationEvent);
        ExFreePoolWithTag(event.cast(), TAG);
        assert_eq!(KeSetEvent(event, 0, FALSE), 0);
        take_use_after_free("KeSetEvent");
        assert_eq!(KeResetEvent(event), 0);
        take_use_after_free("KeResetEvent");
        KeClearEvent(event);
        take_use_after_free("KeClearEvent");
        assert_eq!(KeReadStateEvent(event), 0);
        take_use_after_free("KeReadStateEvent");
        let mut poll = relative(Duration::ZERO);
        let status = KeWaitForSingleObject(event.cast(), Executive, KernelMode, FALSE, &mut poll);
        assert_eq!(status, STATUS_INVALID_PARAMETER);
        take_use_after_free("KeWaitForSingleObject");
        KeInitializeEvent(event, NotificationEvent, TRUE);
        take_use_after_free("KeInitializeEvent");
        // None of the calls wrote to the freed block.
        let bytes = core::slice::from_raw_parts(event.cast::<u8>(), core::mem::size_of::<KEVENT>());
        assert!(bytes.iter().all(|&b| b == emu::pool::FREED_FILL), "{bytes:x?}");
    }
}

#[test]
fn event_holding_the_freed_pattern_outside_the_pool_is_not_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: a quarantined block exists, so the check's slow path runs; the KEVENT below is on the
    // stack, holds the freed-memory pattern in every byte, and is read and re-initialised, never waited on.
    unsafe {
        let freed = pool_event(NotificationEvent);
        ExFreePoolWithTag(freed.cast(), TAG);
        let mut on_stack = core::mem::MaybeUninit::<KEVENT>::uninit();
        on_stack
            .as_mut_ptr()
            .cast::<u8>()
            .write_bytes(emu::pool::FREED_FILL, core::mem::size_of::<KEVENT>());
        let event = on_stack.as_mut_ptr();
        assert_eq!(KeReadStateEvent(event), i32::from_ne_bytes([emu::pool::FREED_FILL; 4]));
        KeInitializeEvent(event, NotificationEvent, FALSE);
        assert_eq!(KeSetEvent(event, 0, FALSE), 0);
        assert_eq!(KeReadStateEvent(event), 1);
    }
    let taken = emu::take_violations();
    assert!(taken.is_empty(), "{taken:#?}");
}

#[test]
fn freeing_pool_a_thread_waits_in_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: the event lives in a pool block; the premature free is refused (recording mode), so
    // the waiter's event stays live until it is signalled, the waiter joined, and the block freed.
    unsafe {
        let event = pool_event(NotificationEvent);
        let shared = SendPtr(event);
        let waiter = std::thread::spawn(move || {
            let mut bound = relative(BOUND);
            let event = shared;
            KeWaitForSingleObject(event.get().cast(), Executive, KernelMode, FALSE, &mut bound)
        });
        let start = std::time::Instant::now();
        while emu::sync::waiters(event.cast()) == 0 {
            assert!(start.elapsed() < BOUND, "the waiter never blocked");
            std::thread::yield_now();
        }
        ExFreePoolWithTag(event.cast(), TAG);
        let v = take_one(Rule::FreeWithWaiter);
        assert!(v.to_string().contains("which a thread is waiting on"), "{v}");
        KeSetEvent(event, 0, FALSE);
        assert_eq!(waiter.join().unwrap(), STATUS_SUCCESS);
        assert_eq!(emu::sync::waiters(event.cast()), 0);
        ExFreePoolWithTag(event.cast(), TAG);
    }
    let taken = emu::take_violations();
    assert!(taken.is_empty(), "{taken:#?}");
}

#[test]
fn delay_execution_thread_sleeps_on_the_virtual_clock() {
    let _session = emu::session();
    emu::clock::pause();
    let start = emu::clock::now();
    let deadline = start + 5_000_000;
    let sleeper = std::thread::spawn(move || {
        let mut interval = LARGE_INTEGER {
            QuadPart: deadline as i64,
        };
        // SAFETY: the interval outlives the call.
        unsafe { KeDelayExecutionThread(KernelMode, FALSE, &mut interval) };
        emu::clock::now()
    });
    // The sleep ends on the first clock tick at or after its deadline.
    emu::clock::advance(Duration::from_millis(500) + emu::clock::TICK);
    assert!(sleeper.join().unwrap() >= deadline);
}

#[test]
fn irql_raise_and_lower() {
    let _session = emu::session();
    emu::expect_violations();
    assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
    let mut old = 0xff;
    // SAFETY: raise/lower pairs; the invalid ones are made harmless.
    unsafe {
        KeRaiseIrql(DISPATCH_LEVEL, &mut old);
        assert_eq!(old, PASSIVE_LEVEL);
        assert_eq!(KeGetCurrentIrql(), DISPATCH_LEVEL);
        let mut ignored = 0;
        KeRaiseIrql(APC_LEVEL, &mut ignored);
        take_one(Rule::IrqlMismatch);
        assert_eq!(KeGetCurrentIrql(), DISPATCH_LEVEL);
        KeLowerIrql(old);
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
        KeLowerIrql(APC_LEVEL);
        take_one(Rule::IrqlMismatch);
    }
    assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_eq!(emu::at_dispatch(KeGetCurrentIrql), DISPATCH_LEVEL);
    assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
}

struct Counter {
    lock: UnsafeCell<usize>,
    value: UnsafeCell<u64>,
}
// SAFETY: `value` is only accessed with `lock` held (through KeAcquireSpinLockRaiseToDpc).
unsafe impl Sync for Counter {}

#[test]
fn spin_lock_excludes_and_raises_to_dispatch() {
    let _session = emu::session();
    let counter = Arc::new(Counter {
        lock: UnsafeCell::new(0),
        value: UnsafeCell::new(0),
    });
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let counter = counter.clone();
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    // SAFETY: the value is only touched with the lock held.
                    unsafe {
                        let old = KeAcquireSpinLockRaiseToDpc(counter.lock.get());
                        assert_eq!(old, PASSIVE_LEVEL);
                        assert_eq!(KeGetCurrentIrql(), DISPATCH_LEVEL);
                        *counter.value.get() += 1;
                        KeReleaseSpinLock(counter.lock.get(), old);
                        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // SAFETY: the workers are joined.
    assert_eq!(unsafe { *counter.value.get() }, 2 * rounds);
}

#[test]
fn spin_lock_misuse_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let mut lock: usize = 0;
    // SAFETY: each misuse is made harmless by the emulation; the lock ends released.
    unsafe {
        emu::at_dispatch(|| KeReleaseSpinLock(&mut lock, DISPATCH_LEVEL));
        take_one(Rule::SpinLockNotHeld);
        let old = KeAcquireSpinLockRaiseToDpc(&mut lock);
        KeAcquireSpinLockRaiseToDpc(&mut lock);
        take_one(Rule::SpinLockRecursion);
        KeLowerIrql(PASSIVE_LEVEL);
        KeReleaseSpinLock(&mut lock, old);
        take_one(Rule::IrqlMismatch);
        let mut ignored = 0;
        KeRaiseIrql(DISPATCH_LEVEL, &mut ignored);
        KeReleaseSpinLock(&mut lock, old);
    }
    assert_eq!(lock, 0);
    assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
}

#[test]
fn interrupt_time_is_monotonic_and_follows_the_virtual_clock() {
    let _session = emu::session();
    let mut qpc = 0;
    // SAFETY: `qpc` is valid for a write.
    let a = unsafe { KeQueryInterruptTimePrecise(&mut qpc) };
    assert_eq!(qpc, a);
    emu::clock::pause();
    // SAFETY: NULL is allowed for the optional counter output.
    let b = unsafe { KeQueryInterruptTimePrecise(core::ptr::null_mut()) };
    assert!(b >= a);
    emu::clock::advance(Duration::from_millis(3));
    // SAFETY: as above.
    let c = unsafe { KeQueryInterruptTimePrecise(core::ptr::null_mut()) };
    assert_eq!(c, b + 30_000);
    emu::clock::resume();
    // SAFETY: as above.
    assert!(unsafe { KeQueryInterruptTimePrecise(core::ptr::null_mut()) } >= c);
}

/// Collects what `debug_print` logs.
struct Capture(std::sync::Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "nt" {
            self.0.lock().unwrap().push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));

#[test]
fn debug_print_goes_to_the_log_crate() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    debug_print(DPFLTR_ERROR_LEVEL, "an error line");
    debug_print(DPFLTR_INFO_LEVEL, "hello from the host emulation");
    let lines = CAPTURE.0.lock().unwrap().clone();
    assert_eq!(
        lines,
        vec![
            (log::Level::Error, "an error line".to_string()),
            (log::Level::Info, "hello from the host emulation".to_string())
        ]
    );
}

/// `emu::sync::wait_until_blocked` returns once a thread is blocked on an object that is not
/// signalled, not while the object it waits on is signalled (the thread is about to run), and gives
/// up after its bound when no thread blocks.
#[test]
fn wait_until_blocked_sees_a_thread_blocked_on_an_unsignalled_object() {
    let _session = emu::session();
    let short = std::time::Duration::from_millis(1);
    assert!(!emu::sync::wait_until_blocked(1, short), "no thread waits");
    // SAFETY: the event lives in a pool block freed after the waiter was joined.
    unsafe {
        let event = pool_event(SynchronizationEvent);
        let shared = SendPtr(event);
        let waiter = std::thread::spawn(move || {
            let event = shared;
            for _ in 0..2 {
                let mut bound = relative(BOUND);
                assert_eq!(
                    KeWaitForSingleObject(event.get().cast(), Executive, KernelMode, FALSE, &mut bound),
                    STATUS_SUCCESS
                );
            }
        });
        assert!(emu::sync::wait_until_blocked(1, BOUND), "the waiter blocks");
        assert_eq!(emu::sync::waiters(event.cast()), 1);
        KeSetEvent(event, 0, FALSE);
        // Signalled: the waiter is either not yet back from its first wait or blocked in its second.
        assert!(emu::sync::wait_until_blocked(1, BOUND), "the waiter blocks again");
        assert_eq!(KeReadStateEvent(event), 0, "the first signal was consumed");
        KeSetEvent(event, 0, FALSE);
        waiter.join().unwrap();
        assert!(!emu::sync::wait_until_blocked(1, short), "the waiter ended");
        ExFreePoolWithTag(event.cast(), TAG);
    }
}
