//! Scalar types, `LARGE_INTEGER`, `LIST_ENTRY`, `UNICODE_STRING`, IRQL and pool constants.

use core::ffi::c_void;

pub type PVOID = *mut c_void;
pub type HANDLE = *mut c_void;
pub type BOOLEAN = u8;
pub type CCHAR = i8;
pub type CSHORT = i16;
pub type UCHAR = u8;
pub type USHORT = u16;
pub type ULONG = u32;
pub type LONG = i32;
pub type ULONG64 = u64;
pub type ULONG_PTR = usize;
pub type LONG_PTR = isize;
pub type SIZE_T = usize;
pub type KPRIORITY = i32;
pub type ACCESS_MASK = u32;
pub type KIRQL = u8;
pub type KPROCESSOR_MODE = i8;
pub type POOL_FLAGS = u64;

pub const TRUE: BOOLEAN = 1;
pub const FALSE: BOOLEAN = 0;

pub const PASSIVE_LEVEL: KIRQL = 0;
pub const APC_LEVEL: KIRQL = 1;
pub const DISPATCH_LEVEL: KIRQL = 2;

pub const KernelMode: KPROCESSOR_MODE = 0;
pub const UserMode: KPROCESSOR_MODE = 1;

/// `IO_NO_INCREMENT`: the priority boost passed to `IofCompleteRequest` by a driver that boosts nothing.
pub const IO_NO_INCREMENT: CCHAR = 0;

pub const POOL_FLAG_USE_QUOTA: POOL_FLAGS = 0x0000_0001;
pub const POOL_FLAG_UNINITIALIZED: POOL_FLAGS = 0x0000_0002;
pub const POOL_FLAG_CACHE_ALIGNED: POOL_FLAGS = 0x0000_0008;
pub const POOL_FLAG_RAISE_ON_FAILURE: POOL_FLAGS = 0x0000_0020;
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x0000_0040;
pub const POOL_FLAG_NON_PAGED_EXECUTE: POOL_FLAGS = 0x0000_0080;
pub const POOL_FLAG_PAGED: POOL_FLAGS = 0x0000_0100;

/// `POOL_TYPE` of `ExAllocatePoolWithTag` (a C enum: an `int`). Only the types the fallback of
/// `ExAllocatePool2` passes are declared.
pub type POOL_TYPE = i32;
/// Nonpaged, executable (every Windows).
pub const NonPagedPool: POOL_TYPE = 0;
/// The name Windows 8 gave `NonPagedPool`, to say that it is executable.
pub const NonPagedPoolExecute: POOL_TYPE = NonPagedPool;
pub const PagedPool: POOL_TYPE = 1;
pub const NonPagedPoolCacheAligned: POOL_TYPE = 4;
pub const PagedPoolCacheAligned: POOL_TYPE = 5;
/// Nonpaged, not executable: Windows 8 and later only.
pub const NonPagedPoolNx: POOL_TYPE = 512;
/// Nonpaged, not executable, cache aligned: Windows 8 and later only.
pub const NonPagedPoolNxCacheAligned: POOL_TYPE = 516;

/// `THREAD_ALL_ACCESS` as passed to `PsCreateSystemThread` and `ObReferenceObjectByHandle`.
pub const THREAD_ALL_ACCESS: ACCESS_MASK = 0x001F_FFFF;
/// `SYNCHRONIZE`: enough access to wait on a thread object.
pub const SYNCHRONIZE: ACCESS_MASK = 0x0010_0000;

/// DbgPrintEx component and levels.
pub const DPFLTR_IHVDRIVER_ID: ULONG = 77;
pub const DPFLTR_ERROR_LEVEL: ULONG = 0;
pub const DPFLTR_WARNING_LEVEL: ULONG = 1;
pub const DPFLTR_TRACE_LEVEL: ULONG = 2;
pub const DPFLTR_INFO_LEVEL: ULONG = 3;

/// `LARGE_INTEGER`: a signed 64-bit value passed by value in one register on x64, exactly like `i64`.
/// Negative times are relative, in 100 ns units; positive ones are absolute system time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LARGE_INTEGER {
    pub QuadPart: i64,
}

impl LARGE_INTEGER {
    /// A relative timeout of `hundred_ns` 100-nanosecond units (a negative `QuadPart`).
    pub const fn relative_100ns(hundred_ns: i64) -> Self {
        Self { QuadPart: -hundred_ns }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LIST_ENTRY {
    pub Flink: *mut LIST_ENTRY,
    pub Blink: *mut LIST_ENTRY,
}

#[repr(C)]
#[derive(Debug)]
pub struct SINGLE_LIST_ENTRY {
    pub Next: *mut SINGLE_LIST_ENTRY,
}

/// A counted UTF-16 string; `Length` and `MaximumLength` are in bytes.
#[repr(C)]
#[derive(Debug)]
pub struct UNICODE_STRING {
    pub Length: USHORT,
    pub MaximumLength: USHORT,
    pub Buffer: *mut u16,
}
pub type PUNICODE_STRING = *mut UNICODE_STRING;

/// `RTL_OSVERSIONINFOW`, filled by `RtlGetVersion`; the caller sets `dwOSVersionInfoSize` to its size.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RTL_OSVERSIONINFOW {
    pub dwOSVersionInfoSize: ULONG,
    pub dwMajorVersion: ULONG,
    pub dwMinorVersion: ULONG,
    pub dwBuildNumber: ULONG,
    pub dwPlatformId: ULONG,
    pub szCSDVersion: [u16; 128],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CLIENT_ID {
    pub UniqueProcess: HANDLE,
    pub UniqueThread: HANDLE,
}

/// `OBJECT_ATTRIBUTES`; this project passes NULL or a zeroed kernel-handle attribute block.
#[repr(C)]
#[derive(Debug)]
pub struct OBJECT_ATTRIBUTES {
    pub Length: ULONG,
    pub RootDirectory: HANDLE,
    pub ObjectName: *mut UNICODE_STRING,
    pub Attributes: ULONG,
    pub SecurityDescriptor: PVOID,
    pub SecurityQualityOfService: PVOID,
}

pub const OBJ_KERNEL_HANDLE: ULONG = 0x0000_0200;

/// Opaque object-manager types, only ever handled by pointer.
#[repr(C)]
pub struct OBJECT_TYPE {
    _opaque: [u8; 0],
}
pub type POBJECT_TYPE = *mut OBJECT_TYPE;

#[repr(C)]
pub struct ETHREAD {
    _opaque: [u8; 0],
}
pub type PETHREAD = *mut ETHREAD;
