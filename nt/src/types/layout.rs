//! x64 layouts pinned at compile time. Each offset below is one that code in this project (or the
//! Windows kernel reading our structures) depends on; the values come from `wdm.h` and are
//! cross-checked against the mingw-w64 DDK headers by `tests/ddk_layout.rs`, through the facts in
//! `tests/header_facts/ddk.txt`.
//!
//! The same table is exported as [`LAYOUT`] so that the cross-check and the regenerator of those
//! facts (`examples/header-facts.rs`) work from exactly what is asserted here.

use super::*;
use core::mem::{offset_of, size_of};

/// `(C type, C member path or "" for sizeof, value)` for every checked size and offset.
pub const LAYOUT: &[(&str, &str, usize)] = &[
    ("IRP", "", size_of::<IRP>()),
    ("IRP", "Type", offset_of!(IRP, Type)),
    ("IRP", "Size", offset_of!(IRP, Size)),
    ("IRP", "MdlAddress", offset_of!(IRP, MdlAddress)),
    ("IRP", "Flags", offset_of!(IRP, Flags)),
    ("IRP", "AssociatedIrp", offset_of!(IRP, AssociatedIrp)),
    ("IRP", "ThreadListEntry", offset_of!(IRP, ThreadListEntry)),
    ("IRP", "IoStatus", offset_of!(IRP, IoStatus)),
    ("IRP", "RequestorMode", offset_of!(IRP, RequestorMode)),
    ("IRP", "PendingReturned", offset_of!(IRP, PendingReturned)),
    ("IRP", "StackCount", offset_of!(IRP, StackCount)),
    ("IRP", "CurrentLocation", offset_of!(IRP, CurrentLocation)),
    ("IRP", "Cancel", offset_of!(IRP, Cancel)),
    ("IRP", "CancelIrql", offset_of!(IRP, CancelIrql)),
    ("IRP", "ApcEnvironment", offset_of!(IRP, ApcEnvironment)),
    ("IRP", "AllocationFlags", offset_of!(IRP, AllocationFlags)),
    ("IRP", "UserIosb", offset_of!(IRP, UserIosb)),
    ("IRP", "UserEvent", offset_of!(IRP, UserEvent)),
    ("IRP", "Overlay", offset_of!(IRP, Overlay)),
    ("IRP", "CancelRoutine", offset_of!(IRP, CancelRoutine)),
    ("IRP", "UserBuffer", offset_of!(IRP, UserBuffer)),
    ("IRP", "Tail", offset_of!(IRP, Tail)),
    (
        "IRP",
        "Tail.Overlay.DriverContext",
        offset_of!(IRP, Tail) + offset_of!(IRP_TAIL_OVERLAY, DriverContext),
    ),
    (
        "IRP",
        "Tail.Overlay.Thread",
        offset_of!(IRP, Tail) + offset_of!(IRP_TAIL_OVERLAY, Thread),
    ),
    (
        "IRP",
        "Tail.Overlay.AuxiliaryBuffer",
        offset_of!(IRP, Tail) + offset_of!(IRP_TAIL_OVERLAY, AuxiliaryBuffer),
    ),
    (
        "IRP",
        "Tail.Overlay.ListEntry",
        offset_of!(IRP, Tail) + offset_of!(IRP_TAIL_OVERLAY, ListEntry),
    ),
    (
        "IRP",
        "Tail.Overlay.CurrentStackLocation",
        offset_of!(IRP, Tail) + offset_of!(IRP_TAIL_OVERLAY, CurrentStackLocation),
    ),
    (
        "IRP",
        "Tail.Overlay.OriginalFileObject",
        offset_of!(IRP, Tail) + offset_of!(IRP_TAIL_OVERLAY, OriginalFileObject),
    ),
    ("IO_STACK_LOCATION", "", size_of::<IO_STACK_LOCATION>()),
    (
        "IO_STACK_LOCATION",
        "MajorFunction",
        offset_of!(IO_STACK_LOCATION, MajorFunction),
    ),
    (
        "IO_STACK_LOCATION",
        "MinorFunction",
        offset_of!(IO_STACK_LOCATION, MinorFunction),
    ),
    ("IO_STACK_LOCATION", "Flags", offset_of!(IO_STACK_LOCATION, Flags)),
    ("IO_STACK_LOCATION", "Control", offset_of!(IO_STACK_LOCATION, Control)),
    (
        "IO_STACK_LOCATION",
        "Parameters",
        offset_of!(IO_STACK_LOCATION, Parameters),
    ),
    (
        "IO_STACK_LOCATION",
        "DeviceObject",
        offset_of!(IO_STACK_LOCATION, DeviceObject),
    ),
    (
        "IO_STACK_LOCATION",
        "FileObject",
        offset_of!(IO_STACK_LOCATION, FileObject),
    ),
    (
        "IO_STACK_LOCATION",
        "CompletionRoutine",
        offset_of!(IO_STACK_LOCATION, CompletionRoutine),
    ),
    ("IO_STACK_LOCATION", "Context", offset_of!(IO_STACK_LOCATION, Context)),
    ("IO_STATUS_BLOCK", "", size_of::<IO_STATUS_BLOCK>()),
    ("IO_STATUS_BLOCK", "Status", offset_of!(IO_STATUS_BLOCK, Status)),
    (
        "IO_STATUS_BLOCK",
        "Information",
        offset_of!(IO_STATUS_BLOCK, Information),
    ),
    ("MDL", "", size_of::<MDL>()),
    ("MDL", "Next", offset_of!(MDL, Next)),
    ("MDL", "Size", offset_of!(MDL, Size)),
    ("MDL", "MdlFlags", offset_of!(MDL, MdlFlags)),
    ("MDL", "Process", offset_of!(MDL, Process)),
    ("MDL", "MappedSystemVa", offset_of!(MDL, MappedSystemVa)),
    ("MDL", "StartVa", offset_of!(MDL, StartVa)),
    ("MDL", "ByteCount", offset_of!(MDL, ByteCount)),
    ("MDL", "ByteOffset", offset_of!(MDL, ByteOffset)),
    ("KEVENT", "", size_of::<KEVENT>()),
    (
        "KEVENT",
        "Header.SignalState",
        offset_of!(KEVENT, Header) + offset_of!(DISPATCHER_HEADER, SignalState),
    ),
    (
        "KEVENT",
        "Header.WaitListHead",
        offset_of!(KEVENT, Header) + offset_of!(DISPATCHER_HEADER, WaitListHead),
    ),
    ("DISPATCHER_HEADER", "", size_of::<DISPATCHER_HEADER>()),
    ("KTIMER", "", size_of::<KTIMER>()),
    ("KTIMER", "DueTime", offset_of!(KTIMER, DueTime)),
    ("KTIMER", "TimerListEntry", offset_of!(KTIMER, TimerListEntry)),
    ("KTIMER", "Dpc", offset_of!(KTIMER, Dpc)),
    ("KTIMER", "Period", offset_of!(KTIMER, Period)),
    ("KDPC", "", size_of::<KDPC>()),
    ("KDPC", "DpcListEntry", offset_of!(KDPC, DpcListEntry)),
    ("KDPC", "DeferredRoutine", offset_of!(KDPC, DeferredRoutine)),
    ("KDPC", "DeferredContext", offset_of!(KDPC, DeferredContext)),
    ("KDPC", "SystemArgument1", offset_of!(KDPC, SystemArgument1)),
    ("KDPC", "SystemArgument2", offset_of!(KDPC, SystemArgument2)),
    ("KDPC", "DpcData", offset_of!(KDPC, DpcData)),
    ("LARGE_INTEGER", "", size_of::<LARGE_INTEGER>()),
    ("LIST_ENTRY", "", size_of::<LIST_ENTRY>()),
    ("UNICODE_STRING", "", size_of::<UNICODE_STRING>()),
    ("UNICODE_STRING", "Buffer", offset_of!(UNICODE_STRING, Buffer)),
    ("RTL_OSVERSIONINFOW", "", size_of::<RTL_OSVERSIONINFOW>()),
    (
        "RTL_OSVERSIONINFOW",
        "dwBuildNumber",
        offset_of!(RTL_OSVERSIONINFOW, dwBuildNumber),
    ),
    (
        "RTL_OSVERSIONINFOW",
        "szCSDVersion",
        offset_of!(RTL_OSVERSIONINFOW, szCSDVersion),
    ),
    ("CLIENT_ID", "", size_of::<CLIENT_ID>()),
    ("OBJECT_ATTRIBUTES", "", size_of::<OBJECT_ATTRIBUTES>()),
    ("DRIVER_OBJECT", "", size_of::<DRIVER_OBJECT>()),
    ("DRIVER_OBJECT", "DeviceObject", offset_of!(DRIVER_OBJECT, DeviceObject)),
    ("DRIVER_OBJECT", "DriverStart", offset_of!(DRIVER_OBJECT, DriverStart)),
    (
        "DRIVER_OBJECT",
        "DriverExtension",
        offset_of!(DRIVER_OBJECT, DriverExtension),
    ),
    ("DRIVER_OBJECT", "DriverName", offset_of!(DRIVER_OBJECT, DriverName)),
    ("DRIVER_OBJECT", "DriverUnload", offset_of!(DRIVER_OBJECT, DriverUnload)),
    (
        "DRIVER_OBJECT",
        "MajorFunction",
        offset_of!(DRIVER_OBJECT, MajorFunction),
    ),
];

