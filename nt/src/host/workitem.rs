//! Work items: `IoAllocateWorkItem` / `IoQueueWorkItem` / `IoFreeWorkItem`, with the checks of
//! Driver Verifier.
//!
//! Queued items run at PASSIVE_LEVEL on a pool of [`WORKER_THREADS`] emulated system worker threads,
//! in queue order: a routine that blocks (`KeWaitForSingleObject`) holds up its worker, and once
//! every worker is blocked the next item waits. So a work item routine that waits for another work
//! item to run deadlocks here, as it can on Windows when the system's workers are busy.
//! `IoQueueWorkItem` references the device object until the routine has returned, so the driver's
//! image stays loaded while a routine is queued or running. The `IO_WORKITEM` size is invented
//! (`IoSizeofWorkItem` returns it on Windows; its value is not documented).

use super::driver::{CHANGED, Owner, enter_routine, registry};
use super::heap::{Access, Class, Kind, heap};
use super::leaks::LeakReport;
use super::verifier::{Rule, creation_site, violation};
use super::{irql, pool_stats};
use crate::types::*;
use core::ptr;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of an emulated `IO_WORKITEM` (invented).
const WORK_ITEM_SIZE: usize = 0x58;

/// How many worker threads run work items. Invented: Windows has a pool of system worker threads
/// per queue type whose size it does not document (and which it may grow); two is the least that
/// still runs two blocking routines at once, and a small bound makes a routine that waits for a
/// later work item hang here rather than only on a busy machine.
pub const WORKER_THREADS: usize = 2;

/// Where a work item is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Allocated, not queued (or its routine has returned).
    Idle,
    /// Queued, not yet dequeued by a worker thread: queueing or freeing it now is a violation.
    Queued(u64),
    /// Dequeued: its routine (run number) is running. It may be queued again or freed.
    Running(u64),
}

struct Item {
    device: usize,
    state: State,
    runs: u64,
}

struct WorkItems {
    generation: u64,
    items: BTreeMap<usize, Item>,
    /// Queued routines not yet dequeued, oldest first.
    queue: VecDeque<Job>,
    /// Worker threads of the current pool, joined when it is retired ([`settle`]).
    workers: Vec<JoinHandle<()>>,
    /// Bumped when the pool is retired: its workers exit and the next item starts a new pool.
    pool: u64,
    /// Workers of the current pool waiting for an item.
    idle: usize,
    /// Routines queued or running (not yet returned).
    busy: usize,
    /// [`hold`] is in force: queued items are not dequeued.
    held: bool,
}

static WORK_ITEMS: Mutex<WorkItems> = Mutex::new(WorkItems {
    generation: 0,
    items: BTreeMap::new(),
    queue: VecDeque::new(),
    workers: Vec::new(),
    pool: 0,
    idle: 0,
    busy: 0,
    held: false,
});

/// Lock order: the driver registry, then this, then the heap.
fn work_items() -> MutexGuard<'static, WorkItems> {
    WORK_ITEMS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `IoAllocateWorkItem`: IRQL <= DISPATCH_LEVEL. `DeviceObject` must be a device object of this
/// session ([`Rule::UnknownObject`] / [`Rule::UseAfterFree`] otherwise). Returns NULL under pool
/// fault injection ([`crate::emu::pool::fail_next`]).
///
/// # Safety
/// None beyond the kernel's contract.
pub unsafe extern "system" fn IoAllocateWorkItem(DeviceObject: PDEVICE_OBJECT) -> PIO_WORKITEM {
    pool_stats::count_call(Class::WorkItem);
    if !irql::require_max("IoAllocateWorkItem", DISPATCH_LEVEL) {
        return ptr::null_mut();
    }
    let created = creation_site();
    let registry = registry();
    let device = DeviceObject.addr();
    if !registry.is_device(device) {
        registry.report_not_device(device, "IoAllocateWorkItem");
        return ptr::null_mut();
    }
    let mut items = work_items();
    let item = {
        let mut heap = heap();
        if heap.inject_failure(None) {
            return ptr::null_mut();
        }
        match heap.allocate(WORK_ITEM_SIZE, 16, None, Kind::WorkItem, created) {
            Some(p) => p.as_ptr().cast::<IO_WORKITEM>(),
            None => return ptr::null_mut(),
        }
    };
    items.items.insert(
        item.addr(),
        Item {
            device,
            state: State::Idle,
            runs: 0,
        },
    );
    item
}

/// A queued routine: pointers handed to a worker thread.
struct Job {
    item: usize,
    device: PDEVICE_OBJECT,
    routine: unsafe extern "system" fn(PDEVICE_OBJECT, PVOID),
    context: PVOID,
    run: u64,
    generation: u64,
}
// SAFETY: the device object is referenced until the routine has returned; the context is the
// driver's, which the kernel contract lets a worker thread use.
unsafe impl Send for Job {}

