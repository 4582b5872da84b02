//! The object manager, as far as system threads need it: thread objects with reference counts, the
//! kernel handle table, `ObReferenceObjectByHandle` / `ObfReferenceObject` / `ObfDereferenceObject` /
//! `ZwClose`. References on device objects are counted by `driver.rs`.

use super::dispatcher::{self, THREAD_OBJECT, signal_state};
use super::irql;
use super::leaks::LeakReport;
use super::verifier::{Rule, violation};
use crate::types::*;
use core::ptr;
use std::backtrace::Backtrace;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// The emulated `KTHREAD`: a dispatcher header (signalled when the thread ends) is all a driver
/// touches through the pointer `ObReferenceObjectByHandle` returns.
#[repr(C)]
pub struct ThreadObject {
    pub header: DISPATCHER_HEADER,
}

/// An owning pointer to a thread object, moved between threads under the objects lock.
struct Owned(*mut ThreadObject);
// SAFETY: a heap allocation (from `Box`) released only under the objects lock.
unsafe impl Send for Owned {}

struct Entry {
    memory: Owned,
    references: usize,
    name: String,
    running: bool,
    exit_status: Option<NTSTATUS>,
    created: Option<Backtrace>,
}

struct Handle {
    object: usize,
}

struct Objects {
    objects: BTreeMap<usize, Entry>,
    handles: BTreeMap<usize, Handle>,
    next_handle: usize,
    /// std threads of this session's system threads, joined when the session ends.
    threads: Vec<(usize, JoinHandle<()>)>,
    /// Objects of earlier sessions, never freed (their threads may still run) but kept reachable.
    abandoned: Vec<Owned>,
}

static OBJECTS: Mutex<Objects> = Mutex::new(Objects {
    objects: BTreeMap::new(),
    handles: BTreeMap::new(),
    next_handle: 0,
    threads: Vec::new(),
    abandoned: Vec::new(),
});

fn objects() -> MutexGuard<'static, Objects> {
    OBJECTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kernel handles have the top bit set; values are multiples of 4, as in a real handle table.
const KERNEL_HANDLE_BASE: usize = 0xFFFF_FFFF_8000_0000;

/// Creates a thread object for a new system thread, with one reference for the handle it returns
/// and one held by the running thread. Returns (object, handle).
pub(super) fn create_thread_object(name: String, created: Option<Backtrace>) -> (*mut ThreadObject, HANDLE) {
    let object = Box::into_raw(Box::new(ThreadObject {
        header: DISPATCHER_HEADER {
            Lock: 0,
            SignalState: 0,
            WaitListHead: LIST_ENTRY {
                Flink: ptr::null_mut(),
                Blink: ptr::null_mut(),
            },
        },
    }));
    // SAFETY: just allocated, not shared yet.
    unsafe {
        dispatcher::initialize(
            ptr::addr_of_mut!((*object).header),
            THREAD_OBJECT,
            size_of::<ThreadObject>(),
            0,
        )
    };
    let mut table = objects();
    table.next_handle += 4;
    let handle = KERNEL_HANDLE_BASE + table.next_handle;
    table.objects.insert(
        object.addr(),
        Entry {
            memory: Owned(object),
            references: 2,
            name,
            running: true,
            exit_status: None,
            created,
        },
    );
    table.handles.insert(handle, Handle { object: object.addr() });
    (object, ptr::without_provenance_mut(handle))
}

/// Remembers the std thread running a system thread, to join it when the session ends.
pub(super) fn add_join_handle(object: *mut ThreadObject, handle: JoinHandle<()>) {
    objects().threads.push((object.addr(), handle));
}

/// Records `PsTerminateSystemThread`'s exit status.
pub(super) fn set_exit_status(object: *mut ThreadObject, status: NTSTATUS) {
    if let Some(entry) = objects().objects.get_mut(&object.addr()) {
        entry.exit_status = Some(status);
    }
}

/// The thread's start routine returned: signal its object (waking waiters) and drop the running
/// thread's reference. A thread of an earlier session finds its object gone and touches nothing.
pub(super) fn thread_exited(object: *mut ThreadObject) {
    let dispatcher = dispatcher::lock();
    let mut table = objects();
    let Some(entry) = table.objects.get_mut(&object.addr()) else {
        return;
    };
    entry.running = false;
    // SAFETY: the object is live: it is in the table and this thread still holds its reference.
    unsafe { signal_state(ptr::addr_of_mut!((*object).header)).store(1, Ordering::Release) };
    dispatcher::wake_waiters(&dispatcher);
    drop(dispatcher);
    release_reference(&mut table, object.addr());
}

/// Drops one reference; frees the object at zero. Returns the new count.
fn release_reference(table: &mut Objects, object: usize) -> usize {
    let Some(entry) = table.objects.get_mut(&object) else {
        return 0;
    };
    entry.references -= 1;
    let left = entry.references;
    if left == 0
        && let Some(entry) = table.objects.remove(&object)
    {
        // SAFETY: allocated by `Box::new` in `create_thread_object`; the last reference is gone.
        drop(unsafe { Box::from_raw(entry.memory.0) });
    }
    left
}

