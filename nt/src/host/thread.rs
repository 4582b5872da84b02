//! System threads: `PsCreateSystemThread` runs the start routine on a host thread at emulated
//! PASSIVE_LEVEL; the thread object is signalled when it returns.
//!
//! Difference from Windows: `PsTerminateSystemThread` cannot end a host thread without unwinding
//! through `extern "system"` frames, so here it records the exit status and returns
//! `STATUS_SUCCESS`; the start routine must return right after calling it (code after the call is
//! unreachable on Windows, so correct drivers already do).

use super::objects::{self, ThreadObject};
use super::verifier::{Rule, creation_site, violation};
use super::{cancel, irql};
use crate::types::*;
use core::ptr;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// The thread object of the system thread running on this host thread (null elsewhere).
    static CURRENT: Cell<*mut ThreadObject> = const { Cell::new(ptr::null_mut()) };
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(1);

/// Pointers moved into the new host thread.
struct StartArguments {
    object: *mut ThreadObject,
    context: PVOID,
    /// The driver whose code created the thread: the thread is its code.
    creator: Option<super::driver::DriverId>,
}
// SAFETY: the thread object lives until its running reference is released by `thread_exited`; the
// context is the driver's, which the kernel contract lets any thread use.
unsafe impl Send for StartArguments {}

/// `PsCreateSystemThread`: PASSIVE_LEVEL only. Starts `StartRoutine(StartContext)` on a new host
/// thread at PASSIVE_LEVEL and returns a kernel handle to its thread object (close it with `ZwClose`).
/// `ClientId`, if given, receives the System process id (4) and a thread id.
///
/// # Safety
/// `ThreadHandle` is valid for a write; `ClientId` is NULL or valid for a write; `StartRoutine` may be
/// called with `StartContext` on another thread.
pub unsafe extern "system" fn PsCreateSystemThread(
    ThreadHandle: *mut HANDLE,
    DesiredAccess: ACCESS_MASK,
    ObjectAttributes: *mut OBJECT_ATTRIBUTES,
    ProcessHandle: HANDLE,
    ClientId: *mut CLIENT_ID,
    StartRoutine: PKSTART_ROUTINE,
    StartContext: PVOID,
) -> NTSTATUS {
    let _ = (DesiredAccess, ObjectAttributes, ProcessHandle);
    if !irql::require_max("PsCreateSystemThread", PASSIVE_LEVEL) {
        return STATUS_INVALID_PARAMETER;
    }
    let Some(start) = StartRoutine else {
        violation(
            Rule::InvalidParameter,
            &"PsCreateSystemThread without a start routine",
            None,
        );
        return STATUS_INVALID_PARAMETER;
    };
    if ThreadHandle.is_null() {
        violation(
            Rule::InvalidParameter,
            &"PsCreateSystemThread with a NULL ThreadHandle",
            None,
        );
        return STATUS_INVALID_PARAMETER;
    }
    let number = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    let name = format!("nt-system-thread-{number}");
    let (object, handle) = objects::create_thread_object(name.clone(), creation_site());
    let arguments = StartArguments {
        object,
        context: StartContext,
        creator: super::driver::arming_driver(),
    };
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let arguments = arguments;
        run(arguments.object, start, arguments.context, arguments.creator);
    });
    match spawned {
        Ok(join) => objects::add_join_handle(object, join),
        Err(_) => {
            // Undo: nobody saw the handle yet.
            objects::thread_exited(object);
            // SAFETY: `handle` was just created and is open.
            unsafe { objects::ZwClose(handle) };
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        ThreadHandle.write(handle);
        if !ClientId.is_null() {
            ClientId.write(CLIENT_ID {
                UniqueProcess: ptr::without_provenance_mut(4),
                UniqueThread: ptr::without_provenance_mut(number * 4),
            });
        }
    }
    STATUS_SUCCESS
}

/// The body of a system thread's host thread.
fn run(
    object: *mut ThreadObject,
    start: unsafe extern "system" fn(PVOID),
    context: PVOID,
    creator: Option<super::driver::DriverId>,
) {
    irql::set(PASSIVE_LEVEL);
    CURRENT.with(|c| c.set(object));
    let running = super::driver::enter_routine("system thread", super::driver::Owner::ArmedBy(creator));
    // SAFETY: the driver passed this routine and context to PsCreateSystemThread for this purpose.
    unsafe { start(context) };
    let now = irql::current();
    if now != PASSIVE_LEVEL || cancel::held_by_me() {
        violation(
            Rule::ThreadExitAtRaisedIrql,
            &format_args!(
                "system thread {:?} returned at {}{}",
                std::thread::current().name().unwrap_or("?"),
                irql::name(now),
                if cancel::held_by_me() {
                    " holding the cancel spin lock"
                } else {
                    ""
                }
            ),
            None,
        );
        irql::set(PASSIVE_LEVEL);
    }
    CURRENT.with(|c| c.set(ptr::null_mut()));
    // The driver's code has returned; what follows is the kernel's (signalling the thread object).
    drop(running);
    objects::thread_exited(object);
}

/// `PsTerminateSystemThread`: PASSIVE_LEVEL, on a system thread. On the host it records `ExitStatus`
/// and returns `STATUS_SUCCESS` (see the module documentation); the caller must then return from its
/// start routine.
///
/// # Safety
/// None beyond the kernel's contract.
pub unsafe extern "system" fn PsTerminateSystemThread(ExitStatus: NTSTATUS) -> NTSTATUS {
    if irql::current() != PASSIVE_LEVEL {
        violation(
            Rule::ThreadExitAtRaisedIrql,
            &format_args!("PsTerminateSystemThread at {}", irql::name(irql::current())),
            None,
        );
    }
    let object = CURRENT.with(Cell::get);
    if object.is_null() {
        violation(
            Rule::InvalidParameter,
            &"PsTerminateSystemThread called outside a system thread",
            None,
        );
        return STATUS_INVALID_PARAMETER;
    }
    objects::set_exit_status(object, ExitStatus);
    STATUS_SUCCESS
}