/// Looks `(ty, member)` up in a layout table at compile time (for the `const` assertions below and
/// in `wsk/layout.rs`); a missing entry fails the build.
pub(crate) const fn lookup(table: &[(&str, &str, usize)], ty: &str, member: &str) -> usize {
    let mut i = 0;
    while i < table.len() {
        let (t, m, v) = table[i];
        if str_eq(t, ty) && str_eq(m, member) {
            return v;
        }
        i += 1;
    }
    panic!("no such layout entry")
}

const fn layout(ty: &str, member: &str) -> usize {
    lookup(LAYOUT, ty, member)
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The documented x64 values. On other pointer widths the structures differ and are not used with a
/// real kernel, so the assertions apply to 64-bit targets only (the host emulation is 64-bit too).
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(layout("IRP", "") == 0xD0);
    assert!(layout("IRP", "MdlAddress") == 0x08);
    assert!(layout("IRP", "AssociatedIrp") == 0x18);
    assert!(layout("IRP", "IoStatus") == 0x30);
    assert!(layout("IRP", "PendingReturned") == 0x41);
    assert!(layout("IRP", "StackCount") == 0x42);
    assert!(layout("IRP", "CurrentLocation") == 0x43);
    assert!(layout("IRP", "Cancel") == 0x44);
    assert!(layout("IRP", "CancelIrql") == 0x45);
    assert!(layout("IRP", "UserIosb") == 0x48);
    assert!(layout("IRP", "CancelRoutine") == 0x68);
    assert!(layout("IRP", "UserBuffer") == 0x70);
    assert!(layout("IRP", "Tail") == 0x78);
    assert!(layout("IRP", "Tail.Overlay.Thread") == 0x98);
    assert!(layout("IRP", "Tail.Overlay.CurrentStackLocation") == 0xB8);
    assert!(layout("IO_STACK_LOCATION", "") == 0x48);
    assert!(layout("IO_STACK_LOCATION", "Control") == 0x03);
    assert!(layout("IO_STACK_LOCATION", "Parameters") == 0x08);
    assert!(layout("IO_STACK_LOCATION", "DeviceObject") == 0x28);
    assert!(layout("IO_STACK_LOCATION", "CompletionRoutine") == 0x38);
    assert!(layout("IO_STACK_LOCATION", "Context") == 0x40);
    assert!(layout("IO_STATUS_BLOCK", "") == 0x10);
    assert!(layout("IO_STATUS_BLOCK", "Information") == 0x08);
    assert!(layout("MDL", "") == 0x30);
    assert!(layout("MDL", "MdlFlags") == 0x0A);
    assert!(layout("MDL", "MappedSystemVa") == 0x18);
    assert!(layout("MDL", "StartVa") == 0x20);
    assert!(layout("MDL", "ByteCount") == 0x28);
    assert!(layout("MDL", "ByteOffset") == 0x2C);
    assert!(layout("KEVENT", "") == 0x18);
    assert!(layout("KEVENT", "Header.SignalState") == 0x04);
    assert!(layout("KTIMER", "") == 0x40);
    assert!(layout("KTIMER", "Dpc") == 0x30);
    assert!(layout("KDPC", "") == 0x40);
    assert!(layout("KDPC", "DeferredRoutine") == 0x18);
    assert!(layout("KDPC", "DeferredContext") == 0x20);
    assert!(layout("LARGE_INTEGER", "") == 0x08);
    assert!(layout("UNICODE_STRING", "") == 0x10);
    assert!(layout("RTL_OSVERSIONINFOW", "") == 0x114);
    assert!(layout("OBJECT_ATTRIBUTES", "") == 0x30);
    assert!(layout("DRIVER_OBJECT", "") == 0x150);
    assert!(layout("DRIVER_OBJECT", "DriverUnload") == 0x68);
    assert!(layout("DRIVER_OBJECT", "MajorFunction") == 0x70);
};

