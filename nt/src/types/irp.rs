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
    /// The final status of the operation.
    pub Status: NTSTATUS,
    _pointer_high: u32,
    /// Operation-specific: a byte count, or (WSK) the new socket pointer.
    pub Information: ULONG_PTR,
}

impl IO_STATUS_BLOCK {
    /// A status block with these values.
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
    /// The `IRP_MJ_*` code for the driver this location is for.
    pub MajorFunction: UCHAR,
    /// The `IRP_MN_*` code, if the major function has minor ones.
    pub MinorFunction: UCHAR,
    /// Request flags (`SL_*`) of the major function.
    pub Flags: UCHAR,
    /// `SL_PENDING_RETURNED` and the `SL_INVOKE_ON_*` bits of the completion routine.
    pub Control: UCHAR,
    /// The union of per-function parameters, as four pointer-sized words.
    pub Parameters: [ULONG_PTR; 4],
    /// The device object of the driver this location is for.
    pub DeviceObject: PDEVICE_OBJECT,
    /// The file object of the request, or NULL.
    pub FileObject: PVOID,
    /// The routine `IoCompleteRequest` calls for this location (set by the driver above).
    pub CompletionRoutine: PIO_COMPLETION_ROUTINE,
    /// The context passed to `CompletionRoutine`.
    pub Context: PVOID,
}
/// Pointer to [`IO_STACK_LOCATION`].
pub type PIO_STACK_LOCATION = *mut IO_STACK_LOCATION;

/// `IO_STACK_LOCATION::Control` bits.
pub const SL_PENDING_RETURNED: UCHAR = 0x01;
/// `Control` flag: the request was completed with an error.
pub const SL_ERROR_RETURNED: UCHAR = 0x02;
/// `Control` flag: call the completion routine when the IRP was cancelled.
pub const SL_INVOKE_ON_CANCEL: UCHAR = 0x20;
/// `Control` flag: call the completion routine on success.
pub const SL_INVOKE_ON_SUCCESS: UCHAR = 0x40;
/// `Control` flag: call the completion routine on an error.
pub const SL_INVOKE_ON_ERROR: UCHAR = 0x80;

/// `IO_TYPE_IRP`, the value of `IRP::Type`.
pub const IO_TYPE_IRP: CSHORT = 6;

#[derive(Clone, Copy)]
/// `IRP::Tail.Overlay`, the member of the `Tail` union the I/O manager uses while the IRP is in flight.
#[repr(C)]
pub struct IRP_TAIL_OVERLAY {
    /// `DeviceQueueEntry` / `DriverContext[4]`: four pointer-sized words a driver owning the IRP may use.
    pub DriverContext: [PVOID; 4],
    /// The thread that issued the request (NULL for an IRP a driver allocated).
    pub Thread: PETHREAD,
    /// A buffer of the I/O manager; drivers leave it alone.
    pub AuxiliaryBuffer: *mut i8,
    /// A link a driver owning the IRP may use to queue it.
    pub ListEntry: LIST_ENTRY,
    /// `CurrentStackLocation` / `PacketType`.
    pub CurrentStackLocation: PIO_STACK_LOCATION,
    /// The file object of the request; owned by the I/O manager.
    pub OriginalFileObject: PVOID,
}

/// `IRP::Tail`: `Overlay` plus room for the larger `KAPC` member (0x58 bytes on x64).
#[repr(C)]
pub union IRP_TAIL {
    /// The in-flight view.
    pub Overlay: IRP_TAIL_OVERLAY,
    _apc: [u64; 11],
}

/// `IRP` (0xD0 bytes on x64), followed in memory by `StackCount` `IO_STACK_LOCATION`s.
#[repr(C)]
pub struct IRP {
    /// [`IO_TYPE_IRP`].
    pub Type: CSHORT,
    /// Size of the IRP in bytes, stack locations included.
    pub Size: USHORT,
    /// The processor whose lookaside list the IRP came from.
    pub AllocationProcessorNumber: USHORT,
    _reserved: USHORT,
    /// The MDL chain describing the request's buffer (direct I/O), or NULL.
    pub MdlAddress: *mut MDL,
    /// `IRP_*` flags; owned by the I/O manager.
    pub Flags: ULONG,
    /// `AssociatedIrp` (`MasterIrp` / `IrpCount` / `SystemBuffer`).
    pub AssociatedIrp: PVOID,
    /// The link in the issuing thread's list of pending IRPs.
    pub ThreadListEntry: LIST_ENTRY,
    /// The final status and information, set by whoever completes the IRP.
    pub IoStatus: IO_STATUS_BLOCK,
    /// `KernelMode` or `UserMode`: who issued the request.
    pub RequestorMode: KPROCESSOR_MODE,
    /// Set when a lower driver returned `STATUS_PENDING`; completion routines that do not return `STATUS_MORE_PROCESSING_REQUIRED` propagate it with `IoMarkIrpPending`.
    pub PendingReturned: BOOLEAN,
    /// The number of stack locations after the IRP.
    pub StackCount: CCHAR,
    /// The index of the current stack location (`StackCount + 1` when no driver has it yet).
    pub CurrentLocation: CCHAR,
    /// Set by `IoCancelIrp`.
    pub Cancel: BOOLEAN,
    /// The IRQL `IoAcquireCancelSpinLock` saved, for the cancel routine to release it with.
    pub CancelIrql: KIRQL,
    /// The APC environment of the issuing thread.
    pub ApcEnvironment: CCHAR,
    /// How the IRP was allocated; owned by the I/O manager.
    pub AllocationFlags: UCHAR,
    /// Where the I/O manager copies `IoStatus` for the issuer, or NULL.
    pub UserIosb: *mut IO_STATUS_BLOCK,
    /// The event the I/O manager signals for the issuer, or NULL.
    pub UserEvent: *mut KEVENT,
    /// `Overlay` (`AsynchronousParameters` / `AllocationSize`).
    pub Overlay: [u64; 2],
    /// Accessed atomically (`IoSetCancelRoutine` is an interlocked exchange).
    pub CancelRoutine: PDRIVER_CANCEL,
    /// The user-mode buffer of the request (neither I/O), or NULL.
    pub UserBuffer: PVOID,
    /// The tail union; see [`IRP_TAIL_OVERLAY`].
    pub Tail: IRP_TAIL,
}
/// Pointer to [`IRP`].
pub type PIRP = *mut IRP;

/// Keeps `DEVICE_OBJECT` referenced from this module for documentation links.
#[allow(dead_code)]
type _DeviceObjectForDocs = DEVICE_OBJECT;