/// `ObReferenceObjectByHandle`: PASSIVE_LEVEL. Only thread handles exist in the emulation;
/// `ObjectType` is not checked. Returns `STATUS_INVALID_HANDLE` for a handle that is not open.
///
/// # Safety
/// `Object` is valid for a write.
pub unsafe extern "system" fn ObReferenceObjectByHandle(
    Handle: HANDLE,
    DesiredAccess: ACCESS_MASK,
    ObjectType: POBJECT_TYPE,
    AccessMode: KPROCESSOR_MODE,
    Object: *mut PVOID,
    HandleInformation: PVOID,
) -> NTSTATUS {
    let _ = (DesiredAccess, ObjectType, AccessMode, HandleInformation);
    if !irql::require_max("ObReferenceObjectByHandle", PASSIVE_LEVEL) {
        return STATUS_INVALID_PARAMETER;
    }
    let mut table = objects();
    let Some(object) = table.handles.get(&Handle.addr()).map(|h| h.object) else {
        // SAFETY: forwarded from the caller's contract.
        unsafe { Object.write(ptr::null_mut()) };
        return STATUS_INVALID_HANDLE;
    };
    let Some(entry) = table.objects.get_mut(&object) else {
        return STATUS_INVALID_HANDLE;
    };
    entry.references += 1;
    // SAFETY: forwarded from the caller's contract.
    unsafe { Object.write(entry.memory.0.cast()) };
    STATUS_SUCCESS
}

/// `ObfReferenceObject`: IRQL <= DISPATCH_LEVEL. Adds a reference to a thread object or a device
/// object and returns the new count; anything else is a [`Rule::UnknownObject`].
///
/// # Safety
/// `Object` is a live object the caller already holds a reference to (or a pointer to, for its
/// own device object).
pub unsafe extern "system" fn ObfReferenceObject(Object: PVOID) -> LONG_PTR {
    if !irql::require_max("ObfReferenceObject", DISPATCH_LEVEL) {
        return 0;
    }
    if let Some(count) = super::driver::reference_object(Object.addr()) {
        return count;
    }
    let mut table = objects();
    let Some(entry) = table.objects.get_mut(&Object.addr()) else {
        violation(
            Rule::UnknownObject,
            &format_args!("ObfReferenceObject({Object:p}): no live object"),
            None,
        );
        return 0;
    };
    entry.references += 1;
    entry.references as LONG_PTR
}

/// `ObfDereferenceObject`: IRQL <= DISPATCH_LEVEL. Returns the new reference count; an object that
/// is not live is a [`Rule::UnknownObject`]. On a device object it drops a reference taken with
/// `ObfReferenceObject` (the device object goes with the last one once it is deleted).
///
/// # Safety
/// `Object` was returned by `ObReferenceObjectByHandle` (or referenced with `ObfReferenceObject`)
/// and is not used after its last reference.
pub unsafe extern "system" fn ObfDereferenceObject(Object: PVOID) -> LONG_PTR {
    if !irql::require_max("ObfDereferenceObject", DISPATCH_LEVEL) {
        return 0;
    }
    if let Some(count) = super::driver::dereference_object(Object.addr()) {
        return count;
    }
    let mut table = objects();
    if !table.objects.contains_key(&Object.addr()) {
        violation(
            Rule::UnknownObject,
            &format_args!("ObfDereferenceObject({Object:p}): no live object (dereferenced once too often?)"),
            None,
        );
        return 0;
    }
    release_reference(&mut table, Object.addr()) as isize
}

/// `ZwClose`: PASSIVE_LEVEL. Closing a kernel handle that is not open is a [`Rule::InvalidHandle`]
/// (bug check `INVALID_KERNEL_HANDLE` on Windows).
///
/// # Safety
/// None beyond the kernel's contract.
pub unsafe extern "system" fn ZwClose(Handle: HANDLE) -> NTSTATUS {
    if !irql::require_max("ZwClose", PASSIVE_LEVEL) {
        return STATUS_INVALID_PARAMETER;
    }
    let mut table = objects();
    let Some(handle) = table.handles.remove(&Handle.addr()) else {
        violation(
            Rule::InvalidHandle,
            &format_args!("ZwClose({Handle:p}): not an open kernel handle"),
            None,
        );
        return STATUS_INVALID_HANDLE;
    };
    release_reference(&mut table, handle.object);
    STATUS_SUCCESS
}

/// Joins the std threads of system threads that have ended, waiting at most `bound` for those that
/// signalled their end to finish returning.
pub(super) fn join_finished(bound: std::time::Duration) {
    let deadline = std::time::Instant::now() + bound;
    let threads = std::mem::take(&mut objects().threads);
    let mut still_running = Vec::new();
    for (object, handle) in threads {
        let ended = objects().objects.get(&object).is_none_or(|e| !e.running);
        if !ended {
            still_running.push((object, handle));
            continue;
        }
        // It has signalled its end and only has to return: a short, bounded wait.
        while !handle.is_finished() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            still_running.push((object, handle));
        }
    }
    objects().threads.extend(still_running);
}

/// Running threads, open handles and unreleased object references, for the leak report.
pub(super) fn leaks(report: &mut LeakReport) {
    let table = objects();
    for (&addr, entry) in &table.objects {
        if entry.running {
            report.push(
                "system thread",
                format!("system thread '{}' (object {addr:#x}) still running", entry.name),
                entry.created.as_ref(),
            );
        } else {
            let status = entry
                .exit_status
                .map(|s| format!(", exit status {s:#010x}"))
                .unwrap_or_default();
            report.push(
                "thread object",
                format!(
                    "thread object {addr:#x} of '{}' still has {} reference(s){status} (ObfDereferenceObject / ZwClose)",
                    entry.name, entry.references
                ),
                entry.created.as_ref(),
            );
        }
    }
    for (&handle, h) in &table.handles {
        let name = table.objects.get(&h.object).map(|e| e.name.as_str()).unwrap_or("?");
        report.push(
            "handle",
            format!("kernel handle {handle:#x} to '{name}' not closed (ZwClose)"),
            None,
        );
    }
}

/// Forgets the objects of an earlier session (abandoned, not freed: their threads may still run).
pub(super) fn reset() {
    let mut table = objects();
    let old = std::mem::take(&mut table.objects);
    table.abandoned.extend(old.into_values().map(|e| e.memory));
    table.handles.clear();
    table.threads.clear();
}
