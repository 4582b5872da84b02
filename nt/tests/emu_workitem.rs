//! Work items: `IoAllocateWorkItem` / `IoQueueWorkItem` / `IoFreeWorkItem`, their checks, and the
//! device reference that keeps the driver's image loaded while a routine is queued or runs.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, take_one};
use core::ptr;
use nt::emu::driver::TestDevice;
use nt::emu::{self, Rule};
use nt::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::Duration;

/// What one routine run saw.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    device: usize,
    context: usize,
    irql: KIRQL,
    other_thread: bool,
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
static TEST_THREAD: Mutex<Option<std::thread::ThreadId>> = Mutex::new(None);

/// Context of [`waiting`]: the routine signals `entered`, waits on `release`, then signals `done`.
struct Gate {
    entered: Box<Event>,
    release: Box<Event>,
    done: Box<Event>,
}

fn gate() -> Gate {
    Gate {
        entered: Event::new(NotificationEvent, false),
        release: Event::new(NotificationEvent, false),
        done: Event::new(NotificationEvent, false),
    }
}

unsafe extern "system" fn recording(device: PDEVICE_OBJECT, context: PVOID) {
    SEEN.lock().unwrap().push(Seen {
        device: device.addr(),
        context: context.addr(),
        irql: KeGetCurrentIrql(),
        other_thread: Some(std::thread::current().id()) != *TEST_THREAD.lock().unwrap(),
    });
    // SAFETY: the context is the test's `Gate`.
    let gate = unsafe { &*context.cast::<Gate>() };
    gate.done.set();
}

/// Blocks in KeWaitForSingleObject, as a work item routine may.
unsafe extern "system" fn waiting(_device: PDEVICE_OBJECT, context: PVOID) {
    // SAFETY: the context is the test's `Gate`, alive until `done` is observed.
    let gate = unsafe { &*context.cast::<Gate>() };
    gate.entered.set();
    assert_eq!(gate.release.wait(Some(BOUND)), STATUS_SUCCESS);
    gate.done.set();
}

fn context(gate: &Gate) -> PVOID {
    ptr::from_ref(gate).cast_mut().cast()
}

#[test]
fn a_routine_runs_at_passive_level_on_a_worker_thread_with_its_device_and_context() {
    let _session = emu::session();
    let device = TestDevice::create();
    SEEN.lock().unwrap().clear();
    *TEST_THREAD.lock().unwrap() = Some(std::thread::current().id());
    let gate = gate();
    let device_addr = device.device().addr();
    let before = emu::pool::stats();
    // SAFETY: the item is queued once, and freed after its routine has signalled `done`; the
    // routine's last access to `gate` is that signal.
    unsafe {
        let item = IoAllocateWorkItem(device.device());
        assert!(!item.is_null());
        assert_eq!(emu::pool::stats().work_items.blocks, before.work_items.blocks + 1);
        let mut old = 0;
        KeRaiseIrql(DISPATCH_LEVEL, &mut old);
        IoQueueWorkItem(item, Some(recording), DelayedWorkQueue, context(&gate));
        KeLowerIrql(old);
        assert_eq!(gate.done.wait(Some(BOUND)), STATUS_SUCCESS);
        // Freeing while the routine may still be returning is allowed (it was dequeued).
        IoFreeWorkItem(item);
    }
    let image = device.image();
    drop(device);
    assert!(
        image.wait_unloaded(BOUND),
        "the routine returned and dropped its device reference"
    );
    assert_eq!(
        *SEEN.lock().unwrap(),
        [Seen {
            device: device_addr,
            context: context(&gate).addr(),
            irql: PASSIVE_LEVEL,
            other_thread: true,
        }]
    );
    assert_eq!(
        emu::pool::stats().work_item_allocations - before.work_item_allocations,
        1
    );
}

#[test]
fn a_routine_may_block_and_keeps_the_image_loaded_until_it_returns() {
    let _session = emu::session();
    let device = TestDevice::create();
    let image = device.image();
    let gate = gate();
    // SAFETY: the item is queued once and freed after its routine has returned (image unloaded).
    unsafe {
        let item = IoAllocateWorkItem(device.device());
        IoQueueWorkItem(item, Some(waiting), DelayedWorkQueue, context(&gate));
        assert_eq!(gate.entered.wait(Some(BOUND)), STATUS_SUCCESS);
        // The worker is blocked in KeWaitForSingleObject; the test thread goes on.
        assert_eq!(gate.done.state(), 0);
        drop(device);
        assert!(
            !image.is_unloaded(),
            "the queued routine's device reference keeps the image"
        );
        gate.release.set();
        assert!(image.wait_unloaded(BOUND));
        assert_eq!(gate.done.state(), 1);
        IoFreeWorkItem(item);
    }
}

