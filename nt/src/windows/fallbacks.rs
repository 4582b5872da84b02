//! The imports behind `crate::optional`: the lookup of optional exports and the fallbacks used
//! where they are missing. Each is exported by every Windows since 2000 (`samples/echo-driver/
//! kernel-exports.txt` lists the version of every import), and by Wine 8.

use crate::types::*;

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// The address of a routine the kernel or the HAL exports, or NULL. PASSIVE_LEVEL.
    pub fn MmGetSystemRoutineAddress(SystemRoutineName: *mut UNICODE_STRING) -> PVOID;
    /// The running kernel's version. PASSIVE_LEVEL.
    pub fn RtlGetVersion(lpVersionInformation: *mut RTL_OSVERSIONINFOW) -> NTSTATUS;
    /// Pool memory of `PoolType`, not zeroed. The fallback of `ExAllocatePool2`.
    pub fn ExAllocatePoolWithTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
}

// `KeQueryPerformanceCounter` is a HAL export (`Hal.lib`/`Hal.dll` in its documentation; Windows
// 10's hal.dll forwards it to ntoskrnl.exe, Wine's hal.dll implements it).
#[link(name = "HAL.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// The performance counter, in ticks; `*PerformanceFrequency` (optional) receives its
    /// frequency in ticks per second, fixed at boot. Any IRQL.
    pub fn KeQueryPerformanceCounter(PerformanceFrequency: *mut LARGE_INTEGER) -> LARGE_INTEGER;
}
