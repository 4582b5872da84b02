//! `IRP`, `IO_STACK_LOCATION`, `IO_STATUS_BLOCK` and the completion/cancel routine types.
//!
//! Only the fields this project reads or writes are named; the rest are kept as correctly sized
//! padding so that the x64 layout matches `wdm.h` exactly (see `layout.rs`).

use super::basic::*;
use super::driver::{DEVICE_OBJECT, PDEVICE_OBJECT};
use super::ke::KEVENT;
use super::mdl::MDL;
use super::status::NTSTATUS;

/// `IO_STATUS_BLOCK`: the `Status`/`Pointer` union is represented by its `Status` member; the upper
/// half of the first 8 bytes is padding on x64.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IO_STATUS_BLOCK {
    pub Status: NTSTATUS,
    _pointer_high: u32,
    pub Information: ULONG_PTR,
}

impl IO_STATUS_BLOCK {
    pub const fn new(status: NTSTATUS, information: ULONG_PTR) -> Self {
        Self {
            Status: status,
            _pointer_high: 0,
            Information: information,
        }
    }
}

/// `IO_COMPLETION_ROUTINE`. Runs at IRQL <= DISPATCH_LEVEL on any CPU.
pub type PIO_COMPLETION_ROUTINE =
    Option<unsafe extern "system" fn(DeviceObject: PDEVICE_OBJECT, Irp: PIRP, Context: PVOID) -> NTSTATUS>;

/// `DRIVER_CANCEL`. Called with the cancel spin lock held; must release it with
/// `IoReleaseCancelSpinLock(Irp->CancelIrql)`.
pub type PDRIVER_CANCEL = Option<unsafe extern "system" fn(DeviceObject: PDEVICE_OBJECT, Irp: PIRP)>;

/// `IO_STACK_LOCATION` (0x48 bytes on x64). `Parameters` is a 32-byte union whose variants this
/// project does not interpret; it is exposed as raw words.
#[repr(C)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: UCHAR,
    pub MinorFunction: UCHAR,
    pub Flags: UCHAR,
    pub Control: UCHAR,
    pub Parameters: [ULONG_PTR; 4],
    pub DeviceObject: PDEVICE_OBJECT,
    pub FileObject: PVOID,
    pub CompletionRoutine: PIO_COMPLETION_ROUTINE,
    pub Context: PVOID,
}
pub type PIO_STACK_LOCATION = *mut IO_STACK_LOCATION;

/// `IO_STACK_LOCATION::Control` bits.
pub const SL_PENDING_RETURNED: UCHAR = 0x01;
pub const SL_ERROR_RETURNED: UCHAR = 0x02;
pub const SL_INVOKE_ON_CANCEL: UCHAR = 0x20;
pub const SL_INVOKE_ON_SUCCESS: UCHAR = 0x40;
pub const SL_INVOKE_ON_ERROR: UCHAR = 0x80;

/// `IO_TYPE_IRP`, the value of `IRP::Type`.
pub const IO_TYPE_IRP: CSHORT = 6;

#[derive(Clone, Copy)]
/// `IRP::Tail.Overlay`, the member of the `Tail` union the I/O manager uses while the IRP is in flight.
#[repr(C)]
pub struct IRP_TAIL_OVERLAY {
    /// `DeviceQueueEntry` / `DriverContext[4]`: four pointer-sized words a driver owning the IRP may use.
    pub DriverContext: [PVOID; 4],
    pub Thread: PETHREAD,
    pub AuxiliaryBuffer: *mut i8,
    pub ListEntry: LIST_ENTRY,
    /// `CurrentStackLocation` / `PacketType`.
    pub CurrentStackLocation: PIO_STACK_LOCATION,
    pub OriginalFileObject: PVOID,
}

/// `IRP::Tail`: `Overlay` plus room for the larger `KAPC` member (0x58 bytes on x64).
#[repr(C)]
pub union IRP_TAIL {
    pub Overlay: IRP_TAIL_OVERLAY,
    _apc: [u64; 11],
}

/// `IRP` (0xD0 bytes on x64), followed in memory by `StackCount` `IO_STACK_LOCATION`s.
#[repr(C)]
pub struct IRP {
    pub Type: CSHORT,
    pub Size: USHORT,
    pub AllocationProcessorNumber: USHORT,
    _reserved: USHORT,
    pub MdlAddress: *mut MDL,
    pub Flags: ULONG,
    /// `AssociatedIrp` (`MasterIrp` / `IrpCount` / `SystemBuffer`).
    pub AssociatedIrp: PVOID,
    pub ThreadListEntry: LIST_ENTRY,
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: KPROCESSOR_MODE,
    pub PendingReturned: BOOLEAN,
    pub StackCount: CCHAR,
    pub CurrentLocation: CCHAR,
    pub Cancel: BOOLEAN,
    pub CancelIrql: KIRQL,
    pub ApcEnvironment: CCHAR,
    pub AllocationFlags: UCHAR,
    pub UserIosb: *mut IO_STATUS_BLOCK,
    pub UserEvent: *mut KEVENT,
    /// `Overlay` (`AsynchronousParameters` / `AllocationSize`).
    pub Overlay: [u64; 2],
    /// Accessed atomically (`IoSetCancelRoutine` is an interlocked exchange).
    pub CancelRoutine: PDRIVER_CANCEL,
    pub UserBuffer: PVOID,
    pub Tail: IRP_TAIL,
}
pub type PIRP = *mut IRP;

/// Keeps `DEVICE_OBJECT` referenced from this module for documentation links.
#[allow(dead_code)]
type _DeviceObjectForDocs = DEVICE_OBJECT;