/// `IoQueueWorkItem`: IRQL <= DISPATCH_LEVEL. References the item's device object, then runs
/// `WorkerRoutine(DeviceObject, Context)` at PASSIVE_LEVEL on an emulated system worker thread and
/// drops the reference after it returns. Queueing an item that is queued and not yet dequeued is a
/// [`Rule::WorkItemAlreadyQueued`]; from within its own routine (after the dequeue) it is allowed.
/// `QueueType` must be `DelayedWorkQueue`, as the documentation says drivers must pass
/// ([`Rule::InvalidParameter`]; Windows itself accepts the other queue types). The item's device
/// object must still exist ([`Rule::UseAfterFree`] otherwise: the routine would run in an image that
/// may be unloaded).
///
/// # Safety
/// `IoWorkItem` came from `IoAllocateWorkItem` and is not freed; `WorkerRoutine` may be called with
/// `Context` on another thread.
pub unsafe extern "system" fn IoQueueWorkItem(
    IoWorkItem: PIO_WORKITEM,
    WorkerRoutine: PIO_WORKITEM_ROUTINE,
    QueueType: WORK_QUEUE_TYPE,
    Context: PVOID,
) {
    if !irql::require_max("IoQueueWorkItem", DISPATCH_LEVEL) {
        return;
    }
    let Some(routine) = WorkerRoutine else {
        violation(
            Rule::InvalidParameter,
            &"IoQueueWorkItem with a NULL WorkerRoutine",
            None,
        );
        return;
    };
    if QueueType != DelayedWorkQueue {
        violation(
            Rule::InvalidParameter,
            &format_args!("IoQueueWorkItem with QueueType {QueueType} (drivers must specify DelayedWorkQueue)"),
            None,
        );
        return;
    }
    let mut registry = registry();
    let mut items = work_items();
    let addr = IoWorkItem.addr();
    let Some(item) = items.items.get_mut(&addr) else {
        let _ = heap().find(addr, Class::WorkItem, "IoQueueWorkItem", Access::Use);
        return;
    };
    if let State::Queued(_) = item.state {
        violation(
            Rule::WorkItemAlreadyQueued,
            &format_args!("IoQueueWorkItem on work item {IoWorkItem:p}, which is queued and not yet dequeued"),
            heap().get(addr).and_then(|b| b.created.as_ref()),
        );
        return;
    }
    if !registry.is_device(item.device) {
        // The item outlived its device object (IoAllocateWorkItem takes no reference): queueing it
        // references freed memory, and its routine would run in a driver image that may be gone.
        registry.report_not_device(item.device, "IoQueueWorkItem (the work item's device object)");
        return;
    }
    item.runs += 1;
    let run = item.runs;
    item.state = State::Queued(run);
    let device = item.device;
    registry.reference_device(device);
    let job = Job {
        item: addr,
        device: ptr::with_exposed_provenance_mut(device),
        routine,
        context: Context,
        run,
        generation: registry.generation(),
    };
    items.busy += 1;
    items.queue.push_back(job);
    // A new worker unless enough idle ones are there for the queued items (an idle worker counts
    // until it wakes up and looks at the queue).
    if items.queue.len() > items.idle && items.workers.len() < WORKER_THREADS {
        let (generation, pool, number) = (items.generation, items.pool, items.workers.len());
        let spawned = std::thread::Builder::new()
            .name(format!("nt-worker-{number}"))
            .spawn(move || worker(generation, pool));
        match spawned {
            Ok(handle) => items.workers.push(handle),
            Err(error) => {
                // The host is out of threads: the emulation cannot go on (IoQueueWorkItem cannot fail).
                eprintln!("*** nt emulation: cannot start a worker thread for IoQueueWorkItem: {error}");
                std::process::abort();
            }
        }
    }
    drop(items);
    drop(registry);
    CHANGED.notify_all();
}

/// A worker thread of the pool `pool`: runs queued routines, oldest first, until its pool is
/// retired or its session ends.
fn worker(generation: u64, pool: u64) {
    irql::set(PASSIVE_LEVEL);
    loop {
        let mut registry = registry();
        let job = loop {
            let mut items = work_items();
            if items.generation != generation || items.pool != pool {
                return;
            }
            if !items.held
                && let Some(job) = items.queue.pop_front()
            {
                if let Some(item) = items.items.get_mut(&job.item)
                    && item.state == State::Queued(job.run)
                {
                    item.state = State::Running(job.run);
                }
                break job;
            }
            items.idle += 1;
            drop(items);
            registry = CHANGED.wait(registry).unwrap_or_else(PoisonError::into_inner);
            let mut items = work_items();
            if items.generation == generation && items.pool == pool {
                items.idle -= 1;
            }
        };
        drop(registry);
        run(job);
    }
}

