//! `raw-dylib` imports from ntoskrnl.exe. `+verbatim` keeps the module name as written (without it the
//! linker would look for `ntoskrnl.exe.dll`). The signatures are those of the WDK documentation;
//! the host emulation implements the same names with the same signatures. Exports newer than the
//! oldest supported Windows are never imported: see `crate::optional` and `fallbacks.rs`.

use crate::types::*;

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    // I/O manager: IRPs, MDLs, cancellation.
    pub fn IoAllocateIrp(StackSize: CCHAR, ChargeQuota: BOOLEAN) -> PIRP;
    pub fn IoReuseIrp(Irp: PIRP, Iostatus: NTSTATUS);
    pub fn IoFreeIrp(Irp: PIRP);
    pub fn IoCancelIrp(Irp: PIRP) -> BOOLEAN;
    pub fn IofCompleteRequest(Irp: PIRP, PriorityBoost: CCHAR);
    pub fn IoAcquireCancelSpinLock(Irql: *mut KIRQL);
    pub fn IoReleaseCancelSpinLock(Irql: KIRQL);
    pub fn IoAllocateMdl(
        VirtualAddress: PVOID,
        Length: ULONG,
        SecondaryBuffer: BOOLEAN,
        ChargeQuota: BOOLEAN,
        Irp: PIRP,
    ) -> PMDL;
    pub fn IoFreeMdl(Mdl: PMDL);
    pub fn MmBuildMdlForNonPagedPool(MemoryDescriptorList: PMDL);

    // I/O manager: device objects, unload-safe completion routines, work items.
    pub fn IoCreateDevice(
        DriverObject: PDRIVER_OBJECT,
        DeviceExtensionSize: ULONG,
        DeviceName: PUNICODE_STRING,
        DeviceType: DEVICE_TYPE,
        DeviceCharacteristics: ULONG,
        Exclusive: BOOLEAN,
        DeviceObject: *mut PDEVICE_OBJECT,
    ) -> NTSTATUS;
    pub fn IoDeleteDevice(DeviceObject: PDEVICE_OBJECT);
    pub fn IoSetCompletionRoutineEx(
        DeviceObject: PDEVICE_OBJECT,
        Irp: PIRP,
        CompletionRoutine: PIO_COMPLETION_ROUTINE,
        Context: PVOID,
        InvokeOnSuccess: BOOLEAN,
        InvokeOnError: BOOLEAN,
        InvokeOnCancel: BOOLEAN,
    ) -> NTSTATUS;
    pub fn IoAllocateWorkItem(DeviceObject: PDEVICE_OBJECT) -> PIO_WORKITEM;
    pub fn IoQueueWorkItem(
        IoWorkItem: PIO_WORKITEM,
        WorkerRoutine: PIO_WORKITEM_ROUTINE,
        QueueType: WORK_QUEUE_TYPE,
        Context: PVOID,
    );
    pub fn IoFreeWorkItem(IoWorkItem: PIO_WORKITEM);

    // Pool.
    pub fn ExFreePoolWithTag(P: PVOID, Tag: ULONG);

    // Dispatcher objects, timers, DPCs.
    pub fn KeInitializeEvent(Event: PKEVENT, Type: EVENT_TYPE, State: BOOLEAN);
    pub fn KeSetEvent(Event: PKEVENT, Increment: KPRIORITY, Wait: BOOLEAN) -> LONG;
    pub fn KeClearEvent(Event: PKEVENT);
    pub fn KeResetEvent(Event: PKEVENT) -> LONG;
    pub fn KeReadStateEvent(Event: PKEVENT) -> LONG;
    pub fn KeWaitForSingleObject(
        Object: PVOID,
        WaitReason: KWAIT_REASON,
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    pub fn KeDelayExecutionThread(
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Interval: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    pub fn KeInitializeTimerEx(Timer: PKTIMER, Type: TIMER_TYPE);
    pub fn KeSetTimerEx(Timer: PKTIMER, DueTime: LARGE_INTEGER, Period: LONG, Dpc: PKDPC) -> BOOLEAN;
    pub fn KeCancelTimer(Timer: PKTIMER) -> BOOLEAN;
    pub fn KeReadStateTimer(Timer: PKTIMER) -> BOOLEAN;
    pub fn KeInitializeDpc(Dpc: PKDPC, DeferredRoutine: PKDEFERRED_ROUTINE, DeferredContext: PVOID);
    pub fn KeFlushQueuedDpcs();
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut usize) -> KIRQL;
    pub fn KeReleaseSpinLock(SpinLock: *mut usize, NewIrql: KIRQL);

    // Threads and objects.
    pub fn PsCreateSystemThread(
        ThreadHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        ProcessHandle: HANDLE,
        ClientId: *mut CLIENT_ID,
        StartRoutine: PKSTART_ROUTINE,
        StartContext: PVOID,
    ) -> NTSTATUS;
    pub fn PsTerminateSystemThread(ExitStatus: NTSTATUS) -> NTSTATUS;
    pub fn ObReferenceObjectByHandle(
        Handle: HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectType: POBJECT_TYPE,
        AccessMode: KPROCESSOR_MODE,
        Object: *mut PVOID,
        HandleInformation: PVOID,
    ) -> NTSTATUS;
    // `FASTCALL` in wdm.h, which is the one x64 calling convention, like `system`.
    pub fn ObfReferenceObject(Object: PVOID) -> LONG_PTR;
    pub fn ObfDereferenceObject(Object: PVOID) -> LONG_PTR;
    pub fn ZwClose(Handle: HANDLE) -> NTSTATUS;
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `DbgPrintEx(ComponentId, Level, Format, ...)`; `Format` is a NUL-terminated printf string.
    pub fn DbgPrintEx(ComponentId: ULONG, Level: ULONG, Format: *const u8, ...) -> ULONG;
}
