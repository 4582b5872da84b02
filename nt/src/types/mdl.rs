//! `MDL`: a memory descriptor list header, followed in memory by its page frame numbers.

use super::basic::*;

#[repr(C)]
pub struct MDL {
    pub Next: *mut MDL,
    pub Size: CSHORT,
    pub MdlFlags: CSHORT,
    pub AllocationProcessorNumber: USHORT,
    _reserved: USHORT,
    pub Process: PVOID,
    pub MappedSystemVa: PVOID,
    pub StartVa: PVOID,
    pub ByteCount: ULONG,
    pub ByteOffset: ULONG,
}
pub type PMDL = *mut MDL;

pub const MDL_MAPPED_TO_SYSTEM_VA: CSHORT = 0x0001;
pub const MDL_PAGES_LOCKED: CSHORT = 0x0002;
pub const MDL_SOURCE_IS_NONPAGED_POOL: CSHORT = 0x0004;
pub const MDL_ALLOCATED_FIXED_SIZE: CSHORT = 0x0008;
pub const MDL_PARTIAL: CSHORT = 0x0010;

/// `PAGE_SIZE` on x64 and arm64 Windows.
pub const PAGE_SIZE: usize = 0x1000;
