//! `DRIVER_OBJECT`, the opaque `DEVICE_OBJECT` and `IO_WORKITEM`, and the constants of
//! `IoCreateDevice` and `IoQueueWorkItem`.

use super::basic::*;
use super::status::NTSTATUS;

/// Drivers in this project never look inside a device object: they create one unnamed device
/// (`IoCreateDevice`) only because `IoSetCompletionRoutineEx` and `IoAllocateWorkItem` take one.
#[repr(C)]
pub struct DEVICE_OBJECT {
    _opaque: [u8; 0],
}
/// Pointer to [`DEVICE_OBJECT`].
pub type PDEVICE_OBJECT = *mut DEVICE_OBJECT;

/// `DRIVER_UNLOAD`: `DriverUnload`, called at PASSIVE_LEVEL when the driver is stopped.
pub type PDRIVER_UNLOAD = Option<unsafe extern "system" fn(DriverObject: *mut DRIVER_OBJECT)>;
/// `DRIVER_DISPATCH`: an `IRP_MJ_*` dispatch routine.
pub type PDRIVER_DISPATCH =
    Option<unsafe extern "system" fn(DeviceObject: PDEVICE_OBJECT, Irp: super::irp::PIRP) -> NTSTATUS>;

/// `IRP_MJ_MAXIMUM_FUNCTION + 1`.
pub const IRP_MJ_COUNT: usize = 0x1c;

/// `DRIVER_OBJECT` (0x150 bytes on x64).
#[repr(C)]
pub struct DRIVER_OBJECT {
    /// [`IO_TYPE_DRIVER`].
    pub Type: CSHORT,
    /// Size of the structure in bytes.
    pub Size: CSHORT,
    /// The first of the driver's device objects.
    pub DeviceObject: PDEVICE_OBJECT,
    /// `DRVO_*` flags; owned by the I/O manager.
    pub Flags: ULONG,
    /// Base address of the driver's image.
    pub DriverStart: PVOID,
    /// Size of the driver's image in bytes.
    pub DriverSize: ULONG,
    /// The loader's entry for the image; opaque.
    pub DriverSection: PVOID,
    /// The driver extension; opaque here.
    pub DriverExtension: PVOID,
    /// The driver's object name (`\Driver\...`).
    pub DriverName: UNICODE_STRING,
    /// The registry path of the hardware configuration.
    pub HardwareDatabase: *mut UNICODE_STRING,
    /// Fast I/O entry points (file systems only); NULL here.
    pub FastIoDispatch: PVOID,
    /// `DriverEntry`.
    pub DriverInit: PVOID,
    /// The `StartIo` routine, or NULL.
    pub DriverStartIo: PVOID,
    /// `DriverUnload`: set in `DriverEntry`; without it the driver cannot be stopped.
    pub DriverUnload: PDRIVER_UNLOAD,
    /// The dispatch routine of each `IRP_MJ_*` code.
    pub MajorFunction: [PDRIVER_DISPATCH; IRP_MJ_COUNT],
}
/// Pointer to [`DRIVER_OBJECT`].
pub type PDRIVER_OBJECT = *mut DRIVER_OBJECT;

/// `IO_TYPE_DRIVER`, the value of `DRIVER_OBJECT::Type`.
pub const IO_TYPE_DRIVER: CSHORT = 4;
/// `IO_TYPE_DEVICE`, the value of `DEVICE_OBJECT::Type`.
pub const IO_TYPE_DEVICE: CSHORT = 3;

/// `DEVICE_TYPE`, the `DeviceType` argument of `IoCreateDevice`.
pub type DEVICE_TYPE = ULONG;
/// `FILE_DEVICE_UNKNOWN`: the device type of a software-only device.
pub const FILE_DEVICE_UNKNOWN: DEVICE_TYPE = 0x22;
/// `FILE_DEVICE_SECURE_OPEN`: a `DeviceCharacteristics` flag (the device's security descriptor applies
/// to opens of names inside the device's namespace too).
pub const FILE_DEVICE_SECURE_OPEN: ULONG = 0x100;

/// The opaque `IO_WORKITEM` (`IoAllocateWorkItem` allocates it, drivers only pass the pointer).
#[repr(C)]
pub struct IO_WORKITEM {
    _opaque: [u8; 0],
}
/// Pointer to [`IO_WORKITEM`].
pub type PIO_WORKITEM = *mut IO_WORKITEM;

/// `IO_WORKITEM_ROUTINE`: runs at PASSIVE_LEVEL on a system worker thread.
pub type PIO_WORKITEM_ROUTINE = Option<unsafe extern "system" fn(DeviceObject: PDEVICE_OBJECT, Context: PVOID)>;

/// `WORK_QUEUE_TYPE` (an `enum` in `wdm.h`; only the values drivers pass).
pub type WORK_QUEUE_TYPE = i32;
/// `CriticalWorkQueue`: a system worker thread at real-time priority, for time-critical work items.
pub const CriticalWorkQueue: WORK_QUEUE_TYPE = 0;
/// What the `IoQueueWorkItem` documentation tells drivers to pass.
pub const DelayedWorkQueue: WORK_QUEUE_TYPE = 1;