/// Negative test of [`Rule::WorkItemAlreadyQueued`].
#[test]
fn queueing_an_item_that_is_still_queued_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let device = TestDevice::create();
    let image = device.image();
    let gate = gate();
    // SAFETY: the item is freed after its one run; `gate` outlives it (image unloaded first).
    unsafe {
        let item = IoAllocateWorkItem(device.device());
        let hold = emu::work_items::hold();
        IoQueueWorkItem(item, Some(recording), DelayedWorkQueue, context(&gate));
        IoQueueWorkItem(item, Some(recording), DelayedWorkQueue, context(&gate));
        take_one(Rule::WorkItemAlreadyQueued);
        drop(hold);
        assert_eq!(gate.done.wait(Some(BOUND)), STATUS_SUCCESS);
        drop(device);
        assert!(image.wait_unloaded(BOUND));
        IoFreeWorkItem(item);
    }
    assert!(emu::take_violations().is_empty());
}

/// Negative test of [`Rule::WorkItemFreedWhileQueued`].
#[test]
fn freeing_an_item_that_is_still_queued_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let device = TestDevice::create();
    let image = device.image();
    let gate = gate();
    // SAFETY: the refused free leaves the item live; it is freed after its run.
    unsafe {
        let item = IoAllocateWorkItem(device.device());
        let hold = emu::work_items::hold();
        IoQueueWorkItem(item, Some(recording), DelayedWorkQueue, context(&gate));
        IoFreeWorkItem(item);
        take_one(Rule::WorkItemFreedWhileQueued);
        drop(hold);
        assert_eq!(gate.done.wait(Some(BOUND)), STATUS_SUCCESS);
        drop(device);
        assert!(image.wait_unloaded(BOUND));
        IoFreeWorkItem(item);
    }
}

/// A routine that queues its own item again once, and frees it on the second run.
struct Again {
    item: AtomicPtr<IO_WORKITEM>,
    runs: AtomicUsize,
    done: Box<Event>,
}

unsafe extern "system" fn requeue_then_free(_device: PDEVICE_OBJECT, context: PVOID) {
    // SAFETY: the context is the test's `Again`, alive until the image is unloaded.
    let again = unsafe { &*context.cast::<Again>() };
    let item = again.item.load(Ordering::SeqCst);
    // SAFETY: the item is live: this routine frees it only on its second run.
    unsafe {
        if again.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            IoQueueWorkItem(item, Some(requeue_then_free), DelayedWorkQueue, context);
        } else {
            IoFreeWorkItem(item);
            again.done.set();
        }
    }
}

#[test]
fn a_routine_may_queue_its_own_item_again_and_free_it() {
    let _session = emu::session();
    emu::expect_violations();
    let device = TestDevice::create();
    let image = device.image();
    let again = Again {
        item: AtomicPtr::new(ptr::null_mut()),
        runs: AtomicUsize::new(0),
        done: Event::new(NotificationEvent, false),
    };
    // SAFETY: the routine frees the item on its second run; `again` outlives both runs.
    unsafe {
        let item = IoAllocateWorkItem(device.device());
        again.item.store(item, Ordering::SeqCst);
        IoQueueWorkItem(
            item,
            Some(requeue_then_free),
            DelayedWorkQueue,
            ptr::from_ref(&again).cast_mut().cast(),
        );
    }
    assert_eq!(again.done.wait(Some(BOUND)), STATUS_SUCCESS);
    drop(device);
    assert!(image.wait_unloaded(BOUND));
    assert_eq!(again.runs.load(Ordering::SeqCst), 2);
    assert!(emu::take_violations().is_empty());
    assert_eq!(emu::pool::stats().work_items.blocks, 0);
}

/// Context of [`waits_for_the_third`] and [`the_third`].
struct Crowd {
    third_ran: Box<Event>,
    /// What the two blocking routines' waits returned.
    statuses: Mutex<Vec<NTSTATUS>>,
    threads: Mutex<Vec<String>>,
}

/// Waits (1 s of emulated time) for the third item's routine to run.
unsafe extern "system" fn waits_for_the_third(_device: PDEVICE_OBJECT, context: PVOID) {
    // SAFETY: the context is the test's `Crowd`, alive until the image is unloaded.
    let crowd = unsafe { &*context.cast::<Crowd>() };
    let name = std::thread::current().name().map(str::to_string).unwrap_or_default();
    crowd.threads.lock().unwrap().push(name);
    let status = crowd.third_ran.wait(Some(Duration::from_secs(1)));
    crowd.statuses.lock().unwrap().push(status);
}

unsafe extern "system" fn the_third(_device: PDEVICE_OBJECT, context: PVOID) {
    // SAFETY: as above.
    let crowd = unsafe { &*context.cast::<Crowd>() };
    crowd.third_ran.set();
}

