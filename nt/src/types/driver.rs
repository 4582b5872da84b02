//! `DRIVER_OBJECT` and the opaque `DEVICE_OBJECT`.

use super::basic::*;
use super::status::NTSTATUS;

/// Drivers in this project never look inside a device object.
#[repr(C)]
pub struct DEVICE_OBJECT {
    _opaque: [u8; 0],
}
pub type PDEVICE_OBJECT = *mut DEVICE_OBJECT;

pub type PDRIVER_UNLOAD = Option<unsafe extern "system" fn(DriverObject: *mut DRIVER_OBJECT)>;
pub type PDRIVER_DISPATCH =
    Option<unsafe extern "system" fn(DeviceObject: PDEVICE_OBJECT, Irp: super::irp::PIRP) -> NTSTATUS>;

/// `IRP_MJ_MAXIMUM_FUNCTION + 1`.
pub const IRP_MJ_COUNT: usize = 0x1c;

/// `DRIVER_OBJECT` (0x150 bytes on x64).
#[repr(C)]
pub struct DRIVER_OBJECT {
    pub Type: CSHORT,
    pub Size: CSHORT,
    pub DeviceObject: PDEVICE_OBJECT,
    pub Flags: ULONG,
    pub DriverStart: PVOID,
    pub DriverSize: ULONG,
    pub DriverSection: PVOID,
    pub DriverExtension: PVOID,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    pub FastIoDispatch: PVOID,
    pub DriverInit: PVOID,
    pub DriverStartIo: PVOID,
    pub DriverUnload: PDRIVER_UNLOAD,
    pub MajorFunction: [PDRIVER_DISPATCH; IRP_MJ_COUNT],
}
pub type PDRIVER_OBJECT = *mut DRIVER_OBJECT;
