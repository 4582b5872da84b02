//! `KEVENT`: notification events stay signalled until cleared; synchronization events are reset by
//! the one wait they satisfy. The state lives in the event's own header (see `dispatcher.rs`).
//!
//! Every function here reports a [`Rule::UseAfterFree`] when the event lies in a freed pool block
//! (see `freed_objects.rs`); in recording mode the call then does nothing and returns 0
//! (`KeWaitForSingleObject`: `STATUS_INVALID_PARAMETER`).

use super::dispatcher::{self, EVENT_NOTIFICATION_OBJECT, EVENT_SYNCHRONIZATION_OBJECT, signal_state};
use super::freed_objects::{header_is_freed, storage_is_freed};
use super::verifier::{Rule, violation};
use super::{clock, irql};
use crate::types::*;
use core::mem::size_of;
use std::sync::atomic::Ordering;

/// `KeInitializeEvent`: any IRQL.
///
/// # Safety
/// `Event` points to writable, nonpaged-lifetime storage for a KEVENT that no thread waits on.
pub unsafe extern "system" fn KeInitializeEvent(Event: PKEVENT, Type: EVENT_TYPE, State: BOOLEAN) {
    let kind = match Type {
        NotificationEvent => EVENT_NOTIFICATION_OBJECT,
        SynchronizationEvent => EVENT_SYNCHRONIZATION_OBJECT,
        other => {
            violation(
                Rule::InvalidParameter,
                &format_args!("KeInitializeEvent type {other}"),
                None,
            );
            return;
        }
    };
    if storage_is_freed(Event.addr(), "KeInitializeEvent", "KEVENT") {
        return;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        dispatcher::initialize(
            core::ptr::addr_of_mut!((*Event).Header),
            kind,
            size_of::<KEVENT>(),
            LONG::from(State != FALSE),
        )
    };
}

/// Header of a live event.
///
/// # Safety
/// `event` points to a live, initialised KEVENT.
unsafe fn header(event: PKEVENT) -> *mut DISPATCHER_HEADER {
    // SAFETY: forwarded; no reference is created.
    unsafe { core::ptr::addr_of_mut!((*event).Header) }
}

/// `KeSetEvent`: IRQL <= DISPATCH_LEVEL (<= APC_LEVEL with `Wait` TRUE). Signals the event, wakes its
/// waiters, returns the previous state.
///
/// # Safety
/// `Event` points to a live, initialised KEVENT.
pub unsafe extern "system" fn KeSetEvent(Event: PKEVENT, Increment: KPRIORITY, Wait: BOOLEAN) -> LONG {
    let _ = Increment;
    let max = if Wait != FALSE { APC_LEVEL } else { DISPATCH_LEVEL };
    if !irql::require_max("KeSetEvent", max) {
        return 0;
    }
    // SAFETY: forwarded from the caller's contract (the check is for callers that broke it).
    if unsafe { header_is_freed(header(Event), "KeSetEvent", "KEVENT") } {
        return 0;
    }
    let (previous, wakeups) = {
        let guard = dispatcher::lock();
        // SAFETY: forwarded from the caller's contract.
        let previous = unsafe { signal_state(header(Event)) }.swap(1, Ordering::AcqRel);
        // SAFETY: as above; only the header's address is used.
        (previous, dispatcher::waiters_of(&guard, unsafe { header(Event) }))
    };
    wakeups.wake();
    previous
}

