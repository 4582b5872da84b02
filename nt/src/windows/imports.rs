//! `raw-dylib` imports from ntoskrnl.exe. `+verbatim` keeps the module name as written (without it the
//! linker would look for `ntoskrnl.exe.dll`). The signatures are those of the WDK documentation;
//! the host emulation implements the same names with the same signatures. Exports newer than the
//! oldest supported Windows are never imported: see `crate::optional` and `fallbacks.rs`.

use crate::types::*;

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    // I/O manager: IRPs, MDLs, cancellation.
    /// Allocates an IRP with `StackSize` stack locations, or returns NULL. IRQL <= DISPATCH_LEVEL.
    pub fn IoAllocateIrp(StackSize: CCHAR, ChargeQuota: BOOLEAN) -> PIRP;
    /// Reinitialises a completed IRP for reuse, with `IoStatus.Status = Iostatus`. IRQL <= DISPATCH_LEVEL.
    pub fn IoReuseIrp(Irp: PIRP, Iostatus: NTSTATUS);
    /// Frees an IRP from `IoAllocateIrp` that no driver owns any more. IRQL <= DISPATCH_LEVEL.
    pub fn IoFreeIrp(Irp: PIRP);
    /// Requests cancellation of a pending IRP; `TRUE` if its cancel routine was called. IRQL <= DISPATCH_LEVEL.
    pub fn IoCancelIrp(Irp: PIRP) -> BOOLEAN;
    /// `IoCompleteRequest`: completes the IRP, calling the completion routines above. IRQL <= DISPATCH_LEVEL.
    pub fn IofCompleteRequest(Irp: PIRP, PriorityBoost: CCHAR);
    /// Acquires the system cancel spin lock, raising to DISPATCH_LEVEL; the old IRQL goes to `*Irql`.
    pub fn IoAcquireCancelSpinLock(Irql: *mut KIRQL);
    /// Releases the system cancel spin lock and returns to `Irql`.
    pub fn IoReleaseCancelSpinLock(Irql: KIRQL);
    /// Allocates an MDL for the buffer at `VirtualAddress`, or returns NULL. IRQL <= DISPATCH_LEVEL.
    pub fn IoAllocateMdl(
        VirtualAddress: PVOID,
        Length: ULONG,
        SecondaryBuffer: BOOLEAN,
        ChargeQuota: BOOLEAN,
        Irp: PIRP,
    ) -> PMDL;
    /// Frees an MDL from `IoAllocateMdl`. IRQL <= DISPATCH_LEVEL.
    pub fn IoFreeMdl(Mdl: PMDL);
    /// Fills in the page frame numbers of an MDL describing nonpaged pool. IRQL <= DISPATCH_LEVEL.
    pub fn MmBuildMdlForNonPagedPool(MemoryDescriptorList: PMDL);

    // I/O manager: device objects, unload-safe completion routines, work items.
    /// Creates a device object of the driver. PASSIVE_LEVEL.
    pub fn IoCreateDevice(
        DriverObject: PDRIVER_OBJECT,
        DeviceExtensionSize: ULONG,
        DeviceName: PUNICODE_STRING,
        DeviceType: DEVICE_TYPE,
        DeviceCharacteristics: ULONG,
        Exclusive: BOOLEAN,
        DeviceObject: *mut PDEVICE_OBJECT,
    ) -> NTSTATUS;
    /// Deletes a device object; it is freed when its last reference goes. PASSIVE_LEVEL.
    pub fn IoDeleteDevice(DeviceObject: PDEVICE_OBJECT);
    /// Sets a completion routine that keeps `DeviceObject`, and so the driver's image, referenced until the routine has returned; allocates, and can fail. IRQL <= DISPATCH_LEVEL. Windows XP and later (see [`crate::resolve_optional_exports`] for the fallback).
    pub fn IoSetCompletionRoutineEx(
        DeviceObject: PDEVICE_OBJECT,
        Irp: PIRP,
        CompletionRoutine: PIO_COMPLETION_ROUTINE,
        Context: PVOID,
        InvokeOnSuccess: BOOLEAN,
        InvokeOnError: BOOLEAN,
        InvokeOnCancel: BOOLEAN,
    ) -> NTSTATUS;
    /// Allocates a work item bound to `DeviceObject`, or returns NULL. IRQL <= DISPATCH_LEVEL.
    pub fn IoAllocateWorkItem(DeviceObject: PDEVICE_OBJECT) -> PIO_WORKITEM;
    /// Queues a work item: `WorkerRoutine` runs at PASSIVE_LEVEL on a system worker thread, with `DeviceObject` referenced. IRQL <= DISPATCH_LEVEL.
    pub fn IoQueueWorkItem(
        IoWorkItem: PIO_WORKITEM,
        WorkerRoutine: PIO_WORKITEM_ROUTINE,
        QueueType: WORK_QUEUE_TYPE,
        Context: PVOID,
    );
    /// Frees a work item that is not queued. IRQL <= DISPATCH_LEVEL.
    pub fn IoFreeWorkItem(IoWorkItem: PIO_WORKITEM);

    // Pool.
    /// Frees a pool block allocated with `Tag`. IRQL <= DISPATCH_LEVEL (nonpaged pool).
    pub fn ExFreePoolWithTag(P: PVOID, Tag: ULONG);

    // Dispatcher objects, timers, DPCs.
    /// Initialises a notification or synchronization event in nonpaged storage.
    pub fn KeInitializeEvent(Event: PKEVENT, Type: EVENT_TYPE, State: BOOLEAN);
    /// Signals an event; returns its previous state. IRQL <= DISPATCH_LEVEL with `Wait` FALSE.
    pub fn KeSetEvent(Event: PKEVENT, Increment: KPRIORITY, Wait: BOOLEAN) -> LONG;
    /// Resets an event to not signalled. IRQL <= DISPATCH_LEVEL.
    pub fn KeClearEvent(Event: PKEVENT);
    /// Resets an event to not signalled; returns its previous state. IRQL <= DISPATCH_LEVEL.
    pub fn KeResetEvent(Event: PKEVENT) -> LONG;
    /// The event's state: nonzero when signalled. IRQL <= DISPATCH_LEVEL.
    pub fn KeReadStateEvent(Event: PKEVENT) -> LONG;
    /// Waits for a dispatcher object, up to `*Timeout` (100 ns units, negative = relative; NULL = forever). IRQL <= APC_LEVEL, or DISPATCH_LEVEL with a zero timeout.
    pub fn KeWaitForSingleObject(
        Object: PVOID,
        WaitReason: KWAIT_REASON,
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// Puts the current thread to sleep for `*Interval` (100 ns units, negative = relative). IRQL <= APC_LEVEL.
    pub fn KeDelayExecutionThread(
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Interval: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// Initialises a notification or synchronization timer in nonpaged storage.
    pub fn KeInitializeTimerEx(Timer: PKTIMER, Type: TIMER_TYPE);
    /// Arms a timer (re-arming cancels the previous expiry), optionally periodic and with a DPC; `TRUE` if it was already armed. IRQL <= DISPATCH_LEVEL.
    pub fn KeSetTimerEx(Timer: PKTIMER, DueTime: LARGE_INTEGER, Period: LONG, Dpc: PKDPC) -> BOOLEAN;
    /// Cancels a timer; `TRUE` if it was armed. IRQL <= DISPATCH_LEVEL. A DPC already queued still runs.
    pub fn KeCancelTimer(Timer: PKTIMER) -> BOOLEAN;
    /// `TRUE` if the timer is signalled. IRQL <= DISPATCH_LEVEL.
    pub fn KeReadStateTimer(Timer: PKTIMER) -> BOOLEAN;
    /// Initialises a DPC with its routine and context.
    pub fn KeInitializeDpc(Dpc: PKDPC, DeferredRoutine: PKDEFERRED_ROUTINE, DeferredContext: PVOID);
    /// Returns once every DPC queued on any processor has run. PASSIVE_LEVEL.
    pub fn KeFlushQueuedDpcs();
    /// Acquires a `KSPIN_LOCK`, raising to DISPATCH_LEVEL; returns the previous IRQL. IRQL <= DISPATCH_LEVEL.
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut usize) -> KIRQL;
    /// Releases a `KSPIN_LOCK` and returns to `NewIrql`.
    pub fn KeReleaseSpinLock(SpinLock: *mut usize, NewIrql: KIRQL);

    // Threads and objects.
    /// Creates a system thread running `StartRoutine(StartContext)` at PASSIVE_LEVEL. PASSIVE_LEVEL.
    pub fn PsCreateSystemThread(
        ThreadHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        ProcessHandle: HANDLE,
        ClientId: *mut CLIENT_ID,
        StartRoutine: PKSTART_ROUTINE,
        StartContext: PVOID,
    ) -> NTSTATUS;
    /// Ends the current system thread; does not return on Windows.
    pub fn PsTerminateSystemThread(ExitStatus: NTSTATUS) -> NTSTATUS;
    /// References the object behind a handle (for example a thread, to wait on it). PASSIVE_LEVEL.
    pub fn ObReferenceObjectByHandle(
        Handle: HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectType: POBJECT_TYPE,
        AccessMode: KPROCESSOR_MODE,
        Object: *mut PVOID,
        HandleInformation: PVOID,
    ) -> NTSTATUS;
    // `FASTCALL` in wdm.h, which is the one x64 calling convention, like `system`.
    /// `ObReferenceObject`: adds a reference to an object. IRQL <= DISPATCH_LEVEL.
    pub fn ObfReferenceObject(Object: PVOID) -> LONG_PTR;
    /// `ObDereferenceObject`: drops a reference; the last frees the object. IRQL <= DISPATCH_LEVEL.
    pub fn ObfDereferenceObject(Object: PVOID) -> LONG_PTR;
    /// Closes a kernel handle. PASSIVE_LEVEL.
    pub fn ZwClose(Handle: HANDLE) -> NTSTATUS;
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `DbgPrintEx(ComponentId, Level, Format, ...)`; `Format` is a NUL-terminated printf string.
    pub fn DbgPrintEx(ComponentId: ULONG, Level: ULONG, Format: *const u8, ...) -> ULONG;
}
