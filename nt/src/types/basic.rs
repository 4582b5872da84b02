//! Scalar types, `LARGE_INTEGER`, `LIST_ENTRY`, `UNICODE_STRING`, IRQL and pool constants.

use core::ffi::c_void;

/// `PVOID`: void *.
pub type PVOID = *mut c_void;
/// `HANDLE`: a kernel handle.
pub type HANDLE = *mut c_void;
/// `BOOLEAN`: an 8-bit `TRUE`/`FALSE`.
pub type BOOLEAN = u8;
/// `CCHAR`: char, signed.
pub type CCHAR = i8;
/// `CSHORT`: short.
pub type CSHORT = i16;
/// `UCHAR`: unsigned char.
pub type UCHAR = u8;
/// `USHORT`: unsigned short.
pub type USHORT = u16;
/// `ULONG`: unsigned 32-bit (LLP64 `long`).
pub type ULONG = u32;
/// `LONG`: signed 32-bit (LLP64 `long`).
pub type LONG = i32;
/// `ULONG64`: unsigned 64-bit.
pub type ULONG64 = u64;
/// `ULONG_PTR`: pointer-sized unsigned.
pub type ULONG_PTR = usize;
/// `LONG_PTR`: pointer-sized signed.
pub type LONG_PTR = isize;
/// `SIZE_T`: pointer-sized byte count.
pub type SIZE_T = usize;
/// `KPRIORITY`: a thread priority.
pub type KPRIORITY = i32;
/// `ACCESS_MASK`: access rights bits.
pub type ACCESS_MASK = u32;
/// `KIRQL`: an interrupt request level.
pub type KIRQL = u8;
/// `KPROCESSOR_MODE`: `KernelMode` or `UserMode`.
pub type KPROCESSOR_MODE = i8;
/// `POOL_FLAGS`: the `Flags` of `ExAllocatePool2`.
pub type POOL_FLAGS = u64;

/// `TRUE` as a [`BOOLEAN`].
pub const TRUE: BOOLEAN = 1;
/// `FALSE` as a [`BOOLEAN`].
pub const FALSE: BOOLEAN = 0;

/// The IRQL of ordinary thread code: every wait and every pageable access is allowed.
pub const PASSIVE_LEVEL: KIRQL = 0;
/// The IRQL that masks APCs.
pub const APC_LEVEL: KIRQL = 1;
/// The IRQL of DPCs, spin lock holders and most completion routines: no waits, no paged memory.
pub const DISPATCH_LEVEL: KIRQL = 2;

/// The caller is kernel code.
pub const KernelMode: KPROCESSOR_MODE = 0;
/// The caller is user code.
pub const UserMode: KPROCESSOR_MODE = 1;

/// `IO_NO_INCREMENT`: the priority boost passed to `IofCompleteRequest` by a driver that boosts nothing.
pub const IO_NO_INCREMENT: CCHAR = 0;

/// `POOL_FLAG_USE_QUOTA`: charge the allocation to the current process.
pub const POOL_FLAG_USE_QUOTA: POOL_FLAGS = 0x0000_0001;
/// `POOL_FLAG_UNINITIALIZED`: do not zero the allocation.
pub const POOL_FLAG_UNINITIALIZED: POOL_FLAGS = 0x0000_0002;
/// `POOL_FLAG_CACHE_ALIGNED`: align the allocation to a cache line.
pub const POOL_FLAG_CACHE_ALIGNED: POOL_FLAGS = 0x0000_0008;
/// `POOL_FLAG_RAISE_ON_FAILURE`: raise an exception instead of returning NULL.
pub const POOL_FLAG_RAISE_ON_FAILURE: POOL_FLAGS = 0x0000_0020;
/// `POOL_FLAG_NON_PAGED`: nonpaged, not executable.
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x0000_0040;
/// `POOL_FLAG_NON_PAGED_EXECUTE`: nonpaged, executable.
pub const POOL_FLAG_NON_PAGED_EXECUTE: POOL_FLAGS = 0x0000_0080;
/// `POOL_FLAG_PAGED`: paged.
pub const POOL_FLAG_PAGED: POOL_FLAGS = 0x0000_0100;

/// `POOL_TYPE` of `ExAllocatePoolWithTag` (a C enum: an `int`). Only the types the fallback of
/// `ExAllocatePool2` passes are declared.
pub type POOL_TYPE = i32;
/// Nonpaged, executable (every Windows).
pub const NonPagedPool: POOL_TYPE = 0;
/// The name Windows 8 gave `NonPagedPool`, to say that it is executable.
pub const NonPagedPoolExecute: POOL_TYPE = NonPagedPool;
/// Paged pool: only at IRQL < DISPATCH_LEVEL.
pub const PagedPool: POOL_TYPE = 1;
/// Nonpaged, executable, cache aligned.
pub const NonPagedPoolCacheAligned: POOL_TYPE = 4;
/// Paged, cache aligned.
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
/// `DbgPrintEx` level: errors (shown by default).
pub const DPFLTR_ERROR_LEVEL: ULONG = 0;
/// `DbgPrintEx` level: warnings.
pub const DPFLTR_WARNING_LEVEL: ULONG = 1;
/// `DbgPrintEx` level: tracing.
pub const DPFLTR_TRACE_LEVEL: ULONG = 2;
/// `DbgPrintEx` level: information.
pub const DPFLTR_INFO_LEVEL: ULONG = 3;