/// `KeClearEvent`: IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `Event` points to a live, initialised KEVENT.
pub unsafe extern "system" fn KeClearEvent(Event: PKEVENT) {
    // SAFETY: forwarded from the caller's contract (the check is for callers that broke it; done here
    // so that the report names KeClearEvent).
    if unsafe { header_is_freed(header(Event), "KeClearEvent", "KEVENT") } {
        return;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe { KeResetEvent(Event) };
}

/// `KeResetEvent`: IRQL <= DISPATCH_LEVEL; returns the previous state.
///
/// # Safety
/// `Event` points to a live, initialised KEVENT.
pub unsafe extern "system" fn KeResetEvent(Event: PKEVENT) -> LONG {
    if !irql::require_max("KeResetEvent", DISPATCH_LEVEL) {
        return 0;
    }
    // SAFETY: forwarded from the caller's contract (the check is for callers that broke it).
    if unsafe { header_is_freed(header(Event), "KeResetEvent", "KEVENT") } {
        return 0;
    }
    let _guard = dispatcher::lock();
    // SAFETY: forwarded from the caller's contract.
    unsafe { signal_state(header(Event)) }.swap(0, Ordering::AcqRel)
}

/// `KeReadStateEvent`: any IRQL.
///
/// # Safety
/// `Event` points to a live, initialised KEVENT.
pub unsafe extern "system" fn KeReadStateEvent(Event: PKEVENT) -> LONG {
    // SAFETY: forwarded from the caller's contract (the check is for callers that broke it).
    if unsafe { header_is_freed(header(Event), "KeReadStateEvent", "KEVENT") } {
        return 0;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe { signal_state(header(Event)) }.load(Ordering::Acquire)
}

/// `KeWaitForSingleObject` on an event, timer or thread object. With no timeout or a non-zero one
/// the caller must be at IRQL <= APC_LEVEL ([`Rule::WaitAtDispatch`]; in recording mode the wait
/// becomes a poll); a zero timeout (a poll) is allowed at DISPATCH_LEVEL. Negative timeouts are
/// relative, positive ones absolute interrupt times. Returns `STATUS_SUCCESS` or `STATUS_TIMEOUT`;
/// there are no APCs, so alertable waits are never alerted.
///
/// # Safety
/// `Object` points to a live dispatcher object that stays live during the wait; `Timeout` is NULL or
/// valid for a read.
pub unsafe extern "system" fn KeWaitForSingleObject(
    Object: PVOID,
    WaitReason: KWAIT_REASON,
    WaitMode: KPROCESSOR_MODE,
    Alertable: BOOLEAN,
    Timeout: *mut LARGE_INTEGER,
) -> NTSTATUS {
    let _ = (WaitReason, WaitMode, Alertable);
    // SAFETY: forwarded from the caller's contract.
    let timeout = unsafe { Timeout.as_ref() }.map(|t| t.QuadPart);
    let mut deadline = timeout.map(clock::deadline);
    if timeout != Some(0) && irql::current() > APC_LEVEL {
        violation(
            Rule::WaitAtDispatch,
            &format_args!(
                "KeWaitForSingleObject({Object:p}) with {} at {}",
                match timeout {
                    None => "no timeout".to_string(),
                    Some(t) => format!("timeout {t}"),
                },
                irql::name(irql::current())
            ),
            None,
        );
        deadline = Some(0);
    } else if !irql::require_max("KeWaitForSingleObject", DISPATCH_LEVEL) {
        return STATUS_TIMEOUT;
    }
    // The emulated WSK provider's deferred completions run first, as its DPC would on this CPU.
    super::wsk::deliver_before_wait();
    // SAFETY: every dispatcher object starts with its header; forwarded from the caller's contract.
    // `wait` reports an object in freed pool.
    unsafe { dispatcher::wait(Object.cast::<DISPATCHER_HEADER>(), deadline) }
}

/// `KeDelayExecutionThread`: IRQL <= APC_LEVEL; sleeps for a relative (negative) interval or until an
/// absolute interrupt time. Returns `STATUS_SUCCESS` (never alerted).
///
/// # Safety
/// `Interval` is valid for a read.
pub unsafe extern "system" fn KeDelayExecutionThread(
    WaitMode: KPROCESSOR_MODE,
    Alertable: BOOLEAN,
    Interval: *mut LARGE_INTEGER,
) -> NTSTATUS {
    let _ = (WaitMode, Alertable);
    if irql::current() > APC_LEVEL {
        violation(
            Rule::WaitAtDispatch,
            &format_args!("KeDelayExecutionThread at {}", irql::name(irql::current())),
            None,
        );
        return STATUS_SUCCESS;
    }
    // SAFETY: forwarded from the caller's contract.
    let Some(interval) = (unsafe { Interval.as_ref() }) else {
        violation(
            Rule::InvalidParameter,
            &"KeDelayExecutionThread with a NULL interval",
            None,
        );
        return STATUS_INVALID_PARAMETER;
    };
    super::wsk::deliver_before_wait();
    if interval.QuadPart == 0 {
        std::thread::yield_now();
    } else {
        dispatcher::sleep_until(clock::deadline(interval.QuadPart));
    }
    STATUS_SUCCESS
}