/// `(C expression, value)` of constants whose values come from `wdm.h`, checked like [`LAYOUT`].
/// (`POOL_FLAG_*` are absent from the mingw-w64 headers and are pinned from the WDK documentation.)
pub const CONSTANT_TABLE: &[(&str, i64)] = &[
    ("SL_PENDING_RETURNED", SL_PENDING_RETURNED as i64),
    ("SL_ERROR_RETURNED", SL_ERROR_RETURNED as i64),
    ("SL_INVOKE_ON_CANCEL", SL_INVOKE_ON_CANCEL as i64),
    ("SL_INVOKE_ON_SUCCESS", SL_INVOKE_ON_SUCCESS as i64),
    ("SL_INVOKE_ON_ERROR", SL_INVOKE_ON_ERROR as i64),
    ("IO_TYPE_IRP", IO_TYPE_IRP as i64),
    ("IO_NO_INCREMENT", IO_NO_INCREMENT as i64),
    ("MDL_MAPPED_TO_SYSTEM_VA", MDL_MAPPED_TO_SYSTEM_VA as i64),
    ("MDL_PAGES_LOCKED", MDL_PAGES_LOCKED as i64),
    ("MDL_SOURCE_IS_NONPAGED_POOL", MDL_SOURCE_IS_NONPAGED_POOL as i64),
    ("MDL_ALLOCATED_FIXED_SIZE", MDL_ALLOCATED_FIXED_SIZE as i64),
    ("MDL_PARTIAL", MDL_PARTIAL as i64),
    ("PAGE_SIZE", PAGE_SIZE as i64),
    ("PASSIVE_LEVEL", PASSIVE_LEVEL as i64),
    ("APC_LEVEL", APC_LEVEL as i64),
    ("DISPATCH_LEVEL", DISPATCH_LEVEL as i64),
    ("KernelMode", KernelMode as i64),
    ("UserMode", UserMode as i64),
    ("NotificationEvent", NotificationEvent as i64),
    ("SynchronizationEvent", SynchronizationEvent as i64),
    ("NotificationTimer", NotificationTimer as i64),
    ("SynchronizationTimer", SynchronizationTimer as i64),
    ("Executive", Executive as i64),
    ("UserRequest", UserRequest as i64),
    ("OBJ_KERNEL_HANDLE", OBJ_KERNEL_HANDLE as i64),
    ("THREAD_ALL_ACCESS", THREAD_ALL_ACCESS as i64),
    ("SYNCHRONIZE", SYNCHRONIZE as i64),
    ("DPFLTR_IHVDRIVER_ID", DPFLTR_IHVDRIVER_ID as i64),
    ("DPFLTR_ERROR_LEVEL", DPFLTR_ERROR_LEVEL as i64),
    ("DPFLTR_WARNING_LEVEL", DPFLTR_WARNING_LEVEL as i64),
    ("DPFLTR_TRACE_LEVEL", DPFLTR_TRACE_LEVEL as i64),
    ("DPFLTR_INFO_LEVEL", DPFLTR_INFO_LEVEL as i64),
    ("IRP_MJ_MAXIMUM_FUNCTION + 1", IRP_MJ_COUNT as i64),
    ("IO_TYPE_DRIVER", IO_TYPE_DRIVER as i64),
    ("IO_TYPE_DEVICE", IO_TYPE_DEVICE as i64),
    ("FILE_DEVICE_UNKNOWN", FILE_DEVICE_UNKNOWN as i64),
    ("FILE_DEVICE_SECURE_OPEN", FILE_DEVICE_SECURE_OPEN as i64),
    ("CriticalWorkQueue", CriticalWorkQueue as i64),
    ("DelayedWorkQueue", DelayedWorkQueue as i64),
    ("NonPagedPool", NonPagedPool as i64),
    ("NonPagedPoolExecute", NonPagedPoolExecute as i64),
    ("PagedPool", PagedPool as i64),
    ("NonPagedPoolCacheAligned", NonPagedPoolCacheAligned as i64),
    ("PagedPoolCacheAligned", PagedPoolCacheAligned as i64),
    ("NonPagedPoolNx", NonPagedPoolNx as i64),
    ("NonPagedPoolNxCacheAligned", NonPagedPoolNxCacheAligned as i64),
];
