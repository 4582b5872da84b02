//! System threads and thread objects on the host emulation.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, relative, take_one};
use nt::emu::{self, Rule};
use nt::*;
use std::sync::atomic::{AtomicU8, Ordering};

struct Start {
    started: Box<Event>,
    release: Box<Event>,
    irql: AtomicU8,
    raise_before_return: bool,
    terminate: bool,
}

impl Start {
    fn new(raise_before_return: bool, terminate: bool) -> Box<Start> {
        Box::new(Start {
            started: Event::new(NotificationEvent, false),
            release: Event::new(NotificationEvent, false),
            irql: AtomicU8::new(0xff),
            raise_before_return,
            terminate,
        })
    }
}

unsafe extern "system" fn thread_main(context: PVOID) {
    // SAFETY: the context is the test's `Start`, alive until the thread object is signalled.
    let start = unsafe { &*(context as *const Start) };
    start.irql.store(KeGetCurrentIrql(), Ordering::SeqCst);
    start.started.set();
    assert_eq!(start.release.wait(Some(BOUND)), STATUS_SUCCESS);
    if start.raise_before_return {
        let mut old = 0;
        // SAFETY: deliberately returns at DISPATCH_LEVEL, the violation under test.
        unsafe { KeRaiseIrql(DISPATCH_LEVEL, &mut old) };
    }
    if start.terminate {
        // SAFETY: called on a system thread at PASSIVE_LEVEL; the routine returns right after.
        assert_eq!(unsafe { PsTerminateSystemThread(STATUS_SUCCESS) }, STATUS_SUCCESS);
    }
}

/// Creates a system thread running `thread_main(start)`; returns its handle.
fn create(start: &Start) -> HANDLE {
    let mut handle: HANDLE = core::ptr::null_mut();
    let mut client = CLIENT_ID {
        UniqueProcess: core::ptr::null_mut(),
        UniqueThread: core::ptr::null_mut(),
    };
    let mut attributes = kernel_handle_attributes();
    // SAFETY: the outputs are valid; `start` outlives the thread (the tests wait for its object).
    let status = unsafe {
        PsCreateSystemThread(
            &mut handle,
            THREAD_ALL_ACCESS,
            &mut attributes,
            core::ptr::null_mut(),
            &mut client,
            Some(thread_main),
            start as *const Start as PVOID,
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    assert!(!handle.is_null());
    assert_eq!(client.UniqueProcess.addr(), 4);
    handle
}

/// References the thread object behind `handle`.
fn reference(handle: HANDLE) -> PVOID {
    let mut object: PVOID = core::ptr::null_mut();
    // SAFETY: `object` is valid for a write.
    let status = unsafe {
        ObReferenceObjectByHandle(
            handle,
            SYNCHRONIZE,
            core::ptr::null_mut(),
            KernelMode,
            &mut object,
            core::ptr::null_mut(),
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    object
}

fn wait_object(object: PVOID) -> NTSTATUS {
    let mut timeout = relative(BOUND);
    // SAFETY: the caller holds a reference to the object.
    unsafe { KeWaitForSingleObject(object, Executive, KernelMode, FALSE, &mut timeout) }
}

#[test]
fn system_thread_runs_at_passive_and_its_object_is_signalled_at_exit() {
    let _session = emu::session();
    let start = Start::new(false, false);
    let handle = create(&start);
    let object = reference(handle);
    // SAFETY: the handle is open and closed once.
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    assert_eq!(start.started.wait(Some(BOUND)), STATUS_SUCCESS);
    assert_eq!(start.irql.load(Ordering::SeqCst), PASSIVE_LEVEL);
    let mut zero = LARGE_INTEGER::default();
    // SAFETY: we hold a reference to the object.
    assert_eq!(
        unsafe { KeWaitForSingleObject(object, Executive, KernelMode, FALSE, &mut zero) },
        STATUS_TIMEOUT
    );
    start.release.set();
    assert_eq!(wait_object(object), STATUS_SUCCESS);
    // Thread objects stay signalled.
    assert_eq!(wait_object(object), STATUS_SUCCESS);
    // SAFETY: our reference is the last one (handle closed, thread ended).
    assert_eq!(unsafe { ObfDereferenceObject(object) }, 0);
}

#[test]
fn terminate_system_thread_records_and_returns_on_the_host() {
    let _session = emu::session();
    let start = Start::new(false, true);
    let handle = create(&start);
    let object = reference(handle);
    start.release.set();
    assert_eq!(wait_object(object), STATUS_SUCCESS);
    // SAFETY: each reference is released once.
    unsafe {
        assert_eq!(ObfDereferenceObject(object), 1);
        assert_eq!(ZwClose(handle), STATUS_SUCCESS);
    }
}

#[test]
fn returning_at_raised_irql_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let start = Start::new(true, false);
    let handle = create(&start);
    let object = reference(handle);
    start.release.set();
    assert_eq!(wait_object(object), STATUS_SUCCESS);
    let v = take_one(Rule::ThreadExitAtRaisedIrql);
    assert!(v.to_string().contains("returned at DISPATCH_LEVEL"), "{v}");
    // SAFETY: each reference is released once.
    unsafe {
        ObfDereferenceObject(object);
        ZwClose(handle);
    }
}

#[test]
fn thread_creation_above_passive_and_bad_handles_are_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let mut handle: HANDLE = core::ptr::null_mut();
    let status = emu::at_dispatch(|| {
        // SAFETY: rejected before anything is created.
        unsafe {
            PsCreateSystemThread(
                &mut handle,
                THREAD_ALL_ACCESS,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                Some(thread_main),
                core::ptr::null_mut(),
            )
        }
    });
    assert!(!NT_SUCCESS(status));
    take_one(Rule::IrqlTooHigh);
    // SAFETY: closing a handle that was never opened is the violation under test.
    assert_eq!(
        unsafe { ZwClose(core::ptr::without_provenance_mut(0x1234)) },
        STATUS_INVALID_HANDLE
    );
    take_one(Rule::InvalidHandle);
    let mut object: PVOID = core::ptr::null_mut();
    // SAFETY: an invalid handle is an error status, not a violation.
    let status = unsafe {
        ObReferenceObjectByHandle(
            core::ptr::without_provenance_mut(0x1234),
            SYNCHRONIZE,
            core::ptr::null_mut(),
            KernelMode,
            &mut object,
            core::ptr::null_mut(),
        )
    };
    assert_eq!(status, STATUS_INVALID_HANDLE);
    assert!(object.is_null());
}