/// Runs one dequeued routine on the current worker thread, then drops its device reference.
fn run(job: Job) {
    let guard = enter_routine("work item routine", Owner::Device(job.device.addr()));
    // SAFETY: the routine and context the driver passed to IoQueueWorkItem, at PASSIVE_LEVEL; the
    // device reference taken there is still held.
    unsafe { (job.routine)(job.device, job.context) };
    let now = irql::current();
    if now != PASSIVE_LEVEL {
        violation(
            Rule::IrqlMismatch,
            &format_args!("a work item routine returned at {}", irql::name(now)),
            None,
        );
        irql::set(PASSIVE_LEVEL);
    }
    drop(guard);
    let mut registry = registry();
    let mut items = work_items();
    if items.generation != job.generation {
        return;
    }
    if let Some(item) = items.items.get_mut(&job.item)
        && item.state == State::Running(job.run)
    {
        item.state = State::Idle;
    }
    items.busy -= 1;
    drop(items);
    // Always succeeds: IoQueueWorkItem took this reference.
    let _ = registry.dereference_device(job.device.addr());
    CHANGED.notify_all();
}

/// `IoFreeWorkItem`: IRQL <= DISPATCH_LEVEL. Freeing an item that is queued and not yet dequeued is
/// a [`Rule::WorkItemFreedWhileQueued`]; freeing it from within its own routine is allowed (the
/// documented pattern). A second free is a [`Rule::DoubleFree`].
///
/// # Safety
/// `IoWorkItem` came from `IoAllocateWorkItem` and is not used after this call.
pub unsafe extern "system" fn IoFreeWorkItem(IoWorkItem: PIO_WORKITEM) {
    if !irql::require_max("IoFreeWorkItem", DISPATCH_LEVEL) {
        return;
    }
    let freed_at = creation_site();
    let _registry = registry();
    let mut items = work_items();
    let addr = IoWorkItem.addr();
    let mut heap = heap();
    let Some(item) = items.items.get(&addr) else {
        let _ = heap.find(addr, Class::WorkItem, "IoFreeWorkItem", Access::Free);
        return;
    };
    if let State::Queued(_) = item.state {
        violation(
            Rule::WorkItemFreedWhileQueued,
            &format_args!("IoFreeWorkItem on work item {IoWorkItem:p}, which is queued and not yet dequeued"),
            heap.get(addr).and_then(|b| b.created.as_ref()),
        );
        return;
    }
    items.items.remove(&addr);
    heap.release(addr, freed_at);
}

/// Waits (at most `bound`, real time) until no work item routine is queued or running, then
/// retires the worker pool (its threads exit; the next item starts a new one) and joins its threads.
pub(super) fn settle(bound: Duration) {
    let deadline = Instant::now() + bound;
    let mut registry = registry();
    while work_items().busy > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        registry = CHANGED
            .wait_timeout(registry, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    let workers = {
        let mut items = work_items();
        if items.busy > 0 {
            // A routine is stuck: leave the pool alone (the leak report names it).
            return;
        }
        items.pool += 1;
        items.idle = 0;
        std::mem::take(&mut items.workers)
    };
    drop(registry);
    CHANGED.notify_all();
    for handle in workers {
        // An idle worker only has to see the new pool and return: a short, bounded wait.
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
    }
}

/// Work item routines still running, for the leak report (unfreed items are live heap blocks, which
/// the heap reports).
pub(super) fn leaks(report: &mut LeakReport) {
    let items = work_items();
    if items.busy > 0 {
        report.push(
            "work item routine",
            format!("{} work item routine(s) still running", items.busy),
            None,
        );
    }
}

/// Forgets the work items of an earlier session (their memory belongs to the heap, which abandons
/// it; their worker threads see the new generation and touch nothing).
pub(super) fn reset(generation: u64) {
    let mut items = work_items();
    items.generation = generation;
    items.items.clear();
    items.queue.clear();
    items.workers.clear();
    items.pool += 1;
    items.idle = 0;
    items.busy = 0;
    items.held = false;
    CHANGED.notify_all();
}

/// While the returned guard lives, queued work items stay queued: no worker thread dequeues them
/// (Windows gives no bound on when a worker thread gets to an item either). For deterministic tests
/// of what may and may not be done with a queued item. Dropping the guard lets them run.
pub fn hold() -> Hold {
    let _registry = registry();
    work_items().held = true;
    Hold { _private: () }
}

/// See [`hold`].
#[must_use = "queued work items run again as soon as the guard is dropped"]
pub struct Hold {
    _private: (),
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _registry = registry();
        work_items().held = false;
        CHANGED.notify_all();
    }
}
