//! Kernel dispatcher objects: `KEVENT`, `KTIMER`, `KDPC`, and the enums their functions take.

use super::basic::*;

/// `DISPATCHER_HEADER` (0x18 bytes on x64). The first word is a union of type/lock bytes;
/// `SignalState` is the state every dispatcher wait tests.
#[repr(C)]
pub struct DISPATCHER_HEADER {
    pub Lock: LONG,
    pub SignalState: LONG,
    pub WaitListHead: LIST_ENTRY,
}

/// `KEVENT` (0x18 bytes on x64). Storage for an event must be nonpaged and live until no thread
/// can wait on or signal it.
#[repr(C)]
pub struct KEVENT {
    pub Header: DISPATCHER_HEADER,
}
pub type PKEVENT = *mut KEVENT;

/// `KTIMER` (0x40 bytes on x64).
#[repr(C)]
pub struct KTIMER {
    pub Header: DISPATCHER_HEADER,
    pub DueTime: u64,
    pub TimerListEntry: LIST_ENTRY,
    pub Dpc: *mut KDPC,
    pub Processor: ULONG,
    pub Period: ULONG,
}
pub type PKTIMER = *mut KTIMER;

/// `KDEFERRED_ROUTINE`: runs at DISPATCH_LEVEL.
pub type PKDEFERRED_ROUTINE = Option<
    unsafe extern "system" fn(Dpc: *mut KDPC, DeferredContext: PVOID, SystemArgument1: PVOID, SystemArgument2: PVOID),
>;

/// `KDPC` (0x40 bytes on x64).
#[repr(C)]
pub struct KDPC {
    /// `TargetInfoAsUlong` / `{ Type, Importance, Number }`.
    pub TargetInfoAsUlong: ULONG,
    pub DpcListEntry: SINGLE_LIST_ENTRY,
    pub ProcessorHistory: ULONG_PTR,
    pub DeferredRoutine: PKDEFERRED_ROUTINE,
    pub DeferredContext: PVOID,
    pub SystemArgument1: PVOID,
    pub SystemArgument2: PVOID,
    pub DpcData: PVOID,
}
pub type PKDPC = *mut KDPC;

/// `KSTART_ROUTINE`: the body of a system thread, entered at PASSIVE_LEVEL.
pub type PKSTART_ROUTINE = Option<unsafe extern "system" fn(StartContext: PVOID)>;

/// `EVENT_TYPE`.
pub type EVENT_TYPE = i32;
pub const NotificationEvent: EVENT_TYPE = 0;
pub const SynchronizationEvent: EVENT_TYPE = 1;

/// `TIMER_TYPE`.
pub type TIMER_TYPE = i32;
pub const NotificationTimer: TIMER_TYPE = 0;
pub const SynchronizationTimer: TIMER_TYPE = 1;

/// `KWAIT_REASON` (only the values drivers pass).
pub type KWAIT_REASON = i32;
pub const Executive: KWAIT_REASON = 0;
pub const UserRequest: KWAIT_REASON = 6;