/// Work items run on a bounded pool of worker threads: while two routines block, a third queued item
/// waits for a worker. Here the two wait for the third, so they only get on when their waits time
/// out: a work item routine that waits for another work item deadlocks when the workers are busy.
#[test]
fn a_third_work_item_waits_for_a_worker_while_two_routines_block() {
    let _session = emu::session();
    assert_eq!(emu::work_items::WORKER_THREADS, 2);
    emu::clock::pause();
    let device = TestDevice::create();
    let image = device.image();
    let crowd = Crowd {
        third_ran: Event::new(NotificationEvent, false),
        statuses: Mutex::new(Vec::new()),
        threads: Mutex::new(Vec::new()),
    };
    let context: PVOID = ptr::from_ref(&crowd).cast_mut().cast();
    // SAFETY: each item is queued once and freed after its routine has returned (image unloaded);
    // `crowd` outlives them.
    unsafe {
        let items = [(); 3].map(|()| IoAllocateWorkItem(device.device()));
        IoQueueWorkItem(items[0], Some(waits_for_the_third), DelayedWorkQueue, context);
        IoQueueWorkItem(items[1], Some(waits_for_the_third), DelayedWorkQueue, context);
        let limit = std::time::Instant::now() + BOUND;
        while emu::sync::waiters(crowd.third_ran.ptr().cast()) < 2 {
            assert!(std::time::Instant::now() < limit, "the two routines did not start");
            std::thread::yield_now();
        }
        IoQueueWorkItem(items[2], Some(the_third), DelayedWorkQueue, context);
        // Give the third routine the chance to run if it (wrongly) got a thread of its own: it never
        // does, so this costs the whole bound, 100 ms of real time.
        let give = std::time::Instant::now() + Duration::from_millis(100);
        while crowd.third_ran.state() == 0 && std::time::Instant::now() < give {
            std::thread::yield_now();
        }
        assert_eq!(
            crowd.third_ran.state(),
            0,
            "the third routine ran while both workers were blocked"
        );
        // The waits time out; the workers get to the third item.
        emu::clock::advance(Duration::from_secs(1) + emu::clock::TICK);
        assert_eq!(crowd.third_ran.wait(Some(BOUND)), STATUS_SUCCESS);
        drop(device);
        assert!(image.wait_unloaded(BOUND));
        for item in items {
            IoFreeWorkItem(item);
        }
    }
    // The first routine to return timed out: the third could only run after one returned (the
    // second may have seen the third's event or timed out too).
    let statuses = crowd.statuses.lock().unwrap();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0], STATUS_TIMEOUT, "{statuses:?}");
    let threads = crowd.threads.lock().unwrap();
    assert_ne!(threads[0], threads[1], "two workers");
}

#[test]
fn allocation_fails_under_pool_fault_injection() {
    let _session = emu::session();
    let device = TestDevice::create();
    emu::pool::fail_next(1);
    // SAFETY: PASSIVE_LEVEL, live device.
    let item = unsafe { IoAllocateWorkItem(device.device()) };
    assert!(item.is_null());
}

/// The documentation says drivers must specify DelayedWorkQueue.
#[test]
fn a_queue_type_other_than_delayed_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let device = TestDevice::create();
    let gate = gate();
    // SAFETY: the refused queue leaves the item idle; it is freed at once.
    unsafe {
        let item = IoAllocateWorkItem(device.device());
        IoQueueWorkItem(item, Some(recording), CriticalWorkQueue, context(&gate));
        take_one(Rule::InvalidParameter);
        IoFreeWorkItem(item);
    }
}

#[test]
fn an_unfreed_work_item_and_an_undeleted_device_are_in_the_leak_report() {
    let session = emu::session();
    let device = TestDevice::create();
    // SAFETY: the item is freed below.
    let item = unsafe { IoAllocateWorkItem(device.device()) };
    let report = session.leak_report();
    assert_eq!(report.count("work item"), 1, "{report}");
    assert_eq!(report.count("device object"), 1, "{report}");
    assert_eq!(report.count("driver image"), 1, "{report}");
    // SAFETY: allocated above, never queued.
    unsafe { IoFreeWorkItem(item) };
    drop(device);
    assert!(session.leak_report().is_empty());
}

#[test]
fn allocating_above_dispatch_level_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let device = TestDevice::create();
    // SAFETY: IRQL raised and lowered back; nothing is allocated.
    unsafe {
        let mut old = 0;
        KeRaiseIrql(DISPATCH_LEVEL + 1, &mut old);
        assert!(IoAllocateWorkItem(device.device()).is_null());
        KeLowerIrql(old);
    }
    take_one(Rule::IrqlTooHigh);
}
