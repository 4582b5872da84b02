//! `MDL`: a memory descriptor list header, followed in memory by its page frame numbers.

use super::basic::*;

/// `MDL` (0x30 bytes on x64): describes the physical pages of a virtually contiguous buffer; the page frame numbers follow the header.
#[repr(C)]
pub struct MDL {
    /// The next MDL of a chain, or NULL.
    pub Next: *mut MDL,
    /// Size of the MDL in bytes, page frame numbers included.
    pub Size: CSHORT,
    /// `MDL_*` flags.
    pub MdlFlags: CSHORT,
    /// The processor whose lookaside list the MDL came from.
    pub AllocationProcessorNumber: USHORT,
    _reserved: USHORT,
    /// The process of a user-mode buffer, or NULL.
    pub Process: PVOID,
    /// The system address of the buffer, valid when `MDL_MAPPED_TO_SYSTEM_VA` or `MDL_SOURCE_IS_NONPAGED_POOL` is set.
    pub MappedSystemVa: PVOID,
    /// The page-aligned virtual address the buffer starts in.
    pub StartVa: PVOID,
    /// Length of the buffer in bytes.
    pub ByteCount: ULONG,
    /// Offset of the buffer in its first page.
    pub ByteOffset: ULONG,
}
/// Pointer to [`MDL`].
pub type PMDL = *mut MDL;

/// The pages are mapped at `MappedSystemVa`.
pub const MDL_MAPPED_TO_SYSTEM_VA: CSHORT = 0x0001;
/// The pages were locked by `MmProbeAndLockPages`.
pub const MDL_PAGES_LOCKED: CSHORT = 0x0002;
/// The buffer is in nonpaged pool (`MmBuildMdlForNonPagedPool`).
pub const MDL_SOURCE_IS_NONPAGED_POOL: CSHORT = 0x0004;
/// The MDL was allocated with room for its buffer's pages.
pub const MDL_ALLOCATED_FIXED_SIZE: CSHORT = 0x0008;
/// The MDL describes part of another MDL's buffer (`IoBuildPartialMdl`).
pub const MDL_PARTIAL: CSHORT = 0x0010;

/// `PAGE_SIZE` on x64 and arm64 Windows.
pub const PAGE_SIZE: usize = 0x1000;