/// `LARGE_INTEGER`: a signed 64-bit value passed by value in one register on x64, exactly like `i64`.
/// Negative times are relative, in 100 ns units; positive ones are absolute system time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LARGE_INTEGER {
    /// The value as one signed 64-bit integer.
    pub QuadPart: i64,
}

impl LARGE_INTEGER {
    /// A relative timeout of `hundred_ns` 100-nanosecond units (a negative `QuadPart`).
    pub const fn relative_100ns(hundred_ns: i64) -> Self {
        Self { QuadPart: -hundred_ns }
    }
}

/// `LIST_ENTRY`: a link of a circular doubly linked list.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LIST_ENTRY {
    /// The next entry.
    pub Flink: *mut LIST_ENTRY,
    /// The previous entry.
    pub Blink: *mut LIST_ENTRY,
}

/// `SINGLE_LIST_ENTRY`: a link of a singly linked list.
#[repr(C)]
#[derive(Debug)]
pub struct SINGLE_LIST_ENTRY {
    /// The next entry, or NULL.
    pub Next: *mut SINGLE_LIST_ENTRY,
}

/// A counted UTF-16 string; `Length` and `MaximumLength` are in bytes.
#[repr(C)]
#[derive(Debug)]
pub struct UNICODE_STRING {
    /// Length of the string in bytes, without any terminating NUL.
    pub Length: USHORT,
    /// Size of `Buffer` in bytes.
    pub MaximumLength: USHORT,
    /// UTF-16 code units, not necessarily NUL-terminated.
    pub Buffer: *mut u16,
}
/// Pointer to [`UNICODE_STRING`].
pub type PUNICODE_STRING = *mut UNICODE_STRING;

/// `RTL_OSVERSIONINFOW`, filled by `RtlGetVersion`; the caller sets `dwOSVersionInfoSize` to its size.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RTL_OSVERSIONINFOW {
    /// Size of this structure in bytes, set by the caller.
    pub dwOSVersionInfoSize: ULONG,
    /// Major version (10 for Windows 10 and 11).
    pub dwMajorVersion: ULONG,
    /// Minor version.
    pub dwMinorVersion: ULONG,
    /// Build number (19041 for Windows 10 2004).
    pub dwBuildNumber: ULONG,
    /// Platform (`VER_PLATFORM_WIN32_NT`).
    pub dwPlatformId: ULONG,
    /// The service pack, as a NUL-terminated UTF-16 string.
    pub szCSDVersion: [u16; 128],
}

/// `CLIENT_ID`: the process and thread ids of a thread (`PsCreateSystemThread`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CLIENT_ID {
    /// The process id.
    pub UniqueProcess: HANDLE,
    /// The thread id.
    pub UniqueThread: HANDLE,
}

/// `OBJECT_ATTRIBUTES`; this project passes NULL or a zeroed kernel-handle attribute block.
#[repr(C)]
#[derive(Debug)]
pub struct OBJECT_ATTRIBUTES {
    /// Size of this structure in bytes.
    pub Length: ULONG,
    /// The directory `ObjectName` is relative to, or NULL.
    pub RootDirectory: HANDLE,
    /// The object's name, or NULL.
    pub ObjectName: *mut UNICODE_STRING,
    /// `OBJ_*` flags, such as [`OBJ_KERNEL_HANDLE`].
    pub Attributes: ULONG,
    /// A security descriptor, or NULL for the default.
    pub SecurityDescriptor: PVOID,
    /// Quality of service, or NULL.
    pub SecurityQualityOfService: PVOID,
}

/// `OBJ_KERNEL_HANDLE`: the handle is in the kernel handle table, not the current process's.
pub const OBJ_KERNEL_HANDLE: ULONG = 0x0000_0200;

/// Opaque object-manager types, only ever handled by pointer.
#[repr(C)]
pub struct OBJECT_TYPE {
    _opaque: [u8; 0],
}
/// Pointer to [`OBJECT_TYPE`].
pub type POBJECT_TYPE = *mut OBJECT_TYPE;

/// The opaque `ETHREAD`: a thread object, only passed by pointer.
#[repr(C)]
pub struct ETHREAD {
    _opaque: [u8; 0],
}
/// Pointer to [`ETHREAD`].
pub type PETHREAD = *mut ETHREAD;
