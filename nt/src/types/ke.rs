//! Kernel dispatcher objects: `KEVENT`, `KTIMER`, `KDPC`, and the enums their functions take.

use super::basic::*;

/// `DISPATCHER_HEADER` (0x18 bytes on x64). The first word is a union of type/lock bytes;
/// `SignalState` is the state every dispatcher wait tests.
#[repr(C)]
pub struct DISPATCHER_HEADER {
    /// The first word: type, signalling and lock bytes; owned by the kernel.
    pub Lock: LONG,
    /// Positive when the object is signalled.
    pub SignalState: LONG,
    /// The threads waiting on the object.
    pub WaitListHead: LIST_ENTRY,
}

/// `KEVENT` (0x18 bytes on x64). Storage for an event must be nonpaged and live until no thread
/// can wait on or signal it.
#[repr(C)]
pub struct KEVENT {
    /// The dispatcher header: an event is nothing else.
    pub Header: DISPATCHER_HEADER,
}
/// Pointer to [`KEVENT`].
pub type PKEVENT = *mut KEVENT;

/// `KTIMER` (0x40 bytes on x64).
#[repr(C)]
pub struct KTIMER {
    /// The dispatcher header.
    pub Header: DISPATCHER_HEADER,
    /// When the timer expires, in interrupt time; owned by the kernel.
    pub DueTime: u64,
    /// The link in the kernel's timer table.
    pub TimerListEntry: LIST_ENTRY,
    /// The DPC queued on expiry, or NULL.
    pub Dpc: *mut KDPC,
    /// The processor of the timer table entry; owned by the kernel.
    pub Processor: ULONG,
    /// The period in milliseconds of a periodic timer, or 0.
    pub Period: ULONG,
}
/// Pointer to [`KTIMER`].
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
    /// The link in a processor's DPC queue.
    pub DpcListEntry: SINGLE_LIST_ENTRY,
    /// Processors the DPC ran on; owned by the kernel.
    pub ProcessorHistory: ULONG_PTR,
    /// The routine the DPC runs, at DISPATCH_LEVEL.
    pub DeferredRoutine: PKDEFERRED_ROUTINE,
    /// The context passed to `DeferredRoutine`.
    pub DeferredContext: PVOID,
    /// The first argument of `KeInsertQueueDpc` (for a timer's DPC: the low part of the expiry time).
    pub SystemArgument1: PVOID,
    /// The second argument of `KeInsertQueueDpc` (for a timer's DPC: the high part).
    pub SystemArgument2: PVOID,
    /// The DPC queue the DPC is in while it is queued; owned by the kernel.
    pub DpcData: PVOID,
}
/// Pointer to [`KDPC`].
pub type PKDPC = *mut KDPC;

/// `KSTART_ROUTINE`: the body of a system thread, entered at PASSIVE_LEVEL.
pub type PKSTART_ROUTINE = Option<unsafe extern "system" fn(StartContext: PVOID)>;

/// `EVENT_TYPE`.
pub type EVENT_TYPE = i32;
/// A notification event stays signalled until reset and releases every waiter.
pub const NotificationEvent: EVENT_TYPE = 0;
/// A synchronization event releases one waiter and resets itself.
pub const SynchronizationEvent: EVENT_TYPE = 1;

/// `TIMER_TYPE`.
pub type TIMER_TYPE = i32;
/// A notification timer stays signalled until re-armed.
pub const NotificationTimer: TIMER_TYPE = 0;
/// A synchronization timer releases one waiter and resets itself.
pub const SynchronizationTimer: TIMER_TYPE = 1;

/// `KWAIT_REASON` (only the values drivers pass).
pub type KWAIT_REASON = i32;
/// A wait on behalf of the kernel or a driver (`Executive`).
pub const Executive: KWAIT_REASON = 0;
/// A wait on behalf of a user request (`UserRequest`).
pub const UserRequest: KWAIT_REASON = 6;
