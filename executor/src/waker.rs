//! The task waker: its data pointer is the task header, its vtable one static table. Cloning and
//! dropping cost nothing (no reference count: slots live in `'static` pools). Waking is a few
//! atomic operations and, only if the executor sleeps, one `KeSetEvent`: callable from any CPU at
//! IRQL <= DISPATCH_LEVEL, e.g. from an IRP completion routine or a DPC.

use crate::task::{Header, TaskRef};
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::task::{RawWaker, RawWakerVTable, Waker};

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);

unsafe fn clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: this vtable is only ever paired with a header pointer made by `waker_for`.
    let task = unsafe { TaskRef::from_ptr(NonNull::new_unchecked(data.cast_mut().cast::<Header>())) };
    wake_task(task);
}

unsafe fn drop(_: *const ()) {}

/// The waker of `task`. `ManuallyDrop` only saves the (empty) drop call.
#[inline(always)]
pub(crate) fn waker_for(task: TaskRef) -> ManuallyDrop<Waker> {
    let raw = RawWaker::new(task.as_ptr().as_ptr().cast_const().cast::<()>(), &VTABLE);
    // SAFETY: the vtable's functions uphold the RawWaker contract: the data pointer designates a
    // `'static` slot, so every clone stays valid forever and wakes are thread-safe (atomics only).
    ManuallyDrop::new(unsafe { Waker::from_raw(raw) })
}

/// Transition 4: queue `task` on its executor if it is spawned and not queued yet.
#[inline(always)]
pub(crate) fn wake_task(task: TaskRef) {
    let header = task.header();
    if header.state.try_wake() {
        let executor = header.executor.load(core::sync::atomic::Ordering::Relaxed);
        // SAFETY: `try_wake` acquired a word with SPAWNED, published by the spawner after it stored
        // the executor pointer, which points to a `'static` Executor.
        unsafe { (*executor).enqueue(task) };
    }
}
